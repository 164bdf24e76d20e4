import NIOCore
import Synchronization

/// A complete HTTP/2 request as the engine hands it over.
public struct HTTP2Request: Sendable {
    public var method: String
    /// `:path`, including any query string.
    public var path: String
    public var scheme: String
    public var authority: String
    /// Regular header fields (lowercase names), in arrival order.
    public var headers: [(name: String, value: String)]
    /// The whole body; empty when it comes through `bodyStream`.
    public var body: ByteBuffer
    /// The body piece by piece, for requests the service streams (``HTTP2Service/streamsRequestBody``)
    /// that have a body; nil otherwise.
    public var bodyStream: HTTP2RequestBody?

    public init(
        method: String, path: String, scheme: String, authority: String, headers: [(name: String, value: String)], body: ByteBuffer,
        bodyStream: HTTP2RequestBody? = nil
    ) {
        self.method = method
        self.path = path
        self.scheme = scheme
        self.authority = authority
        self.headers = headers
        self.body = body
        self.bodyStream = bodyStream
    }
}

/// A request body read as it arrives. Bytes are credited back to the peer (stream and connection
/// windows) only as they are read, so a handler that reads slowly slows the sender, with at most one
/// stream window buffered. If the peer resets the stream, reading throws ``HTTP2StreamClosed``.
public struct HTTP2RequestBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let bridge: StreamBridge
    let consumed: @Sendable (Int) -> Void

    public struct AsyncIterator: AsyncIteratorProtocol {
        let body: HTTP2RequestBody
        public mutating func next() async throws -> ByteBuffer? {
            guard let piece = try await self.body.bridge.next() else { return nil }
            self.body.consumed(piece.readableBytes)
            return piece
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }

    /// Trailer fields, once the body has been read to its end.
    public var trailers: [(name: String, value: String)] { self.bridge.trailers }
}

/// A response to send on one stream.
public struct HTTP2Response: Sendable {
    public var status: Int
    /// Regular header fields; names must be lowercase and connection-specific fields are not allowed.
    public var headers: [(name: String, value: String)]
    public var body: ByteBuffer
    /// Trailer fields sent after the body (e.g. `grpc-status`); empty for none. With trailers the
    /// engine sends no `content-length`.
    public var trailers: [(name: String, value: String)]
    /// A body produced while it is sent, in place of `body`. The engine sends the head, then runs this
    /// in a task; each ``HTTP2BodyWriter/write(_:)`` returns once its piece has gone out, so a peer that
    /// reads slowly (flow control) slows the producer. Returning ends the body (then `trailers`, if
    /// any); throwing resets the stream (INTERNAL_ERROR).
    public var bodyStream: HTTP2BodyProducer?

    public init(
        status: Int, headers: [(name: String, value: String)] = [], body: ByteBuffer = ByteBuffer(),
        trailers: [(name: String, value: String)] = [], bodyStream: HTTP2BodyProducer? = nil
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.bodyStream = bodyStream
    }
}

/// Writes a streamed response body (see ``HTTP2Response/bodyStream``).
public typealias HTTP2BodyProducer = @Sendable (HTTP2BodyWriter) async throws -> Void

/// The peer reset the stream, or the connection closed, while a streamed body was being written.
public struct HTTP2StreamClosed: Error, Sendable, Equatable {
    /// The HTTP/2 error code of the reset; nil when the connection closed.
    public let errorCode: UInt32?
}

/// Sends the pieces of one streamed response body, in order.
public final class HTTP2BodyWriter: Sendable {
    public typealias Fields = [(name: String, value: String)]
    private let write: @Sendable (ByteBuffer, Bool, Fields?) -> EventLoopFuture<Void>
    private let endTrailers = Mutex<Fields?>(nil)
    /// Told once when the peer resets the stream or the connection closes before the body ends.
    private let closeActions = Mutex<(closed: Bool, actions: [@Sendable () -> Void])>((false, []))

    init(write: @escaping @Sendable (ByteBuffer, Bool, Fields?) -> EventLoopFuture<Void>) {
        self.write = write
    }

    /// Sends `piece`; returns once it has been handed to the socket. Throws ``HTTP2StreamClosed``.
    public func write(_ piece: ByteBuffer) async throws {
        try await self.write(piece, false, nil).get()
    }

    /// Replaces the response's trailers, sent when the body ends (e.g. a gRPC status known only at the
    /// end). Only a response that was given trailers ends with them.
    public func setTrailers(_ trailers: Fields) {
        self.endTrailers.withLock { $0 = trailers }
    }

    func finish() async throws {
        try await self.write(ByteBuffer(), true, self.endTrailers.withLock { $0 }).get()
    }

    /// Runs `action` when the peer resets the stream or the connection closes before the body ends (at
    /// once if that already happened), so a producer busy between writes can stop its work.
    public func onClose(_ action: @escaping @Sendable () -> Void) {
        let closed = self.closeActions.withLock { state in
            if !state.closed { state.actions.append(action) }
            return state.closed
        }
        if closed { action() }
    }

    func peerClosed() {
        let actions = self.closeActions.withLock { state in
            defer { state = (true, []) }
            return state.closed ? [] : state.actions
        }
        for action in actions { action() }
    }
}

/// Why a request was answered without reaching the responder.
public enum HTTP2Rejection: Sendable, Equatable {
    /// The body (or its declared content-length) is over `maxBodyBytes`: answer 413.
    case bodyTooLarge(limit: Int)
    /// The header list is over `maxHeaderListBytes`: answer 431.
    case headersTooLarge(limit: Int)
    /// The node holds as many request-body bytes as its ``RequestBodyBudget`` allows: answer 503 and
    /// ask the client to retry later.
    case overloaded(budget: Int)
}

/// What an HTTP/2 server does with requests.
public struct HTTP2Service: Sendable {
    /// Delivers the answer to one request; call it once, from any thread.
    public typealias Reply = @Sendable (Result<HTTP2Response, any Error>) -> Void

    /// Answers a complete request through its `Reply`; called on the connection's event loop.
    public var answer: @Sendable (HTTP2Request, any EventLoop, @escaping Reply) -> Void
    /// Builds the answer for a request refused by a limit (the request has no body).
    public var reject: @Sendable (HTTP2Request, HTTP2Rejection) -> HTTP2Response
    /// Which requests (by method and path) are handed over when their headers arrive, with the body
    /// to read through ``HTTP2Request/bodyStream``; nil: every request arrives whole.
    public var streamsRequestBody: (@Sendable (_ method: String, _ path: String) -> Bool)?

    /// A service whose answers are futures.
    public init(
        respond: @escaping @Sendable (HTTP2Request, any EventLoop) -> EventLoopFuture<HTTP2Response>,
        reject: @escaping @Sendable (HTTP2Request, HTTP2Rejection) -> HTTP2Response = HTTP2Service.plainRejection,
        streamsRequestBody: (@Sendable (_ method: String, _ path: String) -> Bool)? = nil
    ) {
        self.answer = { request, loop, reply in respond(request, loop).whenComplete(reply) }
        self.reject = reject
        self.streamsRequestBody = streamsRequestBody
    }

    /// A service that answers through a callback (no future of its own: an adapter over another
    /// future-returning API can reply from that future's callback).
    public init(
        answer: @escaping @Sendable (HTTP2Request, any EventLoop, @escaping Reply) -> Void,
        reject: @escaping @Sendable (HTTP2Request, HTTP2Rejection) -> HTTP2Response = HTTP2Service.plainRejection,
        streamsRequestBody: (@Sendable (_ method: String, _ path: String) -> Bool)? = nil
    ) {
        self.answer = answer
        self.reject = reject
        self.streamsRequestBody = streamsRequestBody
    }

    @Sendable public static func plainRejection(_ request: HTTP2Request, _ why: HTTP2Rejection) -> HTTP2Response {
        let (status, text): (Int, String)
        switch why {
        case .bodyTooLarge(let limit): (status, text) = (413, "request body exceeds the limit of \(limit) bytes\n")
        case .headersTooLarge(let limit): (status, text) = (431, "request header list exceeds \(limit) bytes\n")
        case .overloaded(let budget):
            return HTTP2Response(
                status: 503, headers: [("content-type", "text/plain; charset=utf-8"), ("retry-after", "1")],
                body: ByteBuffer(string: "the server holds its limit of \(budget) bytes of request bodies; retry shortly\n")
            )
        }
        return HTTP2Response(status: status, headers: [("content-type", "text/plain; charset=utf-8")], body: ByteBuffer(string: text))
    }
}

/// Server limits (see ``NGSessionSettings`` for the meaning of each).
public struct HTTP2ServerConfiguration: Sendable {
    public var maxConcurrentStreams: UInt32 = 256
    public var maxHeaderListBytes: Int = 64 << 10
    public var initialStreamWindow: Int32 = 1 << 20
    /// At least `maxBodyBytes` + one stream window, so one maximal body always fits.
    public var connectionWindow: Int32 = 64 << 20
    public var maxBodyBytes: Int = 64 << 20
    /// A connection with no open stream for this long gets GOAWAY and is closed (nil: never).
    public var idleTimeout: TimeAmount? = .minutes(5)
    /// A connection whose output has been blocked (the peer reads nothing) for this long is closed
    /// (nil: never). Output is produced only while the channel is writable, so a peer that opens large
    /// flow-control windows and does not read holds at most about one drain of buffered frames.
    public var writeTimeout: TimeAmount? = .seconds(30)
    /// Told when a connection is closed by ``writeTimeout`` (for metrics).
    public var onWriteTimeout: (@Sendable () -> Void)? = nil
    /// Request-body bytes shared with the node's other connections (see ``NGSessionSettings/bodyBudget``).
    public var bodyBudget: RequestBodyBudget? = nil

    public init(maxBodyBytes: Int = 64 << 20) {
        self.maxBodyBytes = maxBodyBytes
        self.connectionWindow = Int32(clamping: max(64 << 20, maxBodyBytes + (1 << 20)))
    }

    var sessionSettings: NGSessionSettings {
        var s = NGSessionSettings()
        s.maxConcurrentStreams = self.maxConcurrentStreams
        s.maxHeaderListBytes = self.maxHeaderListBytes
        s.initialStreamWindow = self.initialStreamWindow
        s.connectionWindow = self.connectionWindow
        s.maxBodyBytes = self.maxBodyBytes
        s.bodyBudget = self.bodyBudget
        return s
    }
}

/// An HTTP/2 server engine: whatever can serve a channel whose next inbound bytes start with the
/// client connection preface. Callers depend only on this, so another engine can replace nghttp2.
public protocol HTTP2ServerEngine: Sendable {
    /// Adds the handlers; called on the channel's event loop.
    func configureServer(channel: any Channel, configuration: HTTP2ServerConfiguration, service: HTTP2Service) throws
}

/// The libnghttp2 engine.
public struct NGHTTP2Engine: HTTP2ServerEngine {
    public init() {}

    public func configureServer(channel: any Channel, configuration: HTTP2ServerConfiguration, service: HTTP2Service) throws {
        try channel.pipeline.syncOperations.addHandler(NGHTTP2ServerHandler(configuration: configuration, service: service))
    }
}

/// The 24-byte client connection preface (RFC 9113 §3.4).
public let http2ClientPreface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
