import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftHTTP2
import WeftRuntime

/// The async HTTP/2 client against Weft's own nghttp2 server on 127.0.0.1 (port 0).
struct HTTP2ClientTests {
    /// `/echo` returns the body; `/slow` answers after `slowDelay`; `/status/<n>` answers n.
    static func service(slowDelay: TimeAmount = .seconds(30)) -> HTTP2Service {
        HTTP2Service { request, loop in
            if request.path == "/slow" {
                return loop.scheduleTask(in: slowDelay) { HTTP2Response(status: 200, body: ByteBuffer(string: "slow")) }.futureResult
            }
            if request.path.hasPrefix("/status/"), let code = Int(request.path.dropFirst(8)) {
                return loop.makeSucceededFuture(HTTP2Response(status: code))
            }
            return loop.makeSucceededFuture(HTTP2Response(status: 200, headers: [("x-path", request.path)], body: request.body))
        }
    }

    static func withServer(slowDelay: TimeAmount = .seconds(30), _ body: (HTTPServer, Int) async throws -> Void) async throws {
        let server = try await HTTPServer.startHTTP2(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxBodyBytes: 1 << 20, service: Self.service(slowDelay: slowDelay))
        do {
            try await body(server, server.port)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func test_manyConcurrentRequests_queueBehindTheStreamLimit_onOneConnection() async throws {
        try await Self.withServer { _, port in
            var config = HTTP2ClientConfiguration()
            config.maxConcurrentStreams = 16
            let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<400 {
                    group.addTask {
                        let body = ByteBuffer(repeating: UInt8(i % 251), count: 100 + i * 7)
                        let r = try await connection.send(HTTP2ClientRequest(method: "POST", path: "/echo/\(i)", body: body))
                        #expect(r.status == 200)
                        #expect(r.body == body)
                        #expect(r.header("x-path") == "/echo/\(i)")
                    }
                }
                try await group.waitForAll()
            }
            #expect(connection.activeRequests == 0)
            #expect(connection.isUsable)
            await connection.close()
        }
    }

    /// A streaming request: the body is written in pieces (each write returns once sent) and the echo is
    /// read piece by piece; both ends see the same bytes.
    @Test func test_streamingUploadAndDownload() async throws {
        try await Self.withServer { _, port in
            let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
            let stream = connection.openStream(path: "/echo/stream", headers: [("content-type", "application/octet-stream")])
            var sent: [UInt8] = []
            for i in 0..<12 {
                let piece = [UInt8](repeating: UInt8(i), count: 50_000 + i)
                sent += piece
                try await stream.write(ByteBuffer(bytes: piece))
            }
            try await stream.finish()
            let head = try await stream.response()
            #expect(head.status == 200)
            #expect(head.header("x-path") == "/echo/stream")
            var received: [UInt8] = []
            var pieces = 0
            for try await piece in stream.body {
                received += Array(piece.readableBytesView)
                pieces += 1
            }
            #expect(received == sent)
            #expect(pieces > 1)
            #expect(connection.activeRequests == 0)
            // A stream reset by the caller fails its reads.
            let doomed = connection.openStream(path: "/slow")
            try await doomed.finish()
            doomed.cancel()
            await #expect(throws: HTTP2ClientError.cancelled) { _ = try await doomed.response() }
            #expect(try await connection.send(HTTP2ClientRequest(path: "/status/200")).status == 200)
            await connection.close()
            // The same through the pool, which knows connections only by their protocol.
            let pool = HTTP2ClientPool(group: MultiThreadedEventLoopGroup.singleton)
            let pooled = try await pool.openStream(path: "/echo/pooled", to: .init(host: "127.0.0.1", port: port))
            try await pooled.write(ByteBuffer(string: "one "))
            try await pooled.finish(ByteBuffer(string: "two"))
            #expect(try await pooled.response().header("x-path") == "/echo/pooled")
            var echoed = ""
            for try await piece in pooled.body { echoed += String(buffer: piece) }
            #expect(echoed == "one two")
            await pool.shutdown()
        }
    }

    @Test func test_deadline_resetsTheStream_andTheConnectionStaysUsable() async throws {
        // The answer comes after 10 minutes: under the whole suite the shared event loops can be busy
        // for many seconds, so only a bound far below the answer tells the deadline ended the request.
        try await Self.withServer(slowDelay: .seconds(600)) { _, port in
            let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
            let started = ContinuousClock.now
            await #expect(throws: HTTP2ClientError.deadlineExceeded) {
                _ = try await connection.send(HTTP2ClientRequest(path: "/slow"), deadline: .now + .milliseconds(100))
            }
            #expect(ContinuousClock.now - started < .seconds(300), "the deadline, not the 600 s answer, ended it")
            let ok = try await connection.send(HTTP2ClientRequest(path: "/status/204"))
            #expect(ok.status == 204)
            #expect(connection.activeRequests == 0)
            await connection.close()
        }
    }

    @Test func test_taskCancellation_resetsTheStream() async throws {
        // The server tells the test when the request has reached it, so the cancel hits a live stream.
        let (arrived, arrival) = AsyncStream.makeStream(of: String.self)
        let service = HTTP2Service { request, loop in
            arrival.yield(request.path)
            return loop.scheduleTask(in: .seconds(30)) { HTTP2Response(status: 200) }.futureResult
        }
        let server = try await HTTPServer.startHTTP2(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxBodyBytes: 1 << 20, service: service)
        let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: server.port, group: MultiThreadedEventLoopGroup.singleton)
        let task = Task { try await connection.send(HTTP2ClientRequest(path: "/hold")) }
        var iterator = arrived.makeAsyncIterator()
        #expect(await iterator.next() == "/hold")
        #expect(connection.activeRequests == 1)
        let started = ContinuousClock.now
        task.cancel()
        await #expect(throws: HTTP2ClientError.cancelled) { _ = try await task.value }
        #expect(ContinuousClock.now - started < .seconds(20), "the cancel, not the 30 s answer, ended it")
        #expect(connection.activeRequests == 0)
        // Cancelled before it could be sent: still a clean cancellation.
        let early = Task { try await connection.send(HTTP2ClientRequest(path: "/early")) }
        early.cancel()
        await #expect(throws: HTTP2ClientError.cancelled) { _ = try await early.value }
        await connection.close()
        await server.shutdown()
    }

    @Test func test_serverShutdown_finishesInFlight_thenRefusesNewRequests() async throws {
        let (arrived, arrival) = AsyncStream.makeStream(of: String.self)
        let service = HTTP2Service { request, loop in
            arrival.yield(request.path)
            return loop.scheduleTask(in: .milliseconds(300)) { HTTP2Response(status: 200, body: ByteBuffer(string: "slow")) }.futureResult
        }
        let server = try await HTTPServer.startHTTP2(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxBodyBytes: 1 << 20, service: service)
        let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: server.port, group: MultiThreadedEventLoopGroup.singleton)
        let inFlight = Task { try await connection.send(HTTP2ClientRequest(path: "/slow")) }
        var iterator = arrived.makeAsyncIterator()
        #expect(await iterator.next() == "/slow")
        await server.shutdown()  // GOAWAY, then waits for the slow stream
        let r = try await inFlight.value
        #expect(r.status == 200 && r.body == ByteBuffer(string: "slow"))
        #expect(!connection.isUsable)
        await #expect(throws: HTTP2ClientError.self) { _ = try await connection.send(HTTP2ClientRequest(path: "/status/200")) }
    }

    /// The server closes connections idle (no open stream) for its idle timeout, with GOAWAY; a stream
    /// that is still open keeps the connection. The request goes out from the event loop the moment the
    /// connection is up, so the connection is never idle before it.
    @Test func test_serverIdleTimeout_closesQuietConnections_only() async throws {
        let server = try await HTTPServer.startHTTP2(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxBodyBytes: 1 << 20,
            idleTimeout: .milliseconds(300), service: Self.service(slowDelay: .milliseconds(1200))
        )
        let (channel, response) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(TestH2Client()) }
            }
            .connect(host: "127.0.0.1", port: server.port)
            .flatMap { channel in
                // On the event loop, right after connecting.
                let handler = try! channel.pipeline.syncOperations.handler(type: TestH2Client.self)
                return handler.request(method: "GET", path: "/slow").map { (channel, $0) }
            }.get()
        // Open for 1.2 s, four idle timeouts: the connection stayed up.
        #expect(response.status == 200)
        #expect(String(buffer: response.body) == "slow")
        // Then, with nothing open, the server hangs up (the bound only limits a failing run).
        let closed = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await channel.closeFuture.get()) != nil }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                return false
            }
            let first = await group.next()!
            if !first { try? await channel.close() }
            group.cancelAll()
            return first
        }
        #expect(closed)
        await server.shutdown()
    }

    /// Whether the peer closes `connection` within `limit` (the timer only bounds a failing run; the
    /// connection is closed here then, to unblock the wait).
    static func closes(_ connection: HTTP2Connection, within limit: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await connection.channel.closeFuture.get()) != nil }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            let first = await group.next()!
            if !first { try? await connection.channel.close() }
            group.cancelAll()
            return first
        }
    }

    /// Rapid reset (CVE-2023-44487): a client that opens and resets streams as fast as it can is cut
    /// off with GOAWAY by the server's reset rate limit; other connections keep being served.
    @Test func test_rapidResetFlood_closesThatConnection_only() async throws {
        try await Self.withServer { _, port in
            var config = HTTP2ClientConfiguration()
            config.pingInterval = nil
            let flooder = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
            let bystander = try await HTTP2Connection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
            // Rounds of 100 streams: each has sent HEADERS and a byte of body, then all are reset.
            var resets = 0
            rounds: for round in 0..<40 {
                var streams: [any HTTP2StreamingRequest] = []
                for i in 0..<100 { streams.append(flooder.openStream(path: "/flood/\(round)/\(i)")) }
                for s in streams {
                    do { try await s.write(ByteBuffer(bytes: [1])) } catch { break rounds }
                }
                for s in streams { s.cancel() }
                resets += streams.count
            }
            #expect(resets >= 1_000)
            #expect(await Self.closes(flooder, within: .seconds(30)))
            #expect(try await bystander.send(HTTP2ClientRequest(path: "/status/200")).status == 200)
            await bystander.close()
        }
    }

    @Test func test_silentPeer_isDetectedByPing() async throws {
        // A TCP server that accepts and never answers (no SETTINGS, no PING ACK).
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        var config = HTTP2ClientConfiguration()
        config.pingInterval = .milliseconds(50)
        config.pingTimeout = .milliseconds(200)
        let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: silent.localAddress!.port!, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
        let started = ContinuousClock.now
        await #expect(throws: HTTP2ClientError.deadPeer) { _ = try await connection.send(HTTP2ClientRequest(path: "/")) }
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(!connection.isUsable)
        try await silent.close()
    }

    @Test func test_pool_reusesConnections_andReplacesClosedOnes() async throws {
        try await Self.withServer { _, port in
            let pool = HTTP2ClientPool(group: MultiThreadedEventLoopGroup.singleton, connectionsPerPeer: 2)
            let peer = HTTP2ClientPool.Peer(host: "127.0.0.1", port: port)
            let first = try await pool.connection(to: peer)
            #expect(try await pool.send(HTTP2ClientRequest(path: "/status/200"), to: peer).status == 200)
            #expect(try await pool.connection(to: peer) === first, "an idle connection is reused")
            await first.close()
            #expect(try await pool.send(HTTP2ClientRequest(path: "/status/201"), to: peer).status == 201)
            #expect(try await pool.connection(to: peer) !== first, "a closed connection is replaced")
            await pool.shutdown()
            await #expect(throws: HTTP2ClientError.connectionClosed) { _ = try await pool.send(HTTP2ClientRequest(path: "/"), to: peer) }
        }
        // Nothing listens: a clear connect error.
        let pool = HTTP2ClientPool(group: MultiThreadedEventLoopGroup.singleton)
        await #expect(throws: HTTP2ClientError.self) { _ = try await pool.send(HTTP2ClientRequest(path: "/"), to: .init(host: "127.0.0.1", port: 1)) }
    }
}

/// Routing on a live server: exact paths, longest prefixes, 404 and 405.
struct HTTP2RouterTests {
    @Test func test_routes_exactThenLongestPrefix_with404And405() async throws {
        var router = HTTP2Router()
        let answer = { (name: String) -> HTTP2Router.Handler in
            { request, loop in loop.makeSucceededFuture(HTTP2Response(status: 200, body: ByteBuffer(string: "\(name) \(request.path)"))) }
        }
        router.on("POST", "/v1/push", answer("push"))
        router.on("GET", "/v1/push", answer("push-get"))
        router.on("GET", prefix: "/v1/", answer("v1"))
        router.on("GET", prefix: "/v1/query/", answer("query"))
        let server = try await HTTPServer.startHTTP2(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxBodyBytes: 1 << 20, service: router.service)
        let connection = try await HTTP2Connection.connect(host: "127.0.0.1", port: server.port, group: MultiThreadedEventLoopGroup.singleton)
        func call(_ method: String, _ path: String) async throws -> (Int, String, String?) {
            let r = try await connection.send(HTTP2ClientRequest(method: method, path: path))
            return (r.status, String(buffer: r.body), r.header("allow"))
        }
        #expect(try await call("POST", "/v1/push") == (200, "push /v1/push", nil))
        #expect(try await call("GET", "/v1/push?x=1") == (200, "push-get /v1/push?x=1", nil))
        #expect(try await call("GET", "/v1/query/abc") == (200, "query /v1/query/abc", nil))
        #expect(try await call("GET", "/v1/other") == (200, "v1 /v1/other", nil))
        #expect(try await call("DELETE", "/v1/push") == (405, "DELETE is not allowed on /v1/push\n", "GET, POST"))
        #expect(try await call("POST", "/v1/query/x") == (405, "POST is not allowed on /v1/query/x\n", "GET"))
        #expect(try await call("GET", "/v2/push") == (404, "no route for /v2/push\n", nil))
        await connection.close()
        await server.shutdown()
    }
}
