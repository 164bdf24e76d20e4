import Testing
import WeftModel
import WeftStorageEngine
import WeftTestSupport

/// Whole-trace cuts and resent writes through the WAL, the head and the blocks, with crashes.
struct WholeTraceRecoveryTests {
    /// Each trace arrives in three requests two seconds apart, with WAL segments rolling between
    /// them, every other request is sent twice, idle traces are cut as they go and blocks are
    /// compacted; `acked` collects what was acknowledged before any failure (resends included).
    static func workload(_ h: inout EngineHarness, _ acked: inout [SpanKey], base: UInt64) throws {
        for i in 0..<12 as Range<UInt64> {
            let trace = base + i / 3
            let org = EngineHarness.orgs[Int(trace % 2)]
            acked += try h.write(org: org, trace: trace, count: 2, firstSpan: Int(i % 3) * 2)
            if i % 2 == 1 { acked += try h.write(org: org, trace: trace, count: 2, firstSpan: Int(i % 3) * 2) }
            if i % 4 == 1 { try h.wal.roll() }
            try h.cutIdle(after: 2)
        }
        try h.cutIdle(after: 10)
        try h.compactAll()
        // A late span of a trace already in a block, and a resend of a trace still in the head.
        let org = EngineHarness.orgs[Int(base % 2)]
        acked += try h.write(org: org, trace: base, count: 1, firstSpan: 6)
        acked += try h.write(org: "globex", trace: base + 100, count: 3)
        acked += try h.write(org: "globex", trace: base + 100, count: 3)
    }

    static let everySpan: Set<SpanKey> = {
        var h = try! EngineHarness(SimulatedDisk())
        var all: [SpanKey] = []
        try! Self.workload(&h, &all, base: 1)
        return Set(all)
    }()

    @Test func test_splitTraces_areCutWhole_andResendsStoredOnce() throws {
        let disk = SimulatedDisk()
        var h = try EngineHarness(disk)
        var acked: [SpanKey] = []
        for i in 0..<12 as Range<UInt64> {
            let trace = 1 + i / 3
            acked += try h.write(org: "acme", trace: trace, count: 2, firstSpan: Int(i % 3) * 2)
            acked += try h.write(org: "acme", trace: trace, count: 2, firstSpan: Int(i % 3) * 2)
            if i % 4 == 1 { try h.wal.roll() }
            try h.cutIdle(after: 2)
        }
        try h.cutIdle(after: 10)
        StorageEngineTests.check(try h.stored(), acked: acked, written: Set(acked), "live")
        #expect(h.engine.head.spanCount == 0)
        #expect(try h.wal.segments().count <= 1, "segments left the WAL once no row needed them")
        // Every trace lies whole in one block.
        let blocks = h.engine.snapshot(org: "acme").blocks
        for trace in 1...4 as ClosedRange<UInt64> {
            let parts = try h.engine.store.findTrace(TraceID(high: trace, low: trace &* 7919), in: blocks)
            #expect(parts.map(\.spanCount) == [6], "trace \(trace)")
        }
    }

    @Test func test_replay_storesResentRecordsOnce_andSkipsSpansAlreadyInBlocks() throws {
        let disk = SimulatedDisk()
        var h = try EngineHarness(disk)
        var acked: [SpanKey] = []
        acked += try h.write(org: "acme", trace: 1, count: 3)
        acked += try h.write(org: "acme", trace: 2, count: 3)
        acked += try h.write(org: "acme", trace: 1, count: 3)  // a resend, logged again
        h.clock.advance(seconds: 6)
        acked += try h.write(org: "acme", trace: 2, count: 2, firstSpan: 3)
        // Trace 1 is cut; trace 2 is not idle. The segment stays for trace 2's rows.
        try h.wal.roll()
        #expect(try h.engine.cut().map(\.spans) == [3])
        #expect(h.engine.releasableSegments(current: h.wal.current).isEmpty)
        let reopened = try EngineHarness(disk)
        StorageEngineTests.check(try reopened.stored(), acked: acked, written: Set(acked), "restarted")
        #expect(reopened.report.spans == 5, "trace 2's rows are replayed")
        #expect(reopened.report.duplicateSpans == 6, "trace 1's rows are in a block, twice over")
        #expect(reopened.report.skippedRecords == 2)
    }

    /// A crash after every disk operation of ``workload`` (writes, resends, cuts, WAL removals,
    /// compactions), with seeded torn tails: after restart every acknowledged span is there exactly
    /// once and the node keeps working through a second round and another restart.
    @Test(arguments: [1, 2] as [UInt64])
    func test_crashAtEveryStepOfACut_losesAndDuplicatesNothing(seed: UInt64) throws {
        try StorageEngineTests.crashAtEveryStep(seed: seed, tornSalt: 7_919, written: Self.everySpan, workload: Self.workload)
    }
}
