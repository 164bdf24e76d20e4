import NIOCore
import NIOPosix
import Testing
import WeftHTTP2

/// Peers that complete the HTTP/2 handshake with huge flow-control windows and then answer nothing,
/// as a `SIGSTOP`ped process does: the client's output must stay bounded by its configuration, not by the
/// peer's windows, its requests must still end by their deadlines, and the connection must be given up.
struct UnresponsivePeerTests {
    /// Accepts, sends SETTINGS (2³¹−1 stream window, 1000 streams) and a connection WINDOW_UPDATE to
    /// 2³¹−1, then sends nothing more. With `reads` false it never reads a byte either (auto-read off,
    /// small receive buffer), so the client's socket fills; with `reads` true it reads and discards.
    static func deafPeer(reads: Bool = false) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.socketOption(.so_rcvbuf), value: 64 << 10)
            .childChannelOption(.autoRead, value: reads)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(GrantThenStopReading()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    final class GrantThenStopReading: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        func channelActive(context: ChannelHandlerContext) {
            var frames = context.channel.allocator.buffer(capacity: 64)
            // SETTINGS: MAX_CONCURRENT_STREAMS (3) = 1000, INITIAL_WINDOW_SIZE (4) = 2^31-1.
            frames.writeBytes([0, 0, 12, 0x4, 0, 0, 0, 0, 0])
            frames.writeInteger(UInt16(3))
            frames.writeInteger(UInt32(1000))
            frames.writeInteger(UInt16(4))
            frames.writeInteger(UInt32(Int32.max))
            // WINDOW_UPDATE on the connection: from 65,535 to 2^31-1.
            frames.writeBytes([0, 0, 4, 0x8, 0, 0, 0, 0, 0])
            frames.writeInteger(UInt32(Int32.max) - 65_535)
            context.writeAndFlush(self.wrapOutboundOut(frames), promise: nil)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // discarded
    }

    /// A peer that takes every request but never answers (nor acknowledges a PING) is found dead by PING
    /// although the client keeps writing to it: what the client sends is not a sign of the peer's life.
    @Test func test_peerThatReadsButNeverAnswers_isDetectedByPing_whileRequestsKeepFlowing() async throws {
        let peer = try await Self.deafPeer(reads: true)
        var config = HTTP2ClientConfiguration()
        config.pingInterval = .milliseconds(200)
        config.pingTimeout = .milliseconds(300)
        config.stallTimeout = nil
        let connection = try await HTTP2Connection.connect(
            host: "127.0.0.1", port: peer.localAddress!.port!, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
        // One request after another, each given up after 50 ms, for at most 20 s (a bound for a failing run).
        let started = ContinuousClock.now
        var errors: [String: Int] = [:]
        while connection.isUsable && ContinuousClock.now - started < .seconds(20) {
            let request = HTTP2ClientRequest(method: "POST", path: "/push", body: ByteBuffer(repeating: 1, count: 1000))
            do {
                _ = try await connection.send(request, deadline: .now + .milliseconds(50))
            } catch {
                errors["\(error)", default: 0] += 1
            }
        }
        #expect(!connection.isUsable, "requests kept the silent connection alive for 20 s: \(errors)")
        await #expect(throws: HTTP2ClientError.deadPeer) { _ = try await connection.send(HTTP2ClientRequest(path: "/"), deadline: .now + .seconds(1)) }
        try await peer.close()
    }

    /// Waves of concurrent 256 KiB requests, each with a 300 ms deadline, to the deaf peer: 64 MiB in all,
    /// far beyond what the sockets hold. The bytes the connection hands to the channel stay under its
    /// `maxBufferedBytes` (plus one frame); each request ends by its deadline (timed out, or refused at
    /// once because the connection is backed up; the slack only absorbs a starved event loop on a busy
    /// machine); the bodies of ended requests are not kept; and once output has been blocked for
    /// `backedUpAfter`, a new request is refused at once.
    @Test func test_peerThatStopsReading_boundsBufferedBytes_andRequestsEndByTheirDeadlines() async throws {
        let peer = try await Self.deafPeer()
        var config = HTTP2ClientConfiguration()
        config.pingInterval = nil  // the output bound, not a PING, is under test
        config.stallTimeout = nil  // (see the next test)
        config.maxBufferedBytes = 256 << 10
        config.backedUpAfter = .milliseconds(100)
        let connection = try await HTTP2Connection.connect(
            host: "127.0.0.1", port: peer.localAddress!.port!, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
        let body = ByteBuffer(repeating: 7, count: 256 << 10)
        var mostBuffered = 0
        var outcomes: [String: Int] = [:]
        for wave in 0..<16 {
            for (outcome, took) in await Self.wave(of: 16, body, to: connection, tag: wave, deadline: .milliseconds(300)) {
                outcomes[outcome, default: 0] += 1
                #expect(took < .milliseconds(300) + .seconds(10), "\(outcome) after \(took)")
            }
            mostBuffered = max(mostBuffered, try await connection.outboundBacklog().channelBytes)
        }
        #expect(outcomes["answered"] == nil, "the peer answers nothing: \(outcomes)")
        #expect(outcomes[HTTP2ClientError.deadlineExceeded.description, default: 0] > 0, "\(outcomes)")
        #expect(mostBuffered <= config.maxBufferedBytes + (17 << 10), "\(mostBuffered) bytes waited in the channel")
        #expect(try await connection.outboundBacklog().sessionBodyBytes == 0, "ended requests keep no body")
        // The peer still reads nothing: a request is refused at once (polled: the socket may have taken
        // a little more since, which restarts the blocked time; 20 s only bounds a failing run).
        let started = ContinuousClock.now
        var refused = false
        while !refused && ContinuousClock.now - started < .seconds(20) {
            let probe = HTTP2ClientRequest(method: "POST", path: "/probe", body: ByteBuffer(repeating: 1, count: 100))
            do {
                _ = try await connection.send(probe, deadline: .now + .milliseconds(200))
            } catch HTTP2ClientError.backedUp {
                refused = true
            } catch {}
        }
        #expect(refused, "\(outcomes)")
        #expect(connection.channel.isActive, "no stall timeout: the connection stays open")
        await connection.close()
        try await peer.close()
    }

    /// Output blocked for the stall timeout closes the connection (freeing what it held); its requests
    /// fail with ``HTTP2ClientError/stalled``.
    @Test func test_peerThatStopsReading_isClosedAfterTheStallTimeout() async throws {
        let peer = try await Self.deafPeer()
        var config = HTTP2ClientConfiguration()
        config.pingInterval = nil
        config.maxBufferedBytes = 256 << 10
        config.stallTimeout = .milliseconds(500)
        let connection = try await HTTP2Connection.connect(
            host: "127.0.0.1", port: peer.localAddress!.port!, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
        // 8 MiB: more than the sockets hold, so output blocks; the deadline only bounds a failing run.
        let outcomes = await Self.wave(of: 32, ByteBuffer(repeating: 7, count: 256 << 10), to: connection, tag: 0, deadline: .seconds(30))
        #expect(outcomes.contains { $0.0 == HTTP2ClientError.stalled.description }, "\(outcomes.map(\.0))")
        #expect(await HTTP2ClientTests.closes(connection, within: .seconds(30)))
        #expect(!connection.isUsable)
        await #expect(throws: HTTP2ClientError.stalled) { _ = try await connection.send(HTTP2ClientRequest(path: "/")) }
        try await peer.close()
    }

    /// Sends `count` requests with `body` at once; how each ended and after how long.
    static func wave(
        of count: Int, _ body: ByteBuffer, to connection: HTTP2Connection, tag: Int, deadline: Duration?
    ) async -> [(String, Duration)] {
        await withTaskGroup(of: (String, Duration).self) { group in
            for i in 0..<count {
                group.addTask {
                    let started = ContinuousClock.now
                    let request = HTTP2ClientRequest(method: "POST", path: "/push/\(tag)/\(i)", body: body)
                    do {
                        _ = try await connection.send(request, deadline: deadline.map { started + $0 })
                        return ("answered", ContinuousClock.now - started)
                    } catch {
                        return ("\(error)", ContinuousClock.now - started)
                    }
                }
            }
            var all: [(String, Duration)] = []
            for await r in group { all.append(r) }
            return all
        }
    }
}
