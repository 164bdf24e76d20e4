import Synchronization
import WeftModel

/// The org and placement a head row belongs to: the head and blocks are keyed by both.
public struct PartitionKey: Hashable, Sendable, Comparable {
    public var org: String
    public var placement: String

    public init(org: String, placement: String) {
        self.org = org
        self.placement = placement
    }

    public static func < (a: PartitionKey, b: PartitionKey) -> Bool { (a.org, a.placement) < (b.org, b.placement) }
}

/// A span's identity inside one partition.
struct SpanKey: Hashable {
    var traceHigh: UInt64
    var traceLow: UInt64
    var spanID: UInt64

    init(_ batch: SpanBatch, row: Int) {
        self.traceHigh = batch.traceHigh[row]
        self.traceLow = batch.traceLow[row]
        self.spanID = batch.spanID[row]
    }

    var traceID: TraceID { TraceID(high: self.traceHigh, low: self.traceLow) }
}

/// Every span the head holds, by partition, and when each trace was first and last written to.
///
/// It makes head writes idempotent (a span already held is dropped, whichever stripe holds it) and
/// tells which traces have gone idle. Sharded by trace ID, each shard under its own lock, so writers
/// on different threads rarely meet; a batch takes each shard's lock at most once.
final class SpanRegistry: Sendable {
    struct Activity {
        /// Head clock readings of the trace's first and latest write.
        var first: UInt64
        var last: UInt64
        /// Spans of the trace held.
        var spans: Int
    }

    struct Table {
        var spans = Set<SpanKey>()
        var traces: [TraceID: Activity] = [:]
    }

    private final class Shard: Sendable {
        let tables = Mutex<[PartitionKey: Table]>([:])
    }

    private static let shardBits = 4
    private let shards: [Shard] = (0..<(1 << SpanRegistry.shardBits)).map { _ in Shard() }

    private static func shard(_ high: UInt64, _ low: UInt64) -> Int {
        Int(truncatingIfNeeded: (high ^ low) >> 3) & ((1 << Self.shardBits) - 1)
    }

    /// Row indices of `batch` grouped by shard (one counting sort, no per-shard arrays).
    private func rowsByShard(_ batch: SpanBatch, _ rows: some Collection<Int>) -> (order: [Int32], bounds: [Int]) {
        let n = self.shards.count
        var shardOf = [UInt8](repeating: 0, count: batch.spanCount)
        var bounds = [Int](repeating: 0, count: n + 1)
        for row in rows {
            let s = Self.shard(batch.traceHigh[row], batch.traceLow[row])
            shardOf[row] = UInt8(s)
            bounds[s + 1] += 1
        }
        for s in 0..<n { bounds[s + 1] += bounds[s] }
        var next = bounds
        var order = [Int32](repeating: 0, count: rows.count)
        for row in rows {
            let s = Int(shardOf[row])
            order[next[s]] = Int32(row)
            next[s] += 1
        }
        return (order, bounds)
    }

    /// Records the batch's spans as held at `now`; returns which rows were already held (nil when
    /// none was), so the caller keeps only the others.
    func register(_ batch: SpanBatch, in key: PartitionKey, now: UInt64) -> [Bool]? {
        let (order, bounds) = self.rowsByShard(batch, 0..<batch.spanCount)
        var duplicate: [Bool]? = nil
        for s in self.shards.indices where bounds[s] < bounds[s + 1] {
            self.shards[s].tables.withLock { tables in
                var table = tables.removeValue(forKey: key) ?? Table()
                for i in bounds[s]..<bounds[s + 1] {
                    let row = Int(order[i])
                    let span = SpanKey(batch, row: row)
                    guard table.spans.insert(span).inserted else {
                        if duplicate == nil { duplicate = [Bool](repeating: false, count: batch.spanCount) }
                        duplicate![row] = true
                        continue
                    }
                    let trace = span.traceID
                    if var activity = table.traces[trace] {
                        activity.last = now
                        activity.spans += 1
                        table.traces[trace] = activity
                    } else {
                        table.traces[trace] = Activity(first: now, last: now, spans: 1)
                    }
                }
                tables[key] = table
            }
        }
        return duplicate
    }

    /// Forgets spans that left the head (their rows, given as `rows` of `batch`).
    func release(_ batch: SpanBatch, in key: PartitionKey) {
        let (order, bounds) = self.rowsByShard(batch, 0..<batch.spanCount)
        for s in self.shards.indices where bounds[s] < bounds[s + 1] {
            self.shards[s].tables.withLock { tables in
                guard var table = tables.removeValue(forKey: key) else { return }
                for i in bounds[s]..<bounds[s + 1] {
                    let span = SpanKey(batch, row: Int(order[i]))
                    guard table.spans.remove(span) != nil else { continue }
                    let trace = span.traceID
                    if var activity = table.traces[trace], activity.spans > 1 {
                        activity.spans -= 1
                        table.traces[trace] = activity
                    } else {
                        table.traces.removeValue(forKey: trace)
                    }
                }
                if !table.spans.isEmpty { tables[key] = table }
            }
        }
    }

    /// Traces last written before `idleBefore` or first written before `startedBefore`, by
    /// partition, and the spans they hold.
    func traces(idleBefore: UInt64, startedBefore: UInt64) -> (traces: [PartitionKey: Set<TraceID>], spans: Int) {
        var out: [PartitionKey: Set<TraceID>] = [:]
        var spans = 0
        for shard in self.shards {
            shard.tables.withLock { tables in
                for (key, table) in tables {
                    for (trace, activity) in table.traces where activity.last < idleBefore || activity.first < startedBefore {
                        out[key, default: []].insert(trace)
                        spans += activity.spans
                    }
                }
            }
        }
        return (out, spans)
    }
}
