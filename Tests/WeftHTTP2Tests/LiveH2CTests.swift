import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
import WeftClient
import WeftHTTP2
import WeftRuntime

/// A bare h2c client over a real socket: one client `NGSession` on the channel's loop.
final class TestH2Client: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session: NGSession?
    private var context: ChannelHandlerContext?
    private var pending: [Int32: EventLoopPromise<NGMessage>] = [:]
    /// Succeeds with the last stream ID of the first GOAWAY received.
    private var goAway: EventLoopPromise<Int32>?

    struct StreamReset: Error { var code: UInt32 }
    struct Closed: Error {}

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.goAway = context.eventLoop.makePromise()
        self.session = try? NGSession(role: .client, allocator: context.channel.allocator)
    }

    func request(method: String, path: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) -> EventLoopFuture<NGMessage> {
        let context = self.context!
        let promise = context.eventLoop.makePromise(of: NGMessage.self)
        do {
            let sid = try self.session!.submitRequest(method: method, path: path, authority: "127.0.0.1", headers: headers, body: body.isEmpty ? nil : ByteBuffer(bytes: body))
            self.pending[sid] = promise
            self.flush(context)
        } catch {
            promise.fail(error)
        }
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session = self.session else { return }
        do {
            try session.receive(self.unwrapInboundIn(data))
        } catch {
            context.close(promise: nil)
            return
        }
        self.handle(session.takeEvents())
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.flush(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let pending = self.pending
        self.pending = [:]
        for p in pending.values { p.fail(Closed()) }
        self.goAway?.fail(Closed())
    }

    private func handle(_ events: [NGEvent]) {
        for e in events {
            switch e {
            case .message(let id, let m): self.pending.removeValue(forKey: id)?.succeed(m)
            case .closed(let id, let code): self.pending.removeValue(forKey: id)?.fail(StreamReset(code: code))
            case .goAway(let last, _): self.goAway?.succeed(last)
            case .rejected, .pingAck, .head, .data, .writable: break
            }
        }
    }

    private func flush(_ context: ChannelHandlerContext) {
        guard let session = self.session else { return }
        var out = context.channel.allocator.buffer(capacity: 0)
        guard (try? session.drainOutput(into: &out)) != nil else { context.close(promise: nil); return }
        self.handle(session.takeEvents())
        if out.readableBytes > 0 { context.writeAndFlush(self.wrapOutboundOut(out), promise: nil) }
    }

    /// Connects and returns the channel; drive it with `send`.
    static func connect(port: Int, group: any EventLoopGroup) async throws -> any Channel {
        try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(TestH2Client()) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    static func send(
        _ channel: any Channel, method: String, path: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []
    ) async throws -> NGMessage {
        try await channel.eventLoop.flatSubmit {
            do {
                return try channel.pipeline.syncOperations.handler(type: TestH2Client.self).request(method: method, path: path, headers: headers, body: body)
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }

    static func goAway(_ channel: any Channel) async throws -> Int32 {
        try await channel.eventLoop.flatSubmit {
            do {
                return try channel.pipeline.syncOperations.handler(type: TestH2Client.self).goAway!.futureResult
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }
}

struct LiveH2CTests {
    static let responder: HTTPResponder = { request, loop in
        var response = WeftRuntime.HTTPResponse.text(.ok, "\(request.method) \(request.path) \(request.body.readableBytes) \(request.query["q"] ?? "-")")
        response.headers.add(name: "x-proto-test", value: "yes")
        return loop.makeSucceededFuture(response)
    }

    @Test func test_http1AndH2C_onTheSamePort_getTheSameAnswers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await HTTPServer.start(host: "127.0.0.1", port: 0, group: group, maxBodyBytes: 1 << 20, responder: Self.responder)

        let h1 = try await HTTPConnection.connect(host: "127.0.0.1", port: server.port, group: group)
        let r1 = try await h1.request(method: "POST", path: "/hello?q=a%20b", body: ByteBuffer(bytes: [1, 2, 3]))
        #expect(r1.status == 200)
        #expect(r1.bodyString == "POST /hello 3 a b")
        #expect(r1.header("x-proto-test") == "yes")
        await h1.closeAndWait()

        let h2 = try await TestH2Client.connect(port: server.port, group: group)
        // Many concurrent streams on one connection.
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for i in 0..<64 {
                tasks.addTask {
                    let r = try await TestH2Client.send(h2, method: "POST", path: "/hello?q=\(i)", body: [UInt8](repeating: 7, count: i * 100))
                    #expect(r.status == 200)
                    #expect(String(buffer: r.body) == "POST /hello \(i * 100) \(i)")
                    #expect(r.headers.contains { $0.name == "x-proto-test" && $0.value == "yes" })
                    #expect(r.headers.contains { $0.name == "content-length" })
                }
            }
            try await tasks.waitForAll()
        }
        let get = try await TestH2Client.send(h2, method: "GET", path: "/hello?q=a%20b")
        #expect(String(buffer: get.body) == "GET /hello 0 a b")
        // Over the body limit: 413 on that stream, the connection lives on.
        let big = try await TestH2Client.send(h2, method: "POST", path: "/big", body: [UInt8](repeating: 1, count: (1 << 20) + 1))
        #expect(big.status == 413)
        let after = try await TestH2Client.send(h2, method: "GET", path: "/after")
        #expect(after.status == 200)
        try await h2.close()

        await server.shutdown()
        try await group.shutdownGracefully()
    }

    /// h2c shares the node's body budget with HTTP/1.1: a body that does not fit beside an unanswered
    /// one gets 503 with Retry-After (an OTLP status for OTLP) on its stream, and the connection lives on.
    @Test func test_h2cBodiesBeyondTheSharedBudget_get503OnTheirStream() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let held = Mutex<EventLoopPromise<WeftRuntime.HTTPResponse>?>(nil)
            let (arrived, arrival) = AsyncStream.makeStream(of: Void.self)
            var limits = HTTPConnectionLimits()
            limits.bodyBudget = RequestBodyBudget(limit: 100_000)
            let server = try await HTTPServer.start(host: "127.0.0.1", port: 0, group: group, maxBodyBytes: 1 << 20, limits: limits) { request, loop in
                guard request.path == "/hold" else { return loop.makeSucceededFuture(.text(.ok, "got \(request.body.readableBytes)")) }
                let promise = loop.makePromise(of: WeftRuntime.HTTPResponse.self)
                held.withLock { $0 = promise }
                arrival.yield()
                return promise.futureResult
            }
            let h2 = try await TestH2Client.connect(port: server.port, group: group)
            async let holding = TestH2Client.send(h2, method: "POST", path: "/hold", body: [UInt8](repeating: 1, count: 80_000))
            var it = arrived.makeAsyncIterator()
            await it.next()
            #expect(limits.bodyBudget!.reserved == 80_000)
            let refused = try await TestH2Client.send(
                h2, method: "POST", path: "/v1/traces", headers: [("content-type", "application/x-protobuf")], body: [UInt8](repeating: 2, count: 80_000)
            )
            #expect(refused.status == 503)
            #expect(refused.headers.contains { $0.name == "retry-after" && $0.value == "1" })
            #expect(refused.headers.contains { $0.name == "content-type" && $0.value == "application/x-protobuf" })
            held.withLock { $0!.succeed(.text(.ok, "held done")) }
            #expect(String(buffer: try await holding.body) == "held done")
            let after = try await TestH2Client.send(h2, method: "POST", path: "/after", body: [UInt8](repeating: 3, count: 90_000))
            #expect(String(buffer: after.body) == "got 90000")
            #expect(limits.bodyBudget!.reserved == 0)
            try await h2.close()
            await server.shutdown()
        }
        try await group.shutdownGracefully()
    }

    @Test func test_gracefulShutdown_sendsGoAway_andFinishesTheInFlightStream() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // The server (and its promises on the group's loop) goes away before the group does.
        do {
            let held = Mutex<EventLoopPromise<WeftRuntime.HTTPResponse>?>(nil)
            let (arrived, arrivedContinuation) = AsyncStream.makeStream(of: Void.self)
            let server = try await HTTPServer.start(host: "127.0.0.1", port: 0, group: group, maxBodyBytes: 1 << 20) { request, loop in
                guard request.path == "/slow" else { return loop.makeSucceededFuture(WeftRuntime.HTTPResponse.text(.ok, "fast")) }
                let promise = loop.makePromise(of: WeftRuntime.HTTPResponse.self)
                held.withLock { $0 = promise }
                arrivedContinuation.yield()
                return promise.futureResult
            }
            let h2 = try await TestH2Client.connect(port: server.port, group: group)
            #expect(try await TestH2Client.send(h2, method: "GET", path: "/warmup").status == 200)
            async let slow = TestH2Client.send(h2, method: "GET", path: "/slow")
            var it = arrived.makeAsyncIterator()
            await it.next()

            async let stopped: Void = server.shutdown()
            // The GOAWAY reaches the client while /slow is still open.
            #expect(try await TestH2Client.goAway(h2) == 3)
            held.withLock { $0!.succeed(WeftRuntime.HTTPResponse.text(.ok, "slow done")) }
            let r = try await slow
            #expect(String(buffer: r.body) == "slow done")
            await stopped
            // The server closed the connection once the stream finished.
            try await h2.closeFuture.get()
        }
        try await group.shutdownGracefully()
    }
}
