import ArgumentParser
import NIOCore
import NIOPosix
import WeftClient
import WeftHTTP2

/// How `weftctl load` sends exports.
enum LoadProtocol: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// OTLP/HTTP protobuf over HTTP/1.1 keep-alive.
    case http1
    /// OTLP/HTTP protobuf over HTTP/2 with prior knowledge (cleartext).
    case h2c
    /// OTLP/gRPC unary `TraceService/Export`.
    case grpc
}

/// One connection that carries export requests, whatever the protocol. Answers are mapped onto HTTP
/// statuses so the load loop treats them alike (gRPC: OK → 200, RESOURCE_EXHAUSTED/UNAVAILABLE → 503,
/// others → 400 with the status message as body).
protocol LoadConnection: Sendable {
    var isActive: Bool { get }
    func export(_ body: ByteBuffer, plan: LoadPlan) -> EventLoopFuture<HTTPResponse>
    func close()
}

extension HTTPConnection: LoadConnection {
    func export(_ body: ByteBuffer, plan: LoadPlan) -> EventLoopFuture<HTTPResponse> {
        self.send(method: .POST, path: plan.url.path, headers: plan.headers, body: body, timeout: plan.timeout)
    }
}

/// HTTP/2 (h2c or gRPC) through Weft's nghttp2 client.
final class HTTP2LoadConnection: LoadConnection {
    static let exportPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    let connection: HTTP2Connection
    let grpc: Bool

    init(connection: HTTP2Connection, grpc: Bool) {
        self.connection = connection
        self.grpc = grpc
    }

    var isActive: Bool { self.connection.isUsable }

    func close() { Task { await self.connection.close() } }

    func export(_ body: ByteBuffer, plan: LoadPlan) -> EventLoopFuture<HTTPResponse> {
        var request: HTTP2ClientRequest
        let org = plan.headers.first { $0.0.lowercased() == "x-scope-orgid" }.map { [(name: "x-scope-orgid", value: $0.1)] } ?? []
        if self.grpc {
            request = HTTP2ClientRequest(
                method: "POST", path: Self.exportPath,
                headers: [("content-type", "application/grpc"), ("te", "trailers")] + org,
                body: GRPCFraming.frame(body.readableBytesView)
            )
        } else {
            request = HTTP2ClientRequest(method: "POST", path: plan.url.path, headers: [("content-type", "application/x-protobuf")] + org, body: body)
        }
        request.authority = "\(plan.url.host):\(plan.url.port)"
        let deadline = ContinuousClock.now + .nanoseconds(plan.timeout.nanoseconds)
        let grpc = self.grpc
        return self.connection.submit(request, deadline: deadline).map { grpc ? Self.fromGRPC($0) : Self.fromHTTP2($0) }
    }

    static func fromHTTP2(_ r: HTTP2ClientResponse) -> HTTPResponse {
        HTTPResponse(status: r.status, headers: r.headers.map { ($0.name, $0.value) }, body: Array(r.body.readableBytesView))
    }

    static func fromGRPC(_ r: HTTP2ClientResponse) -> HTTPResponse {
        // A trailers-only answer carries grpc-status in the headers.
        let code = Int(r.trailer("grpc-status") ?? r.header("grpc-status") ?? "") ?? -1
        let message = GRPCFraming.percentDecode(r.trailer("grpc-message") ?? r.header("grpc-message") ?? "")
        switch code {
        case 0:
            var body = r.body
            let payload = (try? GRPCFraming.next(from: &body, maxMessageBytes: 64 << 20))??.message
            return HTTPResponse(status: 200, headers: [("content-type", "application/x-protobuf")], body: payload.map { Array($0.readableBytesView) } ?? [])
        case GRPCStatusCode.resourceExhausted.rawValue, GRPCStatusCode.unavailable.rawValue:
            return HTTPResponse(status: 503, headers: [], body: Array("gRPC status \(code): \(message)".utf8))
        default:
            return HTTPResponse(status: r.status == 200 ? 400 : r.status, headers: [], body: Array("gRPC status \(code): \(message)".utf8))
        }
    }
}

extension LoadProtocol {
    /// Opens one connection of this protocol to `url`'s host and port.
    func connect(_ url: URLParts, group: any EventLoopGroup) async throws -> any LoadConnection {
        switch self {
        case .http1:
            return try await HTTPConnection.connect(host: url.host, port: url.port, group: group)
        case .h2c, .grpc:
            var config = HTTP2ClientConfiguration()
            config.pingInterval = nil
            let c = try await HTTP2Connection.connect(host: url.host, port: url.port, group: group, configuration: config)
            return HTTP2LoadConnection(connection: c, grpc: self == .grpc)
        }
    }
}
