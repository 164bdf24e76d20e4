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
}

/// Every span the head holds, by partition, and when each trace was first and last written to.
///
/// It makes head writes idempotent (a span already held is dropped, whichever stripe holds it) and
/// tells which traces have gone idle. Sharded by trace ID, each shard under its own lock, so writers
/// on different threads rarely meet; a batch takes each shard's lock at most once.
final class SpanRegistry: Sendable {
    /// One trace of one partition in the head.
    struct Activity {
        /// Head clock readings of the trace's first and latest write.
        var first: UInt64
        var last: UInt64
        /// Rows of the trace the head holds.
        var held = 0
        /// Span IDs written since the trace entered the head (a set once there are many).
        var spanIDs: [UInt64] = []
        var spanSet: Set<UInt64>? = nil
        /// The ``SpanRegistry/register(_:in:now:)`` call that brought the trace into the head (so
        /// every run of a new trace in that batch is reported as fresh).
        var arrival: UInt64 = 0
        /// Some of the trace's spans left the head for blocks (cut, or dropped as already there):
        /// its new rows are checked against the blocks too.
        var inBlocks = false

        /// Adds a span ID; false if the trace already had it.
        mutating func insert(_ id: UInt64) -> Bool {
            if self.spanSet == nil {
                if self.spanIDs.contains(id) { return false }
                self.spanIDs.append(id)
                if self.spanIDs.count > 32 { self.spanSet = Set(self.spanIDs) }
                return true
            }
            return self.spanSet!.insert(id).inserted
        }

        /// Forgets a span ID.
        mutating func remove(_ id: UInt64) {
            if self.spanSet != nil {
                self.spanSet!.remove(id)
            } else if let i = self.spanIDs.firstIndex(of: id) {
                self.spanIDs.remove(at: i)
            }
        }
    }

    private final class Shard: Sendable {
        let tables = Mutex<[PartitionKey: [TraceID: Activity]]>([:])
    }

    private static let shardBits = 4
    private let shards: [Shard] = (0..<(1 << SpanRegistry.shardBits)).map { _ in Shard() }

    private static func shard(_ high: UInt64, _ low: UInt64) -> Int {
        Int(truncatingIfNeeded: (high ^ low) >> 3) & ((1 << Self.shardBits) - 1)
    }

    /// Row indices of `batch` grouped by shard, in row order within a shard (one counting sort).
    private func rowsByShard(_ batch: SpanBatch) -> (order: [Int32], bounds: [Int]) {
        let n = self.shards.count
        var shardOf = [UInt8](repeating: 0, count: batch.spanCount)
        var bounds = [Int](repeating: 0, count: n + 1)
        for row in 0..<batch.spanCount {
            let s = Self.shard(batch.traceHigh[row], batch.traceLow[row])
            shardOf[row] = UInt8(s)
            bounds[s + 1] += 1
        }
        for s in 0..<n { bounds[s + 1] += bounds[s] }
        var next = bounds
        var order = [Int32](repeating: 0, count: batch.spanCount)
        for row in 0..<batch.spanCount {
            let s = Int(shardOf[row])
            order[next[s]] = Int32(row)
            next[s] += 1
        }
        return (order, bounds)
    }

    /// Runs `body` once per run of consecutive rows of one trace (within a shard), with the trace's
    /// entry (nil if new; set it to nil to forget the trace): one lookup per run, not per row.
    private func forEachRun(_ batch: SpanBatch, _ key: PartitionKey, _ body: (inout Activity?, ArraySlice<Int32>) -> Void) {
        let (order, bounds) = self.rowsByShard(batch)
        for s in self.shards.indices where bounds[s] < bounds[s + 1] {
            self.shards[s].tables.withLock { tables in
                var traces = tables.removeValue(forKey: key) ?? [:]
                var i = bounds[s]
                while i < bounds[s + 1] {
                    let high = batch.traceHigh[Int(order[i])]
                    let low = batch.traceLow[Int(order[i])]
                    var end = i + 1
                    while end < bounds[s + 1], batch.traceLow[Int(order[end])] == low, batch.traceHigh[Int(order[end])] == high { end += 1 }
                    body(&traces[TraceID(high: high, low: low)], order[i..<end])
                    i = end
                }
                if !traces.isEmpty { tables[key] = traces }
            }
        }
    }

    /// Numbers ``register(_:in:now:)`` calls, so a trace's first call is known in its later runs.
    private let calls = Atomic<UInt64>(1)

    /// What ``register(_:in:now:)`` found.
    struct Registration {
        /// Which rows the trace already had (nil when none), so the caller keeps only the others.
        var duplicate: [Bool]?
        /// Rows (not duplicates) of traces the head did not hold before this call, or whose other
        /// spans went to blocks: blocks may already hold them.
        var fresh: [Int32]
    }

    /// Records the batch's spans as held at `now`.
    func register(_ batch: SpanBatch, in key: PartitionKey, now: UInt64) -> Registration {
        var duplicate: [Bool]? = nil
        var fresh: [Int32] = []
        let call = self.calls.wrappingAdd(1, ordering: .relaxed).oldValue
        self.forEachRun(batch, key) { entry, rows in
            var activity = entry.take() ?? Activity(first: now, last: now, arrival: call)
            let isFresh = activity.arrival == call || activity.inBlocks
            for row in rows {
                guard activity.insert(batch.spanID[Int(row)]) else {
                    if duplicate == nil { duplicate = [Bool](repeating: false, count: batch.spanCount) }
                    duplicate![Int(row)] = true
                    continue
                }
                if isFresh { fresh.append(row) }
                activity.last = now
                activity.held += 1
            }
            entry = activity.held > 0 ? activity : nil
        }
        return Registration(duplicate: duplicate, fresh: fresh)
    }

    /// Notes that the batch's rows left the head: their span IDs are forgotten (so the head drops
    /// only spans it holds, as WAL replay does), and a trace with no rows left altogether.
    func release(_ batch: SpanBatch, in key: PartitionKey) {
        self.forEachRun(batch, key) { entry, rows in
            guard entry != nil else { return }
            entry!.held -= rows.count
            if entry!.held <= 0 {
                entry = nil
                return
            }
            for row in rows { entry!.remove(batch.spanID[Int(row)]) }
            entry!.inBlocks = true
        }
    }

    /// Notes that blocks hold spans of these traces, so their later rows are checked against them.
    func markInBlocks(_ traces: [TraceID], in key: PartitionKey) {
        for trace in traces {
            self.shards[Self.shard(trace.high, trace.low)].tables.withLock { tables in
                tables[key]?[trace]?.inBlocks = true
            }
        }
    }

    /// Traces last written before `idleBefore` or first written before `startedBefore`, by
    /// partition, and the rows they hold.
    func traces(idleBefore: UInt64, startedBefore: UInt64) -> (traces: [PartitionKey: Set<TraceID>], spans: Int) {
        var out: [PartitionKey: Set<TraceID>] = [:]
        var spans = 0
        for shard in self.shards {
            shard.tables.withLock { tables in
                for (key, traces) in tables {
                    for (trace, activity) in traces where activity.last < idleBefore || activity.first < startedBefore {
                        out[key, default: []].insert(trace)
                        spans += activity.held
                    }
                }
            }
        }
        return (out, spans)
    }
}
