import Testing
import WeftModel
@testable import WeftQuery
import WeftStorageEngine

/// One heatmap bucket definition everywhere: an exact power of two counts in its own bucket (Tempo's
/// `histogram_over_time` convention), whether its span is read from the head or from blocks.
struct HeatmapBucketTests {
    static let base = AggregationTests.base
    static let minute = AggregationTests.minute

    @Test func test_valueBucket_putsPowersOfTwoInTheirOwnBucket() {
        #expect(Heatmap.valueBucket(0) == 0)
        #expect(Heatmap.valueBucketUpperBound(0) == 0)
        for k in 0..<63 {
            let p = UInt64(1) << UInt64(k)
            #expect(Heatmap.valueBucketUpperBound(Heatmap.valueBucket(p)) == Double(p), "2^\(k)")
            if p > 2 {
                #expect(Heatmap.valueBucketUpperBound(Heatmap.valueBucket(p - 1)) == Double(p), "2^\(k) - 1")
            }
            #expect(Heatmap.valueBucketUpperBound(Heatmap.valueBucket(p + 1)) == Double(p) * 2, "2^\(k) + 1")
        }
        #expect(Heatmap.valueBucket(.max) == Heatmap.valueBuckets - 1)
    }

    /// Generated traffic whose durations sit at, just below and just above powers of two and whose
    /// starts sit on and just before minute edges.
    static func edgeTraffic() -> [SpanBatch] {
        AggregationTests.traffic(seed: 41).enumerated().map { i, batch in
            var b = batch
            for row in 0..<b.spanCount {
                let k = UInt64(row * 7 % 40)
                let power = UInt64(1) << k
                let duration = [power, power > 1 ? power - 1 : power, power + 1][row % 3]
                if row % 5 == 0 { b.startTime[row] = Self.base + UInt64(i) * Self.minute }
                if row % 5 == 1 && i > 0 { b.startTime[row] = Self.base + UInt64(i) * Self.minute - 1 }
                b.endTime[row] = b.startTime[row] + duration
            }
            return b
        }
    }

    @Test func test_histogramOverTime_headAndBlocksAgreeWithTempoBuckets() throws {
        let batches = Self.edgeTraffic()
        let (head, mixed) = try AggregationTests.engines(batches)
        let query = AggregationQuery(aggregates: [.histogram(.intrinsic(.duration))], startNanos: Self.base, endNanos: Self.base + 8 * Self.minute, stepNanos: Self.minute)
        func cells(_ engine: StorageEngine) throws -> [String: Double] {
            let partial = try AggregationExecutor.partial(query, snapshot: engine.snapshot(org: "o"), store: engine.store)
            var out: [String: Double] = [:]
            for series in try partial.series(query, metrics: nil, limit: nil) {
                guard case .double(let upper) = series.labels.last?.value else { continue }
                for (time, count) in series.samples { out["\(time) \(upper)"] = count }
            }
            return out
        }
        // The reference: the minute of the start and the least power of two at or above the duration, in seconds.
        var expected: [String: Double] = [:]
        for b in batches {
            for row in 0..<b.spanCount where b.startTime[row] >= query.startNanos && b.startTime[row] < query.endNanos {
                let d = b.endTime[row] - b.startTime[row]
                var upper: UInt64 = 1
                while upper < d { upper <<= 1 }
                let minuteStart = Self.base + (b.startTime[row] - Self.base) / Self.minute * Self.minute
                expected["\(minuteStart) \(Double(upper) / 1e9)", default: 0] += 1
            }
        }
        let fromHead = try cells(head)
        let fromMixed = try cells(mixed)
        #expect(fromHead == fromMixed)
        #expect(fromHead == expected)
        #expect(expected.count > 100)
    }
}
