import WeftModel

/// The wire format of an OTLP/HTTP exchange, chosen from the request's `Content-Type`.
public enum OTLPEncoding: Sendable {
    case protobuf
    case json

    /// `application/x-protobuf` or `application/json` (parameters such as `charset` ignored); nil otherwise.
    public init?(contentType: String) {
        let base = String(contentType.split(separator: ";", maxSplits: 1).first ?? "")
            .lowercased().filter { $0 != " " && $0 != "\t" }
        switch base {
        case "application/x-protobuf", "application/protobuf": self = .protobuf
        case "application/json": self = .json
        default: return nil
        }
    }

    public var contentType: String {
        switch self {
        case .protobuf: return "application/x-protobuf"
        case .json: return "application/json"
        }
    }
}

/// Encoders for `ExportTraceServiceResponse` and `google.rpc.Status`.
public enum OTLPResponse {
    /// A success response; `partial_success` is set only when spans were rejected or a warning is given.
    public static func export(rejected: Int, message: String, encoding: OTLPEncoding) -> [UInt8] {
        switch encoding {
        case .protobuf:
            guard rejected > 0 || !message.isEmpty else { return [] }
            var w = ProtoWriter()
            w.message(1) { p in
                if rejected > 0 { p.varintField(1, UInt64(rejected)) }
                if !message.isEmpty { p.stringField(2, message) }
            }
            return w.bytes
        case .json:
            guard rejected > 0 || !message.isEmpty else { return Array("{}".utf8) }
            var json = JSONWriter()
            json.object { o in
                o.key("partialSuccess")
                o.object { p in
                    p.key("rejectedSpans")
                    p.string(String(rejected))
                    p.key("errorMessage")
                    p.string(message)
                }
            }
            return json.bytes
        }
    }

    /// A `google.rpc.Status` body; `code` is the gRPC code (3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE…).
    public static func status(code: Int, message: String, encoding: OTLPEncoding) -> [UInt8] {
        switch encoding {
        case .protobuf:
            var w = ProtoWriter()
            w.varintField(1, UInt64(bitPattern: Int64(code)))
            w.stringField(2, message)
            return w.bytes
        case .json:
            var json = JSONWriter()
            json.object { o in
                o.key("code")
                o.number(code)
                o.key("message")
                o.string(message)
            }
            return json.bytes
        }
    }
}
