import Testing
import WeftModel
import WeftOTLP
import WeftStorageEngine
import WeftTestSupport

struct RecoveryTests {
    static func spans(trace: UInt64, count: Int, firstSpan: Int = 0) -> [TestSpan] {
        (firstSpan..<(firstSpan + count)).map { (i: Int) -> TestSpan in
            let offset = UInt64(i)
            let attributes: [(String, TestValue)] = [
                ("tenant_id", .string("t\(trace % 3)")), ("gen_ai.usage.prompt_tokens", .int(Int64(i))),
            ]
            return TestSpan(
                traceID: TraceID(high: trace, low: trace &* 31), spanID: offset + 1, parentSpanID: i == 0 ? 0 : 1,
                name: "op-\(i)", start: 1_000 + offset, end: 2_000 + offset, attributes: attributes
            )
        }
    }

    @Test func test_walEntry_roundTrips() throws {
        let body: [UInt8] = [1, 2, 3, 250]
        let encoded = try WALEntry(org: "acme", encoding: .json, body: body).encoded()
        let parsed = try encoded.withUnsafeBytes { raw in
            let p = try WALEntry.parse(raw)
            return (p.org, p.encoding, Array(p.body))
        }
        #expect(parsed.0 == "acme")
        #expect(parsed.1 == .json)
        #expect(parsed.2 == body)
        #expect(throws: DiskError.self) { try [UInt8]([9, 9]).withUnsafeBytes { _ = try WALEntry.parse($0) } }
    }

    @Test func test_replay_rebuildsHeadPerOrg_andDropsUnsyncedTail() throws {
        let disk = SimulatedDisk()
        let wal = WAL(disk: disk, directory: "/d/wal")
        try wal.replay { _ in }
        var expected: [String: Int] = [:]
        for t in 1...20 {
            let org = t % 2 == 0 ? "even" : "odd"
            let request = RequestBuilder.request([("svc", Self.spans(trace: UInt64(t), count: 3))])
            let record = try request.withUnsafeBytes { try WALEntry.encode(org: org, encoding: .protobuf, body: $0) }
            try wal.append([record])
            try wal.sync()
            expected[org, default: 0] += 3
        }
        // One more write that never got synced (not acknowledged): it must not come back whole.
        let lost = RequestBuilder.request([("svc", Self.spans(trace: 999, count: 3))])
        try wal.append([try lost.withUnsafeBytes { try WALEntry.encode(org: "odd", encoding: .protobuf, body: $0) }])
        disk.crash { _, unsynced in unsynced / 2 }

        let head = Head(configuration: .init(chunkSpans: 16))
        let engine = StorageEngine(head: head, store: BlockStore(disk: disk, directory: "/d/blocks"))
        let report = try engine.open(wal: WAL(disk: disk, directory: "/d/wal"), options: DecodeOptions())
        #expect(report.spans == 60)
        #expect(report.undecodable == 0)
        #expect(report.wal.truncatedTail != nil)
        #expect(head.snapshot(org: "even").reduce(0) { $0 + $1.spanCount } == expected["even"])
        #expect(head.snapshot(org: "odd").reduce(0) { $0 + $1.spanCount } == expected["odd"])
        // Deprecated token names were normalised into the typed column on replay too.
        let chunk = head.snapshot(org: "odd")[0]
        #expect(chunk.batch.inputTokens.prefix(3) == [0, 1, 2])
        #expect(head.snapshot(org: "odd").allSatisfy { $0.rows(of: TraceID(high: 999, low: 999 &* 31)).isEmpty })
    }

    @Test func test_head_sealsChunks_andFindsTracesAcrossThem() {
        let head = Head(configuration: .init(chunkSpans: 4))
        var decoder = OTLPProtobufDecoder()
        for part in 0..<3 {
            // The same trace arrives in three requests, landing in two chunks.
            var batch = SpanBatch()
            let request = RequestBuilder.request([("svc-\(part)", Self.spans(trace: 7, count: 3, firstSpan: 3 * part))])
            _ = try? request.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            head.append(batch, org: "o")
        }
        let chunks = head.snapshot(org: "o")
        #expect(chunks.count == 2)  // 3 + 3 spans sealed the first chunk; the last 3 are active
        #expect(chunks.reduce(0) { $0 + $1.rows(of: TraceID(high: 7, low: 7 &* 31)).count } == 9)
        #expect(head.stats.spans == 9)
        #expect(head.snapshot(org: "other").isEmpty)
    }
}
