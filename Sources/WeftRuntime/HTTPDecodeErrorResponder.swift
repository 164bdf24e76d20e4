import NIOCore
import NIOHTTP1

/// Answers a request the HTTP/1.1 decoder cannot read, then lets the connection close: 431 when its
/// header fields are past the decoder's limit, 400 otherwise, each with a message saying why. (The
/// protocol error handler of NIO answers 400 with an empty body.) No answer is written when another
/// one has begun on the connection.
final class HTTPDecodeErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The most bytes of one header field, and of all of them, the decoder takes.
    static let maxHeaderBytes = 80 * 1024

    private var responding = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if !self.responding {
            let (status, message): (HTTPResponseStatus, String) =
                error == .headerOverflow
                ? (.requestHeaderFieldsTooLarge, "request header fields exceed \(Self.maxHeaderBytes / 1024) KiB\n")
                : (.badRequest, "malformed HTTP/1.1 request: \(error)\n")
            let body = context.channel.allocator.buffer(string: message)
            let headers = HTTPHeaders([
                ("connection", "close"), ("content-type", "text/plain; charset=utf-8"), ("content-length", String(body.readableBytes)),
            ])
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        }
        // The handlers after this one close the connection.
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch Self.unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: self.responding = true
        case .end: self.responding = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
