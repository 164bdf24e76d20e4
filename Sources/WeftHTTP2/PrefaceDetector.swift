import NIOCore

/// The first handler of a server connection: buffers the first bytes until they either are the HTTP/2
/// client preface (h2c with prior knowledge) or cannot be, installs the matching pipeline behind itself,
/// replays the buffered bytes into it and leaves.
public final class HTTP2PrefaceDetector: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private let configureHTTP1: (any Channel) throws -> Void
    private let configureHTTP2: (any Channel) throws -> Void
    private var buffered: ByteBuffer?
    /// Length of "PRI * HTTP/2.0\r\n": a connection that matches this far can only be HTTP/2.
    static let http2RequestLine = 16

    /// Both closures add handlers at the end of the pipeline, synchronously, on the event loop.
    public init(http1: @escaping (any Channel) throws -> Void, http2: @escaping (any Channel) throws -> Void) {
        self.configureHTTP1 = http1
        self.configureHTTP2 = http2
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        if self.buffered == nil {
            self.buffered = bytes
        } else {
            self.buffered!.writeBuffer(&bytes)
        }
        let seen = self.buffered!.readableBytesView
        let n = min(seen.count, http2ClientPreface.count)
        let matched = zip(seen.prefix(n), http2ClientPreface).prefix { $0 == $1 }.count
        let isPrefix = matched == n
        if isPrefix && n < http2ClientPreface.count { return }  // not decided yet
        if !isPrefix && matched >= HTTP2PrefaceDetector.http2RequestLine {
            // "PRI * HTTP/2.0\r\n" then something else: a broken HTTP/2 preface, and not HTTP/1.x either.
            self.buffered = nil
            context.close(promise: nil)
            return
        }
        do {
            try (isPrefix ? self.configureHTTP2 : self.configureHTTP1)(context.channel)
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        let replay = self.buffered!
        self.buffered = nil
        context.fireChannelRead(self.wrapInboundOut(replay))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Quiescing before the first request is known: nothing is in flight, so just close.
        if event is ChannelShouldQuiesceEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
