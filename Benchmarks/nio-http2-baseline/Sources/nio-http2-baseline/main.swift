// The same endpoint as `weft-h2bench`: any request is answered 200 with "received <body bytes>\n",
// served over h2c (prior knowledge) by swift-nio-http2's multiplexer, one stream channel per request.
//   nio-http2-baseline [port] [threads]   prints "listening <port>".
import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

final class ReceivedHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private var bytes = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head:
            self.bytes = 0
        case .body(let buffer):
            self.bytes += buffer.readableBytes
        case .end:
            let body = context.channel.allocator.buffer(string: "received \(self.bytes)\n")
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain; charset=utf-8")
            headers.add(name: "content-length", value: String(body.readableBytes))
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http2, status: .ok, headers: headers))), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

let args = CommandLine.arguments
let port = args.count > 1 ? Int(args[1]) ?? 0 : 0
let threads = args.count > 2 ? Int(args[2]) ?? 1 : 1
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let channel = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 256)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.configureHTTP2Pipeline(mode: .server) { stream in
            stream.pipeline.addHandlers([HTTP2FramePayloadToHTTP1ServerCodec(), ReceivedHandler()])
        }.map { _ in }
    }
    .bind(host: "127.0.0.1", port: port).wait()
FileHandle.standardOutput.write(Data("listening \(channel.localAddress!.port!)\n".utf8))
try channel.closeFuture.wait()
