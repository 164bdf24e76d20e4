/// Count, sum, min and max of a numeric series; merging is exact (integer sum) and order-free.
public struct NumericSummary: Sendable, Equatable {
    public private(set) var count: UInt64 = 0
    /// Exact for integer inputs (tokens, nanoseconds): a 128-bit sum cannot overflow here.
    public private(set) var sum: Int128 = 0
    public private(set) var min = Int64.max
    public private(set) var max = Int64.min

    public init() {}

    public mutating func add(_ v: Int64) {
        self.count += 1
        self.sum += Int128(v)
        if v < self.min { self.min = v }
        if v > self.max { self.max = v }
    }

    public mutating func merge(_ o: NumericSummary) {
        self.count += o.count
        self.sum += o.sum
        self.min = Swift.min(self.min, o.min)
        self.max = Swift.max(self.max, o.max)
    }

    public var mean: Double? { self.count == 0 ? nil : Double(self.sum) / Double(self.count) }
}

/// Counts per (time bucket, log2 value bucket): a latency heatmap. Bucket 0 holds 0; bucket b ≥ 1
/// holds values in (2^(b−2), 2^(b−1)], so its upper bound ``valueBucketUpperBound(_:)`` is 2^(b−1)
/// and an exact power of two counts in its own bucket, as Tempo's `histogram_over_time` does.
/// Merging adds counts, so it is exact.
public struct Heatmap: Sendable, Equatable {
    public static let valueBuckets = 65
    public let startNanos: UInt64
    public let stepNanos: UInt64
    public let timeBuckets: Int
    public private(set) var counts: [UInt64]

    public init(startNanos: UInt64, stepNanos: UInt64, timeBuckets: Int) {
        precondition(stepNanos > 0 && timeBuckets > 0)
        self.startNanos = startNanos
        self.stepNanos = stepNanos
        self.timeBuckets = timeBuckets
        self.counts = [UInt64](repeating: 0, count: timeBuckets * Self.valueBuckets)
    }

    /// The bucket of `v`: 0 for 0, else ⌈log2 v⌉ + 1 (values above 2^63 share the top bucket).
    @inlinable @inline(__always) public static func valueBucket(_ v: UInt64) -> Int {
        v == 0 ? 0 : Swift.min(65 - (v &- 1).leadingZeroBitCount, valueBuckets - 1)
    }

    /// The largest value bucket `b` holds: 0 for bucket 0, else 2^(b−1).
    public static func valueBucketUpperBound(_ b: Int) -> Double { b == 0 ? 0 : Double(sign: .plus, exponent: b - 1, significand: 1) }

    /// Adds a value observed at `time`; values outside the time range are ignored (returns false).
    @discardableResult
    public mutating func add(time: UInt64, value: UInt64) -> Bool {
        guard time >= self.startNanos else { return false }
        let t = Int((time - self.startNanos) / self.stepNanos)
        guard t < self.timeBuckets else { return false }
        self.counts[t * Self.valueBuckets + Self.valueBucket(value)] += 1
        return true
    }

    public func count(timeBucket t: Int, valueBucket b: Int) -> UInt64 { self.counts[t * Self.valueBuckets + b] }

    /// Adds `other`, which must have the same shape.
    public mutating func merge(_ other: Heatmap) {
        precondition(other.startNanos == self.startNanos && other.stepNanos == self.stepNanos && other.timeBuckets == self.timeBuckets, "heatmaps of different shapes")
        self.counts.withUnsafeMutableBufferPointer { a in
            other.counts.withUnsafeBufferPointer { b in
                for i in a.indices { a[i] &+= b[i] }
            }
        }
    }
}

/// The heaviest keys of a stream with error bounds (Space-Saving, mergeable as in Agarwal et al.,
/// "Mergeable Summaries"): every key's true weight lies in [estimate − error, estimate], and any key
/// heavier than total/capacity is kept.
public struct TopK<Key: Hashable & Sendable>: Sendable {
    public struct Entry: Sendable {
        public var key: Key
        public var estimate: UInt64
        public var error: UInt64
    }

    public let capacity: Int
    private var entries: [Key: (estimate: UInt64, error: UInt64)] = [:]
    public private(set) var total: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public mutating func add(_ key: Key, weight: UInt64 = 1) {
        self.total += weight
        if let e = self.entries[key] {
            self.entries[key] = (e.estimate + weight, e.error)
        } else if self.entries.count < self.capacity {
            self.entries[key] = (weight, 0)
        } else {
            // Replace the lightest: it may have had up to its estimate before.
            let (minKey, minValue) = self.entries.min { $0.value.estimate < $1.value.estimate }!
            self.entries.removeValue(forKey: minKey)
            self.entries[key] = (minValue.estimate + weight, minValue.estimate)
        }
    }

    /// Merges another summary: weights add; then only the `capacity` heaviest are kept, and the
    /// (capacity+1)-th weight is subtracted into everyone's bounds (the standard mergeable reduction).
    public mutating func merge(_ other: TopK<Key>) {
        let floorSelf = self.entries.count < self.capacity ? 0 : (self.entries.values.map(\.estimate).min() ?? 0)
        let floorOther = other.entries.count < other.capacity ? 0 : (other.entries.values.map(\.estimate).min() ?? 0)
        var combined: [Key: (estimate: UInt64, error: UInt64)] = [:]
        for (k, e) in self.entries {
            let o = other.entries[k]
            combined[k] = (e.estimate + (o?.estimate ?? floorOther), e.error + (o?.error ?? floorOther))
        }
        for (k, o) in other.entries where combined[k] == nil {
            combined[k] = (o.estimate + floorSelf, o.error + floorSelf)
        }
        self.total += other.total
        let sorted = combined.sorted { $0.value.estimate > $1.value.estimate }
        self.entries = Dictionary(uniqueKeysWithValues: sorted.prefix(self.capacity).map { ($0.key, $0.value) })
    }

    /// The heaviest `n`, heaviest first.
    public func top(_ n: Int) -> [Entry] {
        self.entries.map { Entry(key: $0.key, estimate: $0.value.estimate, error: $0.value.error) }
            .sorted { $0.estimate != $1.estimate ? $0.estimate > $1.estimate : "\($0.key)" < "\($1.key)" }
            .prefix(n).map { $0 }
    }
}
