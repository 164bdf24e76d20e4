import Testing
import WeftModel
import WeftStorageEngine

/// A span resent after its trace left the head (cut or flushed to a block) is stored once: the head
/// checks the blocks of the partition for traces it does not hold.
struct ResendDedupeTests {
    static func counts(_ h: EngineHarness) throws -> [SpanKey: Int] {
        var counts: [SpanKey: Int] = [:]
        for k in try h.stored() { counts[k, default: 0] += 1 }
        return counts
    }

    @Test func test_resendAfterIdleCut_isStoredOnce_alsoAfterRestart() throws {
        let disk = SimulatedDisk()
        var h = try EngineHarness(disk)
        var written: [SpanKey] = []
        written += try h.write(org: "acme", trace: 1, count: 5)
        written += try h.write(org: "acme", trace: 2, count: 3)
        written += try h.write(org: "globex", trace: 1, count: 4)
        try h.cutIdle(after: 10)
        #expect(h.engine.head.spanCount == 0, "every trace was cut")
        #expect(!h.engine.blocks.isEmpty)
        // The same requests again, and one that repeats 3 spans and adds 2 new ones.
        _ = try h.write(org: "acme", trace: 1, count: 5)
        _ = try h.write(org: "acme", trace: 2, count: 3)
        _ = try h.write(org: "globex", trace: 1, count: 4)
        written += try h.write(org: "acme", trace: 2, count: 5, firstSpan: 0)
        let expected = Set(written)
        var counts = try Self.counts(h)
        #expect(Set(counts.keys) == expected)
        #expect(counts.values.allSatisfy { $0 == 1 }, "live: \(counts.filter { $0.value > 1 }.count) spans twice")
        #expect(h.engine.head.spanCount == 2, "only the 2 new spans of trace 2 entered the head")
        // Restart: the resent records replay from a later segment than the blocks' sources.
        let reopened = try EngineHarness(disk)
        counts = try Self.counts(reopened)
        #expect(Set(counts.keys) == expected)
        #expect(counts.values.allSatisfy { $0 == 1 }, "restarted: \(counts.filter { $0.value > 1 }.count) spans twice")
    }

    @Test func test_resendAfterFlush_isStoredOnce_andCompactionKeepsOne() throws {
        let disk = SimulatedDisk()
        var h = try EngineHarness(disk)
        var written: [SpanKey] = []
        for trace in 1...6 as ClosedRange<UInt64> { written += try h.write(org: EngineHarness.orgs[Int(trace % 2)], trace: trace, count: 4) }
        try h.cut()
        for trace in 1...6 as ClosedRange<UInt64> { _ = try h.write(org: EngineHarness.orgs[Int(trace % 2)], trace: trace, count: 4) }
        #expect(h.engine.head.spanCount == 0)
        try h.cut()
        try h.compactAll()
        let counts = try Self.counts(h)
        #expect(Set(counts.keys) == Set(written))
        #expect(counts.values.allSatisfy { $0 == 1 })
    }

    /// A trace with rows in the head and others in a block: a resend of the block's spans is dropped.
    @Test func test_resendOfATracePartlyInBlocks_isStoredOnce() throws {
        var h = try EngineHarness(SimulatedDisk())
        var written: [SpanKey] = []
        written += try h.write(org: "acme", trace: 7, count: 4)
        try h.cutIdle(after: 10)
        // A late span brings the trace back to the head; then the first request is resent.
        written += try h.write(org: "acme", trace: 7, count: 1, firstSpan: 4)
        _ = try h.write(org: "acme", trace: 7, count: 4)
        #expect(h.engine.head.spanCount == 1)
        let counts = try Self.counts(h)
        #expect(Set(counts.keys) == Set(written))
        #expect(counts.values.allSatisfy { $0 == 1 })
    }

    @Test func test_freshTraces_outsideEveryBlockRange_areKept() throws {
        let disk = SimulatedDisk()
        var h = try EngineHarness(disk)
        var written: [SpanKey] = []
        written += try h.write(org: "acme", trace: 1, count: 3)
        try h.cutIdle(after: 10)
        // Same span IDs scheme, other trace, start inside and outside the block's range.
        written += try h.write(org: "acme", trace: 3, count: 3, start: 1_000)
        written += try h.write(org: "acme", trace: 4, count: 3, start: 900_000)
        let counts = try Self.counts(h)
        #expect(Set(counts.keys) == Set(written))
        #expect(h.engine.head.spanCount == 6)
    }
}
