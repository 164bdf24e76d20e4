import Synchronization
import WeftModel

/// The traces of the blocks this engine wrote since it started (cut from the head, or compacted
/// from such blocks only), in a few filters per partition. Ingest checks every new trace against the
/// recent blocks of its partition for spans resent after their trace was cut; a trace no filter has
/// seen is in none of the blocks they cover, so a check per filter replaces one per block. Blocks
/// it does not cover (opened at start, or whose filter was dropped) are asked one by one as before.
///
/// A block's traces enter a filter before the block enters the catalog, so a block a check sees
/// covered has all its traces in the filters named for it. A full filter is followed by a new one
/// (twice as large, up to a bound); a filter no covered block names any more is dropped, and so is
/// the oldest when there are too many (its blocks are then asked one by one, which is only slower).
final class CutTraceIndex: Sendable {
    struct Filter {
        var id: Int
        var filter: BlockTraceFilter
        var capacity: Int
        var traces = 0
    }

    struct Entry {
        var filters: [Filter] = []
        var nextID = 0
        /// Covered block → the filters holding its traces.
        var covered: [UInt64: Set<Int>] = [:]

        /// Drops the filters no covered block names (but the newest, still filling).
        mutating func dropUnused() {
            let named = self.covered.values.reduce(into: Set<Int>()) { $0.formUnion($1) }
            let newest = self.filters.last?.id
            self.filters.removeAll { $0.id != newest && !named.contains($0.id) }
        }
    }

    private let state = Mutex<[PartitionKey: Entry]>([:])
    let initialCapacity: Int
    let maxCapacity: Int
    let maxFilters: Int

    /// - Parameters:
    ///   - initialCapacity: traces a partition's first filter holds.
    ///   - maxCapacity: traces a filter holds at most (10 to 20 bits each).
    ///   - maxFilters: filters per partition at most.
    init(initialCapacity: Int = 1 << 16, maxCapacity: Int = 1 << 22, maxFilters: Int = 8) {
        self.initialCapacity = max(1, initialCapacity)
        self.maxCapacity = max(self.initialCapacity, maxCapacity)
        self.maxFilters = max(1, maxFilters)
    }

    /// Adds block `id`'s traces (`traces`, each once) to its partition's newest filter (a new one
    /// when it is full) and marks the block covered. A block larger than the largest filter is not.
    func add(block id: UInt64, of partition: PartitionKey, traces: some Collection<TraceID>) {
        guard traces.count <= self.maxCapacity else { return }
        self.state.withLock { all in
            var entry = all[partition] ?? Entry()
            if entry.filters.last.map({ $0.traces + traces.count > $0.capacity }) ?? true {
                let capacity = entry.filters.last.map { min(self.maxCapacity, $0.capacity * 2) } ?? self.initialCapacity
                entry.filters.append(Filter(id: entry.nextID, filter: BlockTraceFilter(traces: max(capacity, traces.count)), capacity: max(capacity, traces.count)))
                entry.nextID += 1
                if entry.filters.count > self.maxFilters {
                    let dropped = entry.filters.removeFirst().id
                    entry.covered = entry.covered.filter { !$0.value.contains(dropped) }
                }
            }
            let last = entry.filters.count - 1
            for t in traces { entry.filters[last].filter.insert(t) }
            entry.filters[last].traces += traces.count
            entry.covered[id] = [entry.filters[last].id]
            all[partition] = entry
        }
    }

    /// Marks a block compacted from `inputs` covered when every input is (its traces are theirs).
    func addCompacted(block id: UInt64, of partition: PartitionKey, inputs: [UInt64]) {
        self.state.withLock { all in
            guard var entry = all[partition] else { return }
            var filters = Set<Int>()
            for input in inputs {
                guard let named = entry.covered[input] else { return }
                filters.formUnion(named)
            }
            entry.covered[id] = filters
            all[partition] = entry
        }
    }

    /// Forgets blocks no longer in the catalog, and the filters only they named.
    func remove(blocks ids: Set<UInt64>, of partition: PartitionKey) {
        self.state.withLock { all in
            guard var entry = all[partition] else { return }
            for id in ids { entry.covered.removeValue(forKey: id) }
            entry.dropUnused()
            all[partition] = entry
        }
    }

    /// A partition's filters and covered blocks as they are now. Take it after reading the catalog:
    /// a block the catalog listed is then either covered here with its traces in the filters named
    /// for it, or not covered.
    func view(of partition: PartitionKey) -> View? {
        self.state.withLock { all in
            all[partition].flatMap { $0.covered.isEmpty ? nil : View(filters: $0.filters, covered: $0.covered) }
        }
    }

    struct View {
        let filters: [Filter]
        let covered: [UInt64: Set<Int>]

        /// The filters that may hold `trace`.
        func filters(mayHolding trace: TraceID) -> [Int] {
            var out: [Int] = []
            for f in self.filters where f.filter.mayContain(trace) { out.append(f.id) }
            return out
        }

        /// Whether block `id` may hold a trace that the filters `holding` may hold (true: ask the block).
        func mayHold(block id: UInt64, holding: [Int]) -> Bool {
            guard let named = self.covered[id] else { return true }
            return holding.contains { named.contains($0) }
        }
    }
}
