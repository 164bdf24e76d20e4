import NIOCore
import NIOPosix
import Testing
import WeftHTTP2
import WeftRuntime

/// A streamed response whose trailers are known only at its end (`HTTP2BodyWriter.setTrailers`), and
/// whose producer learns when the peer gives up between writes (`HTTP2BodyWriter.onClose`).
struct StreamedTrailersTests {
    /// `/late` ends with the trailers set while producing; `/plain` sets some on a response given none;
    /// `/wait` writes nothing until told the stream closed, then reports it on `outcomes`.
    static func withServer(_ body: (_ port: Int, _ outcomes: AsyncStream<String>) async throws -> Void) async throws {
        let (outcomes, report) = AsyncStream.makeStream(of: String.self)
        let service = HTTP2Service { request, loop in
            if request.path == "/wait" {
                return loop.makeSucceededFuture(HTTP2Response(status: 200, trailers: [("grpc-status", "0")]) { writer in
                    let (closed, signal) = AsyncStream.makeStream(of: Void.self)
                    writer.onClose { signal.finish() }
                    for await _ in closed {}
                    report.yield("told")
                })
            }
            let given: [(name: String, value: String)] = request.path == "/late" ? [("grpc-status", "0")] : []
            return loop.makeSucceededFuture(HTTP2Response(status: 200, trailers: given) { writer in
                try await writer.write(ByteBuffer(string: "partial"))
                writer.setTrailers([("grpc-status", "8"), ("grpc-message", "over the limit")])
            })
        }
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

    @Test func test_trailersSetWhileProducing_replaceTheGivenOnes() async throws {
        try await Self.withServer { port, _ in
            let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
            let late = try await connection.send(HTTP2ClientRequest(method: "GET", path: "/late"))
            #expect(late.body == ByteBuffer(string: "partial"))
            #expect(late.trailers.map { "\($0.name)=\($0.value)" } == ["grpc-status=8", "grpc-message=over the limit"])
            let plain = try await connection.send(HTTP2ClientRequest(method: "GET", path: "/plain"))
            #expect(plain.body == ByteBuffer(string: "partial") && plain.trailers.isEmpty)
            await connection.close()
        }
    }

    @Test func test_producerBetweenWrites_isToldWhenThePeerCancels() async throws {
        try await Self.withServer { port, outcomes in
            var results = outcomes.makeAsyncIterator()
            let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
            let stream = connection.openStream(method: "GET", path: "/wait", headers: [])
            try await stream.finish()
            #expect(try await stream.response().status == 200)
            stream.cancel()
            #expect(await results.next() == "told")
            await connection.close()
        }
    }
}
