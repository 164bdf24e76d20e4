import Foundation
import Testing
import WeftQuery
import WeftStorageEngine
import WeftTestSupport

/// Partial aggregates: merge is exact, associative and commutative (merge(split(x)) == x for random
/// splits and merge orders), and the quantile sketch stays within its relative accuracy.
struct AggregateTests {
    /// Log-normal latencies in ns (median ~800 ms, long tail), some zeros and a few negatives.
    static func values(_ n: Int, seed: UInt64) -> [Double] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { i in
            if i % 97 == 0 { return 0 }
            let u1 = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-12)
            let u2 = Double(rng.next() >> 11) / Double(1 << 53)
            let normal = (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
            let v = exp(20.5 + 1.2 * normal)
            return i % 211 == 0 ? -v : v.rounded()
        }
    }

    /// Splits `values` at random points, builds a part per slice, and merges the parts in random order.
    static func splitAndMerge<P>(_ values: [Double], seed: UInt64, empty: P, add: (inout P, Double) -> Void, merge: (inout P, P) -> Void) -> P {
        var rng = SplitMix64(seed: seed)
        var cuts = (0..<Int(rng.next() % 12)).map { _ in Int(rng.next() % UInt64(values.count + 1)) }
        cuts.append(contentsOf: [0, values.count])
        cuts.sort()
        var parts: [P] = []
        for i in 0..<(cuts.count - 1) {
            var p = empty
            for v in values[cuts[i]..<cuts[i + 1]] { add(&p, v) }
            parts.append(p)
        }
        parts.shuffle(using: &rng)
        // Merge as a random tree: repeatedly merge two random neighbours.
        while parts.count > 1 {
            let i = Int(rng.next() % UInt64(parts.count - 1))
            var left = parts[i]
            merge(&left, parts[i + 1])
            parts.replaceSubrange(i...(i + 1), with: [left])
        }
        return parts[0]
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func test_sketch_mergeOfRandomSplits_equalsTheWhole(seed: UInt64) {
        let values = Self.values(20_000, seed: seed)
        var whole = QuantileSketch()
        for v in values { whole.add(v) }
        let merged = Self.splitAndMerge(values, seed: seed &+ 100, empty: QuantileSketch(), add: { $0.add($1) }, merge: { $0.merge($1) })
        #expect(merged == whole, "seed \(seed)")
        #expect(merged.count == UInt64(values.count))
        for q in [0.0, 0.5, 0.99, 1.0] { #expect(merged.quantile(q) == whole.quantile(q), "seed \(seed) q \(q)") }
    }

    @Test(arguments: [7, 8, 9] as [UInt64])
    func test_sketch_quantiles_areWithinOnePercentOfExact(seed: UInt64) {
        let values = Self.values(50_000, seed: seed)
        var sketch = QuantileSketch()
        for v in values { sketch.add(v) }
        let sorted = values.sorted()
        for q in [0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let exact = sorted[Int(QuantileSketch.rank(q, UInt64(sorted.count)))]
            let estimate = try! #require(sketch.quantile(q))
            let error = exact == 0 ? abs(estimate) : abs(estimate - exact) / abs(exact)
            #expect(error <= 0.01, "seed \(seed) q \(q): exact \(exact) estimate \(estimate)")
            // The bucket index uses an interpolated log2, exact to about 2e-7.
            #expect(error <= QuantileSketch.relativeAccuracy + 1e-6, "seed \(seed) q \(q): relative error \(error)")
        }
        #expect(QuantileSketch().quantile(0.5) == nil)
    }

    @Test func test_sketch_wireForm_roundTrips_andRejectsDamage() throws {
        var sketch = QuantileSketch()
        for v in Self.values(5_000, seed: 11) { sketch.add(v) }
        var w = ByteWriter()
        sketch.encode(into: &w)
        let bytes = w.bytes
        let decoded = try bytes.withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            return try QuantileSketch.decode(&r)
        }
        #expect(decoded == sketch)
        #expect(decoded.quantile(0.95) == sketch.quantile(0.95))
        // A changed count no longer matches the buckets.
        var damaged = bytes
        damaged[1] ^= 0x01
        #expect(throws: BlockFormatError.self) {
            try damaged.withUnsafeBytes { raw throws in
                var r = ByteReader(raw)
                _ = try QuantileSketch.decode(&r)
            }
        }
    }

    @Test(arguments: [21, 22, 23] as [UInt64])
    func test_heatmapAndSummary_mergeOfRandomSplits_equalsTheWhole(seed: UInt64) {
        let values = Self.values(10_000, seed: seed).map { UInt64(max(0, $0)) }
        let start: UInt64 = 1_764_460_800_000_000_000
        let times = values.indices.map { start + UInt64($0) * 8_640_000_000 }  // spread over 24 h
        let empty = (Heatmap(startNanos: start, stepNanos: 60_000_000_000, timeBuckets: 1440), NumericSummary())
        var whole = empty
        for (i, v) in values.enumerated() {
            whole.0.add(time: times[i], value: v)
            whole.1.add(Int64(v))
        }
        let indices = values.indices.map(Double.init)
        let merged = Self.splitAndMerge(indices, seed: seed, empty: empty, add: { p, i in
            p.0.add(time: times[Int(i)], value: values[Int(i)])
            p.1.add(Int64(values[Int(i)]))
        }, merge: { a, b in
            a.0.merge(b.0)
            a.1.merge(b.1)
        })
        #expect(merged.0 == whole.0)
        #expect(merged.1 == whole.1)
        #expect(whole.0.counts.reduce(0, +) == UInt64(values.count))
        #expect(whole.1.sum == values.reduce(Int128(0)) { $0 + Int128($1) })
    }

    @Test(arguments: [31, 32, 33] as [UInt64])
    func test_topK_boundsHoldAfterRandomSplitsAndMerges(seed: UInt64) {
        // Zipf-like keys: a few heavy, a long tail.
        var rng = SplitMix64(seed: seed)
        let keys = (0..<30_000).map { _ -> Int in
            let u = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-9)
            return Int(pow(u, -1.3)) % 5_000
        }
        var exact: [Int: UInt64] = [:]
        for k in keys { exact[k, default: 0] += 1 }
        let capacity = 64
        let merged = Self.splitAndMerge(keys.map(Double.init), seed: seed, empty: TopK<Int>(capacity: capacity), add: { $0.add(Int($1)) }, merge: { $0.merge($1) })
        #expect(merged.total == UInt64(keys.count))
        for e in merged.top(capacity) {
            let truth = exact[e.key] ?? 0
            #expect(truth <= e.estimate && e.estimate - e.error <= truth, "key \(e.key): true \(truth), estimate \(e.estimate) ± \(e.error)")
        }
        // Every key heavier than total/capacity is kept.
        let kept = Set(merged.top(capacity).map(\.key))
        for (k, c) in exact where c > merged.total / UInt64(capacity) { #expect(kept.contains(k), "heavy key \(k) (\(c)) dropped") }
    }
}
