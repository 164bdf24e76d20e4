// Input that must not stop a node: a record replay cannot apply, a span with a huge attribute list,
// and length fields that would not read back.

import Testing
import WeftModel
import WeftOTLP
import WeftStorageEngine
import WeftTestSupport

struct HostileInputTests {
    static func request(trace: UInt64, spans: Int, attributes: Int = 1) -> [UInt8] {
        let list = (0..<spans).map { i -> TestSpan in
            var attrs: [(String, TestValue)] = [("tenant_id", .string("t"))]
            for a in 1..<max(1, attributes) { attrs.append(("k\(a)", .int(Int64(a)))) }
            return TestSpan(
                traceID: TraceID(high: trace, low: 1), spanID: trace << 20 | UInt64(i + 1), name: "op",
                start: 1_000 + UInt64(i), end: 2_000, attributes: attrs
            )
        }
        return RequestBuilder.request([("svc", list)])
    }

    static func record(_ org: String, _ body: [UInt8]) throws -> [UInt8] {
        try body.withUnsafeBytes { try WALEntry.encode(org: org, encoding: .protobuf, body: $0) }
    }

    @Test func test_replay_quarantinesRecordsItCannotApply_andReplaysTheRest() throws {
        let disk = SimulatedDisk()
        let wal = WAL(disk: disk, directory: "/n/wal")
        try wal.replay { _ in }
        try wal.append([try Self.record("acme", Self.request(trace: 1, spans: 3))])
        try wal.append([[9, 9, 9]])  // framed and checksummed, but not a WAL entry
        try wal.append([try Self.record("acme", [0x0A, 0xFF, 0xFF])])  // an entry whose OTLP body is truncated
        try wal.append([try Self.record("globex", Self.request(trace: 2, spans: 2))])
        try wal.sync()

        let head = Head(configuration: .init(chunkSpans: 64))
        let engine = StorageEngine(head: head, store: BlockStore(disk: disk, directory: "/n/blocks"))
        let report = try engine.open(wal: WAL(disk: disk, directory: "/n/wal"), options: DecodeOptions())
        #expect(report.spans == 5)
        #expect(report.quarantined.map(\.index) == [1, 2])
        for q in report.quarantined {
            let path = try #require(q.path)
            #expect(disk.exists(path))
        }
        #expect(try disk.read(report.quarantined[0].path!) == [9, 9, 9])
        #expect(head.snapshot(org: "acme").reduce(0) { $0 + $1.spanCount } == 3)
        #expect(head.snapshot(org: "globex").reduce(0) { $0 + $1.spanCount } == 2)
    }

    /// A span over the limits that an earlier version logged (so its record is durable) is refused on
    /// replay exactly as ingest refuses it now; the rest of its request and every other record replay.
    @Test func test_replay_appliesSpanLimits_toRecordsLoggedBeforeThem() throws {
        let disk = SimulatedDisk()
        let wal = WAL(disk: disk, directory: "/n/wal")
        try wal.replay { _ in }
        let poison = RequestBuilder.request([
            ("svc", [TestSpan(traceID: TraceID(high: 5, low: 5), spanID: 1, name: "big", start: 1, end: 2,
                              attributes: (0..<100_000).map { ("k\($0)", .int(Int64($0))) })]),
            ("svc", [TestSpan(traceID: TraceID(high: 5, low: 5), spanID: 2, name: "small", start: 1, end: 2)]),
        ])
        try wal.append([try Self.record("new-org", poison), try Self.record("acme", Self.request(trace: 1, spans: 4))])
        try wal.sync()

        let head = Head(configuration: .init(chunkSpans: 65_536))
        let engine = StorageEngine(head: head, store: BlockStore(disk: disk, directory: "/n/blocks"))
        let report = try engine.open(wal: WAL(disk: disk, directory: "/n/wal"), options: DecodeOptions())
        #expect(report.refusedSpans == 1)
        #expect(report.quarantined.isEmpty)
        #expect(head.snapshot(org: "new-org").flatMap { $0.batch.spanID } == [2])
        #expect(head.snapshot(org: "acme").reduce(0) { $0 + $1.spanCount } == 4)
    }

    /// The head sizes a new chunk by what arrived: a single span with a long attribute list must not
    /// be multiplied by the chunk's span limit (it once asked for tens of gigabytes).
    @Test func test_head_newChunk_isSizedByWhatArrived() throws {
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        let body = Self.request(trace: 3, spans: 1, attributes: 20_000)
        _ = try body.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        let head = Head(configuration: .init(chunkSpans: 65_536, stripes: 1))
        head.append(batch, org: "one-span-org")
        #expect(head.spanCount == 1)
        #expect(head.stats.bytes < 8 * batch.memoryFootprint + (1 << 20))
    }

    /// Many orgs of one span each cost little apiece.
    @Test func test_head_manySmallOrgs_staySmall() throws {
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        let body = Self.request(trace: 4, spans: 1)
        _ = try body.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        let head = Head(configuration: .init(chunkSpans: 65_536, stripes: 1))
        for i in 0..<2_000 { head.append(batch, org: "org-\(i)") }
        #expect(head.stats.bytes / 2_000 < 32 << 10)
    }

    @Test func test_walEntry_refusesAnOrgItCannotHold() {
        let org = String(repeating: "o", count: 70_000)
        #expect(throws: DiskError.self) { try [UInt8]([1]).withUnsafeBytes { _ = try WALEntry.framed(org: org, encoding: .protobuf, body: $0) } }
        #expect(throws: DiskError.self) { try [UInt8]([1]).withUnsafeBytes { _ = try WALEntry.encode(org: org, encoding: .protobuf, body: $0) } }
    }

    @Test func test_blockStore_refusesAMetaItCouldNotReadBack_andWritesNothing() throws {
        let disk = SimulatedDisk()
        let store = BlockStore(disk: disk, directory: "/n/blocks")
        _ = try store.open()
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try Self.request(trace: 6, spans: 2).withUnsafeBytes { try decoder.decode($0, into: &batch) }
        #expect(throws: (any Error).self) { _ = try store.write(batch, org: String(repeating: "o", count: 70_000), placement: "local") }
        #expect(try disk.list("/n/blocks").isEmpty)
        let meta = try store.write(batch, org: "acme", placement: "local")
        #expect(try store.read(meta).spanCount == 2)
    }
}
