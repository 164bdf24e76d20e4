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
                    return GRPCAnswers.status(.resourceExhausted, "request message exceeds the limit of \(limit) bytes")
                case .headersTooLarge(let limit):
                    return GRPCAnswers.status(.resourceExhausted, "request metadata exceeds \(limit) bytes")
                case .overloaded(let budget):
                    return GRPCAnswers.unavailable("the server holds its limit of \(budget) bytes of request bodies; retry shortly")
                }
            }
        )
    }

    package static func respond(_ request: HTTP2Request, receiver: OTLPReceiver?, on loop: any EventLoop) -> EventLoopFuture<HTTP2Response> {
        // gRPC wants HTTP 415 for other content types (the peer is not a gRPC client).
        guard let contentType = request.headers.first(where: { $0.name == "content-type" })?.value,
              GRPCFraming.isGRPC(contentType: contentType)
        else {
            return loop.makeSucceededFuture(HTTP2Response(
                status: 415, headers: [("content-type", "text/plain; charset=utf-8")],
                body: ByteBuffer(string: "use content-type application/grpc\n")
            ))
        }
        guard request.method == "POST" else {
            return loop.makeSucceededFuture(GRPCAnswers.status(.unimplemented, "gRPC calls use POST"))
        }
        guard request.path == Self.exportPath else {
            return loop.makeSucceededFuture(GRPCAnswers.status(.unimplemented, "unknown method \(request.path)"))
        }
        guard let receiver else {
            return loop.makeSucceededFuture(GRPCAnswers.unavailable("recovering the write-ahead log; retry shortly"))
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
                return loop.makeSucceededFuture(GRPCAnswers.status(.resourceExhausted, "message of \(length) bytes exceeds the limit of \(limit) bytes"))
            default:
                receiver.metrics.rejectRequest(.malformed)
                return loop.makeSucceededFuture(GRPCAnswers.status(.invalidArgument, "bad gRPC message framing: \(error)"))
            }
        }
        let org: String
        switch OrgID.parse(request.headers.first(where: { $0.name == "x-scope-orgid" })?.value) {
        case .success(let o): org = o
        case .failure(let invalid):
            receiver.metrics.rejectRequest(.badOrg)
            return loop.makeSucceededFuture(GRPCAnswers.status(.invalidArgument, invalid.description))
        }
        var message = framed.message
        if framed.compressed {
            let encoding = request.headers.first(where: { $0.name == "grpc-encoding" })?.value
            guard let encoding, encoding.lowercased() != "identity" else {
                receiver.metrics.rejectRequest(.malformed)
                return loop.makeSucceededFuture(GRPCAnswers.status(.internal, "compressed message without a grpc-encoding"))
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
                    status: 200, headers: GRPCAnswers.responseHeaders, body: GRPCFraming.frame(body),
                    trailers: [("grpc-status", "0")]
                )
            case .failure(let failure):
                return Self.response(failure)
            }
        }
    }

    package static func response(_ failure: IngestFailure) -> HTTP2Response {
        switch failure {
        case .unsupportedEncoding(let name):
            var r = GRPCAnswers.status(.unimplemented, "unsupported grpc-encoding '\(name)': use gzip or identity")
            r.headers.append(("grpc-accept-encoding", "gzip,identity"))
            return r
        case .malformed(let text): return GRPCAnswers.status(.invalidArgument, text)
        case .tooLarge(let text): return GRPCAnswers.status(.resourceExhausted, text)
        case .unavailable(let text): return GRPCAnswers.unavailable(text)
        }
    }
}
