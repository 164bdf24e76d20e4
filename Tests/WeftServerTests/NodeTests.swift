import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing
import WeftClient
import WeftModel
import WeftServer
import WeftRuntime
import WeftTestSupport

/// A real node in-process on 127.0.0.1, port 0, driven through the project's HTTP client.
struct NodeTests {
    /// Runs a node, hands its ports to `body`, then shuts it down gracefully.
    static func withNode(
        maxBodyBytes: Int = 64 << 20,
        dataDir: String,
        configure: (inout NodeConfiguration) -> Void = { _ in },
        _ body: @Sendable (_ otlp: Int, _ query: Int) async throws -> Void
    ) async throws {
        var config = NodeConfiguration()
        config.dataDir = dataDir
        config.otlpPort = 0
        config.queryPort = 0
        config.maxBodyBytes = maxBodyBytes
        configure(&config)
        let (ports, continuation) = AsyncStream.makeStream(of: (Int, Int).self)
        let node = WeftNode(configuration: config, logger: Logger(label: "test")) { otlp, query in
            continuation.yield((Int(otlp.split(separator: ":").last!)!, Int(query.split(separator: ":").last!)!))
        }
        let group = ServiceGroup(services: [node], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let (otlp, query) = try #require(await iterator.next())
            do {
                try await body(otlp, query)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    static func tempDir() -> String {
        let path = NSTemporaryDirectory() + "weft-node-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func request(trace: UInt64, spans: Int) -> [UInt8] {
        let id = TraceID(high: trace, low: 42)
        // Recent timestamps: blocks of 1970 spans would be removed by the first retention pass, which
        // may run between a flush and the queries that follow it.
        let start = UInt64(Date().timeIntervalSince1970) * 1_000_000_000
        let list = (0..<spans).map { i in
            TestSpan(traceID: id, spanID: UInt64(i + 1), parentSpanID: i == 0 ? 0 : 1, name: "op", start: start, end: start + 1_000,
                     attributes: [("tenant_id", .string("acme"))])
        }
        return RequestBuilder.request([("svc", list)])
    }

    @Test func test_ingestThenQuery_overOneKeepAliveConnection() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await Self.withNode(dataDir: dir) { otlp, query in
            let group = MultiThreadedEventLoopGroup.singleton
            let ingest = try await HTTPConnection.connect(host: "127.0.0.1", port: otlp, group: group)
            for t in 1...5 as ClosedRange<UInt64> {
                let r = try await ingest.request(
                    method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")],
                    body: ByteBuffer(bytes: Self.request(trace: t, spans: 3))
                )
                #expect(r.status == 200)
                #expect(r.body.isEmpty)  // full success: partial_success unset
            }
            #expect(ingest.isActive)  // keep-alive held across requests
            await ingest.closeAndWait()

            let api = try await HTTPConnection.connect(host: "127.0.0.1", port: query, group: group)
            let search = try await api.request(method: "GET", path: "/api/search?tags=tenant_id%3Dacme&limit=10")
            #expect(search.status == 200)
            let json = try JSONSerialization.jsonObject(with: Data(search.body)) as! [String: Any]
            #expect((json["traces"] as! [Any]).count == 5)
            let trace = try await api.request(method: "GET", path: "/api/traces/" + TraceID(high: 3, low: 42).description)
            #expect(trace.status == 200)
            let metrics = try await api.request(method: "GET", path: "/metrics")
            #expect(metrics.bodyString.contains("weft_otlp_spans_received_total 15"))
            #expect(metrics.bodyString.contains("weft_head_spans 15"))
            let missing = try await api.request(method: "GET", path: "/no/such/thing")
            #expect(missing.status == 404)
            await api.closeAndWait()
        }
    }

    /// After `POST /flush` the spans live in blocks (the WAL segment is gone from the head); trace lookup,
    /// search and tags answer the same, and after a restart the node serves them from blocks.
    @Test func test_flushToBlocks_queriesAndRestartServeFromBlocks() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = MultiThreadedEventLoopGroup.singleton
        @Sendable func check(_ api: HTTPConnection, _ label: String) async throws {
            let search = try await api.request(method: "GET", path: "/api/search?tags=tenant_id%3Dacme&limit=50")
            #expect(search.status == 200, "\(label)")
            let json = try JSONSerialization.jsonObject(with: Data(search.body)) as! [String: Any]
            #expect((json["traces"] as! [Any]).count == 6, "\(label)")
            let none = try await api.request(method: "GET", path: "/api/search?tags=tenant_id%3Dnobody")
            #expect(((try JSONSerialization.jsonObject(with: Data(none.body)) as! [String: Any])["traces"] as! [Any]).isEmpty, "\(label)")
            let trace = try await api.request(method: "GET", path: "/api/traces/" + TraceID(high: 4, low: 42).description)
            #expect(trace.status == 200, "\(label)")
            let batches = (try JSONSerialization.jsonObject(with: Data(trace.body)) as! [String: Any])["batches"] as! [[String: Any]]
            let spans = batches.flatMap { ($0["scopeSpans"] as! [[String: Any]]).flatMap { $0["spans"] as! [Any] } }
            #expect(spans.count == 4, "\(label)")
            let values = try await api.request(method: "GET", path: "/api/search/tag/tenant_id/values")
            #expect(values.bodyString.contains("acme"), "\(label)")
        }
        try await Self.withNode(dataDir: dir) { otlp, query in
            let ingest = try await HTTPConnection.connect(host: "127.0.0.1", port: otlp, group: group)
            for t in 1...6 as ClosedRange<UInt64> {
                let r = try await ingest.request(
                    method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")],
                    body: ByteBuffer(bytes: Self.request(trace: t, spans: Int(t)))
                )
                #expect(r.status == 200)
            }
            let flushed = try await ingest.request(method: "POST", path: "/flush")
            #expect(flushed.status == 200)
            let blocks = (try JSONSerialization.jsonObject(with: Data(flushed.body)) as! [String: Any])["blocks"] as! [[String: Any]]
            #expect(blocks.count == 1)
            #expect(blocks.first?["spans"] as? Int == 21)
            await ingest.closeAndWait()
            let api = try await HTTPConnection.connect(host: "127.0.0.1", port: query, group: group)
            let metrics = try await api.request(method: "GET", path: "/metrics").bodyString
            #expect(metrics.contains("weft_head_spans 0"))
            #expect(metrics.contains("weft_blocks_spans 21"))
            try await check(api, "after flush")
            await api.closeAndWait()
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/blocks/000000000001.block"))
        try await Self.withNode(dataDir: dir) { _, query in
            let api = try await HTTPConnection.connect(host: "127.0.0.1", port: query, group: group)
            let metrics = try await api.request(method: "GET", path: "/metrics").bodyString
            #expect(metrics.contains("weft_head_spans 0"), "nothing replayed twice")
            try await check(api, "after restart")
            await api.closeAndWait()
        }
    }

    @Test func test_bodyOverTheLimit_gets413AndTheConnectionCloses() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await Self.withNode(maxBodyBytes: 4_096, dataDir: dir) { otlp, _ in
            let group = MultiThreadedEventLoopGroup.singleton
            let c = try await HTTPConnection.connect(host: "127.0.0.1", port: otlp, group: group)
            let big = Self.request(trace: 9, spans: 200)
            #expect(big.count > 4_096)
            let r = try await c.request(
                method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")], body: ByteBuffer(bytes: big)
            )
            #expect(r.status == 413)
            #expect(r.header("connection")?.lowercased() == "close")
            // The node keeps serving new connections.
            let c2 = try await HTTPConnection.connect(host: "127.0.0.1", port: otlp, group: group)
            let ok = try await c2.request(
                method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")],
                body: ByteBuffer(bytes: Self.request(trace: 10, spans: 2))
            )
            #expect(ok.status == 200)
            await c2.closeAndWait()
        }
    }

    @Test func test_restart_replaysTheWAL() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await Self.withNode(dataDir: dir) { otlp, _ in
            let c = try await HTTPConnection.connect(host: "127.0.0.1", port: otlp, group: MultiThreadedEventLoopGroup.singleton)
            let r = try await c.request(
                method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")],
                body: ByteBuffer(bytes: Self.request(trace: 77, spans: 4))
            )
            #expect(r.status == 200)
            await c.closeAndWait()
        }
        try await Self.withNode(dataDir: dir) { _, query in
            let c = try await HTTPConnection.connect(host: "127.0.0.1", port: query, group: MultiThreadedEventLoopGroup.singleton)
            let r = try await c.request(method: "GET", path: "/api/traces/" + TraceID(high: 77, low: 42).description)
            #expect(r.status == 200)
            let json = try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Any]
            let spans = (json["batches"] as! [[String: Any]]).flatMap { ($0["scopeSpans"] as! [[String: Any]]).flatMap { $0["spans"] as! [Any] } }
            #expect(spans.count == 4)
            await c.closeAndWait()
        }
    }
}
