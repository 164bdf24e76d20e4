import NIOCore
import NIOPosix
import Synchronization

/// A request for ``HTTP2Connection/send(_:deadline:)``.
public struct HTTP2ClientRequest: Sendable {
    public var method: String
    public var path: String
    /// `:authority`; the connection's `host:port` when nil.
    public var authority: String?
    public var headers: [(name: String, value: String)]
    public var body: ByteBuffer

    public init(method: String = "GET", path: String, authority: String? = nil, headers: [(name: String, value: String)] = [], body: ByteBuffer = ByteBuffer()) {
        self.method = method
        self.path = path
        self.authority = authority
        self.headers = headers
        self.body = body
    }
}

/// A complete response.
public struct HTTP2ClientResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var trailers: [(name: String, value: String)]
    public var body: ByteBuffer

    public func header(_ name: String) -> String? { self.headers.first { $0.name == name }?.value }
    public func trailer(_ name: String) -> String? { self.trailers.first { $0.name == name }?.value }
}

/// Why a request got no response.
public enum HTTP2ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connection closed (or failed) before the response was complete.
    case connectionClosed
    /// The peer reset the stream (RST_STREAM) with this HTTP/2 error code.
    case streamReset(code: UInt32)
    /// The peer is shutting down (GOAWAY): the request was not processed and may be retried elsewhere.
    case goingAway
    /// No response before the deadline (the stream was reset with CANCEL).
    case deadlineExceeded
    /// The calling task was cancelled (the stream was reset with CANCEL).
    case cancelled
    /// A PING went unanswered for the configured timeout: the peer is presumed dead.
    case deadPeer
    /// The connection's output has been blocked for ``HTTP2ClientConfiguration/backedUpAfter`` (the peer
    /// is not reading what was sent): the request was refused at once rather than queued behind it. It
    /// was not sent.
    case backedUp
    /// The connection's output stayed blocked for the configured stall timeout: the peer has stopped
    /// reading, and the connection was closed to free what it held.
    case stalled
    case connectFailed(String)

    public var description: String {
        switch self {
        case .connectionClosed: return "HTTP/2 connection closed before the response"
        case .streamReset(let code): return "HTTP/2 stream reset by the peer (error code \(code))"
        case .goingAway: return "the peer is shutting down (GOAWAY); the request was not processed"
        case .deadlineExceeded: return "no response before the deadline"
        case .cancelled: return "request cancelled"
        case .deadPeer: return "the peer did not answer a PING in time"
        case .backedUp: return "the connection is backed up (the peer is not reading); the request was not sent"
        case .stalled: return "the peer stopped reading: output stayed blocked past the stall timeout"
        case .connectFailed(let why): return "cannot connect: \(why)"
        }
    }
}

/// Client limits and liveness checks.
public struct HTTP2ClientConfiguration: Sendable {
    /// Streams this client keeps open at once on one connection (also capped by the peer's SETTINGS);
    /// further requests wait in a queue.
    public var maxConcurrentStreams: Int = 100
    /// Largest response body accepted (bigger responses reset the stream).
    public var maxResponseBytes: Int = 64 << 20
    /// Per-stream receive window.
    public var initialStreamWindow: Int32 = 1 << 20
    public var connectionWindow: Int32 = 64 << 20
    /// Send a PING when nothing has been received from the peer for this long (nil: never). What this
    /// side sends does not count: a peer that takes requests but never answers is checked too.
    public var pingInterval: Duration? = .seconds(10)
    /// Close the connection (failing its requests with ``HTTP2ClientError/deadPeer``) when a PING is not
    /// acknowledged within this time.
    public var pingTimeout: Duration = .seconds(5)
    public var connectTimeout: Duration = .seconds(5)
    /// Output bytes handed to the socket but not yet taken by the kernel, at most (plus one frame).
    /// Frames are serialised a quarter of this at a time while the channel is under its high-water mark
    /// (the other three quarters; the low mark is half of that); beyond it output is blocked: frames wait
    /// in the session, where a reset stream's body is dropped at once.
    public var maxBufferedBytes: Int = 1 << 20
    /// Refuse new requests at once (``HTTP2ClientError/backedUp``) while output has been blocked this
    /// long, instead of queueing them behind it (nil, the default: queue them, as a client that must
    /// get its requests through wants). Shorter blocks are bursts, not a peer that stopped reading.
    public var backedUpAfter: Duration? = nil
    /// Close the connection (failing its requests with ``HTTP2ClientError/stalled``) when its output has
    /// stayed blocked (over ``maxBufferedBytes``) this long: the peer has stopped reading. Nil (the
    /// default): never; a server that holds back its reads under load is waited for.
    public var stallTimeout: Duration? = nil

    public init() {}

    /// Output serialised at once; the channel's high-water mark leaves room for one more.
    var outputPiece: Int { max(16 << 10, self.maxBufferedBytes / 4) }
    var writeBufferWaterMark: ChannelOptions.Types.WriteBufferWaterMark {
        let high = max(1, self.maxBufferedBytes - self.outputPiece)
        return .init(low: max(1, high / 2), high: high)
    }

    var sessionSettings: NGSessionSettings {
        var s = NGSessionSettings()
        s.maxConcurrentStreams = 100  // pushes are disabled; the server opens none
        s.initialStreamWindow = self.initialStreamWindow
        s.connectionWindow = self.connectionWindow
        s.maxBodyBytes = self.maxResponseBytes
        return s
    }
}

/// Drives a client ``NGSession`` on one channel: requests are submitted on the event loop, output is
/// flushed once per loop tick, responses complete their promises. Requests over the stream limit wait
/// in FIFO order.
final class NGHTTP2ClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Waiting {
        var token: UInt64
        var request: HTTP2ClientRequest
        /// A whole request…
        var promise: EventLoopPromise<HTTP2ClientResponse>?
        /// …or a streaming one.
        var bridge: StreamBridge?

        func fail(_ error: any Error) {
            self.promise?.fail(error)
            self.bridge?.fail(error)
        }
    }

    private let configuration: HTTP2ClientConfiguration
    private let defaultAuthority: String
    private var session: NGSession?
    private var context: ChannelHandlerContext?
    private var active = StreamTable<(token: UInt64, promise: EventLoopPromise<HTTP2ClientResponse>)>()
    private var streaming: [Int32: StreamBridge] = [:]
    private var bodyWrites = PendingBodyWrites()
    private var streamOf: [UInt64: Int32] = [:]
    private var waiting: [Waiting] = []
    private var waitingHead = 0
    private var reading = false
    private var flushScheduled = false
    private var goingAway = false
    private var closedError: HTTP2ClientError? = nil
    private var lastActivity = NIODeadline.now()
    private var pingSentAt: NIODeadline? = nil
    private var pingTask: Scheduled<Void>? = nil
    /// When the channel went over its high-water mark; nil while output flows.
    private var blockedSince: NIODeadline? = nil
    private var stallTask: Scheduled<Void>? = nil
    /// Streams in use, readable from any thread (for pools choosing the least loaded connection).
    let load = Atomic<Int>(0)
    /// Set (before any request is failed) once the connection takes no new requests.
    let retired = Atomic<Bool>(false)

    init(configuration: HTTP2ClientConfiguration, authority: String) {
        self.configuration = configuration
        self.defaultAuthority = authority
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            self.session = try NGSession(role: .client, settings: self.configuration.sessionSettings, allocator: context.channel.allocator)
        } catch {
            self.fail(.connectionClosed)
            context.close(promise: nil)
            return
        }
        self.scheduleFlush()
        self.schedulePing(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.pingTask?.cancel()
        self.stallTask?.cancel()
        self.fail(self.closedError ?? .connectionClosed)
        self.context = nil
        self.session = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session = self.session else { return }
        self.reading = true
        self.lastActivity = .now()
        do {
            try session.receive(self.unwrapInboundIn(data))
        } catch {
            self.flush(context: context)
            self.fail(.connectionClosed)
            context.close(promise: nil)
            return
        }
        self.handleEvents(session)
        self.flush(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.reading = false
        self.flush(context: context)
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.blockedSince = nil
            self.flush(context: context)
        } else {
            self.outputBlocked(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(self.closedError ?? .connectionClosed)
        self.session = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(.connectionClosed)
        context.close(promise: nil)
    }

    // MARK: Requests (on the event loop)

    func enqueue(token: UInt64, _ request: HTTP2ClientRequest, promise: EventLoopPromise<HTTP2ClientResponse>) {
        if let error = self.closedError ?? (self.session == nil ? .connectionClosed : nil) {
            return promise.fail(error)
        }
        if self.goingAway { return promise.fail(HTTP2ClientError.goingAway) }
        if self.isBackedUp { return promise.fail(HTTP2ClientError.backedUp) }
        self.load.add(1, ordering: .relaxed)
        self.waiting.append(Waiting(token: token, request: request, promise: promise, bridge: nil))
        self.startWaiting()
        self.scheduleFlush()
    }

    /// Queues a streaming request.
    func open(_ bridge: StreamBridge, _ request: HTTP2ClientRequest) {
        if let error = self.closedError ?? (self.session == nil ? .connectionClosed : nil) { return bridge.fail(error) }
        if self.goingAway { return bridge.fail(HTTP2ClientError.goingAway) }
        if self.isBackedUp { return bridge.fail(HTTP2ClientError.backedUp) }
        self.load.add(1, ordering: .relaxed)
        self.waiting.append(Waiting(token: bridge.token, request: request, promise: nil, bridge: bridge))
        self.startWaiting()
        self.scheduleFlush()
    }

    /// Queues a piece of a streaming request body; `promise` completes when it has gone out.
    func write(_ sid: Int32, _ chunk: ByteBuffer, end: Bool, promise: EventLoopPromise<Void>) {
        guard let session = self.session, self.streaming[sid] != nil, !self.bodyWrites.isWaiting(sid) else {
            return promise.fail(self.streaming[sid] == nil ? (self.closedError ?? HTTP2ClientError.connectionClosed) : HTTP2ClientError.connectionClosed)
        }
        guard self.bodyWrites.write(chunk, end: end, on: sid, session: session, promise: promise) else {
            return promise.fail(HTTP2ClientError.connectionClosed)
        }
        self.scheduleFlush()
    }

    /// Response bytes of a streaming request were read: credit them to the peer.
    func consumed(_ bridge: StreamBridge, _ bytes: Int) {
        guard let session = self.session, let sid = bridge.state.withLock({ $0.streamID }) else { return }
        session.consume(sid, bytes)
        self.scheduleFlush()
    }

    /// Cancels a request: dropped if still queued, reset (CANCEL) if on the wire.
    func cancel(token: UInt64, reason: HTTP2ClientError) {
        if let sid = self.streamOf[token] {
            let unary = self.active.removeValue(forKey: sid)
            let bridge = unary == nil ? self.streaming.removeValue(forKey: sid) : nil
            guard unary != nil || bridge != nil else { return }
            // Book-keeping first: the waiting task may resume on another thread at once.
            self.streamOf[token] = nil
            self.load.subtract(1, ordering: .relaxed)
            self.session?.resetStream(sid)
            unary?.promise.fail(reason)
            bridge?.fail(reason)
            self.bodyWrites.fail(sid, reason)
            self.scheduleFlush()
            self.startWaiting()
            return
        }
        if let i = self.waiting[self.waitingHead...].firstIndex(where: { $0.token == token }) {
            let w = self.waiting.remove(at: i)
            self.load.subtract(1, ordering: .relaxed)
            w.fail(reason)
        }
    }

    /// Output has been blocked for ``HTTP2ClientConfiguration/backedUpAfter``.
    private var isBackedUp: Bool {
        guard let since = self.blockedSince, let after = self.configuration.backedUpAfter else { return false }
        return NIODeadline.now() - since >= TimeAmount(after)
    }

    private var streamLimit: Int {
        min(self.configuration.maxConcurrentStreams, max(1, self.session?.peerMaxConcurrentStreams ?? 1))
    }

    private func startWaiting() {
        guard let session = self.session else { return }
        while self.waitingHead < self.waiting.count && self.active.count + self.streaming.count < self.streamLimit {
            let w = self.waiting[self.waitingHead]
            self.waitingHead += 1
            do {
                if let bridge = w.bridge {
                    let sid = try session.submitRequest(
                        method: w.request.method, path: w.request.path, authority: w.request.authority ?? self.defaultAuthority,
                        headers: w.request.headers, streaming: true
                    )
                    self.streaming[sid] = bridge
                    self.streamOf[w.token] = sid
                    bridge.opened(sid)
                } else if let promise = w.promise {
                    let sid = try session.submitRequest(
                        method: w.request.method, path: w.request.path, authority: w.request.authority ?? self.defaultAuthority,
                        headers: w.request.headers, body: w.request.body,
                        contentLength: w.request.body.readableBytes > 0 || w.request.method == "POST" ? w.request.body.readableBytes : nil
                    )
                    self.active[sid] = (w.token, promise)
                    if w.token != 0 { self.streamOf[w.token] = sid }
                }
            } catch {
                self.load.subtract(1, ordering: .relaxed)
                w.fail(HTTP2ClientError.connectionClosed)
            }
        }
        if self.waitingHead > 64 && self.waitingHead * 2 > self.waiting.count {
            self.waiting.removeFirst(self.waitingHead)
            self.waitingHead = 0
        }
    }

    private func handleEvents(_ session: NGSession) {
        while let event = session.nextEvent() {
            switch event {
            case .message(let sid, let m):
                if let bridge = self.streaming.removeValue(forKey: sid) {
                    self.streamOf[bridge.token] = nil
                    self.load.subtract(1, ordering: .relaxed)
                    // A trailers-only answer has no separate head event.
                    bridge.gotHead(HTTP2ResponseHead(status: m.status, headers: m.headers))
                    bridge.finish(trailers: m.trailers)
                    // The server answered before the body was finished: further writes fail.
                    self.bodyWrites.fail(sid, HTTP2ClientError.streamReset(code: 0))
                    continue
                }
                guard let entry = self.active.removeValue(forKey: sid) else { continue }
                if entry.token != 0 { self.streamOf[entry.token] = nil }
                self.load.subtract(1, ordering: .relaxed)
                entry.promise.succeed(HTTP2ClientResponse(status: m.status, headers: m.headers, trailers: m.trailers, body: m.body))
            case .closed(let sid, let code):
                // REFUSED_STREAM (7): the server never processed it (e.g. after its GOAWAY).
                let error = code == 7 ? HTTP2ClientError.goingAway : (code == 0 ? HTTP2ClientError.connectionClosed : HTTP2ClientError.streamReset(code: code))
                self.bodyWrites.fail(sid, error)
                if let bridge = self.streaming.removeValue(forKey: sid) {
                    self.streamOf[bridge.token] = nil
                    self.load.subtract(1, ordering: .relaxed)
                    bridge.fail(error)
                    continue
                }
                guard let entry = self.active.removeValue(forKey: sid) else { continue }
                if entry.token != 0 { self.streamOf[entry.token] = nil }
                self.load.subtract(1, ordering: .relaxed)
                entry.promise.fail(error)
            case .head(let sid, let m):
                self.streaming[sid]?.gotHead(HTTP2ResponseHead(status: m.status, headers: m.headers))
            case .data(let sid, let piece):
                if let bridge = self.streaming[sid] {
                    bridge.push(piece)
                } else {
                    session.consume(sid, piece.readableBytes)
                }
            case .writable(let sid):
                self.bodyWrites.sent(sid)
            case .rejected(let sid, _, _):
                // The response is over maxResponseBytes.
                session.resetStream(sid)
            case .goAway:
                self.goingAway = true
                self.retired.store(true, ordering: .relaxed)
                // Queued requests were never sent: the caller may retry them on another connection.
                let queued = self.waiting[self.waitingHead...]
                self.waiting = []
                self.waitingHead = 0
                for w in queued {
                    self.load.subtract(1, ordering: .relaxed)
                    w.fail(HTTP2ClientError.goingAway)
                }
            case .pingAck:
                self.pingSentAt = nil
            }
        }
        self.startWaiting()
    }

    private func fail(_ error: HTTP2ClientError) {
        self.retired.store(true, ordering: .relaxed)
        if self.closedError == nil { self.closedError = error }
        let active = self.active.allValues
        self.active.removeAll()
        self.streamOf = [:]
        let queued = self.waiting[self.waitingHead...]
        self.waiting = []
        self.waitingHead = 0
        let streams = self.streaming
        self.streaming = [:]
        self.load.store(0, ordering: .relaxed)
        for entry in active { entry.promise.fail(error) }
        for (_, bridge) in streams { bridge.fail(error) }
        self.bodyWrites.failAll(error)
        for w in queued { w.fail(error) }
    }

    /// Request-body bytes still queued in the session.
    var queuedBodyBytes: Int { self.session?.queuedBodyBytes ?? 0 }

    // MARK: Liveness

    private func schedulePing(context: ChannelHandlerContext) {
        guard let interval = self.configuration.pingInterval else { return }
        let tick = TimeAmount.nanoseconds(Int64(min(interval, self.configuration.pingTimeout).components.seconds) * 1_000_000_000
            + Int64(min(interval, self.configuration.pingTimeout).components.attoseconds / 1_000_000_000))
        self.pingTask = context.eventLoop.assumeIsolated().scheduleTask(in: max(tick, .milliseconds(10))) {
            guard let context = self.context, let session = self.session else { return }
            let now = NIODeadline.now()
            if let sent = self.pingSentAt {
                if now - sent >= TimeAmount(self.configuration.pingTimeout) {
                    self.closedError = .deadPeer
                    self.fail(.deadPeer)
                    context.close(promise: nil)
                    return
                }
            } else if now - self.lastActivity >= TimeAmount(interval) {
                session.submitPing()
                self.pingSentAt = now
                self.flush(context: context)
            }
            self.schedulePing(context: context)
        }
    }

    // MARK: Output

    private func scheduleFlush() {
        guard !self.reading, !self.flushScheduled, let context = self.context else { return }
        self.flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            if let context = self.context { self.flush(context: context) }
        }
    }

    /// Serialises queued frames into the channel while it is writable, a piece at a time: once the socket
    /// stops taking bytes, frames wait in the session (see ``channelWritabilityChanged``).
    private func flush(context: ChannelHandlerContext) {
        guard let session = self.session else { return }
        let piece = self.configuration.outputPiece
        var wrote = false
        while session.wantsWrite && context.channel.isWritable {
            var out = context.channel.allocator.buffer(capacity: min(piece, 64 << 10))
            do {
                try session.drainOutput(into: &out, limit: piece)
            } catch {
                if wrote { context.flush() }
                self.fail(.connectionClosed)
                context.close(promise: nil)
                return
            }
            self.handleEvents(session)
            guard out.readableBytes > 0 else { break }
            context.write(self.wrapOutboundOut(out), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
        if !context.channel.isWritable { self.outputBlocked(context: context) }
    }

    /// The socket has stopped taking bytes: note since when, and close the connection if it stays so
    /// for the stall timeout.
    private func outputBlocked(context: ChannelHandlerContext) {
        guard self.blockedSince == nil else { return }
        self.blockedSince = .now()
        if let timeout = self.configuration.stallTimeout { self.scheduleStallCheck(context: context, in: TimeAmount(timeout)) }
    }

    private func scheduleStallCheck(context: ChannelHandlerContext, in delay: TimeAmount) {
        guard self.stallTask == nil, let timeout = self.configuration.stallTimeout else { return }
        self.stallTask = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.stallTask = nil
            guard let since = self.blockedSince, let context = self.context else { return }
            let left = TimeAmount(timeout) - (NIODeadline.now() - since)
            if left > .zero { return self.scheduleStallCheck(context: context, in: left) }
            self.closedError = .stalled
            self.fail(.stalled)
            context.close(promise: nil)
        }
    }
}

extension TimeAmount {
    init(_ d: Duration) {
        self = .nanoseconds(Int64(d.components.seconds) * 1_000_000_000 + Int64(d.components.attoseconds / 1_000_000_000))
    }
}

/// What callers need of an HTTP/2 client connection, so another engine could stand in for nghttp2
/// (``HTTP2Connection`` is the nghttp2 one).
public protocol HTTP2ClientConnection: AnyObject, Sendable {
    /// Whether the connection takes new requests.
    var isUsable: Bool { get }
    /// Streams in use or queued.
    var activeRequests: Int { get }
    /// Sends a request and waits for the whole response. Throws ``HTTP2ClientError``.
    func send(_ request: HTTP2ClientRequest, deadline: ContinuousClock.Instant?) async throws -> HTTP2ClientResponse
    /// The same, as a future.
    func submit(_ request: HTTP2ClientRequest, deadline: ContinuousClock.Instant?) -> EventLoopFuture<HTTP2ClientResponse>
    /// Opens a request whose body is written, and whose response is read, piece by piece.
    func openStream(method: String, path: String, headers: [(name: String, value: String)]) -> any HTTP2StreamingRequest
    func close() async
}

/// Opens client connections of one HTTP/2 implementation.
public protocol HTTP2ClientEngine: Sendable {
    func connect(host: String, port: Int, group: any EventLoopGroup, configuration: HTTP2ClientConfiguration) async throws -> any HTTP2ClientConnection
}

/// The libnghttp2 client engine.
public struct NGHTTP2ClientEngine: HTTP2ClientEngine {
    public init() {}

    public func connect(host: String, port: Int, group: any EventLoopGroup, configuration: HTTP2ClientConfiguration) async throws -> any HTTP2ClientConnection {
        try await HTTP2Connection.connect(host: host, port: port, group: group, configuration: configuration)
    }
}

/// One HTTP/2 (h2c, prior knowledge) connection to a peer, usable from any task: many requests run
/// at once as streams, each with an optional deadline; cancelling the task resets its stream.
public final class HTTP2Connection: HTTP2ClientConnection {
    public let channel: any Channel
    let handler: NIOLoopBound<NGHTTP2ClientHandler>
    private let state: HandlerState
    private let tokens = Atomic<UInt64>(0)

    init(channel: any Channel, handler: NGHTTP2ClientHandler) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.state = HandlerState(handler)
    }

    /// Connects and sends the HTTP/2 preface and SETTINGS.
    public static func connect(
        host: String, port: Int, group: any EventLoopGroup, configuration: HTTP2ClientConfiguration = HTTP2ClientConfiguration()
    ) async throws -> HTTP2Connection {
        let authority = "\(host):\(port)"
        do {
            return try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.writeBufferWaterMark, value: configuration.writeBufferWaterMark)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = NGHTTP2ClientHandler(configuration: configuration, authority: authority)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        return HTTP2Connection(channel: channel, handler: handler)
                    }
                }
        } catch {
            throw HTTP2ClientError.connectFailed("\(authority): \(error)")
        }
    }

    /// Streams in use or queued.
    public var activeRequests: Int { self.state.load }

    /// Whether the connection is open and takes new requests (no GOAWAY received, no failure).
    public var isUsable: Bool { self.channel.isActive && !self.state.retired }

    /// Sends a request and waits for the whole response. Throws ``HTTP2ClientError``.
    func nextToken() -> UInt64 { self.tokens.add(1, ordering: .relaxed).newValue }

    public func send(_ request: HTTP2ClientRequest, deadline: ContinuousClock.Instant? = nil) async throws -> HTTP2ClientResponse {
        let token = self.nextToken()
        let future = self.submit(request, token: token, deadline: deadline)
        let loop = self.channel.eventLoop
        let handler = self.handler
        return try await withTaskCancellationHandler {
            try await future.get()
        } onCancel: {
            loop.execute { handler.value.cancel(token: token, reason: .cancelled) }
        }
    }

    /// Sends a request and returns a future of the whole response (for callers already driven by
    /// futures: no task per request). Fails with ``HTTP2ClientError``.
    public func submit(_ request: HTTP2ClientRequest, deadline: ContinuousClock.Instant? = nil) -> EventLoopFuture<HTTP2ClientResponse> {
        // Token 0: nothing can cancel this request but its deadline, so only a deadline needs one.
        self.submit(request, token: deadline == nil ? 0 : self.nextToken(), deadline: deadline)
    }

    private func submit(_ request: HTTP2ClientRequest, token: UInt64, deadline: ContinuousClock.Instant?) -> EventLoopFuture<HTTP2ClientResponse> {
        let loop = self.channel.eventLoop
        let promise = loop.makePromise(of: HTTP2ClientResponse.self)
        let handler = self.handler
        // The deadline's timer is armed after the request is queued, on the loop: a deadline already
        // past (the caller was descheduled) must not fire before there is a request to cancel.
        let start = { @Sendable in
            handler.value.enqueue(token: token, request, promise: promise)
            guard let deadline else { return }
            let timer = loop.scheduleTask(in: TimeAmount(max(deadline - .now, .zero))) {
                handler.value.cancel(token: token, reason: .deadlineExceeded)
            }
            promise.futureResult.whenComplete { _ in timer.cancel() }
        }
        if loop.inEventLoop { start() } else { loop.execute(start) }
        return promise.futureResult
    }

    /// Closes the connection; requests still running fail with ``HTTP2ClientError/connectionClosed``.
    public func close() async {
        try? await self.channel.close()
    }

    /// What this connection holds that has not gone out yet (for diagnostics and tests).
    public func outboundBacklog() async throws -> HTTP2OutboundBacklog {
        let handler = self.handler
        return try await self.channel.eventLoop.submit {
            let channelBytes = try self.channel.syncOptions?.getOption(.bufferedWritableBytes) ?? 0
            return HTTP2OutboundBacklog(channelBytes: channelBytes, sessionBodyBytes: handler.value.queuedBodyBytes)
        }.get()
    }

}

/// Output of one connection that has not gone out yet.
public struct HTTP2OutboundBacklog: Sendable, Equatable {
    /// Frames handed to the channel and not yet taken by the socket (bounded by
    /// ``HTTP2ClientConfiguration/maxBufferedBytes``).
    public var channelBytes: Int
    /// Request-body bytes of open streams still waiting in the session (bodies of reset streams are dropped).
    public var sessionBodyBytes: Int
}

/// Reads a handler's atomics from any thread (nothing else of the handler is touched).
private final class HandlerState: @unchecked Sendable {
    private let handler: NGHTTP2ClientHandler
    init(_ handler: NGHTTP2ClientHandler) { self.handler = handler }
    var load: Int { self.handler.load.load(ordering: .relaxed) }
    var retired: Bool { self.handler.retired.load(ordering: .relaxed) }
}

/// Connections per peer, created on first use and replaced when they close: requests go to the
/// least-loaded usable connection of their peer.
public final class HTTP2ClientPool: Sendable {
    public struct Peer: Hashable, Sendable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    private let group: any EventLoopGroup
    private let configuration: HTTP2ClientConfiguration
    private let engine: any HTTP2ClientEngine
    private let connectionsPerPeer: Int
    private let state = Mutex<(peers: [Peer: [Task<any HTTP2ClientConnection, any Error>]], closed: Bool)>(([:], false))

    public init(
        group: any EventLoopGroup, configuration: HTTP2ClientConfiguration = HTTP2ClientConfiguration(), connectionsPerPeer: Int = 1,
        engine: any HTTP2ClientEngine = NGHTTP2ClientEngine()
    ) {
        self.engine = engine
        self.group = group
        self.configuration = configuration
        self.connectionsPerPeer = max(1, connectionsPerPeer)
    }

    /// Sends `request` to `peer`, connecting if needed. A request refused because the connection was
    /// going away (never processed) is retried once on a fresh connection.
    public func send(_ request: HTTP2ClientRequest, to peer: Peer, deadline: ContinuousClock.Instant? = nil) async throws -> HTTP2ClientResponse {
        do {
            return try await self.connection(to: peer).send(request, deadline: deadline)
        } catch HTTP2ClientError.goingAway {
            return try await self.connection(to: peer).send(request, deadline: deadline)
        }
    }

    /// Opens a streaming request to `peer` (see ``HTTP2StreamingRequest``), connecting if needed.
    public func openStream(
        method: String = "POST", path: String, headers: [(name: String, value: String)] = [], to peer: Peer
    ) async throws -> any HTTP2StreamingRequest {
        try await self.connection(to: peer).openStream(method: method, path: path, headers: headers)
    }

    /// A usable connection to `peer` (the least loaded; new ones up to `connectionsPerPeer`).
    public func connection(to peer: Peer) async throws -> any HTTP2ClientConnection {
        let tasks = try self.state.withLock { s throws -> [Task<any HTTP2ClientConnection, any Error>] in
            guard !s.closed else { throw HTTP2ClientError.connectionClosed }
            return s.peers[peer] ?? []
        }
        var ready: [(Task<any HTTP2ClientConnection, any Error>, any HTTP2ClientConnection)] = []
        var dead: [Task<any HTTP2ClientConnection, any Error>] = []
        for t in tasks {
            if let c = try? await t.value, c.isUsable { ready.append((t, c)) } else { dead.append(t) }
        }
        if !dead.isEmpty {
            self.state.withLock { s in s.peers[peer]?.removeAll { t in dead.contains { $0 == t } } }
        }
        if let best = ready.min(by: { $0.1.activeRequests < $1.1.activeRequests }),
            best.1.activeRequests == 0 || ready.count >= self.connectionsPerPeer
        {
            return best.1
        }
        let group = self.group
        let configuration = self.configuration
        let engine = self.engine
        let task = Task { try await engine.connect(host: peer.host, port: peer.port, group: group, configuration: configuration) }
        self.state.withLock { s in s.peers[peer, default: []].append(task) }
        do {
            return try await task.value
        } catch {
            self.state.withLock { s in s.peers[peer]?.removeAll { $0 == task } }
            throw error
        }
    }

    /// Closes every connection; later requests fail.
    public func shutdown() async {
        let all = self.state.withLock { s -> [Task<any HTTP2ClientConnection, any Error>] in
            s.closed = true
            defer { s.peers = [:] }
            return s.peers.values.flatMap { $0 }
        }
        for t in all { await (try? t.value)?.close() }
    }
}
