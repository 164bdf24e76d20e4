import NIOCore
import Synchronization
import NIOExtras
import NIOHTTP1
import NIOPosix
import WeftHTTP2
import WeftQuery

/// A complete HTTP request as handlers see it.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    public var path: String
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// Set by a server that can tell when the client goes away: cancelled then, so a query stops early.
    public var cancellation: QueryCancellation?

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
    static func parseQuery(_ s: Substring) -> [String: String] {
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

/// An HTTP/1.1 server with keep-alive, a request-body limit enforced while reading, and graceful
/// shutdown that lets in-flight requests finish.
public final class HTTPServer: Sendable {
    public let channel: any Channel
    /// Released once shutdown completes: its deinit completes a promise on the group's loops, which
    /// must still be running then.
    private let quiesce: Mutex<ServerQuiescingHelper?>

    /// Binds and starts serving. `maxBodyBytes` applies to the body as received. With an `http2` engine,
    /// connections that open with the HTTP/2 preface (h2c, prior knowledge) are served by it on the same port.
    public static func start(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        maxBodyBytes: Int,
        http2: (any HTTP2ServerEngine)? = NGHTTP2Engine(),
        responder: @escaping HTTPResponder
    ) async throws -> HTTPServer {
        try await Self.bind(host: host, port: port, group: group) { channel in
            let http1 = { (channel: any Channel) throws in
                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                try channel.pipeline.syncOperations.addHandler(
                    HTTPRequestHandler(maxBodyBytes: maxBodyBytes, responder: responder)
                )
            }
            guard let http2 else { return try http1(channel) }
            // h2c hook: the first bytes pick HTTP/2 (client preface) or HTTP/1.1.
            let service = HTTP2Bridge.service(maxBodyBytes: maxBodyBytes, responder: responder)
            try channel.pipeline.syncOperations.addHandler(HTTP2PrefaceDetector(http1: http1, http2: { channel in
                try http2.configureServer(channel: channel, configuration: HTTP2ServerConfiguration(maxBodyBytes: maxBodyBytes), service: service)
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
        engine: any HTTP2ServerEngine = NGHTTP2Engine(),
        service: HTTP2Service
    ) async throws -> HTTPServer {
        var configuration = HTTP2ServerConfiguration(maxBodyBytes: maxBodyBytes)
        configuration.idleTimeout = idleTimeout
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

/// Collects one request at a time (the pipeline handler orders pipelined requests) and answers it.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// The body exceeded the limit: a 413 was sent and the connection closes after it.
        case discarding
    }

    private let maxBodyBytes: Int
    private let responder: HTTPResponder
    private var state = State.idle
    /// The request being answered: cancelled if the connection closes first.
    private var inFlight: QueryCancellation?

    init(maxBodyBytes: Int, responder: @escaping HTTPResponder) {
        self.maxBodyBytes = maxBodyBytes
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > self.maxBodyBytes {
                self.rejectTooLarge(context: context, head: head)
                return
            }
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            let length = head.headers.first(name: "content-length").flatMap(Int.init) ?? 0
            self.state = .receiving(head, context.channel.allocator.buffer(capacity: max(0, length)))
        case .body(var part):
            switch self.state {
            case .receiving(let head, var body):
                if body.readableBytes + part.readableBytes > self.maxBodyBytes {
                    self.rejectTooLarge(context: context, head: head)
                    return
                }
                self.state = .idle  // drop our reference so the append does not copy
                body.writeBuffer(&part)
                self.state = .receiving(head, body)
            case .discarding, .idle:
                break
            }
        case .end:
            switch self.state {
            case .receiving(let head, let body):
                self.state = .idle
                self.dispatch(context: context, head: head, body: body)
            case .discarding:
                break
            case .idle:
                break
            }
        }
    }

    /// A malformed request (the protocol error handler has already answered 400) or a socket error:
    /// this connection is done.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.inFlight?.cancel()
        self.inFlight = nil
        context.fireChannelInactive()
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        var request = HTTPRequest(method: head.method, uri: head.uri, headers: head.headers, body: body)
        let cancellation = QueryCancellation()
        request.cancellation = cancellation
        self.inFlight = cancellation
        let keepAlive = head.isKeepAlive
        let version = head.version
        let future = self.responder(request, context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let boundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        future.hop(to: context.eventLoop).whenComplete { result in
            let response: HTTPResponse
            switch result {
            case .success(let r): response = r
            case .failure(let error): response = .text(.internalServerError, "internal error: \(error)\n")
            }
            boundSelf.value.inFlight = nil
            boundSelf.value.write(context: boundContext.value, response: response, version: version, keepAlive: keepAlive)
        }
    }

    private func rejectTooLarge(context: ChannelHandlerContext, head: HTTPRequestHead) {
        self.state = .discarding
        var response = HTTPResponse.text(.payloadTooLarge, "request body exceeds the limit of \(self.maxBodyBytes) bytes\n")
        if let type = head.headers.first(name: "content-type"), type.lowercased().hasPrefix("application/x-protobuf") || type.lowercased().hasPrefix("application/json") {
            response = OTLPErrors.response(.payloadTooLarge, code: 8, "request body exceeds the limit of \(self.maxBodyBytes) bytes", contentType: type)
        }
        self.write(context: context, response: response, version: head.version, keepAlive: false)
    }

    private func write(context: ChannelHandlerContext, response: HTTPResponse, version: HTTPVersion, keepAlive: Bool) {
        var headers = response.headers
        headers.replaceOrAdd(name: "content-length", value: String(response.body.count))
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        if !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlushPromise(self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

extension ChannelHandlerContext {
    fileprivate func writeAndFlushPromise(_ data: NIOAny) -> EventLoopFuture<Void> {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.writeAndFlush(data, promise: promise)
        return promise.futureResult
    }
}

extension String {
    fileprivate var replacingPlus: String { String(self.map { $0 == "+" ? " " : $0 }) }

    /// Decodes `%XX` escapes; nil if an escape is malformed.
    var removingPercentEncoding: String? {
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
