import WeftRuntime
import NIOHTTP1
import WeftModel
import WeftQuery
import WeftStorageEngine

/// How `/api/traces/<id>` and `/api/v2/traces/<id>` answer: protobuf when the `accept` header asks for
/// it (as Grafana's Tempo data source does), JSON otherwise; optional `start`/`end` (unix seconds,
/// nanoseconds or RFC 3339) skip blocks holding no span started in that window.
package struct TraceByIDRequest: Sendable {
    package static let protobufType = "application/protobuf"

    package let protobuf: Bool
    package let startNanos: UInt64
    package let endNanos: UInt64

    package init(_ request: HTTPRequest) throws(QueryError) {
        let accept = request.headers[canonicalForm: "accept"].map { $0.lowercased() }
        self.protobuf = accept.contains { $0.hasPrefix(Self.protobufType) || $0.hasPrefix("application/x-protobuf") }
        var start: UInt64 = 0, end = UInt64.max
        if let v = request.query["start"], !v.isEmpty, v != "0" { start = try QueryTime.parse(v, parameter: "start") }
        if let v = request.query["end"], !v.isEmpty, v != "0" {
            let t = try QueryTime.parse(v, parameter: "end")
            // A whole second as the end takes in all of that second.
            end = t % 1_000_000_000 == 0 ? t.addingReportingOverflow(999_999_999).partialValue : t
        }
        guard end >= start else { throw QueryError("parameter 'end' must not be before 'start'") }
        self.startNanos = start
        self.endNanos = end
    }

    /// The blocks that may hold spans started in the window.
    package func blocks(of snapshot: StorageEngine.Snapshot) -> [BlockMeta] {
        snapshot.blocks.filter { $0.maxStart >= self.startNanos && $0.minStart <= self.endNanos }
    }

    /// The trace in the asked-for encoding and shape, or nil if no span of it is stored.
    package func answer(_ id: TraceID, in chunks: [HeadChunk], shape: TraceRenderer.Shape) -> HTTPResponse? {
        guard self.protobuf else {
            return TraceRenderer.json(id, in: chunks, shape: shape).map { QueryAPI.json(.ok, $0) }
        }
        let body = shape == .v1 ? TraceProtobuf.trace(id, in: chunks) : TraceProtobuf.traceByIDResponse(id, in: chunks)
        return body.map { HTTPResponse(status: .ok, contentType: Self.protobufType, body: $0) }
    }
}
