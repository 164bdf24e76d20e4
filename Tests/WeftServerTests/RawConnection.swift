import NIOCore
import NIOPosix
import Synchronization

/// A bare TCP client for driving a server the way a hostile or broken peer would: it sends exactly the
/// bytes given, reads only when told to (or always), and records what arrives and when the server closes.
final class RawConnection: Sendable {
    /// Records what arrives and wakes whoever waits for some text (or for the end of the connection).
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        private struct State {
            var bytes: [UInt8] = []
            var ended = false
            var waiters: [(text: String, continuation: CheckedContinuation<Bool, Never>)] = []
        }
        private let state = Mutex(State())
        /// Sent as soon as the connection is up, from the event loop: the server sees no gap between
        /// the connection and these bytes however late the test's own task runs.
        let greeting: [UInt8]

        init(greeting: [UInt8]) {
            self.greeting = greeting
        }

        func channelActive(context: ChannelHandlerContext) {
            if !self.greeting.isEmpty {
                context.writeAndFlush(NIOAny(ByteBuffer(bytes: self.greeting)), promise: nil)
            }
            context.fireChannelActive()
        }

        var bytes: [UInt8] { self.state.withLock { $0.bytes } }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = self.unwrapInboundIn(data)
            self.update { $0.bytes += buffer.readableBytesView }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.update { $0.ended = true }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        /// True once the bytes contain `text`; false if the connection ends without it.
        func wait(for text: String) async -> Bool {
            await withCheckedContinuation { continuation in
                let answer: Bool? = self.state.withLock { state in
                    if String(decoding: state.bytes, as: UTF8.self).contains(text) { return true }
                    if state.ended { return false }
                    state.waiters.append((text, continuation))
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        }

        private func update(_ change: (inout State) -> Void) {
            let ready: [(CheckedContinuation<Bool, Never>, Bool)] = self.state.withLock { state in
                change(&state)
                if state.waiters.isEmpty { return [] }
                let text = String(decoding: state.bytes, as: UTF8.self)
                var ready: [(CheckedContinuation<Bool, Never>, Bool)] = []
                state.waiters.removeAll { waiter in
                    if text.contains(waiter.text) { ready.append((waiter.continuation, true)); return true }
                    if state.ended { ready.append((waiter.continuation, false)); return true }
                    return false
                }
                return ready
            }
            for (continuation, answer) in ready { continuation.resume(returning: answer) }
        }
    }

    let channel: any Channel
    private let collector: Collector

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    /// Connects to 127.0.0.1:`port` and sends `greeting` at once. With `reading` false nothing is read
    /// until ``startReading()``; `receiveBuffer` shrinks the socket's receive buffer so a peer that does
    /// not read stalls the sender soon.
    static func connect(
        port: Int, group: any EventLoopGroup, sending greeting: String = "", reading: Bool = true, receiveBuffer: Int? = nil
    ) async throws -> RawConnection {
        try await Self.connect(port: port, group: group, sending: Array(greeting.utf8), reading: reading, receiveBuffer: receiveBuffer)
    }

    static func connect(
        port: Int, group: any EventLoopGroup, sending greeting: [UInt8], reading: Bool = true, receiveBuffer: Int? = nil
    ) async throws -> RawConnection {
        let collector = Collector(greeting: greeting)
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.autoRead, value: reading)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        return RawConnection(channel: channel, collector: collector)
    }

    func send(_ text: String) async throws {
        try await self.send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Everything received so far.
    var received: [UInt8] { self.collector.bytes }
    var receivedText: String { String(decoding: self.received, as: UTF8.self) }

    func startReading() {
        self.channel.setOption(.autoRead, value: true).whenSuccess { [channel] in channel.read() }
    }

    /// Waits for the server to close the connection; false if it is still open after `limit`.
    func closedByServer(within limit: Duration = .seconds(60)) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await self.channel.closeFuture.get()) != nil || !self.channel.isActive }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    /// Waits until the received bytes contain `text`; false if the connection closes without them.
    /// (Bound the test's time with a timeout of the test itself.)
    func waitFor(_ text: String) async -> Bool {
        await self.collector.wait(for: text)
    }

    func close() async {
        try? await self.channel.close()
    }
}
