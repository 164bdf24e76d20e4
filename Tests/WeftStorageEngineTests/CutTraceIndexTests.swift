import Testing
import WeftModel
@testable import WeftStorageEngine

/// The per-partition filters of cut traces never rule out a block that holds the trace: a covered
/// block's traces are in the filters named for it; a block whose filter was dropped is asked again.
struct CutTraceIndexTests {
    static let p = PartitionKey(org: "o", placement: "a+b+c")
    static func traces(_ seed: UInt64, _ n: Int) -> [TraceID] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in TraceID(high: rng.next(), low: rng.next()) }
    }

    static func asks(_ index: CutTraceIndex, _ trace: TraceID, block: UInt64) -> Bool {
        guard let view = index.view(of: Self.p) else { return true }
        return view.mayHold(block: block, holding: view.filters(mayHolding: trace))
    }

    @Test func test_coveredBlocks_areAskedForTheirTraces_andRarelyForOthers() {
        let index = CutTraceIndex(initialCapacity: 1_000, maxCapacity: 4_000)
        let first = Self.traces(1, 800)
        index.add(block: 1, of: Self.p, traces: first)
        #expect(first.allSatisfy { Self.asks(index, $0, block: 1) })
        let others = Self.traces(2, 10_000)
        #expect(others.filter { Self.asks(index, $0, block: 1) }.count < 200)
        // A block the index never saw is always asked, and so is any block of another partition.
        #expect(others.allSatisfy { Self.asks(index, $0, block: 7) })
        #expect(index.view(of: PartitionKey(org: "o", placement: "x")) == nil)
    }

    @Test func test_fullFiltersAreFollowedByNewOnes_andDroppedOnesLeaveTheirBlocksAsked() {
        let index = CutTraceIndex(initialCapacity: 1_000, maxCapacity: 2_000, maxFilters: 2)
        let first = Self.traces(1, 800), second = Self.traces(3, 700), third = Self.traces(8, 1_500)
        index.add(block: 1, of: Self.p, traces: first)
        index.add(block: 2, of: Self.p, traces: second)  // 1,500 > 1,000: a second filter
        #expect(first.allSatisfy { Self.asks(index, $0, block: 1) })
        #expect(second.allSatisfy { Self.asks(index, $0, block: 2) })
        #expect(Self.traces(4, 1_000).filter { Self.asks(index, $0, block: 1) }.count < 50)
        // Compacted from covered blocks: covered by both their filters; with an unknown input: asked.
        index.addCompacted(block: 3, of: Self.p, inputs: [1, 2])
        index.addCompacted(block: 4, of: Self.p, inputs: [2, 99])
        #expect((first + second).allSatisfy { Self.asks(index, $0, block: 3) })
        #expect(Self.traces(5, 1_000).filter { Self.asks(index, $0, block: 3) }.count < 100)
        #expect(Self.traces(5, 1_000).allSatisfy { Self.asks(index, $0, block: 4) })
        // A third filter drops the first (two at most): blocks 1 and 3 named it and are asked again.
        index.add(block: 5, of: Self.p, traces: third)
        #expect(third.allSatisfy { Self.asks(index, $0, block: 5) })
        #expect(Self.traces(6, 1_000).allSatisfy { Self.asks(index, $0, block: 1) && Self.asks(index, $0, block: 3) })
        #expect(second.allSatisfy { Self.asks(index, $0, block: 2) })
        // Removing block 2 drops the second filter: no covered block names it.
        index.remove(blocks: [2], of: Self.p)
        #expect(Self.traces(7, 1_000).allSatisfy { Self.asks(index, $0, block: 2) })
        #expect(third.allSatisfy { Self.asks(index, $0, block: 5) })
        // A block larger than the largest filter stays uncovered.
        index.add(block: 6, of: Self.p, traces: Self.traces(9, 2_500))
        #expect(Self.traces(10, 1_000).allSatisfy { Self.asks(index, $0, block: 6) })
    }
}
