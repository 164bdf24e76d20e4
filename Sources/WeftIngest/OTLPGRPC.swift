import CompressNIO
import NIOCore
import WeftHTTP2
import WeftModel
import WeftOTLP
import WeftRuntime

/// OTLP/gRPC (PROTOCOLS §1.3) on the HTTP/2 engine: the unary `TraceService/Export`, answered with a
/// length-prefixed `ExportTraceServiceResponse` and `grpc-status` / `grpc-message` trailers.
package enum OTLPGRPC {
    package static let exportPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

    /// The service for the gRPC port. `receiver` is nil while the node is recovering (answers UNAVAILABLE).
    package static func service(receiver: @escaping @Sendable () -> OTLPReceiver?) -> HTTP2Service {
        HTTP2Service(
            respond: { request, loop in
                Self.respond(request, receiver: receiver(), on: loop)
            },
            reject: { _, why in
                switch why {
                case .bodyTooLarge(let limit):
                    return Self.status(.resourceExhausted, "request message exceeds the limit of \(limit) bytes")
                case .headersTooLarge(let limit):
                    return Self.status(.resourceExhausted, "request metadata exceeds \(limit) bytes")
                case .overloaded(let budget):
                    return Self.unavailable("the server holds its limit of \(budget) bytes of request bodies; retry shortly")
                }
            }
        )
    }

    package static func respond(_ request: HTTP2Request, receiver: OTLPReceiver?, on loop: any EventLoop) -> EventLoopFuture<HTTP2Response> {
        // gRPC wants HTTP 415 for other content types (the peer is not a gRPC client).
        guard let contentType = request.headers.first(where: { $0.name == "content-type" })?.value,
              Self.isGRPC(contentType)
        else {
            return loop.makeSucceededFuture(HTTP2Response(
                status: 415, headers: [("content-type", "text/plain; charset=utf-8")],
                body: ByteBuffer(string: "use content-type application/grpc\n")
            ))
        }
        guard request.method == "POST" else {
            return loop.makeSucceededFuture(Self.status(.unimplemented, "gRPC calls use POST"))
        }
        guard request.path == Self.exportPath else {
            return loop.makeSucceededFuture(Self.status(.unimplemented, "unknown method \(request.path)"))
        }
        guard let receiver else {
            return loop.makeSucceededFuture(Self.unavailable("recovering the write-ahead log; retry shortly"))
        }
        let started = ContinuousClock.now
        receiver.received(bytes: request.body.readableBytes)
        let framed: (compressed: Bool, message: ByteBuffer)
        do {
            framed = try GRPCFraming.unary(request.body, maxMessageBytes: receiver.maxDecodedBytes)
        } catch {
            switch error {
            case .tooLarge(let length, let limit):
                receiver.metrics.rejectRequest(.tooLarge)
                return loop.makeSucceededFuture(Self.status(.resourceExhausted, "message of \(length) bytes exceeds the limit of \(limit) bytes"))
            default:
                receiver.metrics.rejectRequest(.malformed)
                return loop.makeSucceededFuture(Self.status(.invalidArgument, "bad gRPC message framing: \(error)"))
            }
        }
        let org: String
        switch OrgID.parse(request.headers.first(where: { $0.name == "x-scope-orgid" })?.value) {
        case .success(let o): org = o
        case .failure(let invalid):
            receiver.metrics.rejectRequest(.badOrg)
            return loop.makeSucceededFuture(Self.status(.invalidArgument, invalid.description))
        }
        var message = framed.message
        if framed.compressed {
            let encoding = request.headers.first(where: { $0.name == "grpc-encoding" })?.value
            guard let encoding, encoding.lowercased() != "identity" else {
                receiver.metrics.rejectRequest(.malformed)
                return loop.makeSucceededFuture(Self.status(.internal, "compressed message without a grpc-encoding"))
            }
            switch receiver.decompress(message, encoding: encoding) {
            case .success(let m): message = m
            case .failure(let failure): return loop.makeSucceededFuture(Self.response(failure))
            }
        }
        return receiver.ingest(message, encoding: .protobuf, org: org, started: started, on: loop).map { outcome in
            switch outcome {
            case .success(let result):
                let body = OTLPResponse.export(rejected: result.rejectedSpans, message: result.message, encoding: .protobuf)
                return HTTP2Response(
                    status: 200, headers: Self.responseHeaders, body: GRPCFraming.frame(body),
                    trailers: [("grpc-status", "0")]
                )
            case .failure(let failure):
                return Self.response(failure)
            }
        }
    }

    package static func isGRPC(_ contentType: String) -> Bool {
        let base = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces.lowercased() } ?? ""
        return base == "application/grpc" || base == "application/grpc+proto"
    }

    package static func response(_ failure: IngestFailure) -> HTTP2Response {
        switch failure {
        case .unsupportedEncoding(let name):
            var r = Self.status(.unimplemented, "unsupported grpc-encoding '\(name)': use gzip or identity")
            r.headers.append(("grpc-accept-encoding", "gzip,identity"))
            return r
        case .malformed(let text): return Self.status(.invalidArgument, text)
        case .tooLarge(let text): return Self.status(.resourceExhausted, text)
        case .unavailable(let text): return Self.unavailable(text)
        }
    }

    package static let responseHeaders: [(name: String, value: String)] = [
        ("content-type", "application/grpc"), ("grpc-accept-encoding", "gzip,identity"),
    ]

    /// A response with no message: status in the trailers.
    package static func status(_ code: GRPCStatusCode, _ message: String, details: [UInt8]? = nil) -> HTTP2Response {
        var trailers: [(name: String, value: String)] = [("grpc-status", String(code.rawValue))]
        if !message.isEmpty { trailers.append(("grpc-message", GRPCFraming.percentEncode(message))) }
        if let details {
            // Binary metadata is base64; gRPC senders omit the padding.
            var text = Base64.encode(details)
            while text.hasSuffix("=") { text.removeLast() }
            trailers.append(("grpc-status-details-bin", text))
        }
        return HTTP2Response(status: 200, headers: Self.responseHeaders, trailers: trailers)
    }

    /// UNAVAILABLE with a `google.rpc.Status` carrying `RetryInfo`, so exporters back off and retry.
    package static func unavailable(_ message: String, retryAfterSeconds: Int = 1) -> HTTP2Response {
        Self.status(.unavailable, message, details: Self.statusDetails(
            code: GRPCStatusCode.unavailable.rawValue, message: message, retryAfterSeconds: retryAfterSeconds
        ))
    }

    /// `google.rpc.Status{code, message, details: [Any{RetryInfo{retry_delay: Duration{seconds}}}]}`.
    package static func statusDetails(code: Int, message: String, retryAfterSeconds: Int) -> [UInt8] {
        var w = ProtoWriter()
        w.varintField(1, UInt64(code))
        w.stringField(2, message)
        w.message(3) { any in
            any.stringField(1, "type.googleapis.com/google.rpc.RetryInfo")
            any.message(2) { retry in
                retry.message(1) { duration in
                    duration.varintField(1, UInt64(retryAfterSeconds))
                }
            }
        }
        return w.bytes
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
