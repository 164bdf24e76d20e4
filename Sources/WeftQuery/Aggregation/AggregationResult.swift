import WeftModel
import WeftStorageEngine

/// The finished value of one aggregate in one cell.
public enum AggregateValue: Sendable, Equatable {
    /// count, sum, avg, min, max (nil when no value was seen).
    case number(Double?)
    case quantiles([Double?])
    /// Non-empty log2 buckets as ``Heatmap/valueBucket(_:)`` numbers them.
    case histogram([(bucket: Int, count: UInt64)])

    public static func == (a: AggregateValue, b: AggregateValue) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)): return x == y
        case (.quantiles(let x), .quantiles(let y)): return x == y
        case (.histogram(let x), .histogram(let y)): return x.map(\.bucket) == y.map(\.bucket) && x.map(\.count) == y.map(\.count)
        default: return false
        }
    }

    /// A single number for ordering and for series samples (a histogram orders by its total).
    public var scalar: Double? {
        switch self {
        case .number(let v): return v
        case .quantiles(let qs): return qs.last ?? nil
        case .histogram(let buckets): return Double(buckets.reduce(0) { $0 + $1.count })
        }
    }
}

/// One row of an aggregation table: a group and its aggregates over the whole range.
public struct AggregationRow: Sendable, Equatable {
    public var key: [GroupValue]
    public var values: [AggregateValue]
}

/// A time series of one group (and, for quantiles, one quantile; for histograms, one bucket).
public struct AggregationSeries: Sendable {
    public var labels: [(key: String, value: GroupValue)]
    /// (step start in ns, value); steps without data are left out.
    public var samples: [(timeNanos: UInt64, value: Double)]
}

extension AggregationPartial {
    /// The finished value of aggregate `a` over `cells` (merged first when several).
    func value<Cells: Collection<Int>>(_ aggregate: Aggregate, _ a: Int, cells: Cells) -> AggregateValue { self.columns[a].value(aggregate, cells: cells) }
}

extension AggregateColumn {
    /// The finished value of `aggregate` (this column's) over `cells` (merged first when several).
    func value<Cells: Collection<Int>>(_ aggregate: Aggregate, cells: Cells) -> AggregateValue {
        switch aggregate {
        case .count:
            return .number(Double(cells.reduce(UInt64(0)) { $0 + self.counts[$1] }))
        case .sum, .avg, .min, .max:
            var s = ValueSummary()
            for c in cells { s.merge(self.summary(c)) }
            guard s.count > 0 else { return .number(nil) }
            switch aggregate {
            case .sum: return .number(s.sum)
            case .avg: return .number(s.mean)
            case .min: return .number(s.min)
            default: return .number(s.max)
            }
        case .quantiles(_, let qs):
            var sketch = QuantileSketch()
            for c in cells { sketch.merge(self.sketches[c]) }
            return .quantiles(qs.map { sketch.quantile($0) })
        case .histogram:
            let b = Heatmap.valueBuckets
            var counts = [UInt64](repeating: 0, count: b)
            for c in cells { for i in 0..<b { counts[i] += self.histograms[c * b + i] } }
            return .histogram(counts.enumerated().filter { $0.element > 0 }.map { ($0.offset, $0.element) })
        }
    }
}

extension AggregationPartial {

    /// One row per group over all steps, ordered by aggregate `orderBy` (nil: by key; ties by key), at
    /// most `limit`. Only the rows that make the cut are finished (the k-th best value is selected first).
    public func rows(_ query: AggregationQuery, orderBy: Int? = nil, descending: Bool = true, limit: Int = .max) -> [AggregationRow] {
        func cells(_ g: Int) -> Range<Int> { g * self.steps..<(g + 1) * self.steps }
        var chosen = Array(0..<self.groupCount)
        var scalars: [Double] = []
        if let o = orderBy {
            // The column is fetched once, not copied out of the array for every group.
            let (column, aggregate) = (self.columns[o], query.aggregates[o])
            scalars = chosen.map { g in column.value(aggregate, cells: cells(g)).scalar ?? -.infinity }
            if limit < self.groupCount {
                // Keep the groups at least as good as the limit-th best (ties included, settled by key below).
                let threshold = Self.select(scalars.map { descending ? -$0 : $0 }, limit - 1)
                chosen = chosen.filter { (descending ? -scalars[$0] : scalars[$0]) <= threshold }
            }
        }
        var rows = chosen.map { g in
            (g, AggregationRow(key: self.key(g), values: query.aggregates.enumerated().map { self.value($0.element, $0.offset, cells: cells(g)) }))
        }
        rows.sort { x, y in
            if orderBy != nil {
                let (a, b) = (scalars[x.0], scalars[y.0])
                if a != b { return descending ? a > b : a < b }
            }
            return x.1.key.lexicographicallyPrecedes(y.1.key)
        }
        return rows.prefix(max(0, limit)).map(\.1)
    }

    /// The k-th smallest value (0-based), by quickselect.
    static func select(_ values: [Double], _ k: Int) -> Double {
        var a = values
        var lo = 0, hi = a.count - 1
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        while lo < hi {
            state = state &* 6_364_136_223_846_793_005 &+ 1
            let pivot = a[lo + Int(state >> 33) % (hi - lo + 1)]
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return a[k] }
        }
        return a[k]
    }

    /// Series of a TraceQL metrics query: one per group (per quantile, per histogram bucket), each
    /// sample a step. `rate` divides counts by the step in seconds. `topk`/`bottomk` keep the series
    /// with the largest/smallest total. Checks `limits` (deadline, cancellation) group by group.
    public func series(
        _ query: AggregationQuery, metrics: TraceQLMetrics?, limit: TraceQLLimit?, checking limits: AggregationLimits? = nil
    ) throws -> [AggregationSeries] {
        let aggregate = query.aggregates[0]
        let names = query.groupBy.map(\.labelName)
        let stepSeconds = Double(query.stepNanos ?? max(1, query.endNanos - query.startNanos)) / 1e9
        let isRate = metrics?.function == .rate
        // One column, read cell by cell: no copy and no array per cell.
        let column = self.columns[0]
        var out: [AggregationSeries] = []
        for g in 0..<self.groupCount {
            try limits?.check()
            let key = self.key(g)
            let labels = Array(zip(names, key)).map { (key: $0.0, value: $0.1) }
            func time(_ s: Int) -> UInt64 { query.startNanos + UInt64(s) * (query.stepNanos ?? 0) }
            switch aggregate {
            case .quantiles(_, let qs):
                // Every quantile of a step from one pass over its sketch.
                var perQuantile = [[(UInt64, Double)]](repeating: [], count: qs.count)
                for s in 0..<self.steps {
                    let cell = g * self.steps + s
                    guard !column.isEmpty(cell), case .quantiles(let values) = column.value(aggregate, cells: CollectionOfOne(cell)) else { continue }
                    for (i, v) in values.enumerated() {
                        if let x = v { perQuantile[i].append((time(s), Self.scaled(aggregate, x))) }
                    }
                }
                for (i, q) in qs.enumerated() {
                    out.append(AggregationSeries(labels: labels + [(key: "p", value: .double(q))], samples: perQuantile[i]))
                }
            case .histogram:
                var perBucket: [Int: [(UInt64, Double)]] = [:]
                for s in 0..<self.steps {
                    let cell = g * self.steps + s
                    if column.isEmpty(cell) { continue }
                    if case .histogram(let buckets) = column.value(aggregate, cells: CollectionOfOne(cell)) {
                        for (b, c) in buckets { perBucket[b, default: []].append((time(s), Double(c))) }
                    }
                }
                for b in perBucket.keys.sorted() {
                    // The bucket's upper bound, in seconds for durations.
                    let upper = Self.scaled(aggregate, Heatmap.valueBucketUpperBound(b))
                    out.append(AggregationSeries(labels: labels + [(key: "__bucket", value: .double(upper))], samples: perBucket[b]!))
                }
            default:
                var samples: [(UInt64, Double)] = []
                for s in 0..<self.steps {
                    let cell = g * self.steps + s
                    if column.isEmpty(cell) { continue }
                    guard var v = column.value(aggregate, cells: CollectionOfOne(cell)).scalar else { continue }
                    if isRate { v /= stepSeconds }
                    v = Self.scaled(aggregate, v)
                    samples.append((time(s), v))
                }
                out.append(AggregationSeries(labels: labels, samples: samples))
            }
        }
        if let limit {
            func total(_ s: AggregationSeries) -> Double { s.samples.reduce(0) { $0 + $1.value } }
            out.sort { limit.bottom ? total($0) < total($1) : total($0) > total($1) }
            out = Array(out.prefix(limit.count))
        }
        return out
    }

    /// Durations are reported in seconds, as Tempo does; other values as they are.
    private static func scaled(_ aggregate: Aggregate, _ v: Double) -> Double {
        aggregate.field == .intrinsic(.duration) || aggregate.field == .intrinsic(.traceDuration) ? v / 1e9 : v
    }
}

extension TraceQLField {
    /// How the field is named in labels and columns (`resource.service.name`, `span.tenant_id`, `duration`).
    public var labelName: String {
        switch self {
        case .intrinsic(let i): return i.rawValue
        case .attribute(.any, let key): return "." + key
        case .attribute(let scope, let key): return scope.rawValue + "." + key
        }
    }
}
