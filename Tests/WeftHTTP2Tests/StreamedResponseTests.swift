import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftHTTP2
import WeftRuntime

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

/// Request bodies handed to the handler piece by piece (`HTTP2Service.streamsRequestBody`).
struct StreamedRequestTests {
    /// `/upload` answers with the byte count and a checksum of the body it read; `/hold` reads nothing
    /// until its first piece, then reports how reading ended on `outcomes`. Other paths arrive whole.
    static func withServer(_ body: (_ port: Int, _ outcomes: AsyncStream<String>) async throws -> Void) async throws {
        let (outcomes, report) = AsyncStream.makeStream(of: String.self)
        let service = HTTP2Service(
            respond: { request, loop in
                guard let stream = request.bodyStream else {
                    return loop.makeSucceededFuture(HTTP2Response(status: 200, body: ByteBuffer(string: "whole \(request.body.readableBytes)")))
                }
                let promise = loop.makePromise(of: HTTP2Response.self)
                promise.completeWithTask {
                    if request.path == "/upload" {
                        var count = 0
                        var sum: UInt64 = 0
                        for try await piece in stream {
                            for byte in piece.readableBytesView { sum = sum &* 31 &+ UInt64(byte) }
                            count += piece.readableBytes
                        }
                        let trailer = stream.trailers.first { $0.name == "x-end" }?.value ?? "-"
                        return HTTP2Response(status: 200, body: ByteBuffer(string: "\(count) \(sum) \(trailer)"))
                    }
                    do {
                        for try await _ in stream {}
                        report.yield("ended")
                    } catch let closed as HTTP2StreamClosed {
                        report.yield("closed \(closed.errorCode.map(String.init) ?? "connection")")
                    }
                    return HTTP2Response(status: 200)
                }
                return promise.futureResult
            },
            streamsRequestBody: { method, path in method == "POST" && path != "/whole" }
        )
        let server = try await HTTPServer.startHTTP2(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxBodyBytes: 1 << 20, service: service)
        do {
            try await body(server.port, outcomes)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// 4 MiB, four times `maxBodyBytes`, streamed through; the handler sees every byte in order.
    @Test func test_streamedUpload_reachesTheHandlerWhole_pastTheBodyLimit() async throws {
        try await Self.withServer { port, _ in
            let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
            let stream = connection.openStream(method: "POST", path: "/upload", headers: [])
            var sum: UInt64 = 0
            for i in 0..<64 {
                let piece = [UInt8]((0..<(64 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ i) })
                for byte in piece { sum = sum &* 31 &+ UInt64(byte) }
                try await stream.write(ByteBuffer(bytes: piece))
            }
            try await stream.finish()
            #expect(try await stream.response().status == 200)
            var answer = ""
            for try await piece in stream.body { answer += String(buffer: piece) }
            #expect(answer == "\(64 * (64 << 10)) \(sum) -")
            // Requests the service does not stream still arrive whole.
            let whole = try await connection.send(HTTP2ClientRequest(method: "POST", path: "/whole", body: ByteBuffer(repeating: 1, count: 1000)))
            #expect(String(buffer: whole.body) == "whole 1000")
            await connection.close()
        }
    }

    /// A sender that resets its stream mid-body makes the handler's read throw with that code.
    @Test func test_senderReset_failsTheHandlersRead() async throws {
        try await Self.withServer { port, outcomes in
            var results = outcomes.makeAsyncIterator()
            let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
            let stream = connection.openStream(method: "POST", path: "/hold", headers: [])
            try await stream.write(ByteBuffer(repeating: 7, count: 1000))
            stream.cancel()
            let outcome = await results.next()
            #expect(outcome == "closed 8")
            await connection.close()
        }
    }
}
