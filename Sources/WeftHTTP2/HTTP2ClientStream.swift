import NIOCore
import Synchronization

/// The head of a streamed response.
public struct HTTP2ResponseHead: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]

    public func header(_ name: String) -> String? { self.headers.first { $0.name == name }?.value }
}

/// Shared between a stream's owner (any task) and the connection's event loop.
final class StreamBridge: Sendable {
    struct State {
        var streamID: Int32? = nil
        var openWaiters: [CheckedContinuation<Int32, any Error>] = []
        var head: HTTP2ResponseHead? = nil
        var headWaiters: [CheckedContinuation<HTTP2ResponseHead, any Error>] = []
        var chunks: [ByteBuffer] = []
        var finished = false
        var trailers: [(name: String, value: String)] = []
        var bodyWaiter: CheckedContinuation<ByteBuffer?, any Error>? = nil
        var error: (any Error)? = nil
    }

    let token: UInt64
    let state = Mutex(State())

    init(token: UInt64) { self.token = token }

    // MARK: From the event loop

    func opened(_ sid: Int32) {
        let waiters = self.state.withLock { s -> [CheckedContinuation<Int32, any Error>] in
            s.streamID = sid
            defer { s.openWaiters = [] }
            return s.openWaiters
        }
        for w in waiters { w.resume(returning: sid) }
    }

    func gotHead(_ head: HTTP2ResponseHead) {
        let waiters = self.state.withLock { s -> [CheckedContinuation<HTTP2ResponseHead, any Error>] in
            s.head = head
            defer { s.headWaiters = [] }
            return s.headWaiters
        }
        for w in waiters { w.resume(returning: head) }
    }

    func push(_ chunk: ByteBuffer) {
        let waiter = self.state.withLock { s -> CheckedContinuation<ByteBuffer?, any Error>? in
            if let w = s.bodyWaiter {
                s.bodyWaiter = nil
                return w
            }
            s.chunks.append(chunk)
            return nil
        }
        waiter?.resume(returning: chunk)
    }

    func finish(trailers: [(name: String, value: String)]) {
        let waiter = self.state.withLock { s -> CheckedContinuation<ByteBuffer?, any Error>? in
            s.finished = true
            s.trailers = trailers
            defer { s.bodyWaiter = nil }
            return s.chunks.isEmpty ? s.bodyWaiter : nil
        }
        waiter?.resume(returning: nil)
    }

    func fail(_ error: any Error) {
        let (opens, heads, body) = self.state.withLock { s in
            if s.error == nil && !(s.finished && s.chunks.isEmpty) { s.error = error }
            defer {
                s.openWaiters = []
                s.headWaiters = []
                s.bodyWaiter = nil
            }
            return (s.openWaiters, s.headWaiters, s.bodyWaiter)
        }
        for w in opens { w.resume(throwing: error) }
        for w in heads { w.resume(throwing: error) }
        body?.resume(throwing: error)
    }

    // MARK: From the owner

    func streamID() async throws -> Int32 {
        try await withCheckedThrowingContinuation { c in
            let ready: Result<Int32, any Error>? = self.state.withLock { s in
                if let sid = s.streamID { return .success(sid) }
                if let e = s.error { return .failure(e) }
                s.openWaiters.append(c)
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }

    func head() async throws -> HTTP2ResponseHead {
        try await withCheckedThrowingContinuation { c in
            let ready: Result<HTTP2ResponseHead, any Error>? = self.state.withLock { s in
                if let h = s.head { return .success(h) }
                if let e = s.error { return .failure(e) }
                s.headWaiters.append(c)
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }

    /// The next body piece (nil at the end).
    func next() async throws -> ByteBuffer? {
        try await withCheckedThrowingContinuation { c in
            let ready: Result<ByteBuffer?, any Error>? = self.state.withLock { s in
                if !s.chunks.isEmpty { return .success(s.chunks.removeFirst()) }
                if let e = s.error { return .failure(e) }
                if s.finished { return .success(nil) }
                s.bodyWaiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }

    var trailers: [(name: String, value: String)] { self.state.withLock { $0.trailers } }
}

/// A request whose body is written piece by piece and whose response body is read as it arrives, both
/// under flow control: ``write(_:)`` returns once the piece has gone out (so a slow peer slows the
/// writer), and response bytes are credited back to the peer only as the body is read (so a slow reader
/// slows the peer). Engines other than nghttp2 implement this too (see ``HTTP2ClientConnection``).
public protocol HTTP2StreamingRequest: Sendable {
    /// Sends a piece of the request body; returns when it has been handed to the socket.
    func write(_ chunk: ByteBuffer) async throws
    /// Ends the request body (optionally with a last piece).
    func finish(_ last: ByteBuffer) async throws
    /// Waits for the response head.
    func response() async throws -> HTTP2ResponseHead
    /// The next piece of the response body, nil at its end. Reading it lets the peer send that much more.
    func nextBodyPiece() async throws -> ByteBuffer?
    /// Trailers, once the body has been read to the end.
    var trailers: [(name: String, value: String)] { get }
    /// Resets the stream (CANCEL).
    func cancel()
}

extension HTTP2StreamingRequest {
    /// Ends the request body.
    public func finish() async throws { try await self.finish(ByteBuffer()) }

    /// The response body, piece by piece.
    public var body: HTTP2ResponseBody { HTTP2ResponseBody(stream: self) }
}

/// A streamed response body as an `AsyncSequence` of pieces.
public struct HTTP2ResponseBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let stream: any HTTP2StreamingRequest

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: any HTTP2StreamingRequest
        public mutating func next() async throws -> ByteBuffer? { try await self.stream.nextBodyPiece() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self.stream) }
}

/// The nghttp2 engine's streaming request: a ``StreamBridge`` between the caller's task and the
/// connection's event loop.
final class HTTP2Stream: HTTP2StreamingRequest {
    let bridge: StreamBridge
    let handler: NIOLoopBound<NGHTTP2ClientHandler>
    let loop: any EventLoop

    init(bridge: StreamBridge, handler: NIOLoopBound<NGHTTP2ClientHandler>, loop: any EventLoop) {
        self.bridge = bridge
        self.handler = handler
        self.loop = loop
    }

    func write(_ chunk: ByteBuffer) async throws {
        try await self.send(chunk, end: false)
    }

    func finish(_ last: ByteBuffer) async throws {
        try await self.send(last, end: true)
    }

    private func send(_ chunk: ByteBuffer, end: Bool) async throws {
        let sid = try await self.bridge.streamID()
        let promise = self.loop.makePromise(of: Void.self)
        let handler = self.handler
        self.loop.execute { handler.value.write(sid, chunk, end: end, promise: promise) }
        try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            self.cancel()
        }
    }

    func response() async throws -> HTTP2ResponseHead { try await self.bridge.head() }

    func nextBodyPiece() async throws -> ByteBuffer? {
        guard let chunk = try await self.bridge.next() else { return nil }
        // Consumed: let the peer send that much more.
        let handler = self.handler
        let bridge = self.bridge
        let bytes = chunk.readableBytes
        self.loop.execute { handler.value.consumed(bridge, bytes) }
        return chunk
    }

    var trailers: [(name: String, value: String)] { self.bridge.trailers }

    func cancel() {
        let handler = self.handler
        let token = self.bridge.token
        self.loop.execute { handler.value.cancel(token: token, reason: .cancelled) }
    }
}

extension HTTP2Connection {
    /// Opens a streaming request (headers now, body through ``HTTP2StreamingRequest/write(_:)``). It
    /// counts against the stream limit like any request and waits in the same queue.
    public func openStream(method: String = "POST", path: String, headers: [(name: String, value: String)] = []) -> any HTTP2StreamingRequest {
        let token = self.nextToken()
        let bridge = StreamBridge(token: token)
        let handler = self.handler
        let request = HTTP2ClientRequest(method: method, path: path, headers: headers)
        let loop = self.channel.eventLoop
        loop.execute { handler.value.open(bridge, request) }
        return HTTP2Stream(bridge: bridge, handler: handler, loop: loop)
    }
}
