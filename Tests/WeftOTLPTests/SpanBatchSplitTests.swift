import Testing
import WeftLoad
import WeftModel
import WeftOTLP

struct SpanBatchSplitTests {
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
    func test_split_thenAppend_givesBackTheSpans(ways: Int) throws {
        for batch in [try BatchFixtures.rich(), try Self.generated(spans: 2000, seed: 3)] {
            let parts = batch.split(destinations: ways) { Self.destination($0, ways) }
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

    @Test func test_split_ofRichBatch_dropsWhatAPartDoesNotUse() throws {
        let batch = try BatchFixtures.rich()
        // Destination by trace: trace 0 → 0, trace 1 → 1, trace 2 → 2.
        let traces = Array(Set((0..<batch.spanCount).map(batch.traceID))).sorted()
        let parts = batch.split(destinations: 3) { traces.firstIndex(of: $0)! }
        #expect(parts.map(\.spanCount) == [2, 2, 2])
        // Trace 1 ("embed", "charge") has no events, links or span attributes.
        #expect(parts[1].eventTime.isEmpty && parts[1].linkSpanID.isEmpty && parts[1].attrs.count == 0)
        #expect(parts[1].strings.lookup("upstream timeout") == nil)
        #expect(parts[0].strings.lookup("upstream timeout") != nil)
        #expect(parts.allSatisfy { $0.strings.count < batch.strings.count })
    }

    @Test func test_split_ofEmptyBatch_givesEmptyParts() {
        let parts = SpanBatch().split(destinations: 4) { _ in 0 }
        #expect(parts.count == 4 && parts.allSatisfy { $0.spanCount == 0 && $0.resourceCount == 0 })
    }
}
