import Testing
import WeftModel
import WeftStorageEngine

/// A partition marked surplus is left out of reads that name no placements (this node's own data and
/// its catalog) and nowhere else: anti-entropy still finds, digests and sends it, reads that name it
/// still get it, and unmarking brings it back whole.
struct SurplusPartitionTests {
    @Test func test_surplusPartition_isLeftOutOfUnnamedReadsOnly() throws {
        var h = try EngineHarness(SimulatedDisk())
        let extra = PartitionKey(org: "acme", placement: "s1+s4+s6")
        for trace in 1...6 as ClosedRange<UInt64> { _ = try h.write(org: "acme", trace: trace, count: 3) }
        for trace in 101...106 as ClosedRange<UInt64> {
            var batch = SpanBatch()
            let body = EngineHarness.request(trace: trace, count: 4)
            _ = try body.withUnsafeBytes { try h.decoder.decode($0, into: &batch) }
            h.engine.head.append(batch, org: extra.org, placement: extra.placement)
            // Some of it in blocks, some in the head.
            if trace == 103 { try h.cutIdle(after: 10) }
        }
        func placements(_ s: StorageEngine.Snapshot) -> Set<String> { Set(s.chunks.map(\.placement) + s.blocks.map(\.placement)) }
        func spans(_ s: StorageEngine.Snapshot) throws -> Int {
            var n = s.chunks.reduce(0) { $0 + $1.batch.spanCount }
            for meta in s.blocks { n += try h.engine.store.read(meta).spanCount }
            return n
        }
        let all = h.engine.snapshot(org: "acme")
        let allSpans = try spans(all)
        #expect(placements(all).contains(extra.placement))
        #expect(!all.blocks.filter { $0.placement == extra.placement }.isEmpty, "the test covers blocks")
        let digest = h.engine.digest(extra)
        let named = try spans(h.engine.snapshot(org: "acme", placements: [extra.placement]))
        #expect(named == 24)

        h.engine.setSurplus([extra])
        let unnamed = h.engine.snapshot(org: "acme")
        #expect(!placements(unnamed).contains(extra.placement))
        #expect(try spans(unnamed) == allSpans - 24)
        #expect(h.engine.heldPartitions().contains(extra))
        #expect(h.engine.digest(extra) == digest)
        #expect(try spans(h.engine.snapshot(org: "acme", placements: [extra.placement])) == named)
        // Spans written to it meanwhile are kept.
        var late = SpanBatch()
        _ = try EngineHarness.request(trace: 107, count: 2).withUnsafeBytes { try h.decoder.decode($0, into: &late) }
        h.engine.head.append(late, org: extra.org, placement: extra.placement)

        h.engine.setSurplus([])
        #expect(try spans(h.engine.snapshot(org: "acme")) == allSpans + 2)
    }
}
