import Testing
import WeftModel
import WeftOTLP
import WeftQuery
import WeftStorageEngine
import WeftTestSupport

/// `topk`/`bottomk` over more groups than the series limit: the limit applies to the groups kept.
struct TopKSeriesTests {
    static let base: UInt64 = 1_700_000_000_000_000_000

    /// 40 tenants; tenant k has k + 1 spans of k ms each, spread over 10 minutes; half in blocks.
    static func engine() throws -> StorageEngine {
        var spans: [TestSpan] = []
        for k in 0..<40 {
            for j in 0...k {
                let start = Self.base + UInt64(j % 10) * 60_000_000_000 + UInt64(k)
                spans.append(TestSpan(
                    traceID: TraceID(high: UInt64(k + 1), low: UInt64(j + 1)), spanID: UInt64(k * 100 + j + 1), name: "call",
                    start: start, end: start + UInt64(k) * 1_000_000, attributes: [("tenant_id", .string("t\(k)")), ("cost", .double(Double(40 - k)))]
                ))
            }
        }
        let engine = StorageEngine(
            head: Head(configuration: .init(chunkSpans: 256)), store: BlockStore(disk: SimulatedDisk(), directory: "/b"),
            configuration: .init(blockOptions: .init(zstdLevel: 3, groupSpans: 64))
        )
        var decoder = OTLPProtobufDecoder()
        for (i, half) in [spans.filter { $0.spanID % 2 == 0 }, spans.filter { $0.spanID % 2 == 1 }].enumerated() {
            var batch = SpanBatch()
            let bytes = RequestBuilder.request([("svc", half)])
            _ = try bytes.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            engine.head.append(batch, org: "o", segment: i + 1)
        }
        try engine.flush(segment: 1)
        return engine
    }

    static func run(_ q: String, maxSeries: Int, _ engine: StorageEngine) throws -> [AggregationSeries] {
        let query = try TraceQLQuery(parsing: q)
        let aggregation = AggregationQuery(query, startNanos: Self.base, endNanos: Self.base + 600_000_000_000, stepNanos: 60_000_000_000)
        let limits = AggregationLimits(maxSeries: maxSeries)
        return try AggregationExecutor.series(
            aggregation, metrics: query.metrics, limit: query.limit, snapshot: engine.snapshot(org: "o"), store: engine.store, limits: limits
        ).series
    }

    static func described(_ series: [AggregationSeries]) -> [String] {
        series.map { s in "\(s.labels.map { "\($0.value)" }.joined()) \(s.samples.map { "\($0.timeNanos / 60_000_000_000 % 1000):\($0.value)" })" }
    }

    @Test func topkAndBottomkAboveTheSeriesLimitEqualTheUnlimitedAnswer() throws {
        let engine = try Self.engine()
        for q in [
            "{ } | count_over_time() by (span.tenant_id) | topk(3)",
            "{ } | rate() by (span.tenant_id) | bottomk(4)",
            "{ } | sum_over_time(span.cost) by (span.tenant_id) | topk(5)",
        ] {
            let expected = try Self.run(q, maxSeries: 1000, engine)
            let limited = try Self.run(q, maxSeries: 10, engine)
            #expect(Self.described(limited) == Self.described(expected), "\(q)")
            #expect(!limited.isEmpty)
        }
        let top = try Self.run("{ } | count_over_time() by (span.tenant_id) | topk(3)", maxSeries: 10, engine)
        #expect(top.map { "\($0.labels[0].value)" } == ["t39", "t38", "t37"])
    }

    @Test func whatTotalsCannotRankStillHitsTheLimit() throws {
        let engine = try Self.engine()
        for q in [
            "{ } | avg_over_time(duration) by (span.tenant_id) | topk(3)",
            "{ } | count_over_time() by (span.tenant_id)",
            "{ } | count_over_time() by (span.tenant_id) | topk(11)",
        ] {
            #expect(throws: AggregationError.tooManySeries(limit: 10), "\(q)") { try Self.run(q, maxSeries: 10, engine) }
        }
    }
}
