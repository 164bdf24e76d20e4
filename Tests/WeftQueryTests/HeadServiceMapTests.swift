import Testing
import WeftModel
@testable import WeftQuery
@testable import WeftStorageEngine

/// The head's service map from per-chunk edges (computed at seal, extended for the chunk being
/// written) equals a join of every head span against every other, whatever chunks a trace's spans
/// landed in, as chunks grow, seal and are rebuilt after a cut.
struct HeadServiceMapTests {
    static let base = AggregationTests.base
    static let minute = AggregationTests.minute

    /// The reference: each span's parent looked up among all head spans.
    static func joined(_ chunks: [HeadChunk]) -> [String: [UInt64]] { self.joined(chunks.map(\.batch), bucketed: true) }

    /// The first and second half of `b`'s rows, as batches of their own.
    static func halves(_ b: SpanBatch) -> (SpanBatch, SpanBatch) {
        let half = b.spanCount / 2
        var first = SpanBatch(), second = SpanBatch()
        first.strings = b.strings
        second.strings = b.strings
        first.appendRows(Array(0..<half), of: b)
        second.appendRows(Array(half..<b.spanCount), of: b)
        return (first, second)
    }

    static func fromChunks(_ chunks: [HeadChunk]) -> [String: [UInt64]] {
        var out: [String: [UInt64]] = [:]
        for e in ServiceMapExecutor.headEdges(chunks).edges {
            var v = out["\(e.bucketStart) \(e.parent)>\(e.child)", default: [0, 0]]
            v[0] += e.calls
            v[1] += e.errors
            #expect(e.latency.count == e.calls)
            out["\(e.bucketStart) \(e.parent)>\(e.child)"] = v
        }
        return out
    }

    /// Calls and errors per "parent>child" (after the bucket start when `bucketed`) of a join of every
    /// span against every other in `batches`.
    static func joined(_ batches: [SpanBatch], bucketed: Bool = false) -> [String: [UInt64]] {
        struct Key: Hashable {
            var trace: TraceID
            var span: UInt64
        }
        var serviceOf: [Key: String] = [:]
        for b in batches {
            for row in 0..<b.spanCount { serviceOf[Key(trace: b.traceID(row), span: b.spanID[row])] = b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])]) }
        }
        var out: [String: [UInt64]] = [:]
        for b in batches {
            for row in 0..<b.spanCount where b.parentSpanID[row] != 0 {
                guard let parent = serviceOf[Key(trace: b.traceID(row), span: b.parentSpanID[row])] else { continue }
                let child = b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])])
                guard parent != child else { continue }
                let bucket = b.startTime[row] / ServiceGraph.bucketNanos * ServiceGraph.bucketNanos
                let key = bucketed ? "\(bucket) \(parent)>\(child)" : "\(parent)>\(child)"
                out[key, default: [0, 0]][0] += 1
                if b.statusCode[row] == 2 { out[key, default: [0, 0]][1] += 1 }
            }
        }
        return out
    }

    /// Calls whose parent and child spans lie apart — in two blocks, or in a block and the head —
    /// count once, as a join of every span against every other counts them.
    @Test func test_serviceMap_joinsCallsAcrossBlocksAndTheHead() throws {
        let batches = AggregationTests.traffic(seed: 71)
        let engine = StorageEngine(
            head: Head(configuration: .init(chunkSpans: 256, stripes: 3)), store: BlockStore(disk: SimulatedDisk(), directory: "/b")
        )
        // Each request split in two WAL segments, so flushing one segment parts traces.
        for (i, b) in batches.enumerated() {
            let (first, second) = Self.halves(b)
            engine.head.append(first, org: "o", stripe: i, segment: 1 + 2 * (i % 2))
            engine.head.append(second, org: "o", stripe: i + 1, segment: 2 + 2 * (i % 2))
        }
        func check(_ what: String) throws {
            let snapshot = engine.snapshot(org: "o")
            var all = snapshot.chunks.map(\.batch)
            for meta in snapshot.blocks { all.append(try engine.store.read(meta)) }
            let reference = Self.joined(all)
            var got: [String: [UInt64]] = [:]
            for e in ServiceMapExecutor.partial(startNanos: 0, endNanos: .max, snapshot: snapshot, store: engine.store).sorted {
                got["\(e.parent)>\(e.child)"] = [e.calls, e.errors]
            }
            #expect(reference.count > 3, "\(what)")
            #expect(got == reference, "\(what)")
            // One bucket at a time: blocks holding other buckets add only this one's edges.
            let bucketed = Self.joined(all, bucketed: true)
            let buckets = Set(bucketed.keys.map { UInt64($0.split(separator: " ")[0])! })
            #expect(buckets.count > 1, "\(what)")
            for bucket in buckets {
                var want: [String: [UInt64]] = [:]
                for (key, v) in bucketed where key.hasPrefix("\(bucket) ") { want[String(key.split(separator: " ")[1])] = v }
                var one: [String: [UInt64]] = [:]
                let map = ServiceMapExecutor.partial(startNanos: bucket + 1, endNanos: bucket + ServiceGraph.bucketNanos - 1, snapshot: snapshot, store: engine.store)
                for e in map.sorted { one["\(e.parent)>\(e.child)"] = [e.calls, e.errors] }
                #expect(one == want, "\(what), bucket \(bucket)")
            }
        }
        try check("head only")
        try engine.flush(segment: 1)
        #expect(try engine.snapshot(org: "o").blocks.contains { !(try engine.store.reader($0).serviceOrphans().isEmpty) })
        try check("one segment in a block, the rest in the head")
        try engine.flush(segment: 2)
        try engine.flush(segment: 3)
        try check("three blocks and the head")
        try engine.flush(segment: 4)
        #expect(engine.snapshot(org: "o").chunks.isEmpty)
        try check("four blocks")
    }

    @Test(arguments: [64, 512, 100_000])
    func test_headEdges_equalAFullJoin_asChunksGrowSealAndAreCut(_ chunkSpans: Int) throws {
        let batches = AggregationTests.traffic(seed: 67)
        let engine = StorageEngine(
            head: Head(configuration: .init(chunkSpans: chunkSpans, stripes: 3)), store: BlockStore(disk: SimulatedDisk(), directory: "/b")
        )
        var queried = 0
        for (i, b) in batches.enumerated() {
            // Spread over stripes, so a trace's spans land in several chunks; split one batch in two
            // so the chunk being written is queried between its halves.
            let (first, second) = Self.halves(b)
            engine.head.append(first, org: "o", stripe: i, segment: 1 + i / 3)
            let chunks = engine.head.snapshot(org: "o")
            #expect(Self.fromChunks(chunks) == Self.joined(chunks))
            engine.head.append(second, org: "o", stripe: i + 1, segment: 1 + i / 3)
            let grown = engine.head.snapshot(org: "o")
            #expect(Self.fromChunks(grown) == Self.joined(grown))
            // An older copy of a chunk still answers for its own rows after the chunk has grown.
            #expect(Self.fromChunks(chunks) == Self.joined(chunks))
            queried += 1
        }
        let all = engine.head.snapshot(org: "o")
        let reference = Self.joined(all)
        #expect(reference.count > 3)
        #expect(Self.fromChunks(all) == reference)
        if chunkSpans < 1000 { #expect(all.contains { !$0.serviceEdges().orphans.isEmpty }) }
        // Cutting a segment rebuilds the chunks that keep rows: their edges are computed afresh.
        try engine.flush(segment: 1)
        let rest = engine.head.snapshot(org: "o")
        #expect(rest.reduce(0) { $0 + $1.spanCount } < all.reduce(0) { $0 + $1.spanCount })
        #expect(Self.fromChunks(rest) == Self.joined(rest))
        #expect(queried == batches.count)
    }
}
