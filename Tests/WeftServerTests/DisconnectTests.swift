import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftQuery
import WeftRuntime

/// A request whose client goes away before its answer is cancelled, so a query can stop early;
/// requests already answered are not.
struct DisconnectTests {
    @Test(.timeLimit(.minutes(1)))
    func test_clientDisconnect_cancelsTheRequestInFlight() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let flags = Mutex<[String: QueryCancellation]>([:])
        let held = group.next().makePromise(of: HTTPResponse.self)
        let cancelled = group.next().makePromise(of: Void.self)
        // A failure, not a hang, if the request is never cancelled.
        let giveUp = group.next().scheduleTask(in: .seconds(30)) { cancelled.fail(NeverCancelled()) }
        let server = try await HTTPServer.start(host: "127.0.0.1", port: 0, group: group, maxBodyBytes: 1 << 20) { request, loop in
            let flag = request.cancellation!
            flags.withLock { $0[request.path] = flag }
            if request.path == "/answered" { return loop.makeSucceededFuture(.text(.ok, "done")) }
            // The held request's flag is watched until the server cancels it.
            let watch = loop.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .milliseconds(1)) { task in
                if flag.isCancelled {
                    cancelled.succeed()
                    task.cancel()
                }
            }
            cancelled.futureResult.whenComplete { _ in watch.cancel() }
            return held.futureResult
        }
        let answered = group.next().makePromise(of: Void.self)
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FirstReply(answered))
                }
            }
            .connect(host: "127.0.0.1", port: server.port).get()
        var buffer = client.allocator.buffer(capacity: 128)
        buffer.writeString("GET /answered HTTP/1.1\r\nHost: x\r\n\r\n")
        try await client.writeAndFlush(buffer)
        try await answered.futureResult.get()
        buffer.clear()
        buffer.writeString("GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        try await client.writeAndFlush(buffer)
        try await client.close()
        let sawCancel = (try? await cancelled.futureResult.get()) != nil
        giveUp.cancel()
        held.succeed(.text(.ok, "late"))
        #expect(sawCancel)
        #expect(flags.withLock { $0["/held"]?.isCancelled } == true)
        #expect(flags.withLock { $0["/answered"]?.isCancelled } == false)
        await server.shutdown()
    }
}

private struct NeverCancelled: Error {}

/// Signals the first bytes of an answer.
private final class FirstReply: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<Void>
    private var seen = false

    init(_ promise: EventLoopPromise<Void>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !self.seen { self.promise.succeed() }
        self.seen = true
    }
}
