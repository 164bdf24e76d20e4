import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Values

/// A complete HTTP response.
public struct HTTPResponse: Sendable {
    /// Status code, e.g. 200.
    public var status: Int
    /// Header fields in wire order.
    public var headers: [(String, String)]
    /// The whole body.
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return self.headers.first { $0.0.lowercased() == lower }?.1
    }

    /// The body decoded as UTF-8 (invalid bytes replaced).
    public var bodyString: String { String(decoding: self.body, as: UTF8.self) }
}

/// Errors of ``HTTPConnection`` and ``URLParts``; each names the endpoint it concerns.
public struct HTTPClientError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Base: Sendable, Equatable {
        case connectionRefused(String)
        case connectFailed(String, String)
        case connectTimeout(String)
        case connectionClosed(String)
        case requestTimeout(String)
        case requestInFlight(String)
        case invalidURL(String, String)
    }

    private let base: Base

    private init(_ base: Base) { self.base = base }

    public static func connectionRefused(host: String, port: Int) -> Self { Self(.connectionRefused(endpoint(host, port))) }
    public static func connectFailed(host: String, port: Int, reason: String) -> Self {
        Self(.connectFailed(endpoint(host, port), reason))
    }
    public static func connectTimeout(host: String, port: Int) -> Self { Self(.connectTimeout(endpoint(host, port))) }
    public static func connectionClosed(host: String, port: Int) -> Self { Self(.connectionClosed(endpoint(host, port))) }
    public static func requestTimeout(host: String, port: Int) -> Self { Self(.requestTimeout(endpoint(host, port))) }
    public static func requestInFlight(host: String, port: Int) -> Self { Self(.requestInFlight(endpoint(host, port))) }
    public static func invalidURL(_ url: String, reason: String) -> Self { Self(.invalidURL(url, reason)) }

    /// Whether the connection can no longer be used (the caller should reconnect).
    public var isConnectionLost: Bool {
        switch self.base {
        case .connectionClosed, .requestTimeout: return true
        default: return false
        }
    }

    /// Whether connecting failed (refused, unreachable, timed out).
    public var isConnectFailure: Bool {
        switch self.base {
        case .connectionRefused, .connectFailed, .connectTimeout: return true
        default: return false
        }
    }

    public var description: String {
        switch self.base {
        case .connectionRefused(let e): return "connection refused by \(e) (is the server running?)"
        case .connectFailed(let e, let reason): return "cannot connect to \(e): \(reason)"
        case .connectTimeout(let e): return "timed out connecting to \(e)"
        case .connectionClosed(let e): return "connection to \(e) closed before the response was complete"
        case .requestTimeout(let e): return "request to \(e) timed out"
        case .requestInFlight(let e): return "a request to \(e) is already in flight on this connection"
        case .invalidURL(let url, let reason): return "invalid URL '\(url)': \(reason)"
        }
    }

    private static func endpoint(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// The parts of an `http://host[:port][/path][?query]` URL.
public struct URLParts: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// Path plus query, always starting with `/`.
    public var path: String

    public init(host: String, port: Int, path: String = "/") {
        self.host = host
        self.port = port
        self.path = path.hasPrefix("/") ? path : "/" + path
    }

    /// Parses `http://host:port/path`. The scheme may be omitted; the port defaults to 80;
    /// IPv6 hosts are written in brackets (`http://[::1]:4318/v1/traces`). Only `http` is supported.
    public init(parsing string: String) throws {
        var rest = Substring(string)
        if let range = rest.firstRange(of: "://") {
            let scheme = rest[..<range.lowerBound].lowercased()
            guard scheme == "http" else {
                throw HTTPClientError.invalidURL(string, reason: "only http:// is supported, not \(scheme)://")
            }
            rest = rest[range.upperBound...]
        }
        let pathStart = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<pathStart]
        var path = String(rest[pathStart...])
        if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw HTTPClientError.invalidURL(string, reason: "unterminated IPv6 address")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw HTTPClientError.invalidURL(string, reason: "unexpected text after the IPv6 address")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        if let at = host.lastIndex(of: "@") { host = host[host.index(after: at)...] }
        guard !host.isEmpty else { throw HTTPClientError.invalidURL(string, reason: "missing host") }
        var port = 80
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else {
                throw HTTPClientError.invalidURL(string, reason: "bad port '\(portText)'")
            }
            port = p
        }
        self.init(host: String(host), port: port, path: path)
    }

    /// The value of the `Host` header.
    public var hostHeader: String {
        let h = self.host.contains(":") ? "[\(self.host)]" : self.host
        return self.port == 80 ? h : "\(h):\(self.port)"
    }

    /// This URL with another path (and query).
    public func with(path: String) -> URLParts { URLParts(host: self.host, port: self.port, path: path) }

    public var description: String { "http://\(self.hostHeader)\(self.path)" }
}

// MARK: - Connection

/// One HTTP/1.1 keep-alive connection, one request in flight at a time.
///
/// Requests reuse the channel; each is written with a single flush. Open several connections for
/// concurrency. If the server closes the connection, requests fail with an error whose
/// ``HTTPClientError/isConnectionLost`` is true and the caller reconnects.
///
/// ```swift
/// let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: 4318, group: .singletonMultiThreadedEventLoopGroup)
/// let response = try await connection.request(method: .POST, path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")], body: body)
/// connection.close()
/// ```
public final class HTTPConnection: Sendable {
    public let host: String
    public let port: Int
    private let channel: any Channel
    private let hostHeader: String

    private init(host: String, port: Int, channel: any Channel) {
        self.host = host
        self.port = port
        self.channel = channel
        self.hostHeader = URLParts(host: host, port: port).hostHeader
    }

    /// Whether the underlying channel is still open.
    public var isActive: Bool { self.channel.isActive }

    /// The event loop serving this connection (futures from ``send(method:path:headers:body:timeout:)`` complete on it).
    public var eventLoop: any EventLoop { self.channel.eventLoop }

    /// Opens a connection (TCP_NODELAY).
    /// - Throws: ``HTTPClientError`` naming `host:port` when the connection is refused or fails.
    public static func connect(
        host: String, port: Int, group: any EventLoopGroup, connectTimeout: TimeAmount = .seconds(10)
    ) async throws -> HTTPConnection {
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTPConnectionHandler(host: host, port: port))
                }
            }
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            return HTTPConnection(host: host, port: port, channel: channel)
        } catch {
            throw Self.connectError(error, host: host, port: port)
        }
    }

    /// Sends a request and waits for the complete response.
    ///
    /// - Parameters:
    ///   - headers: extra header fields; `Host`, `Content-Length` and `User-Agent` are added unless present.
    ///   - body: request body, or nil.
    ///   - timeout: fails the request (and closes the connection) if no full response arrives in time.
    public func request(
        method: HTTPMethod, path: String, headers: [(String, String)] = [], body: ByteBuffer? = nil,
        timeout: TimeAmount? = nil
    ) async throws -> HTTPResponse {
        try await self.send(method: method, path: path, headers: headers, body: body, timeout: timeout).get()
    }

    /// ``request(method:path:headers:body:timeout:)`` with the method as a string (e.g. `"POST"`).
    public func request(
        method: String, path: String, headers: [(String, String)] = [], body: ByteBuffer? = nil,
        timeout: TimeAmount? = nil
    ) async throws -> HTTPResponse {
        try await self.request(method: HTTPMethod(rawValue: method), path: path, headers: headers, body: body, timeout: timeout)
    }

    /// Starts a request and returns at once; the future completes on ``eventLoop`` with the response.
    /// Lets a caller prepare its next request while this one is in flight.
    public func send(
        method: HTTPMethod, path: String, headers: [(String, String)] = [], body: ByteBuffer? = nil,
        timeout: TimeAmount? = nil
    ) -> EventLoopFuture<HTTPResponse> {
        var fields = HTTPHeaders(headers)
        if !fields.contains(name: "host") { fields.add(name: "Host", value: self.hostHeader) }
        if !fields.contains(name: "user-agent") { fields.add(name: "User-Agent", value: "weftctl") }
        if let body, !fields.contains(name: "content-length") {
            fields.add(name: "Content-Length", value: String(body.readableBytes))
        } else if body == nil, method == .POST || method == .PUT, !fields.contains(name: "content-length") {
            fields.add(name: "Content-Length", value: "0")
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: fields)
        let promise = self.channel.eventLoop.makePromise(of: HTTPResponse.self)
        let pending = PendingRequest(head: head, body: body, promise: promise, timeout: timeout)
        let host = self.host
        let port = self.port
        // If the channel is already closed the handler never sees the request: fail it here
        // (completing a promise twice is a no-op, so a failure seen by the handler wins either way).
        self.channel.writeAndFlush(pending).whenFailure { error in
            promise.fail(Self.mapIOError(error, host: host, port: port))
        }
        return promise.futureResult
    }

    /// Closes the connection without waiting.
    public func close() {
        self.channel.close(promise: nil)
    }

    /// Closes the connection and waits until it is closed.
    public func closeAndWait() async {
        try? await self.channel.close()
    }

    // MARK: Errors

    static func mapIOError(_ error: any Error, host: String, port: Int) -> any Error {
        if error is HTTPClientError { return error }
        if let e = error as? ChannelError {
            switch e {
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed:
                return HTTPClientError.connectionClosed(host: host, port: port)
            default: break
            }
        }
        if let e = error as? IOError, e.errnoCode == ECONNRESET || e.errnoCode == EPIPE {
            return HTTPClientError.connectionClosed(host: host, port: port)
        }
        return error
    }

    static func connectError(_ error: any Error, host: String, port: Int) -> HTTPClientError {
        if let e = error as? NIOConnectionError {
            if e.dnsAError != nil || e.dnsAAAAError != nil, e.connectionErrors.isEmpty {
                return .connectFailed(host: host, port: port, reason: "cannot resolve host name")
            }
            if e.connectionErrors.contains(where: { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }) {
                return .connectionRefused(host: host, port: port)
            }
            if e.connectionErrors.contains(where: { failure in
                if case .connectTimeout = failure.error as? ChannelError { return true }
                return false
            }) {
                return .connectTimeout(host: host, port: port)
            }
            let reasons = e.connectionErrors.map { "\($0.target): \($0.error)" }.joined(separator: "; ")
            return .connectFailed(host: host, port: port, reason: reasons.isEmpty ? "\(e)" : reasons)
        }
        if let e = error as? IOError, e.errnoCode == ECONNREFUSED { return .connectionRefused(host: host, port: port) }
        if let e = error as? ChannelError, case .connectTimeout = e { return .connectTimeout(host: host, port: port) }
        return .connectFailed(host: host, port: port, reason: "\(error)")
    }
}

/// A request travelling down the pipeline to ``HTTPConnectionHandler`` (a class, so the pipeline
/// message stays one pointer wide).
final class PendingRequest: Sendable {
    let head: HTTPRequestHead
    let body: ByteBuffer?
    let promise: EventLoopPromise<HTTPResponse>
    let timeout: TimeAmount?

    init(head: HTTPRequestHead, body: ByteBuffer?, promise: EventLoopPromise<HTTPResponse>, timeout: TimeAmount?) {
        self.head = head
        self.body = body
        self.promise = promise
        self.timeout = timeout
    }
}

/// Writes a ``PendingRequest`` as head, body and end (one flush, by the caller's `writeAndFlush`),
/// collects the response parts and completes the request's promise.
final class HTTPConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = PendingRequest
    typealias OutboundOut = HTTPClientRequestPart

    private let host: String
    private let port: Int
    private var pending: PendingRequest?
    private var responseHead: HTTPResponseHead?
    private var responseBody: ByteBuffer?
    private var timeoutTask: Scheduled<Void>?

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = self.unwrapOutboundIn(data)
        guard self.pending == nil else {
            let error = HTTPClientError.requestInFlight(host: self.host, port: self.port)
            request.promise.fail(error)
            promise?.fail(error)
            return
        }
        self.pending = request
        self.responseHead = nil
        self.responseBody = nil
        if let timeout = request.timeout {
            self.timeoutTask = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                guard self.pending === request else { return }
                self.fail(HTTPClientError.requestTimeout(host: self.host, port: self.port))
                context.close(promise: nil)
            }
        }
        context.write(self.wrapOutboundOut(.head(request.head)), promise: nil)
        if let body = request.body, body.readableBytes > 0 {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.write(self.wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.responseHead = head
        case .body(var part):
            if self.responseBody == nil {
                self.responseBody = part
            } else {
                self.responseBody!.writeBuffer(&part)
            }
        case .end:
            guard let request = self.pending, let head = self.responseHead else { return }
            self.pending = nil
            self.timeoutTask?.cancel()
            self.timeoutTask = nil
            let bytes = self.responseBody.map { Array($0.readableBytesView) } ?? []
            self.responseBody = nil
            self.responseHead = nil
            let response = HTTPResponse(
                status: Int(head.status.code),
                headers: head.headers.map { ($0.name, $0.value) },
                body: bytes
            )
            // Close first, so the caller sees `isActive == false` before it sends the next request.
            if !head.isKeepAlive { context.close(promise: nil) }
            request.promise.succeed(response)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(HTTPClientError.connectionClosed(host: self.host, port: self.port))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(HTTPConnection.mapIOError(error, host: self.host, port: self.port))
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        self.timeoutTask?.cancel()
        self.timeoutTask = nil
        if let request = self.pending {
            self.pending = nil
            request.promise.fail(error)
        }
    }
}

@available(*, unavailable)
extension HTTPConnectionHandler: Sendable {}
