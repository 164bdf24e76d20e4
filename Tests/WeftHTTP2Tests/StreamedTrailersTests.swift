import NIOCore
import NIOPosix
import Testing
import WeftHTTP2
import WeftServer

/// A streamed response whose trailers are known only at its end (`HTTP2BodyWriter.setTrailers`).
struct StreamedTrailersTests {
    /// `/late` ends with the trailers set while producing; `/plain` sets some on a response given none.
    static func withServer(_ body: (_ port: Int) async throws -> Void) async throws {
        let service = HTTP2Service { request, loop in
            let given: [(name: String, value: String)] = request.path == "/late" ? [("grpc-status", "0")] : []
            return loop.makeSucceededFuture(HTTP2Response(status: 200, trailers: given) { writer in
                try await writer.write(ByteBuffer(string: "partial"))
                writer.setTrailers([("grpc-status", "8"), ("grpc-message", "over the limit")])
            })
        }
        let server = try await HTTPServer.startHTTP2(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxBodyBytes: 1 << 20, service: service)
        do {
            try await body(server.port)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func test_trailersSetWhileProducing_replaceTheGivenOnes() async throws {
        try await Self.withServer { port in
            let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
            let late = try await connection.send(HTTP2ClientRequest(method: "GET", path: "/late"))
            #expect(late.body == ByteBuffer(string: "partial"))
            #expect(late.trailers.map { "\($0.name)=\($0.value)" } == ["grpc-status=8", "grpc-message=over the limit"])
            let plain = try await connection.send(HTTP2ClientRequest(method: "GET", path: "/plain"))
            #expect(plain.body == ByteBuffer(string: "partial") && plain.trailers.isEmpty)
            await connection.close()
        }
    }
}
