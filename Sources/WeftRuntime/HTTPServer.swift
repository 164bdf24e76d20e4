import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import Synchronization
import WeftHTTP2
import WeftQuery

/// A complete HTTP request as handlers see it.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    public var path: String
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// Cancelled when the client goes before the answer (HTTP/1.1), so a query stops early; nil where nobody tracks it.
    public var cancellation: QueryCancellation? = nil

    public init(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: ByteBuffer) {
        self.method = method
        self.headers = headers
        self.body = body
        // Most request targets are a plain path: no query and nothing percent-encoded.
        if !uri.utf8.contains(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "%") }) {
            self.path = uri
            self.query = [:]
            return
        }
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.path = parts.first.map { String($0) }.flatMap { $0.removingPercentEncoding } ?? "/"
        self.query = parts.count > 1 ? HTTPRequest.parseQuery(parts[1]) : [:]
    }

    /// Parses `a=1&b=x%20y`; later duplicates win.
    package static func parseQuery(_ s: Substring) -> [String: String] {
        var result: [String: String] = [:]
        for pair in s.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(kv[0]).replacingPlus.removingPercentEncoding ?? String(kv[0])
            let value = kv.count > 1 ? (String(kv[1]).replacingPlus.removingPercentEncoding ?? String(kv[1])) : ""
            result[key] = value
        }
        return result
    }
}

/// A response to send.
public struct HTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: HTTPResponseStatus, contentType: String? = nil, body: [UInt8] = [], headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.headers = headers
        self.body = body
        if let contentType { self.headers.replaceOrAdd(name: "content-type", value: contentType) }
    }

    public static func text(_ status: HTTPResponseStatus, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }
}

/// Produces a response for a request; runs on the connection's event loop.
public typealias HTTPResponder = @Sendable (HTTPRequest, any EventLoop) -> EventLoopFuture<HTTPResponse>

/// An HTTP/1.1 server with keep-alive, a request-body limit enforced while reading, a shared budget of
/// request-body bytes, timeouts for peers that stall (``HTTPConnectionLimits``), and graceful shutdown
/// that lets in-flight requests finish.
public final class HTTPServer: Sendable {
    public let channel: any Channel
    /// Released once shutdown completes: its deinit completes a promise on the group's loops, which
    /// must still be running then.
    private let quiesce: Mutex<ServerQuiescingHelper?>

    /// Binds and starts serving. `maxBodyBytes` applies to the body as received. With an `http2` engine,
    /// connections that open with the HTTP/2 preface (h2c, prior knowledge) are served by it on the same
    /// port (with its own idle timeout, and the same body budget).
    public static func start(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        maxBodyBytes: Int,
        limits: HTTPConnectionLimits = HTTPConnectionLimits(),
        http2: (any HTTP2ServerEngine)? = NGHTTP2Engine(),
        grpc: (@Sendable (HTTP2Request, any EventLoop) -> EventLoopFuture<HTTP2Response>)? = nil,
        responder: @escaping HTTPResponder
    ) async throws -> HTTPServer {
        var http2Configuration = HTTP2ServerConfiguration(maxBodyBytes: maxBodyBytes)
        http2Configuration.bodyBudget = limits.bodyBudget
        http2Configuration.writeTimeout = limits.writeTimeout
        if let told = limits.onTimeout { http2Configuration.onWriteTimeout = { told(.write) } }
        return try await Self.bind(host: host, port: port, group: group) { [http2Configuration] channel in
            // First in line, so it also times out a peer that never finishes the protocol's first bytes.
            let timeouts = HTTPConnectionTimeouts(limits: limits)
            try channel.pipeline.syncOperations.addHandler(timeouts)
            let http1 = { (channel: any Channel) throws in
                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                try channel.pipeline.syncOperations.addHandler(HTTPDecodeErrorResponder())
                try channel.pipeline.syncOperations.addHandler(
                    HTTPRequestHandler(maxBodyBytes: maxBodyBytes, bodyBudget: limits.bodyBudget, timeouts: timeouts, responder: responder)
                )
            }
            guard let http2 else { return try http1(channel) }
            // h2c hook: the first bytes pick HTTP/2 (client preface) or HTTP/1.1.
            let service = HTTP2Bridge.service(maxBodyBytes: maxBodyBytes, responder: responder, grpc: grpc)
            try channel.pipeline.syncOperations.addHandler(HTTP2PrefaceDetector(http1: http1, http2: { channel in
                channel.pipeline.syncOperations.removeHandler(timeouts, promise: nil)
                try http2.configureServer(channel: channel, configuration: http2Configuration, service: service)
            }))
        }
    }

    /// Binds a port that speaks only HTTP/2 with prior knowledge (as gRPC does); anything else fails the
    /// preface check and the connection is closed.
    public static func startHTTP2(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        maxBodyBytes: Int,
        idleTimeout: TimeAmount? = .minutes(5),
        bodyBudget: RequestBodyBudget? = nil,
        writeTimeout: TimeAmount? = .seconds(30),
        onWriteTimeout: (@Sendable () -> Void)? = nil,
        engine: any HTTP2ServerEngine = NGHTTP2Engine(),
        service: HTTP2Service
    ) async throws -> HTTPServer {
        var configuration = HTTP2ServerConfiguration(maxBodyBytes: maxBodyBytes)
        configuration.idleTimeout = idleTimeout
        configuration.bodyBudget = bodyBudget
        configuration.writeTimeout = writeTimeout
        configuration.onWriteTimeout = onWriteTimeout
        return try await Self.bind(host: host, port: port, group: group) { [configuration] channel in
            try engine.configureServer(channel: channel, configuration: configuration, service: service)
        }
    }

    /// The shared bootstrap: `configure` adds a connection's handlers, synchronously on its event loop.
    private static func bind(
        host: String, port: Int, group: any EventLoopGroup,
        configure: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> HTTPServer {
        let quiesce = ServerQuiescingHelper(group: group)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try configure(channel) }
            }
            .bind(host: host, port: port).get()
        return HTTPServer(channel: channel, quiesce: quiesce)
    }

    private init(channel: any Channel, quiesce: ServerQuiescingHelper) {
        self.channel = channel
        self.quiesce = Mutex(quiesce)
    }

    /// The bound port (useful with port 0).
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    /// Stops accepting, waits for in-flight requests to finish and connections to close.
    public func shutdown() async {
        guard let quiesce = self.quiesce.withLock({ q in
            defer { q = nil }
            return q
        }) else {
            try? await self.channel.closeFuture.get()
            return
        }
        let promise = self.channel.eventLoop.makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: promise)
        try? await promise.futureResult.get()
        try? await self.channel.closeFuture.get()
    }
}

extension String {
    fileprivate var replacingPlus: String { String(self.map { $0 == "+" ? " " : $0 }) }

    /// Decodes `%XX` escapes; nil if an escape is malformed.
    package var removingPercentEncoding: String? {
        guard self.utf8.contains(UInt8(ascii: "%")) else { return self }
        var out = [UInt8]()
        var it = Array(self.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%") {
                guard let h = it.popFirst(), let l = it.popFirst(),
                    let hv = hexValue(h), let lv = hexValue(l)
                else { return nil }
                out.append(hv << 4 | lv)
            } else {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
