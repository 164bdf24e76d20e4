import Synchronization
import WeftModel
import WeftStorageEngine

/// Distinct values of one field over head and blocks (all of the time range, not a sample), for tag
/// value autocompletion: the same scan units and plans as aggregation, each row group contributing
/// its distinct codes; the scan stops once `limit` values are known.
public enum DistinctValues {
    public static func values(
        of field: TraceQLField, filter: TraceQLFilter = .all, startNanos: UInt64 = 0, endNanos: UInt64 = .max, limit: Int,
        snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits = AggregationLimits()
    ) throws -> (values: [GroupValue], stats: ScanStats) {
        let query = AggregationQuery(filter: filter, groupBy: [field], aggregates: [.count], startNanos: startNanos, endNanos: endNanos)
        if let problem = query.problem { throw AggregationError.invalid(problem) }
        let context = HeadTraceContext.needed(query) ? HeadTraceContext(snapshot.chunks) : nil
        let found = Mutex(Set<GroupValue>())
        struct State: @unchecked Sendable {
            var worker: Worker
            var stats = ScanStats()
        }
        let (states, stats) = try ScanRunner.run(
            startNanos: startNanos, endNanos: endNanos, snapshot: snapshot, store: store, limits: limits,
            make: { State(worker: Worker(query: query, limits: limits)) },
            scan: { state, unit, reader in
                if found.withLock({ $0.count >= limit }) { return }
                let (chunk, plan, inside): (ChunkColumns, Worker.SourcePlan, Bool)
                switch unit {
                case .head(let c): (chunk, plan, inside) = try state.worker.open(snapshot.chunks[c], context, &state.stats)
                case .group(let b, let g): (chunk, plan, inside) = try state.worker.open(snapshot.blocks[b], reader!, g, store, &state.stats)
                }
                let rows = try state.worker.select(chunk, plan, allInRange: inside)
                var values: [GroupValue] = []
                for code in Set(try state.worker.codes(field: 0, rows, chunk, plan)) {
                    let v = try state.worker.value(0, code, plan)
                    if v != .absent { values.append(v) }
                }
                found.withLock { set in
                    for v in values where set.count < limit { set.insert(v) }
                }
            }
        )
        var total = stats
        for s in states { total.add(s.stats) }
        return (found.withLock { $0 }.sorted(), total)
    }
}
