import Testing
import WeftLoad
import WeftModel
import WeftOTLP

struct SpanBatchSubsetTests {
    static func generated(spans: Int, seed: UInt64) throws -> SpanBatch {
        var generator = TrafficGenerator(profile: LoadProfile(seed: seed))
        let request = generator.nextRequest(spans: spans, startTimeNanos: BatchFixtures.nowNanos, spacingNanos: 1_000_000)
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try request.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        return batch
    }

    static func destination(_ trace: TraceID, _ ways: Int) -> Int {
        Int((trace.high ^ trace.low) % UInt64(ways))
    }

    /// `batch` cut into `ways` parts with ``SpanBatch/subset(rows:)``, the rows of each part chosen by
    /// `destination` (as an ingest node groups a request by placement).
    static func parts(_ batch: SpanBatch, _ ways: Int, _ destination: (TraceID) -> Int) -> [SpanBatch] {
        var rows = [[Int]](repeating: [], count: ways)
        for row in 0..<batch.spanCount { rows[destination(batch.traceID(row))].append(row) }
        return rows.map { batch.subset(rows: $0) }
    }

    /// Each part refers to every string, resource and scope it carries (and nothing else).
    static func expectSelfContained(_ part: SpanBatch, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(part.referencedStrings().allSatisfy { $0 }, "unused strings", sourceLocation: sourceLocation)
        #expect(Set(part.resourceIndex).count == part.resourceCount, "unused resources", sourceLocation: sourceLocation)
        #expect(Set(part.scopeIndex).count == part.scopeCount, "unused scopes", sourceLocation: sourceLocation)
        // It also stands alone on the wire.
        let decoded = try? SpanBatchCodec.encode(part).withUnsafeBytes { try SpanBatchCodec.decode($0) }
        #expect(decoded.map(BatchFixtures.describeSpans) == BatchFixtures.describeSpans(part), sourceLocation: sourceLocation)
    }

    @Test(arguments: [1, 2, 3, 5])
    func test_subsets_thenAppend_giveBackTheSpans(ways: Int) throws {
        for batch in [try BatchFixtures.rich(), try Self.generated(spans: 2000, seed: 3)] {
            let parts = Self.parts(batch, ways) { Self.destination($0, ways) }
            #expect(parts.count == ways)
            var rejoined = SpanBatch()
            for (d, part) in parts.enumerated() {
                Self.expectSelfContained(part)
                // Every row went where the function said, in the original order.
                #expect((0..<part.spanCount).allSatisfy { Self.destination(part.traceID($0), ways) == d })
                let expected = (0..<batch.spanCount).filter { Self.destination(batch.traceID($0), ways) == d }.map { batch.spanID[$0] }
                #expect(part.spanID == expected)
                rejoined.append(part)
            }
            #expect(BatchFixtures.describeSpans(rejoined).sorted() == BatchFixtures.describeSpans(batch).sorted())
        }
    }

    @Test func test_subset_ofRichBatch_dropsWhatAPartDoesNotUse() throws {
        let batch = try BatchFixtures.rich()
        // Destination by trace: trace 0 → 0, trace 1 → 1, trace 2 → 2.
        let traces = Array(Set((0..<batch.spanCount).map(batch.traceID))).sorted()
        let parts = Self.parts(batch, 3) { traces.firstIndex(of: $0)! }
        #expect(parts.map(\.spanCount) == [2, 2, 2])
        // Trace 1 ("embed", "charge") has no events, links or span attributes.
        #expect(parts[1].eventTime.isEmpty && parts[1].linkSpanID.isEmpty && parts[1].attrs.count == 0)
        #expect(parts[1].strings.lookup("upstream timeout") == nil)
        #expect(parts[0].strings.lookup("upstream timeout") != nil)
        #expect(parts.allSatisfy { $0.strings.count < batch.strings.count })
    }

    @Test func test_subsets_ofEmptyBatch_areEmpty() {
        let parts = Self.parts(SpanBatch(), 4) { _ in 0 }
        #expect(parts.count == 4 && parts.allSatisfy { $0.spanCount == 0 && $0.resourceCount == 0 })
    }
}
