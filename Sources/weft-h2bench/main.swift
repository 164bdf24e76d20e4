// A tiny server for HTTP/2 benchmarks: `HTTPServer` (HTTP/1.1 and h2c on one port) with a responder
// that answers any method on any path with the size of the request body.
//   weft-h2bench [port] [threads]     prints "listening <port>" and serves until killed.
import Foundation
import NIOCore
import NIOPosix
import WeftServer

let args = CommandLine.arguments
let port = args.count > 1 ? Int(args[1]) ?? 0 : 0
let threads = args.count > 2 ? Int(args[2]) ?? 1 : 1
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let server = try await HTTPServer.start(host: "127.0.0.1", port: port, group: group, maxBodyBytes: 64 << 20) { request, loop in
    loop.makeSucceededFuture(.text(.ok, "received \(request.body.readableBytes)\n"))
}
FileHandle.standardOutput.write(Data("listening \(server.port)\n".utf8))
try await server.channel.closeFuture.get()
