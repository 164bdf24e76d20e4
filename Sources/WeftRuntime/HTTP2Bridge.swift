import NIOCore
import NIOHTTP1
import WeftHTTP2

/// Serves the HTTP/1.1 responder over HTTP/2: the same `HTTPRequest` goes in and the same
/// `HTTPResponse` comes out, so routes and answers are identical on both protocols.
package enum HTTP2Bridge {
    /// `grpc`, when given, answers the requests whose content type is gRPC's (the query port's
    /// ``StreamingQuerier``).
    package static func service(
        maxBodyBytes: Int, responder: @escaping HTTPResponder,
        grpc: (@Sendable (HTTP2Request, any EventLoop) -> EventLoopFuture<HTTP2Response>)? = nil
    ) -> HTTP2Service {
        HTTP2Service(
            answer: { request, loop, reply in
                if let grpc, let type = request.headers.first(where: { $0.name == "content-type" })?.value, GRPCFraming.isGRPC(contentType: type) {
                    return grpc(request, loop).whenComplete(reply)
                }
                responder(httpRequest(request), loop).whenComplete { reply($0.map(http2Response)) }
            },
            reject: { request, why in
                // The same answers HTTP/1.1 gives (OTLP clients get an OTLP status body).
                let type = request.headers.first(where: { $0.name == "content-type" })?.value.lowercased() ?? ""
                let otlpType = type.hasPrefix("application/x-protobuf") || type.hasPrefix("application/json") ? type : nil
                switch why {
                case .bodyTooLarge(let limit):
                    let text = "request body exceeds the limit of \(limit) bytes"
                    if let otlpType {
                        return http2Response(OTLPErrors.response(.payloadTooLarge, code: 8, text, contentType: otlpType))
                    }
                    return http2Response(.text(.payloadTooLarge, text + "\n"))
                case .overloaded(let budget):
                    let text = "the server holds its limit of \(budget) bytes of request bodies; retry shortly"
                    if let otlpType {
                        return http2Response(OTLPErrors.response(.serviceUnavailable, code: 14, text, contentType: otlpType, retryAfter: 1))
                    }
                    return HTTP2Service.plainRejection(request, why)
                case .headersTooLarge:
                    return HTTP2Service.plainRejection(request, why)
                }
            }
        )
    }

    package static func httpRequest(_ r: HTTP2Request) -> HTTPRequest {
        var headers = HTTPHeaders()
        headers.reserveCapacity(r.headers.count + 1)
        var hasHost = false
        for field in r.headers {
            headers.add(name: field.name, value: field.value)
            if field.name == "host" { hasHost = true }  // HTTP/2 field names are lowercase
        }
        if !r.authority.isEmpty && !hasHost { headers.add(name: "host", value: r.authority) }
        return HTTPRequest(method: HTTPMethod(rawValue: r.method), uri: r.path, headers: headers, body: r.body)
    }

    package static func http2Response(_ r: HTTPResponse) -> HTTP2Response {
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(r.headers.count)
        for (name, value) in r.headers {
            let lower = name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) ? name.lowercased() : name
            switch lower {
            // Connection-specific fields are forbidden in HTTP/2 (RFC 9113 §8.2.2); the engine sets content-length.
            case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length":
                continue
            default:
                fields.append((lower, value))
            }
        }
        return HTTP2Response(status: Int(r.status.code), headers: fields, body: ByteBuffer(bytes: r.body))
    }
}
