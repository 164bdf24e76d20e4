import Synchronization
import Testing
import WeftModel
import WeftOTLP
import WeftStorageEngine
import WeftTestSupport

/// A head clock the test moves by hand.
final class ManualClock: Sendable {
    private let value = Atomic<UInt64>(1_000_000_000)
    var nanos: UInt64 { self.value.load(ordering: .relaxed) }
    func advance(seconds: Double) { self.value.add(UInt64(seconds * 1e9), ordering: .relaxed) }
    var read: @Sendable () -> UInt64 { { self.nanos } }
}

/// Whole traces, placements and idempotent writes in the head and the engine.
struct WholeTraceTests {
    static let second: UInt64 = 1_000_000_000

    static func batch(trace: UInt64, spans: ClosedRange<Int>, service: String = "svc") -> SpanBatch {
        let rows = spans.map { i in
            TestSpan(
                traceID: TraceID(high: trace, low: trace &* 7919), spanID: trace << 16 | UInt64(i), parentSpanID: i == 1 ? 0 : trace << 16 | 1,
                name: "op-\(i)", start: 1_000 + UInt64(i), end: 2_000 + UInt64(i)
            )
        }
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try! RequestBuilder.request([(service, rows)]).withUnsafeBytes { try decoder.decode($0, into: &batch) }
        return batch
    }

    static func engine(_ clock: ManualClock, stripes: Int = 4, _ configuration: StorageEngine.Configuration = .init()) -> StorageEngine {
        StorageEngine(
            head: Head(configuration: .init(chunkSpans: 8, stripes: stripes), clock: clock.read),
            store: BlockStore(disk: SimulatedDisk(), directory: "/blocks"), configuration: configuration
        )
    }

    @Test func test_head_storesASpanOnce_whicheverStripeOrBatchRepeatsIt() {
        let head = Head(configuration: .init(chunkSpans: 4, stripes: 3))
        #expect(head.append(Self.batch(trace: 1, spans: 1...5), org: "o", stripe: 0, segment: 1) == 5)
        // A resend on another stripe, and a batch that overlaps: only new spans are added.
        #expect(head.append(Self.batch(trace: 1, spans: 1...5), org: "o", stripe: 1, segment: 2) == 0)
        #expect(head.append(Self.batch(trace: 1, spans: 4...7), org: "o", stripe: 2, segment: 2) == 2)
        var twice = Self.batch(trace: 2, spans: 1...2)
        twice.append(Self.batch(trace: 2, spans: 1...2))
        #expect(head.append(twice, org: "o", stripe: 0, segment: 2) == 2)
        // The same IDs in another org or placement are other spans.
        #expect(head.append(Self.batch(trace: 1, spans: 1...5), org: "p", segment: 2) == 5)
        #expect(head.append(Self.batch(trace: 1, spans: 1...5), org: "o", placement: "a,b", segment: 2) == 5)
        let rows = head.snapshot(org: "o", placements: ["local"]).flatMap { c in (0..<c.spanCount).map { c.batch.spanID[$0] } }
        #expect(rows.count == 9 && Set(rows).count == 9)
        #expect(head.spanCount == 19)
        #expect(head.stats.spans == 19)
    }

    @Test func test_placements_keepTheirOwnHeadRowsAndBlocks() throws {
        let clock = ManualClock()
        let engine = Self.engine(clock)
        engine.head.append(Self.batch(trace: 1, spans: 1...3), org: "o", placement: "n1,n2", segment: 1)
        engine.head.append(Self.batch(trace: 2, spans: 1...4), org: "o", placement: "n2,n3", segment: 1)
        engine.head.append(Self.batch(trace: 3, spans: 1...2), org: "o", segment: 1)
        #expect(engine.snapshot(org: "o", placements: ["n1,n2"]).chunks.reduce(0) { $0 + $1.spanCount } == 3)
        #expect(engine.snapshot(org: "o").chunks.reduce(0) { $0 + $1.spanCount } == 9)
        let written = try engine.flush(segment: 1)
        #expect(Set(written.map(\.placement)) == ["n1,n2", "n2,n3", "local"])
        for meta in written {
            let rows = try engine.store.read(meta)
            let expected: UInt64 = meta.placement == "n1,n2" ? 1 : (meta.placement == "n2,n3" ? 2 : 3)
            #expect((0..<rows.spanCount).allSatisfy { rows.traceHigh[$0] == expected }, "a block holds only its placement's rows")
        }
        #expect(engine.snapshot(org: "o", placements: ["n2,n3", "local"]).blocks.map(\.spans).sorted() == [2, 4])
        #expect(engine.snapshot(org: "o", placements: []).blocks.isEmpty)
        // Compaction never merges placements.
        engine.head.append(Self.batch(trace: 4, spans: 1...2), org: "o", placement: "n1,n2", segment: 2)
        try engine.flush(segment: 2)
        let plan = try #require(engine.compactionPlan())
        #expect(plan.count == 2 && plan.allSatisfy { $0.placement == "n1,n2" })
    }

    @Test func test_cut_waitsForIdleTraces_andWritesThemWhole() throws {
        let clock = ManualClock()
        let engine = Self.engine(clock, .init(traceIdleNanos: 5 * Self.second, traceMaxAgeNanos: 60 * Self.second))
        // Trace 1 arrives in three requests two seconds apart, in three WAL segments; trace 2 once.
        engine.head.append(Self.batch(trace: 1, spans: 1...3, service: "checkout"), org: "o", stripe: 0, segment: 1)
        engine.head.append(Self.batch(trace: 2, spans: 1...2), org: "o", stripe: 1, segment: 1)
        clock.advance(seconds: 2)
        #expect(try engine.cut().isEmpty)
        engine.head.append(Self.batch(trace: 1, spans: 4...6, service: "gateway"), org: "o", stripe: 1, segment: 2)
        clock.advance(seconds: 2)
        engine.head.append(Self.batch(trace: 1, spans: 7...9, service: "provider"), org: "o", stripe: 2, segment: 3)
        #expect(engine.releasableSegments(current: 4).isEmpty)
        clock.advance(seconds: 1.5)
        // Trace 2 has been idle 5.5 s; trace 1 only 1.5 s.
        let first = try engine.cut()
        #expect(first.map(\.spans) == [2])
        #expect(first.first?.sources == [1])
        #expect(engine.releasableSegments(current: 4).isEmpty, "segment 1 still holds trace 1's rows")
        clock.advance(seconds: 5)
        let second = try engine.cut()
        #expect(second.map(\.spans) == [9])
        #expect(second.first?.sources == [1, 2, 3])
        #expect(engine.head.spanCount == 0 && engine.head.stats.chunks == 0)
        #expect(engine.releasableSegments(current: 4) == [1, 2, 3])
        let found = try engine.store.findTrace(TraceID(high: 1, low: 7919), in: engine.blocks)
        #expect(found.map(\.spanCount) == [9], "the trace is whole in one block")
    }

    @Test func test_cut_bounds_aTraceThatNeverGoesIdle_andAFullHead() throws {
        let clock = ManualClock()
        let engine = Self.engine(clock, .init(traceIdleNanos: 5 * Self.second, traceMaxAgeNanos: 20 * Self.second, headCutSpans: 30))
        for i in 0..<10 {
            engine.head.append(Self.batch(trace: 1, spans: (2 * i + 1)...(2 * i + 2)), org: "o", segment: i + 1)
            clock.advance(seconds: 3)
            let cut = try engine.cut()
            // Written every 3 s, never idle for 5 s: cut once its first span is 20 s old (21 s);
            // what arrives later starts over.
            #expect(cut.map(\.spans) == (i == 6 ? [14] : []), "pass \(i)")
        }
        #expect(engine.head.spanCount == 6)
        // Above headCutSpans every trace goes, idle or not.
        for t in 10..<14 as Range<UInt64> { engine.head.append(Self.batch(trace: t, spans: 1...8), org: "o", segment: 20) }
        #expect(try engine.cut().map(\.spans) == [38])
        #expect(engine.head.spanCount == 0)
    }

    @Test func test_bigCut_isWrittenAsSeveralBlocksOfWholeChunks() throws {
        let clock = ManualClock()
        let engine = Self.engine(clock, stripes: 1, .init(cutBlockSpans: 20))
        for t in 1...10 as ClosedRange<UInt64> { engine.head.append(Self.batch(trace: t, spans: 1...4), org: "o", segment: 1) }
        let written = try engine.flushAll()
        // Chunks of 8 spans: blocks close at the first chunk boundary at or past 20 spans.
        #expect(written.map(\.spans) == [24, 16])
        #expect(engine.head.spanCount == 0)
        #expect(Set(written.flatMap(\.sources)) == [1])
    }

    @Test func test_cut_waitsForMinSpans() throws {
        let clock = ManualClock()
        let engine = Self.engine(clock, .init(traceIdleNanos: Self.second))
        engine.head.append(Self.batch(trace: 1, spans: 1...3), org: "o", segment: 1)
        clock.advance(seconds: 2)
        #expect(try engine.cut(minSpans: 4).isEmpty)
        engine.head.append(Self.batch(trace: 2, spans: 1...3), org: "o", segment: 1)
        clock.advance(seconds: 2)
        #expect(try engine.cut(minSpans: 4).map(\.spans) == [6])
    }

    @Test func test_rowsAppendedDuringACut_stayInTheHead() throws {
        let clock = ManualClock()
        let engine = Self.engine(clock, stripes: 1)
        engine.head.append(Self.batch(trace: 1, spans: 1...5), org: "o", segment: 1)
        let partition = PartitionKey(org: "o", placement: "local")
        let taken = try #require(engine.head.take(partition, .all))
        engine.head.append(Self.batch(trace: 1, spans: 6...12), org: "o", segment: 2)
        engine.head.remove(taken)
        let left = engine.head.snapshot(org: "o").flatMap { c in (0..<c.spanCount).map { c.batch.spanID[$0] & 0xFFFF } }
        #expect(left.sorted() == Array(6...12))
        #expect(engine.head.segments() == [2])
        #expect(engine.head.releasableSegments(below: 3) == [1])
        // Spans that left the head are no longer known to it, even while their trace has rows there
        // (a resend is taken again, as WAL replay would take it).
        #expect(engine.head.append(Self.batch(trace: 1, spans: 1...6), org: "o", segment: 2) == 5)
    }

    @Test func test_compaction_keepsEachSpanOnce() throws {
        let clock = ManualClock()
        let engine = Self.engine(clock)
        engine.head.append(Self.batch(trace: 1, spans: 1...4), org: "o", segment: 1)
        try engine.flushAll()
        // A resend after the trace was cut: the head takes only the spans no block holds.
        #expect(engine.head.append(Self.batch(trace: 1, spans: 3...6), org: "o", segment: 2) == 2)
        try engine.flushAll()
        #expect(engine.blocks.map(\.spans) == [4, 2])
        let output = try engine.compact(try #require(engine.compactionPlan()))
        #expect(output.spans == 6)
        let rows = try engine.store.read(output)
        #expect(Set((0..<rows.spanCount).map { rows.spanID[$0] }).count == 6)
    }
}
