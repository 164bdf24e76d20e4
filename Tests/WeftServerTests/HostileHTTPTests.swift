import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
import WeftQuery
import WeftHTTP2
import WeftRuntime

/// HTTP/1.1 against peers that stall or hoard: partial requests, idle keep-alive connections, clients
/// that never read their answer, and bodies beyond the node's budget. Each test runs a server on one
/// event loop and bounds every wait. Tests of a timeout use one second and send their first bytes from
/// the event loop as the connection opens; the others use a minute, so a test task that runs late
/// (the whole suite shares two cores) cannot trip them.
struct HostileHTTPTests {
    /// A server with short timeouts; `timeouts` yields each connection closed for stalling.
    struct Server {
        let server: HTTPServer
        let group: MultiThreadedEventLoopGroup
        let timeouts: AsyncStream<HTTPTimeout>
        let budget: RequestBodyBudget
        var port: Int { self.server.port }

        func stop() async {
            await self.server.shutdown()
            try? await self.group.shutdownGracefully()
        }
    }

    static func start(
        timeout: TimeAmount = .seconds(1), budget: Int = 1 << 20, maxBodyBytes: Int = 1 << 20,
        responder: @escaping HTTPResponder = Self.echoLength
    ) async throws -> Server {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (stream, continuation) = AsyncStream.makeStream(of: HTTPTimeout.self)
        var limits = HTTPConnectionLimits()
        limits.idleTimeout = timeout
        limits.requestReadTimeout = timeout
        limits.writeTimeout = timeout
        limits.bodyBudget = RequestBodyBudget(limit: budget)
        limits.onTimeout = { continuation.yield($0) }
        let server = try await HTTPServer.start(
            host: "127.0.0.1", port: 0, group: group, maxBodyBytes: maxBodyBytes, limits: limits, responder: responder
        )
        return Server(server: server, group: group, timeouts: stream, budget: limits.bodyBudget!)
    }

    /// Answers with the length of the request body.
    @Sendable static func echoLength(_ request: HTTPRequest, _ loop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        loop.makeSucceededFuture(.text(.ok, "got \(request.body.readableBytes) bytes"))
    }

    /// The next stall the server reports, or nil if none comes within a minute.
    static func nextTimeout(_ server: Server) async -> HTTPTimeout? {
        await withTaskGroup(of: HTTPTimeout?.self) { group in
            group.addTask {
                var it = server.timeouts.makeAsyncIterator()
                return await it.next()
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    static func pattern(_ n: Int) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: ($0 &* 131) ^ ($0 >> 9)) }
    }

    @Test func test_headThatNeverEnds_isAnswered408AndClosed() async throws {
        let s = try await Self.start()
        let c = try await RawConnection.connect(port: s.port, group: s.group, sending: "GET /slow HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        #expect(await c.closedByServer())
        #expect(c.receivedText.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(await Self.nextTimeout(s) == .read)
        await s.stop()
    }

    @Test func test_bodyThatStopsArriving_isAnswered408_andItsBudgetReleased() async throws {
        let s = try await Self.start()
        let c = try await RawConnection.connect(
            port: s.port, group: s.group, sending: Array("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".utf8) + Self.pattern(1000)
        )
        #expect(await c.closedByServer())
        #expect(c.receivedText.contains("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(await Self.nextTimeout(s) == .read)
        // The next connection on the same (single) event loop is served after the close was handled.
        let next = try await RawConnection.connect(port: s.port, group: s.group, sending: "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(await next.waitFor("got 0 bytes"))
        #expect(s.budget.reserved == 0)
        await next.close()
        await s.stop()
    }

    @Test func test_idleConnections_areClosed_beforeAndBetweenRequests() async throws {
        let s = try await Self.start()
        let silent = try await RawConnection.connect(port: s.port, group: s.group)
        #expect(await silent.closedByServer())
        #expect(silent.received.isEmpty)
        #expect(await Self.nextTimeout(s) == .idle)

        let keepAlive = try await RawConnection.connect(port: s.port, group: s.group, sending: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        #expect(await keepAlive.waitFor("got 3 bytes"))
        #expect(await keepAlive.closedByServer())
        #expect(await Self.nextTimeout(s) == .idle)
        await s.stop()
    }

    /// A 16 MiB answer to a client that reads nothing: written only as the socket takes it, and the
    /// connection closed once nothing moves for the write timeout. Reading afterwards yields the part
    /// that was in flight, then the end, never the whole answer.
    @Test func test_clientThatDoesNotRead_isClosedByTheWriteTimeout() async throws {
        let size = 16 << 20
        let body = Self.pattern(size)
        let s = try await Self.start { _, loop in loop.makeSucceededFuture(HTTPResponse(status: .ok, body: body)) }
        let c = try await RawConnection.connect(
            port: s.port, group: s.group, sending: "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", reading: false, receiveBuffer: 16 << 10
        )
        #expect(await Self.nextTimeout(s) == .write)
        c.startReading()
        #expect(await c.closedByServer())
        #expect(c.received.count < size / 2)
        await s.stop()
    }

    /// The same answer to a client that reads arrives whole and intact, piece after piece.
    @Test func test_largeAnswer_toAReadingClient_arrivesWhole() async throws {
        let size = 8 << 20
        let body = Self.pattern(size)
        let s = try await Self.start(timeout: .seconds(60)) { _, loop in
            loop.makeSucceededFuture(HTTPResponse(status: .ok, body: body))
        }
        let c = try await RawConnection.connect(port: s.port, group: s.group, sending: "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(await c.closedByServer(within: .seconds(30)))
        let received = c.received
        let headEnd = try #require(received.firstRange(of: Array("\r\n\r\n".utf8)))
        #expect(String(decoding: received[..<headEnd.lowerBound], as: UTF8.self).contains("content-length: \(size)"))
        #expect(Array(received[headEnd.upperBound...]) == body)
        await s.stop()
    }

    /// Bodies reserve the node's budget: a declared length that does not fit, or a chunked body that
    /// grows past what is left, gets 503 + Retry-After (an OTLP status for OTLP) and the connection
    /// closes; once the holder is answered its bytes are free again.
    @Test func test_bodiesBeyondTheBudget_get503WithRetryAfter_andTheBudgetComesBack() async throws {
        let s = try await Self.start(timeout: .seconds(60), budget: 1 << 20)
        let holder = try await RawConnection.connect(port: s.port, group: s.group)
        try await holder.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 700000\r\nExpect: 100-continue\r\n\r\n")
        #expect(await holder.waitFor("100 Continue"))
        #expect(s.budget.reserved == 700_000)  // the declared length, reserved before the 100

        let declared = try await RawConnection.connect(port: s.port, group: s.group)
        try await declared.send("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 700000\r\n\r\n")
        #expect(await declared.closedByServer())
        let refused = declared.receivedText.lowercased()
        #expect(refused.hasPrefix("http/1.1 503 service unavailable\r\n"))
        #expect(refused.contains("retry-after: 1\r\n"))
        #expect(refused.contains("content-type: application/x-protobuf\r\n"))
        #expect(refused.contains("connection: close\r\n"))

        let chunked = try await RawConnection.connect(port: s.port, group: s.group)
        try await chunked.send("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        let piece = [UInt8](repeating: 0x61, count: 200_000)
        try await chunked.send(Array("30d40\r\n".utf8) + piece + Array("\r\n".utf8))  // 200,000 fits
        // 400,000 does not: the server may answer and close while this piece is still being written.
        try? await chunked.send(Array("30d40\r\n".utf8) + piece + Array("\r\n".utf8))
        #expect(await chunked.closedByServer())
        #expect(chunked.receivedText.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))

        try await holder.send(Self.pattern(700_000))
        #expect(await holder.waitFor("got 700000 bytes"))
        #expect(s.budget.reserved == 0)
        let after = try await RawConnection.connect(port: s.port, group: s.group)
        try await after.send(Array("POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\n".utf8) + Self.pattern(900_000))
        #expect(await after.waitFor("got 900000 bytes"))
        await holder.close()
        await after.close()
        await s.stop()
    }

    /// A client that goes before its answer: the request is marked cancelled and the answer, when it
    /// comes, is dropped.
    @Test func test_clientThatLeaves_cancelsItsRequest() async throws {
        let seen = Mutex<(QueryCancellation?, EventLoopPromise<HTTPResponse>?)>((nil, nil))
        let (arrived, arrival) = AsyncStream.makeStream(of: Void.self)
        let s = try await Self.start(timeout: .seconds(60)) { request, loop in
            if request.path == "/hold" {
                let promise = loop.makePromise(of: HTTPResponse.self)
                seen.withLock { $0 = (request.cancellation, promise) }
                arrival.yield()
                return promise.futureResult
            }
            return loop.makeSucceededFuture(.text(.ok, "cancelled=\(seen.withLock { $0.0?.isCancelled ?? false })"))
        }
        let c = try await RawConnection.connect(port: s.port, group: s.group)
        try await c.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        var it = arrived.makeAsyncIterator()
        _ = await it.next()
        #expect(seen.withLock { $0.0?.isCancelled } == false)
        await c.close()
        let probe = try await RawConnection.connect(port: s.port, group: s.group)
        try await probe.send("GET /probe HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(await probe.waitFor("cancelled=true"))
        seen.withLock { $0.1?.succeed(.text(.ok, "too late")) }  // nobody to send it to: dropped
        await probe.close()
        await s.stop()
    }
}
