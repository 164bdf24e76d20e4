import Foundation
import Testing
import WeftModel
import WeftOTLP
import WeftStorageEngine
import WeftTestSupport

/// WAL records of version 2 (the decoded batch) beside version 1 (the OTLP body), and replay of both.
struct WALEntryVersionTests {
    static let now = UInt64(Date().timeIntervalSince1970 * 1e9)

    static func request(trace: UInt64, spans: Int) -> [UInt8] {
        let list = (0..<spans).map { i in
            TestSpan(
                traceID: TraceID(high: trace, low: 3), spanID: trace << 20 | UInt64(i + 1), name: "op-\(i)",
                start: Self.now + UInt64(i), end: Self.now + 1_000, attributes: [("tenant_id", .string("t\(trace)")), ("gen_ai.usage.input_tokens", .int(Int64(i)))]
            )
        }
        return RequestBuilder.request([("svc", list)])
    }

    static func batch(trace: UInt64, spans: Int) throws -> SpanBatch {
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try Self.request(trace: trace, spans: spans).withUnsafeBytes { try decoder.decode($0, into: &batch) }
        return batch
    }

    static func names(_ b: SpanBatch) -> [String] { (0..<b.spanCount).map { b.strings.string(b.name[$0]) } }

    @Test func test_version2_roundTrips_orgPlacementAndBatch() throws {
        let batch = try Self.batch(trace: 1, spans: 5)
        let record = try WALEntry.encode(org: "acme", placement: "zone-a/3", batch: batch)
        #expect(record[0] == 2)
        var decoder = OTLPRequestDecoder(options: DecodeOptions())
        let entry = try record.withUnsafeBytes { try WALEntry.decode($0, decoder: &decoder, legacyPlacement: "unused") }
        #expect(entry.org == "acme" && entry.placement == "zone-a/3")
        #expect(entry.batch.spanID == batch.spanID && Self.names(entry.batch) == Self.names(batch))
        #expect(entry.batch.inputTokens == batch.inputTokens && entry.batch.attrs.values == batch.attrs.values)
        // The framed form is the same record behind a length and checksum.
        let framed = try WALEntry.framed(org: "acme", placement: "zone-a/3", batch: batch)
        #expect(Array(framed[WAL.frameOverhead...]) == record)
    }

    @Test func test_version1_decodesWithTheLegacyPlacement() throws {
        let record = try Self.request(trace: 2, spans: 3).withUnsafeBytes { try WALEntry.encode(org: "old", encoding: .protobuf, body: $0) }
        var decoder = OTLPRequestDecoder(options: DecodeOptions())
        let entry = try record.withUnsafeBytes { try WALEntry.decode($0, decoder: &decoder, legacyPlacement: "local") }
        #expect(entry.org == "old" && entry.placement == "local" && entry.batch.spanCount == 3)
    }

    @Test func test_overLongOrgOrPlacement_isRefused_notTruncated() throws {
        let batch = try Self.batch(trace: 1, spans: 1)
        let long = String(repeating: "p", count: WALEntry.maxPlacementBytes + 1)
        #expect { _ = try WALEntry.framed(org: "acme", placement: long, batch: batch) } throws: { "\($0)".contains("placement of 65536 bytes") }
        #expect { _ = try WALEntry.framed(org: long, placement: "local", batch: batch) } throws: { "\($0)".contains("org ID of 65536 bytes") }
        let longest = String(repeating: "p", count: WALEntry.maxPlacementBytes)
        var decoder = OTLPRequestDecoder(options: DecodeOptions())
        let entry = try WALEntry.encode(org: "acme", placement: longest, batch: batch).withUnsafeBytes {
            try WALEntry.decode($0, decoder: &decoder, legacyPlacement: "")
        }
        #expect(entry.placement == longest)
    }

    @Test func test_tornVersion2Fields_throw() throws {
        let record = try WALEntry.encode(org: "acme", placement: "local", batch: try Self.batch(trace: 1, spans: 2))
        var decoder = OTLPRequestDecoder(options: DecodeOptions())
        for length in [0, 1, 2, 5, 8, 12, record.count - 1] {
            #expect(throws: DiskError.self, "prefix of \(length)") {
                _ = try Array(record[..<length]).withUnsafeBytes { try WALEntry.decode($0, decoder: &decoder, legacyPlacement: "") }
            }
        }
    }

    /// A log written partly by the previous version (OTLP bodies) and partly by this one (batches)
    /// replays both; an unknown version and a torn batch are quarantined with their reasons.
    @Test func test_replay_mixesVersions_andQuarantinesUnknownOnes() throws {
        let disk = SimulatedDisk()
        let wal = WAL(disk: disk, directory: "/n/wal")
        try wal.replay { _ in }
        let v1 = try Self.request(trace: 1, spans: 3).withUnsafeBytes { try WALEntry.encode(org: "acme", encoding: .protobuf, body: $0) }
        let v2 = try WALEntry.encode(org: "acme", placement: "local", batch: try Self.batch(trace: 2, spans: 4))
        var unknown = v2
        unknown[0] = 7
        let torn = Array(v2.dropLast(3))
        let other = try WALEntry.encode(org: "globex", placement: "local", batch: try Self.batch(trace: 3, spans: 2))
        try wal.append([v1, unknown, v2, torn, other])
        try wal.sync()

        let head = Head(configuration: .init(chunkSpans: 64))
        let engine = StorageEngine(head: head, store: BlockStore(disk: disk, directory: "/n/blocks"))
        let report = try engine.open(wal: WAL(disk: disk, directory: "/n/wal"), options: DecodeOptions(), nowNanos: Self.now)
        #expect(report.spans == 9)
        #expect(report.quarantined.map(\.index) == [1, 3])
        #expect(report.quarantined[0].reason.contains("unknown version 7"))
        #expect(report.quarantined[1].reason.contains("version 2"))
        #expect(try disk.read(report.quarantined[0].path!) == unknown)
        let acme = head.snapshot(org: "acme").flatMap { chunk in Self.names(chunk.batch) }
        #expect(acme == ["op-0", "op-1", "op-2", "op-0", "op-1", "op-2", "op-3"])
        #expect(head.snapshot(org: "globex").reduce(0) { $0 + $1.spanCount } == 2)
        // Typed GenAI columns come back from both versions.
        #expect(head.snapshot(org: "acme").flatMap { $0.batch.inputTokens } == [0, 1, 2, 0, 1, 2, 3])
    }
}
