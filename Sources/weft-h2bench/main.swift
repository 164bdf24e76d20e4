// HTTP/2 benchmarks.
//   weft-h2bench [port] [threads]
//       A server: `HTTPServer` (HTTP/1.1 and h2c on one port, the public ports' setup) answering any
//       request with the size of its body. Prints "listening <port>" and serves until killed (drive it
//       with h2load).
//   weft-h2bench h2 [port] [threads]
//       The same answer from `HTTPServer.startHTTP2` with an `HTTP2Router` service (HTTP/2 only, the
//       setup of the gRPC port and of node-to-node traffic): no HTTP/1.1 request and response types.
//   weft-h2bench client <port> [requests] [concurrency] [body bytes] [connections]
//       The async client (`HTTP2Connection`) against such a server: requests/s and latency.
import Foundation
import NIOCore
import NIOPosix
import WeftHTTP2
import WeftRuntime

let args = CommandLine.arguments
if args.count > 1 && args[1] == "client" {
    guard args.count > 2, let port = Int(args[2]) else {
        FileHandle.standardError.write(Data("usage: weft-h2bench client <port> [requests] [concurrency] [body bytes] [connections]\n".utf8))
        exit(2)
    }
    let requests = args.count > 3 ? Int(args[3]) ?? 200_000 : 200_000
    let concurrency = args.count > 4 ? Int(args[4]) ?? 128 : 128
    let bodyBytes = args.count > 5 ? Int(args[5]) ?? 1024 : 1024
    let connections = args.count > 6 ? Int(args[6]) ?? 1 : 1
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var config = HTTP2ClientConfiguration()
    config.maxConcurrentStreams = concurrency
    var conns: [HTTP2Connection] = []
    for _ in 0..<connections {
        conns.append(try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: group, configuration: config))
    }
    let pool = conns
    let body = ByteBuffer(repeating: 0x61, count: bodyBytes)
    let clock = ContinuousClock()
    let started = clock.now
    /// `concurrency` chains, each sending its next request when the previous answer arrives. Touched
    /// only on the connections' event loop (one loop for all of them).
    final class Chains: @unchecked Sendable {
        let requests: Int
        let concurrency: Int
        let body: ByteBuffer
        let loop: any EventLoop
        let clock = ContinuousClock()
        let done: CheckedContinuation<[Double], any Error>
        var next = 0
        var finished = 0
        var latencies: [Double] = []
        var failed = false

        init(requests: Int, concurrency: Int, body: ByteBuffer, loop: any EventLoop, done: CheckedContinuation<[Double], any Error>) {
            self.requests = requests
            self.concurrency = concurrency
            self.body = body
            self.loop = loop
            self.done = done
        }

        func launch(_ connection: HTTP2Connection) {
            guard self.next < self.requests else {
                self.finished += 1
                if self.finished == self.concurrency { self.done.resume(returning: self.latencies.sorted()) }
                return
            }
            self.next += 1
            let t = self.clock.now
            connection.submit(HTTP2ClientRequest(method: "POST", path: "/bench", body: self.body)).hop(to: self.loop).whenComplete { result in
                switch result {
                case .success(let r) where r.status == 200:
                    let d = self.clock.now - t
                    self.latencies.append(Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15)
                    self.launch(connection)
                default:
                    if !self.failed {
                        self.failed = true
                        self.done.resume(throwing: HTTP2ClientError.connectionClosed)
                    }
                }
            }
        }
    }
    let latencies: [Double] = try await withCheckedThrowingContinuation { (done: CheckedContinuation<[Double], any Error>) in
        let loop = pool[0].channel.eventLoop
        let chains = Chains(requests: requests, concurrency: concurrency, body: body, loop: loop, done: done)
        loop.execute { for worker in 0..<concurrency { chains.launch(pool[worker % pool.count]) } }
    }
    let seconds = Double((clock.now - started).components.seconds) + Double((clock.now - started).components.attoseconds) / 1e18
    func q(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
    print(String(format: "%d requests of %d B over %d connection(s), %d in flight: %.0f req/s; latency ms p50 %.2f p99 %.2f",
                 latencies.count, bodyBytes, connections, concurrency, Double(latencies.count) / seconds, q(0.5), q(0.99)))
    for c in conns { await c.close() }
    try await group.shutdownGracefully()
} else {
    let native = args.count > 1 && args[1] == "h2"
    let rest = native ? Array(args.dropFirst(2)) : Array(args.dropFirst())
    let port = rest.count > 0 ? Int(rest[0]) ?? 0 : 0
    let threads = rest.count > 1 ? Int(rest[1]) ?? 1 : 1
    let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    let server: HTTPServer
    if native {
        var router = HTTP2Router()
        router.on("POST", prefix: "/") { request, loop in
            loop.makeSucceededFuture(HTTP2Response(
                status: 200, headers: [("content-type", "text/plain; charset=utf-8")],
                body: ByteBuffer(string: "received \(request.body.readableBytes)\n")))
        }
        server = try await HTTPServer.startHTTP2(host: "127.0.0.1", port: port, group: group, maxBodyBytes: 64 << 20, service: router.service)
    } else {
        server = try await HTTPServer.start(host: "127.0.0.1", port: port, group: group, maxBodyBytes: 64 << 20) { request, loop in
            loop.makeSucceededFuture(.text(.ok, "received \(request.body.readableBytes)\n"))
        }
    }
    FileHandle.standardOutput.write(Data("listening \(server.port)\n".utf8))
    try await server.channel.closeFuture.get()
}
