import WeftStorageEngine

extension AggregationExecutor {
    /// The series of a TraceQL metrics query and what was scanned. When `topk`/`bottomk` ranks groups by
    /// a total that one figure over the whole range gives in the same order (`rate`, `count_over_time`,
    /// `sum_over_time`), the series limit applies to the groups kept, not to all groups: if there are
    /// more than `limits.maxSeries`, a first pass totals every group over the whole range (one cell per
    /// group, bounded by the memory budget only) to choose the k groups, and a second computes their
    /// series alone.
    public static func series(
        _ query: AggregationQuery, metrics: TraceQLMetrics?, limit: TraceQLLimit?, snapshot: StorageEngine.Snapshot, store: BlockStore,
        limits: AggregationLimits = AggregationLimits()
    ) throws -> (series: [AggregationSeries], stats: ScanStats) {
        do {
            let partial = try self.partial(query, snapshot: snapshot, store: store, limits: limits)
            return (try partial.series(query, metrics: metrics, limit: limit, checking: limits), partial.stats)
        } catch AggregationError.tooManySeries(let maxSeries) {
            guard let limit, limit.count <= maxSeries, Self.totalsRankGroups(metrics) else { throw AggregationError.tooManySeries(limit: maxSeries) }
            var totals = query
            totals.stepNanos = nil
            var unbounded = limits
            unbounded.maxSeries = .max
            let ranked = try self.partial(totals, snapshot: snapshot, store: store, limits: unbounded)
            let keys = ranked.rows(totals, orderBy: 0, descending: !limit.bottom, limit: limit.count).map(\.key)
            var chosen = try self.partial(query, snapshot: snapshot, store: store, limits: limits, start: .closed(query, to: keys))
            // Spans, bytes and row groups count both passes; blocks are the same ones.
            let blocks = chosen.stats.blocks
            chosen.stats.add(ranked.stats)
            chosen.stats.blocks = blocks
            return (try chosen.series(query, metrics: metrics, limit: limit, checking: limits), chosen.stats)
        }
    }

    /// Whether a series' total (the sum of its samples) orders groups as their whole-range aggregate does.
    static func totalsRankGroups(_ metrics: TraceQLMetrics?) -> Bool {
        switch metrics?.function {
        case .rate, .countOverTime, .sumOverTime: return true
        default: return false
        }
    }
}
