import WeftHTTP2
import WeftModel
import WeftOTLP

/// gRPC answers every gRPC service of a node shares: response headers, a status in the trailers, and
/// UNAVAILABLE with `RetryInfo`.
package enum GRPCAnswers {
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
