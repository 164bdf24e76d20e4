import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftHTTP2
import WeftServer

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// Response bodies produced while they are sent (`HTTP2Response.bodyStream`), read by the async client.
struct StreamedResponseTests {
    static let piece = 64 << 10
    static let pieces = 40
    /// Made once, so the producer is fast and the window, not its own work, is what holds it back.
    static let pieceBuffers: [ByteBuffer] = (0..<Self.pieces).map { ByteBuffer(bytes: Self.bytes(of: $0)) }

    /// `/produce` streams `pieces` pieces, counting each completed write in `written`; `/fail` writes one
    /// piece and throws; `/endless` writes until a write fails and reports that failure on `outcomes`.
    static func withServer(
        _ body: (_ port: Int, _ written: Counter, _ outcomes: AsyncStream<String>) async throws -> Void
    ) async throws {
        let written = Counter()
        let (outcomes, report) = AsyncStream.makeStream(of: String.self)
        let service = HTTP2Service { request, loop in
            switch request.path {
            case "/produce":
                return loop.makeSucceededFuture(HTTP2Response(status: 200, headers: [("content-type", "application/octet-stream")], trailers: [("x-pieces", "\(Self.pieces)")]) { writer in
                    for piece in Self.pieceBuffers {
                        try await writer.write(piece)
                        written.value.add(1, ordering: .sequentiallyConsistent)
                    }
                })
            case "/fail":
                return loop.makeSucceededFuture(HTTP2Response(status: 200) { writer in
                    try await writer.write(ByteBuffer(bytes: Self.bytes(of: 0)))
                    throw CancellationError()
                })
            default:
                return loop.makeSucceededFuture(HTTP2Response(status: 200) { writer in
                    do {
                        for i in 0... { try await writer.write(ByteBuffer(bytes: Self.bytes(of: i))) }
                    } catch let closed as HTTP2StreamClosed {
                        report.yield("closed \(closed.errorCode.map(String.init) ?? "connection")")
                        throw closed
                    }
                })
            }
        }
        let server = try await HTTPServer.startHTTP2(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxBodyBytes: 1 << 20, service: service)
        do {
            try await body(server.port, written, outcomes)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    static func bytes(of piece: Int) -> [UInt8] {
        (0..<Self.piece).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ piece) }
    }

    static func connect(_ port: Int, window: Int32) async throws -> HTTP2Connection {
        var config = HTTP2ClientConfiguration()
        config.initialStreamWindow = window
        return try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
    }

    /// The producer can be ahead of the reader by at most the reader's stream window: every write it
    /// has finished was sent, and nothing is sent beyond the credit the reader has given back.
    @Test func test_streamedBody_followsTheReadersPace_andArrivesWhole() async throws {
        try await Self.withServer { port, written, _ in
            let window = 128 << 10
            let connection = try await Self.connect(port, window: Int32(window))
            let stream = connection.openStream(method: "GET", path: "/produce", headers: [])
            try await stream.finish()
            #expect(try await stream.response().status == 200)
            var received: [UInt8] = []
            for try await part in stream.body {
                received += Array(part.readableBytesView)
                let ahead = written.value.load(ordering: .sequentiallyConsistent) * Self.piece - received.count
                #expect(ahead <= window, "the producer finished writes the reader never gave credit for")
            }
            #expect(received.count == Self.piece * Self.pieces)
            #expect(received == (0..<Self.pieces).flatMap { Self.bytes(of: $0) })
            #expect(stream.trailers.first { $0.name == "x-pieces" }?.value == "\(Self.pieces)")
            await connection.close()
        }
    }

    /// A producer that throws resets its stream (INTERNAL_ERROR); the connection serves on.
    @Test func test_producerError_resetsTheStream() async throws {
        try await Self.withServer { port, _, _ in
            let connection = try await Self.connect(port, window: 1 << 20)
            let stream = connection.openStream(method: "GET", path: "/fail", headers: [])
            try await stream.finish()
            await #expect(throws: HTTP2ClientError.streamReset(code: 2)) {
                for try await _ in stream.body {}
            }
            #expect(try await connection.send(HTTP2ClientRequest(method: "GET", path: "/produce")).body.readableBytes == Self.piece * Self.pieces)
            await connection.close()
        }
    }

    /// A reader that cancels (RST_STREAM CANCEL) makes the producer's pending write fail with that code;
    /// a connection that closes fails it too.
    @Test func test_readerCancelOrDisconnect_failsTheProducersWrite() async throws {
        try await Self.withServer { port, _, outcomes in
            var results = outcomes.makeAsyncIterator()
            let connection = try await Self.connect(port, window: 64 << 10)
            let stream = connection.openStream(method: "GET", path: "/endless", headers: [])
            try await stream.finish()
            _ = try await stream.response()
            stream.cancel()
            let cancelled = await results.next()
            #expect(cancelled == "closed 8")
            let other = connection.openStream(method: "GET", path: "/endless", headers: [])
            try await other.finish()
            _ = try await other.response()
            await connection.close()
            let disconnected = await results.next()
            #expect(disconnected == "closed connection")
        }
    }
}
