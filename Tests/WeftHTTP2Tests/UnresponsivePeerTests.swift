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
    /// once because the connection is backed up); the bodies of ended requests are not kept; and the
    /// connection closes once its output has been blocked for the stall timeout.
    @Test func test_peerThatStopsReading_boundsBufferedBytes_andRequestsEndByTheirDeadlines() async throws {
        let peer = try await Self.deafPeer()
        var config = HTTP2ClientConfiguration()
        config.pingInterval = nil  // the stall timeout, not a PING, is under test
        config.maxBufferedBytes = 256 << 10
        config.stallTimeout = .seconds(3)
        config.backedUpAfter = .milliseconds(200)
        let connection = try await HTTP2Connection.connect(
            host: "127.0.0.1", port: peer.localAddress!.port!, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
        let body = ByteBuffer(repeating: 7, count: 256 << 10)
        var mostBuffered = 0
        var outcomes: [String: Int] = [:]
        let deadlineSlack = Duration.seconds(2)
        for wave in 0..<16 {
            let results = await withTaskGroup(of: (String, Duration).self) { group in
                for i in 0..<16 {
                    group.addTask {
                        let started = ContinuousClock.now
                        let request = HTTP2ClientRequest(method: "POST", path: "/push/\(wave)/\(i)", body: body)
                        do {
                            _ = try await connection.send(request, deadline: started + .milliseconds(300))
                            return ("answered", ContinuousClock.now - started)
                        } catch let error as HTTP2ClientError {
                            return ("\(error)", ContinuousClock.now - started)
                        } catch {
                            return ("other: \(error)", ContinuousClock.now - started)
                        }
                    }
                }
                var all: [(String, Duration)] = []
                for await r in group { all.append(r) }
                return all
            }
            for (outcome, took) in results {
                outcomes[outcome, default: 0] += 1
                #expect(took < .milliseconds(300) + deadlineSlack, "\(outcome) after \(took)")
            }
            // Nil once the stall timeout has closed the connection.
            if let buffered = try? await connection.channel.getOption(.bufferedWritableBytes).get() {
                mostBuffered = max(mostBuffered, buffered)
            }
        }
        #expect(outcomes["answered"] == nil, "the peer answers nothing: \(outcomes)")
        #expect(outcomes[HTTP2ClientError.deadlineExceeded.description, default: 0] > 0, "\(outcomes)")
        #expect(outcomes[HTTP2ClientError.backedUp.description, default: 0] > 0, "later waves are refused at once: \(outcomes)")
        #expect(mostBuffered <= config.maxBufferedBytes + (17 << 10), "\(mostBuffered) bytes waited in the channel")
        if let backlog = try? await connection.outboundBacklog() {
            #expect(backlog.sessionBodyBytes == 0, "ended requests keep no body")
        }
        // Blocked since the first wave: the stall timeout closes the connection, freeing its buffers.
        #expect(await HTTP2ClientTests.closes(connection, within: .seconds(30)))
        #expect(!connection.isUsable)
        await #expect(throws: HTTP2ClientError.self) { _ = try await connection.send(HTTP2ClientRequest(path: "/"), deadline: .now + .seconds(1)) }
        try await peer.close()
    }
}
