import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftClient
import WeftModel
import WeftRuntime
import WeftTestSupport

/// A live node where one org floods the query threads with slow queries: another org's small query
/// still answers promptly (under 3 s; behind the whole flood it waited 8 s), ahead of the flood's backlog.
struct QueryFairnessTests {
    /// `spans` spans of `org`, each with its own user (a high-cardinality group), in requests of 10,000.
    static func ingest(org: String, spans: Int, otlp: Int) async throws {
        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: otlp, group: MultiThreadedEventLoopGroup.singleton)
        let start = UInt64(Date().timeIntervalSince1970) * 1_000_000_000
        var rng = SplitMix64(seed: 7)
        for batch in stride(from: 0, to: spans, by: 10_000) {
            var list: [TestSpan] = []
            for i in batch..<min(spans, batch + 10_000) {
                let begin = start + UInt64(i)
                let duration = 1_000 + rng.next() % 1_000_000
                let attributes: [(String, TestValue)] = [("user", .string("u\(i)")), ("tenant_id", .string(org))]
                list.append(TestSpan(
                    traceID: TraceID(high: UInt64(i / 10 + 1), low: 9), spanID: UInt64(i + 1), name: "op\(i % 7)",
                    start: begin, end: begin + duration, attributes: attributes
                ))
            }
            let r = try await connection.request(
                method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf"), ("X-Scope-OrgID", org)],
                body: ByteBuffer(bytes: RequestBuilder.request([("svc", list)]))
            )
            #expect(r.status == 200)
        }
        await connection.closeAndWait()
    }

    @Test func test_floodingOrg_doesNotDelayAnotherOrgsSmallQuery() async throws {
        let dir = NodeTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await NodeTests.withNode(dataDir: dir, configure: {
            $0.queryThreads = 2
            $0.queryMaxConcurrentPerOrg = 1
        }) { otlp, query in
            try await Self.ingest(org: "a", spans: 20_000, otlp: otlp)
            try await Self.ingest(org: "b", spans: 5, otlp: otlp)
            let group = MultiThreadedEventLoopGroup.singleton
            // A full scan of A grouped by every user: slow, and A sends many at once.
            let slow = "/api/weft/aggregate?q=%7B%20%7D&by=span.user&select=count,p99(duration)&limit=5&since=1h"
            let floodSize = 16
            var connections: [HTTPConnection] = []
            for _ in 0..<floodSize { connections.append(try await HTTPConnection.connect(host: "127.0.0.1", port: query, group: group)) }
            let answeredA = Mutex(0)
            let flood = connections.map { c in
                c.send(method: .GET, path: slow, headers: [("X-Scope-OrgID", "a")], timeout: .seconds(300)).map { r in
                    answeredA.withLock { $0 += 1 }
                    return r.status
                }
            }
            // B's query comes after all of A's. Its wait, and how many of A's had been answered by
            // then, are taken on the event loop (the test's own task may run late on a busy machine).
            let b = try await HTTPConnection.connect(host: "127.0.0.1", port: query, group: group)
            let (search, waited, aDoneWhenBAnswered) = try await b.eventLoop.flatSubmit {
                let started = NIODeadline.now()
                return b.send(method: .GET, path: "/api/search?tags=tenant_id%3Db&limit=10", headers: [("X-Scope-OrgID", "b")]).map { r in
                    (r, NIODeadline.now() - started, answeredA.withLock { $0 })
                }
            }.get()
            #expect(search.status == 200)
            let json = try JSONSerialization.jsonObject(with: Data(search.body)) as! [String: Any]
            #expect((json["traces"] as! [Any]).count == 1)
            #expect(waited < .seconds(3), "B waited \(waited)")
            #expect(aDoneWhenBAnswered < floodSize / 2, "B answered after \(aDoneWhenBAnswered) of A's \(floodSize) queries")
            for f in flood {
                let status = try await f.get()
                #expect(status == 200)
            }
            for c in connections { await c.closeAndWait() }
            await b.closeAndWait()
        }
    }
}
