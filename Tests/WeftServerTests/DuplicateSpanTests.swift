import Foundation
import NIOCore
import NIOPosix
import Testing
import WeftClient
import WeftModel

/// A span that reached the node more than once (a retried export, a copy in the head and in a
/// block) is answered once.
struct DuplicateSpanTests {
    @Test func test_traceAndSearch_countEachSpanIDOnce_acrossBlocksAndHead() async throws {
        let dir = NodeTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = MultiThreadedEventLoopGroup.singleton
        try await NodeTests.withNode(dataDir: dir) { otlp, query in
            let ingest = try await HTTPConnection.connect(host: "127.0.0.1", port: otlp, group: group)
            func export() async throws {
                let r = try await ingest.request(
                    method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")],
                    body: ByteBuffer(bytes: NodeTests.request(trace: 7, spans: 4))
                )
                #expect(r.status == 200)
            }
            // Once into a block, then twice more: the head drops spans a block of the partition already
            // holds, so the resends store nothing and the answers count each span once.
            try await export()
            #expect(try await ingest.request(method: "POST", path: "/flush").status == 200)
            try await export()
            try await export()
            await ingest.closeAndWait()

            let api = try await HTTPConnection.connect(host: "127.0.0.1", port: query, group: group)
            let metrics = try await api.request(method: "GET", path: "/metrics").bodyString
            #expect(metrics.contains("weft_head_spans 0"))
            #expect(metrics.contains("weft_blocks_spans 4"))
            let trace = try await api.request(method: "GET", path: "/api/traces/" + TraceID(high: 7, low: 42).description)
            #expect(trace.status == 200)
            let batches = (try JSONSerialization.jsonObject(with: Data(trace.body)) as! [String: Any])["batches"] as! [[String: Any]]
            let spans = batches.flatMap { ($0["scopeSpans"] as! [[String: Any]]).flatMap { $0["spans"] as! [[String: Any]] } }
            #expect(spans.count == 4)
            #expect(Set(spans.map { $0["spanId"] as? String ?? "" }).count == 4)
            let search = try await api.request(method: "GET", path: "/api/search?tags=tenant_id%3Dacme")
            let traces = (try JSONSerialization.jsonObject(with: Data(search.body)) as! [String: Any])["traces"] as! [[String: Any]]
            #expect(traces.count == 1)
            let stats = traces.first?["serviceStats"] as? [String: [String: Any]]
            #expect(stats?["svc"]?["spanCount"] as? Int == 4)
            await api.closeAndWait()
        }
    }
}
