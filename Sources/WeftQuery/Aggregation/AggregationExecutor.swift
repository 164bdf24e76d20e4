import Synchronization
import WeftModel
import WeftStorageEngine

/// Why an aggregation stopped early.
public enum AggregationError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String)
    case tooManySeries(limit: Int)
    case timeout(seconds: Double)
    /// The query's state would need more than the memory budget.
    case tooMuchMemory(String)
    /// The answer is no longer wanted (``QueryCancellation``).
    case cancelled

    public var description: String {
        switch self {
        case .invalid(let m): return m
        case .tooManySeries(let limit): return "the query produces more than \(limit) series; filter more or group by fewer fields"
        case .timeout(let s): return "the query ran longer than \(s) s"
        case .tooMuchMemory(let m): return m
        case .cancelled: return "the query was cancelled"
        }
    }
}

/// Limits an aggregation runs under.
public struct AggregationLimits: Sendable {
    public var maxSeries: Int
    /// Deadline on the scale of `context.now`; nil for none.
    public var deadline: UInt64?
    public var timeoutSeconds: Double
    /// Threads scanning in parallel.
    public var parallelism: Int
    /// Most bytes the query's aggregate state may take, over all its threads.
    public var maxMemoryBytes: Int
    /// Set when the answer is no longer wanted.
    public var cancellation: QueryCancellation?
    /// The clock the deadline is checked on and the workers scans run on.
    public var context: QueryContext

    /// Limits whose deadline is `timeoutSeconds` after `context.now()`.
    public init(
        maxSeries: Int = 100_000, timeoutSeconds: Double = 30, parallelism: Int = 2, maxMemoryBytes: Int = QueryLimits.defaultMaxMemoryBytes,
        cancellation: QueryCancellation? = nil, context: QueryContext = .serial
    ) {
        self.maxSeries = maxSeries
        self.timeoutSeconds = timeoutSeconds
        self.deadline = context.now() + UInt64(min(max(0, timeoutSeconds), 1e9) * 1e9)
        self.parallelism = max(1, parallelism)
        self.maxMemoryBytes = maxMemoryBytes
        self.cancellation = cancellation
        self.context = context
    }

    /// Throws once the deadline has passed or the query was cancelled. Long loops call it every few
    /// thousand iterations (see ``checkEvery``).
    public func check() throws(AggregationError) {
        if let c = self.cancellation, c.isCancelled { throw .cancelled }
        if let deadline = self.deadline, self.context.now() > deadline { throw .timeout(seconds: self.timeoutSeconds) }
    }

    /// Iterations between ``check()`` calls in per-row loops (`i & checkEvery == 0`).
    public static let checkEvery = 4095
}

/// A unit of scan work: a head chunk or one row group of a block.
enum ScanUnit {
    case head(Int)
    case group(Int, Int)
}

/// Runs scan units in parallel: blocks are pruned by time and each row group left becomes a unit;
/// `parallelism` workers (``ScanWorkers``) take units in order, each into its own state (`make`), and
/// the states are returned in worker order, so merging them is the same from run to run. A block that fails to read is quarantined; the rest still answers.
enum ScanRunner {
    static func run<State: Sendable>(
        startNanos: UInt64, endNanos: UInt64, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits,
        make: @Sendable () -> State, scan: @Sendable (inout State, ScanUnit, BlockReader?) throws -> Void
    ) throws -> (states: [State], stats: ScanStats) {
        let run = try self.run(startNanos: startNanos, endNanos: endNanos, snapshot: snapshot, store: store, limits: limits, make: make, scan: scan, enough: nil)
        return (run.states, run.stats)
    }

    /// With `enough`, units run newest first (by their latest span start in the range) and a worker
    /// about to take a unit asks `enough(state, that start)`: when that is true, no unit left can change
    /// what the caller wants (every later unit starts no later), so the scan stops there and
    /// `stopped` is true.
    static func run<State: Sendable>(
        startNanos: UInt64, endNanos: UInt64, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits,
        make: @Sendable () -> State, scan: @Sendable (inout State, ScanUnit, BlockReader?) throws -> Void,
        enough: (@Sendable (inout State, UInt64) -> Bool)?
    ) throws -> (states: [State], stats: ScanStats, stopped: Bool) {
        var units: [ScanUnit] = snapshot.chunks.indices.compactMap { i in
            let c = snapshot.chunks[i]
            return c.spanCount == 0 || c.minStart > endNanos || c.maxStart < startNanos ? nil : .head(i)
        }
        // A unit's latest span start in the range: no row it can match starts later.
        var latestStart: [UInt64] = units.map { u in
            guard case .head(let i) = u else { return 0 }
            return min(snapshot.chunks[i].maxStart, endNanos)
        }
        var stats = ScanStats()
        var readers: [Int: BlockReader] = [:]
        for (b, meta) in snapshot.blocks.enumerated() where !store.isQuarantined(meta.id) {
            if meta.minStart > endNanos || meta.maxStart < startNanos { continue }
            let reader: BlockReader
            do {
                reader = try store.reader(meta)
            } catch {
                store.quarantine(meta, error)
                continue
            }
            readers[b] = reader
            stats.blocks += 1
            let g = reader.groups
            for group in 0..<g.count {
                if g.minStart[group] > endNanos || g.maxStart[group] < startNanos {
                    stats.skippedGroups += 1
                    continue
                }
                units.append(.group(b, group))
                latestStart.append(min(g.maxStart[group], endNanos))
            }
        }
        if enough != nil {
            // Newest first; ties in their first order, so the same data is scanned in the same order.
            let order = units.indices.sorted { (latestStart[$0], $1) > (latestStart[$1], $0) }
            units = order.map { units[$0] }
            latestStart = order.map { latestStart[$0] }
        }
        let workUnits = units
        let unitLatest = latestStart
        let openReaders = readers
        let stopped = Atomic<Bool>(false)
        let next = Atomic<Int>(0)
        let workers = min(limits.parallelism, max(1, workUnits.count))
        let results = Mutex<[Result<State, any Error>?]>(Array(repeating: nil, count: workers))
        let failedBlocks = Mutex<[Int: any Error]>([:])
        limits.context.workers.run(count: workers) { worker in
            var state = make()
            do {
                while true {
                    let i = next.add(1, ordering: .relaxed).oldValue
                    guard i < workUnits.count else { break }
                    try limits.check()
                    if let enough, enough(&state, unitLatest[i]) {
                        stopped.store(true, ordering: .relaxed)
                        next.store(Int.max / 2, ordering: .relaxed)
                        break
                    }
                    switch workUnits[i] {
                    case .head:
                        try scan(&state, workUnits[i], nil)
                    case .group(let b, _):
                        if failedBlocks.withLock({ $0[b] != nil }) { continue }
                        do {
                            try scan(&state, workUnits[i], openReaders[b]!)
                        } catch let e as AggregationError {
                            throw e
                        } catch {
                            failedBlocks.withLock { $0[b] = error }
                        }
                    }
                }
                results.withLock { [state] in $0[worker] = .success(state) }
            } catch {
                // Stop the others early.
                next.store(Int.max / 2, ordering: .relaxed)
                results.withLock { $0[worker] = .failure(error) }
            }
        }
        for (b, error) in failedBlocks.withLock({ $0 }).sorted(by: { $0.key < $1.key }) { store.quarantine(snapshot.blocks[b], error) }
        return (try results.withLock { $0 }.compactMap { try $0?.get() }, stats, stopped.load(ordering: .relaxed))
    }
}

/// Computes the partial aggregate of a query over a snapshot of head and blocks: each row group in
/// the time range is scanned over only the columns the query reads (through the store's column
/// cache), by several threads each into its own partial; the partials are then merged, exactly as a
/// coordinator merges those of several nodes.
public enum AggregationExecutor {
    public static func partial(
        _ query: AggregationQuery, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits = AggregationLimits()
    ) throws -> AggregationPartial {
        if let problem = query.problem { throw AggregationError.invalid(problem) }
        struct State: @unchecked Sendable {
            var partial: AggregationPartial
            var worker: Worker
        }
        return try self.partial(query, snapshot: snapshot, store: store, limits: limits, start: AggregationPartial(query))
    }

    /// Rows of an aggregation table ordered by aggregate `orderBy`, at most `limit`, in the two rounds
    /// of ``NodeQuery/table(_:orderBy:descending:limit:request:run:)`` over this snapshot.
    public static func table(
        _ query: AggregationQuery, orderBy: Int, descending: Bool = true, limit: Int, snapshot: StorageEngine.Snapshot, store: BlockStore,
        limits: AggregationLimits = AggregationLimits()
    ) throws -> (rows: [AggregationRow], groups: Int, stats: ScanStats) {
        try NodeQuery.table(query, orderBy: orderBy, descending: descending, limit: limit, request: NodeQueryRequest(.aggregate(query))) { round in
            switch round.operation {
            case .aggregateGroups(let q, let keys):
                return .aggregate(try self.partial(q, snapshot: snapshot, store: store, limits: limits, start: .closed(q, to: keys)))
            case .aggregate(let q):
                return .aggregate(try self.partial(q, snapshot: snapshot, store: store, limits: limits))
            default:
                throw AggregationError.invalid("not a table round")
            }
        }
    }

    static func partial(
        _ query: AggregationQuery, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits, start: AggregationPartial
    ) throws -> AggregationPartial {
        if let problem = query.problem { throw AggregationError.invalid(problem) }
        struct State: @unchecked Sendable {
            var partial: AggregationPartial
            var worker: Worker
        }
        let budget = MemoryBudget(query, limits: limits)
        try budget.checkThread(groups: max(1, start.groupCount))
        let context = HeadTraceContext.needed(query) ? HeadTraceContext(snapshot.chunks) : nil
        let (states, stats) = try ScanRunner.run(
            startNanos: query.startNanos, endNanos: query.endNanos, snapshot: snapshot, store: store, limits: limits,
            make: { State(partial: start, worker: Worker(query: query, limits: limits)) },
            scan: { state, unit, reader in
                try state.worker.scan(unit, reader, snapshot, context, store, into: &state.partial)
                if state.partial.groupCount > limits.maxSeries { throw AggregationError.tooManySeries(limit: limits.maxSeries) }
            }
        )
        var merged = start
        for s in states {
            try limits.check()
            merged.merge(s.partial)
            try budget.checkMerged(groups: merged.groupCount)
        }
        if merged.groupCount > limits.maxSeries { throw AggregationError.tooManySeries(limit: limits.maxSeries) }
        merged.stats.add(stats)
        return merged
    }
}

/// One scanning thread's state: the plan of the source (block or head batch) it is in, and that
/// source's code→group maps, reused across the groups of a block.
struct Worker {
    let query: AggregationQuery
    let limits: AggregationLimits
    /// Most groups one thread's partial may hold (memory budget).
    let maxGroups: Int

    /// A source's resolved plans and group-key caches.
    final class SourcePlan {
        let strings: SourceStrings
        let resources: SpanBatch
        let filter: FilterPlan
        let groupBy: [FieldPlan]
        let values: [FieldPlan?]
        let columns: [ScanColumn]
        /// Per group-by field: the partial's code of each source-local code below the string count
        /// (`UInt32.max` until seen), and of the others (absent, non-string values).
        var globalCode: [[UInt32]]
        var otherGlobalCode: [[UInt32: UInt32]]
        /// Per group-by field: non-string values by code (codes from `1 << 31`).
        var otherCodes: [[FieldValueKey: UInt32]]
        var otherValues: [[GroupValue]]
        /// A sealed head chunk's batch and posting lists (nil for blocks and chunks still written).
        var head: (batch: SpanBatch, postings: HeadChunkPostings)?
        /// With one group-by field read as string IDs: the partial's group of each source-local ID
        /// (``unknownGroup`` until seen, −1 for a value a closed partial excludes).
        var groupOfLocal: [Int32] = []
        /// The group of rows without the field there (``unknownGroup`` until seen).
        var groupOfAbsent = Worker.unknownGroup

        init(_ query: AggregationQuery, strings: SourceStrings, resources: SpanBatch, limits: AggregationLimits) throws {
            self.strings = strings
            self.resources = resources
            self.filter = try FilterPlan(query.filter, strings, limits)
            self.groupBy = try query.groupBy.map { try FieldPlan($0, strings) }
            self.values = try query.aggregates.map { a in try a.field.map { try FieldPlan($0, strings) } }
            var columns: [ScanColumn] = [.timing]
            for f in self.filter.fields + self.groupBy + self.values.compactMap({ $0 }) {
                for c in f.columns where !columns.contains(c) { columns.append(c) }
            }
            self.columns = columns
            self.otherCodes = Array(repeating: [:], count: self.groupBy.count)
            self.otherValues = Array(repeating: [], count: self.groupBy.count)
            let localCodes = max(strings.count, 256)
            self.globalCode = self.groupBy.map { _ in [UInt32](repeating: .max, count: localCodes) }
            self.otherGlobalCode = Array(repeating: [:], count: self.groupBy.count)
        }
    }

    struct FieldValueKey: Hashable {
        var type: UInt8
        var payload: UInt64
    }

    private var blockID: UInt64?
    private var blockPlan: SourcePlan?

    init(query: AggregationQuery, limits: AggregationLimits) {
        self.query = query
        self.limits = limits
        self.maxGroups = MemoryBudget(query, limits: limits).groupsPerThread
    }

    /// A block row group's columns and plan (the plan is built once per block).
    mutating func open(_ meta: BlockMeta, _ reader: BlockReader, _ g: Int, _ store: BlockStore, _ stats: inout ScanStats) throws -> (ChunkColumns, SourcePlan, allInRange: Bool) {
        if self.blockID != meta.id {
            let resources = try reader.blockLevelBatch(strings: StringTable())
            self.blockPlan = try SourcePlan(self.query, strings: SourceStrings(table: nil, dictionary: reader.dictionary), resources: resources, limits: self.limits)
            self.blockID = meta.id
        }
        let rows = Int(reader.groups.spans[g])
        let chunk = ChunkColumns(rows: rows) { c in try store.column(meta, reader, group: g, c) }
        stats.chunks += 1
        stats.inspectedSpans += rows
        stats.inspectedBytes += meta.bytes / max(1, reader.groups.count)
        let inside = reader.groups.minStart[g] >= self.query.startNanos && reader.groups.maxStart[g] <= self.query.endNanos
        return (chunk, self.blockPlan!, inside)
    }

    /// A head chunk's columns and plan (trace-level columns from `context`, over all head chunks).
    func open(_ chunk: HeadChunk, _ context: HeadTraceContext?, _ stats: inout ScanStats) throws -> (ChunkColumns, SourcePlan, allInRange: Bool) {
        let batch = chunk.batch
        let (columns, strings) = context?.source(chunk) ?? (ChunkColumns(head: chunk), SourceStrings(table: batch.strings, dictionary: nil))
        let plan = try SourcePlan(self.query, strings: strings, resources: batch, limits: self.limits)
        if let postings = chunk.postings { plan.head = (batch, postings) }
        stats.chunks += 1
        stats.inspectedSpans += batch.spanCount
        stats.inspectedBytes += batch.memoryFootprint
        let inside = chunk.minStart >= self.query.startNanos && chunk.maxStart <= self.query.endNanos
        return (columns, plan, inside)
    }

    mutating func scan(
        _ unit: ScanUnit, _ reader: BlockReader?, _ snapshot: StorageEngine.Snapshot, _ context: HeadTraceContext?, _ store: BlockStore,
        into partial: inout AggregationPartial
    ) throws {
        let (chunk, plan, inside): (ChunkColumns, SourcePlan, Bool)
        switch unit {
        case .head(let c): (chunk, plan, inside) = try self.open(snapshot.chunks[c], context, &partial.stats)
        case .group(let b, let g): (chunk, plan, inside) = try self.open(snapshot.blocks[b], reader!, g, store, &partial.stats)
        }
        try self.scan(chunk, plan, allInRange: inside, into: &partial)
    }

    /// Rows in the time range that pass the filter, ascending.
    func select(_ chunk: ChunkColumns, _ plan: SourcePlan, allInRange: Bool) throws -> [Int32] {
        if case .none = plan.filter { return [] }
        let q = self.query
        var selection: [Int32]
        if let head = plan.head, let found = Self.throughPostings(plan.filter, nil, head.postings, head.batch) {
            // Equality on span attributes: only the rows every posting list holds can pass.
            selection = found.rows
            if !allInRange {
                let (start, _) = try chunk.timing()
                selection.removeAll { start[Int($0)] < q.startNanos || start[Int($0)] > q.endNanos }
            }
            chunk.readOnly(selection, of: head.batch)
            return try found.rest.select(selection, chunk, plan.resources)
        } else if allInRange {
            selection = [Int32](unsafeUninitializedCapacity: chunk.rows) { buffer, count in
                for i in 0..<chunk.rows { buffer[i] = Int32(i) }
                count = chunk.rows
            }
        } else {
            let (start, _) = try chunk.timing()
            selection = []
            start.withUnsafeBufferPointer { s in
                for row in 0..<chunk.rows where s[row] >= q.startNanos && s[row] <= q.endNanos { selection.append(Int32(row)) }
            }
        }
        return try plan.filter.select(selection, chunk, plan.resources)
    }

    /// Through a sealed chunk's posting lists: the rows of `candidates` (ascending; nil for all rows)
    /// that every list of the filter holds, and the tests those rows still take — the filter without
    /// the ones the lists answer, or the whole filter when a span of the chunk has a key twice (its
    /// lists then hold rows a scan would not pass). Nil when the filter has no list.
    static func throughPostings(
        _ filter: FilterPlan, _ candidates: [Int32]?, _ postings: HeadChunkPostings, _ batch: SpanBatch
    ) -> (rows: [Int32], rest: FilterPlan)? {
        guard let found = self.postingLists(filter, postings, batch) else { return nil }
        var rows = candidates ?? Array(found.lists.min { $0.count < $1.count }!)
        for list in found.lists where !rows.isEmpty { rows = self.intersect(rows, list) }
        return (rows, postings.keysAreUnique ? found.rest : filter)
    }

    /// The posting lists of the filter's top-level conjunction of `span-attribute = "string"` tests
    /// (unscoped ones too when no resource of the batch has the key), and the filter without those
    /// tests; nil when it has none.
    static func postingLists(_ filter: FilterPlan, _ postings: HeadChunkPostings, _ batch: SpanBatch) -> (lists: [ArraySlice<Int32>], rest: FilterPlan)? {
        var lists: [ArraySlice<Int32>] = []
        func collect(_ f: FilterPlan) -> FilterPlan {
            switch f {
            case .and(let a, let b):
                switch (collect(a), collect(b)) {
                case (.all, let y): return y
                case (let x, .all): return x
                case (let x, let y): return .and(x, y)
                }
            case .test(.attribute(let scope, key: let key?), .ids(let ids, negate: false)) where ids.count == 1:
                guard scope == .span || (scope == .any && !batch.resourceAttrs.keys.contains(key)) else { return f }
                lists.append(postings.rows(key: key, value: ids.first!))
                return .all
            default: return f
            }
        }
        let rest = collect(filter)
        return lists.isEmpty ? nil : (lists, rest)
    }

    /// Rows in both ascending lists.
    static func intersect(_ a: [Int32], _ b: ArraySlice<Int32>) -> [Int32] {
        var out: [Int32] = []
        var i = a.startIndex, j = b.startIndex
        while i < a.endIndex && j < b.endIndex {
            if a[i] < b[j] { i += 1 } else if a[i] > b[j] { j += 1 } else {
                out.append(a[i])
                i += 1
                j += 1
            }
        }
        return out
    }

    private func scan(_ chunk: ChunkColumns, _ plan: SourcePlan, allInRange: Bool, into partial: inout AggregationPartial) throws {
        let q = self.query
        var selection = try self.select(chunk, plan, allInRange: allInRange)
        if selection.isEmpty { return }
        // Cells: group × steps + step (a closed partial drops rows of other groups).
        var slots = try self.groups(selection, chunk, plan, &partial)
        if partial.isClosed {
            var kept: [Int32] = [], keptSlots: [Int32] = []
            for (i, g) in slots.enumerated() where g >= 0 {
                kept.append(selection[i])
                keptSlots.append(g)
            }
            selection = kept
            slots = keptSlots
        }
        var cells = slots
        let steps = partial.steps
        if let step = q.stepNanos, steps > 1 {
            let (start, _) = try chunk.timing()
            start.withUnsafeBufferPointer { s in
                for (i, row) in selection.enumerated() {
                    cells[i] = slots[i] * Int32(steps) + Int32((s[Int(row)] - q.startNanos) / step)
                }
            }
        } else if steps > 1 {
            for i in cells.indices { cells[i] = slots[i] * Int32(steps) }
        }
        for (a, aggregate) in q.aggregates.enumerated() {
            try Self.accumulate(aggregate, plan.values[a], selection, cells, chunk, plan, &partial.columns[a])
        }
    }

    /// The group of every selected row: each field's source-local codes are translated to the
    /// partial's field codes (through a dense table per field, filled on first sight), then the tuple
    /// of codes finds its group in one hash.
    private func groups(_ selection: [Int32], _ chunk: ChunkColumns, _ plan: SourcePlan, _ partial: inout AggregationPartial) throws -> [Int32] {
        let n = selection.count
        if plan.groupBy.isEmpty {
            let g = Int32(partial.group([]))
            return [Int32](repeating: g, count: n)
        }
        // A block's plan serves all its row groups, so its ID → group table pays for itself; a head
        // chunk's plan serves one chunk, and a table as large as the head's strings would not.
        if plan.groupBy.count == 1, plan.strings.table == nil, let slots = try self.groupsOfIDs(selection, chunk, plan, &partial) { return slots }
        var global: [[UInt32]] = []
        for f in plan.groupBy.indices {
            let local = try self.codes(field: f, selection, chunk, plan)
            // Every code below the table's end has its partial code from here on.
            try self.resolveFirstSeen(f, local, plan, &partial)
            var out = [UInt32](repeating: 0, count: n)
            for i in 0..<n { out[i] = try self.partialCode(f, local[i], plan, &partial) }
            global.append(out)
        }
        if !partial.isClosed && self.maxGroups - partial.groupCount < n { try self.checkNewGroups(global, n, partial) }
        var out = [Int32](repeating: 0, count: n)
        let fields = global.count
        if fields == 1 {
            // One field: the partial maps codes to groups directly.
            let codes = global[0]
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 1) { key in
                for i in 0..<n {
                    let c = codes[i]
                    if c == Self.excluded {
                        out[i] = -1
                        continue
                    }
                    key[0] = c
                    out[i] = Int32(partial.group(lo: UInt64(c), hi: 0, codes: UnsafeBufferPointer(key)))
                }
            }
            return out
        }
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: fields) { codes in
            let key = UnsafeBufferPointer(codes)
            // Neighbouring rows (spans of one trace) often share their key: skip the hash then.
            var previous: (UInt64, UInt64, Int32) = (.max, .max, -1)
            rows: for i in 0..<n {
                for f in 0..<fields {
                    let c = global[f][i]
                    if c == Self.excluded {
                        out[i] = -1
                        continue rows
                    }
                    codes[f] = c
                }
                let (lo, hi) = AggregationPartial.pack(key)
                if lo == previous.0 && hi == previous.1 {
                    out[i] = previous.2
                    continue
                }
                let g = Int32(partial.group(lo: lo, hi: hi, codes: key))
                out[i] = g
                previous = (lo, hi, g)
            }
        }
        return out
    }

    /// The partial's code of source-local code `c` of field `f` (``excluded`` where a closed partial has
    /// no group with its value); codes below the dense table's end must have been resolved
    /// (``resolveFirstSeen(_:_:_:_:)``).
    @inline(__always) private func partialCode(_ f: Int, _ c: UInt32, _ plan: SourcePlan, _ partial: inout AggregationPartial) throws -> UInt32 {
        if Int(c) < plan.globalCode[f].count { return plan.globalCode[f][Int(c)] }
        if let g = plan.otherGlobalCode[f][c] { return g }
        let g = partial.code(field: f, try self.value(f, c, plan)) ?? Self.excluded
        plan.otherGlobalCode[f][c] = g
        return g
    }

    static let unknownGroup = Int32.min
    /// Marks an ID in ``SourcePlan/groupOfLocal`` while its group is being resolved.
    static let resolvingGroup = Int32.min + 1

    /// The groups of the selected rows when the only group-by field is read as string IDs (from a
    /// block's dictionary): one load per row from the source's ID → group table. Rows with IDs not
    /// seen before take the general steps (their codes resolved, their groups found or made) and fill
    /// the table. Nil for fields read otherwise.
    private func groupsOfIDs(_ selection: [Int32], _ chunk: ChunkColumns, _ plan: SourcePlan, _ partial: inout AggregationPartial) throws -> [Int32]? {
        let ids: [UInt32]
        switch try FieldReader(plan.groupBy[0], chunk, plan.resources).source {
        case .ids(let v, _), .attributeIDs(let v): ids = v
        default: return nil
        }
        if plan.groupOfLocal.isEmpty { plan.groupOfLocal = [Int32](repeating: Self.unknownGroup, count: plan.globalCode[0].count) }
        let n = selection.count
        var unseen: [Int] = []
        let absent = plan.groupOfAbsent
        var out = [Int32](unsafeUninitializedCapacity: n) { buffer, count in
            plan.groupOfLocal.withUnsafeBufferPointer { table in
                ids.withUnsafeBufferPointer { ids in
                    selection.withUnsafeBufferPointer { rows in
                        for i in 0..<n {
                            let c = Int(ids[Int(rows[i])])
                            let g = c < table.count ? table[c] : c == Int(Self.absentCode) ? absent : Self.unknownGroup
                            buffer[i] = g
                            if g == Self.unknownGroup { unseen.append(i) }
                        }
                    }
                }
            }
            count = n
        }
        if unseen.isEmpty { return out }
        // A source's first chunk may have every row unseen: each distinct ID is resolved once (marked
        // in the table while it is), and its rows then read the table.
        var distinct: [UInt32] = []
        var outside: UInt32?
        var absentPending = false
        plan.groupOfLocal.withUnsafeMutableBufferPointer { table in
            ids.withUnsafeBufferPointer { ids in
                for i in unseen {
                    let c = ids[Int(selection[i])]
                    if Int(c) < table.count {
                        if table[Int(c)] == Self.unknownGroup {
                            table[Int(c)] = Self.resolvingGroup
                            distinct.append(c)
                        }
                    } else if c == Self.absentCode {
                        if !absentPending {
                            absentPending = true
                            distinct.append(c)
                        }
                    } else {
                        outside = c
                    }
                }
            }
        }
        if let c = outside {
            for c in distinct where Int(c) < plan.groupOfLocal.count { plan.groupOfLocal[Int(c)] = Self.unknownGroup }
            throw BlockFormatError("group ID \(c) outside the source's \(plan.groupOfLocal.count) strings")
        }
        let local = distinct
        var groups = [Int32](repeating: -1, count: local.count)
        do {
            try self.resolveFirstSeen(0, local, plan, &partial)
            var global = [UInt32](repeating: 0, count: local.count)
            for (j, c) in local.enumerated() { global[j] = try self.partialCode(0, c, plan, &partial) }
            if !partial.isClosed && self.maxGroups - partial.groupCount < global.count { try self.checkNewGroups([global], global.count, partial) }
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 1) { key in
                for j in global.indices where global[j] != Self.excluded {
                    key[0] = global[j]
                    groups[j] = Int32(partial.group(lo: UInt64(global[j]), hi: 0, codes: UnsafeBufferPointer(key)))
                }
            }
        } catch {
            // Not left half-resolved: nothing may read the mark as a group.
            for c in local where Int(c) < plan.groupOfLocal.count && plan.groupOfLocal[Int(c)] == Self.resolvingGroup {
                plan.groupOfLocal[Int(c)] = Self.unknownGroup
            }
            throw error
        }
        plan.groupOfLocal.withUnsafeMutableBufferPointer { table in
            for (j, c) in distinct.enumerated() where Int(c) < table.count { table[Int(c)] = groups[j] }
        }
        if absentPending, let j = distinct.firstIndex(of: Self.absentCode) { plan.groupOfAbsent = groups[j] }
        let (table, absentGroup) = (plan.groupOfLocal, plan.groupOfAbsent)
        for i in unseen {
            let c = Int(ids[Int(selection[i])])
            out[i] = c < table.count ? table[c] : absentGroup
        }
        return out
    }

    /// Before any group of these rows is made: throws when their new keys would take the partial past
    /// this thread's share of the memory budget. Runs only when that is possible (fewer groups left
    /// than rows), since it hashes every key once more.
    private func checkNewGroups(_ global: [[UInt32]], _ n: Int, _ partial: AggregationPartial) throws {
        var fresh = Set<[UInt32]>()
        var key = [UInt32](repeating: 0, count: global.count)
        rows: for i in 0..<n {
            for f in global.indices {
                if global[f][i] == Self.excluded { continue rows }
                key[f] = global[f][i]
            }
            let known = key.withUnsafeBufferPointer { k in
                let (lo, hi) = AggregationPartial.pack(k)
                return partial.hasGroup(lo: lo, hi: hi, codes: k)
            }
            if !known && fresh.insert(key).inserted && partial.groupCount + fresh.count > self.maxGroups {
                throw MemoryBudget(self.query, limits: self.limits).exceeded
            }
        }
    }

    /// Gives the source-local codes of field `f` seen for the first time their partial codes, all
    /// strings in one pass over the source's strings (a block's dictionary pages read once each).
    private func resolveFirstSeen(_ f: Int, _ local: [UInt32], _ plan: SourcePlan, _ partial: inout AggregationPartial) throws {
        let unknown = UInt32.max, pending = UInt32.max - 2
        var fresh: [UInt32] = []
        plan.globalCode[f].withUnsafeMutableBufferPointer { known in
            for c in local where Int(c) < known.count && known[Int(c)] == unknown {
                known[Int(c)] = pending
                fresh.append(c)
            }
        }
        if fresh.isEmpty { return }
        if plan.strings.table == nil {
            if fresh.count * 8 >= plan.globalCode[f].count {
                // Many of the source's codes: those just marked pending, read in order, are the sorted list.
                fresh.removeAll(keepingCapacity: true)
                plan.globalCode[f].withUnsafeBufferPointer { known in
                    for i in known.indices where known[i] == pending { fresh.append(UInt32(i)) }
                }
            } else {
                fresh.sort()
            }
        } else {
            // An in-memory table reads in any order: only its own strings must come before the extras.
            let base = plan.strings.base
            if fresh.contains(where: { Int($0) >= base }) { fresh = fresh.filter { Int($0) < base } + fresh.filter { Int($0) >= base } }
        }
        do {
            // Strings go by their bytes (``excluded`` where a closed partial has no group with the value).
            var strings: [UInt32] = []
            for c in fresh {
                if Self.isString(f, c, plan) {
                    strings.append(c)
                } else {
                    plan.globalCode[f][Int(c)] = partial.code(field: f, try self.value(f, c, plan)) ?? Self.excluded
                }
            }
            var codes: [UInt32] = []
            codes.reserveCapacity(strings.count)
            try plan.strings.forEachBytes(strings) { _, bytes in codes.append(partial.code(field: f, utf8: bytes) ?? Self.excluded) }
            plan.globalCode[f].withUnsafeMutableBufferPointer { known in
                for (j, c) in strings.enumerated() { known[Int(c)] = codes[j] }
            }
        } catch {
            // Not left half-resolved: nothing may read `pending` as a code.
            for c in fresh where plan.globalCode[f][Int(c)] == pending { plan.globalCode[f][Int(c)] = unknown }
            throw error
        }
    }

    /// Whether source-local code `code` of field `f` is one of the source's strings.
    private static func isString(_ f: Int, _ code: UInt32, _ plan: SourcePlan) -> Bool {
        switch plan.groupBy[f] {
        case .status, .kind: return false
        case .ids(_, let zero) where zero && code == 0: return false
        default: return code != Self.absentCode && code < Self.otherBase
        }
    }

    /// The partial code of a value a closed partial has no group with.
    static let excluded = UInt32.max - 1

    /// The value a source-local code of field `f` stands for.
    func value(_ f: Int, _ code: UInt32, _ plan: SourcePlan) throws -> GroupValue {
        if code == Self.absentCode { return .absent }
        if code >= Self.otherBase { return plan.otherValues[f][Int(code - Self.otherBase)] }
        switch plan.groupBy[f] {
        case .ids(_, let zero) where zero && code == 0: return .absent
        case .status, .kind: return CodeNames.groupValue(plan.groupBy[f], UInt64(code))
        default: return .string(try plan.strings.string(code))
        }
    }

    static let absentCode = ColumnValues.absentID
    static let otherBase: UInt32 = 1 << 31

    /// Codes of one group-by field for the selected rows: string IDs as they are, status and kind
    /// codes, ``absentCode``, or (other values) codes from ``otherBase``.
    func codes(field f: Int, _ selection: [Int32], _ chunk: ChunkColumns, _ plan: SourcePlan) throws -> [UInt32] {
        let reader = try FieldReader(plan.groupBy[f], chunk, plan.resources)
        var out = [UInt32](repeating: 0, count: selection.count)
        switch reader.source {
        case .ids(let ids, _):
            ids.withUnsafeBufferPointer { c in
                for (i, row) in selection.enumerated() { out[i] = c[Int(row)] }
            }
        case .attributeIDs(let ids):
            // Absent rows already hold absentCode.
            ids.withUnsafeBufferPointer { c in
                for (i, row) in selection.enumerated() { out[i] = c[Int(row)] }
            }
        case .service(let resource, let names):
            for (i, row) in selection.enumerated() { out[i] = names[Int(resource[Int(row)])] }
        case .small(let v):
            for (i, row) in selection.enumerated() { out[i] = UInt32(v[Int(row)]) }
        default:
            for (i, row) in selection.enumerated() {
                let (t, v) = reader.value(Int(row))
                if t == FieldReader.absent {
                    out[i] = Self.absentCode
                } else if t == FieldReader.string {
                    out[i] = UInt32(truncatingIfNeeded: v)
                } else {
                    let key = FieldValueKey(type: t, payload: v)
                    if let code = plan.otherCodes[f][key] {
                        out[i] = code
                    } else {
                        let code = Self.otherBase + UInt32(plan.otherValues[f].count)
                        plan.otherCodes[f][key] = code
                        plan.otherValues[f].append(try reader.groupValue(t, v, plan.strings))
                        out[i] = code
                    }
                }
            }
        }
        return out
    }

    /// Sums token counts of the selected rows into their cells (count and sum lanes only), without a
    /// branch per row on whether the span has a count (those without add nothing). Wrapping adds
    /// cannot wrap: 2^63 additions of at most 2^63 fit in 127 bits.
    @inline(__always)
    private static func sumTokens<T: FixedWidthInteger & SignedInteger>(
        _ t: UnsafeBufferPointer<T>, absent: T, _ selection: [Int32], _ cells: [Int32], _ column: inout AggregateColumn
    ) {
        column.valueCount.withUnsafeMutableBufferPointer { count in
            column.valueInteger.withUnsafeMutableBufferPointer { sum in
                for (i, row) in selection.enumerated() {
                    let c = Int(cells[i]), v = Int64(t[Int(row)])
                    let present = Int64(unsafeBitCast(v != Int64(absent), to: UInt8.self))
                    count[c] &+= UInt64(present)
                    sum[c] &+= Int128(v & (0 &- present))
                }
            }
        }
    }

    /// Adds one to each row's cell. In sorted data a row's cell is often the one before's (no group-by,
    /// one time step, a trace's spans), and adding to one counter row after row waits on the previous
    /// add each time; where most rows continue a run, each run is counted in a register and added once.
    /// (Where runs are short, a branch per row would mispredict: those rows are added one by one.)
    @inline(__always)
    static func addOnes(_ cells: UnsafeBufferPointer<Int32>, to counts: UnsafeMutableBufferPointer<UInt64>) {
        guard let first = cells.first else { return }
        var changes = 0
        for i in 1..<cells.count { changes &+= Int(unsafeBitCast(cells[i] != cells[i - 1], to: UInt8.self)) }
        guard changes &* 4 < cells.count else {
            for c in cells { counts[Int(c)] &+= 1 }
            return
        }
        var current = first, run: UInt64 = 0
        for c in cells {
            if c != current {
                counts[Int(current)] &+= run
                current = c
                run = 0
            }
            run &+= 1
        }
        counts[Int(current)] &+= run
    }

    /// Adds the selected rows' values of one aggregate into their cells.
    private static func accumulate(
        _ aggregate: Aggregate, _ field: FieldPlan?, _ selection: [Int32], _ cells: [Int32], _ chunk: ChunkColumns, _ plan: SourcePlan,
        _ column: inout AggregateColumn
    ) throws {
        if case .count = aggregate {
            column.counts.withUnsafeMutableBufferPointer { counts in
                cells.withUnsafeBufferPointer { Self.addOnes($0, to: counts) }
            }
            return
        }
        let reader = try FieldReader(field!, chunk, plan.resources)
        switch (column.kind, reader.source) {
        case (.sketch, .duration(let s, let e)):
            column.sketches.withUnsafeMutableBufferPointer { sketches in
                s.withUnsafeBufferPointer { s in
                    e.withUnsafeBufferPointer { e in
                        for (i, row) in selection.enumerated() {
                            let r = Int(row)
                            sketches[Int(cells[i])].add(e[r] > s[r] ? e[r] - s[r] : 0)
                        }
                    }
                }
            }
        case (.histogram, .duration(let s, let e)):
            let b = Heatmap.valueBuckets
            column.histograms.withUnsafeMutableBufferPointer { h in
                s.withUnsafeBufferPointer { s in
                    e.withUnsafeBufferPointer { e in
                        for (i, row) in selection.enumerated() {
                            let r = Int(row)
                            h[Int(cells[i]) * b + Heatmap.valueBucket(e[r] > s[r] ? e[r] - s[r] : 0)] &+= 1
                        }
                    }
                }
            }
        case (.values, .duration(let s, let e)):
            for (i, row) in selection.enumerated() {
                let r = Int(row)
                column.addInteger(Int(cells[i]), Int64(bitPattern: e[r] > s[r] ? e[r] - s[r] : 0), sumOnly: aggregate.isSumOrAverage)
            }
        case (.values, .tokens(let t)) where aggregate.isSumOrAverage:
            t.withUnsafeBufferPointer { Self.sumTokens($0, absent: SpanBatch.noTokens, selection, cells, &column) }
        case (.values, .tokens32(let t)) where aggregate.isSumOrAverage:
            t.withUnsafeBufferPointer { Self.sumTokens($0, absent: ColumnValues.absentTokens, selection, cells, &column) }
        case (.values, .tokens(let t)):
            for (i, row) in selection.enumerated() where t[Int(row)] != SpanBatch.noTokens {
                column.addInteger(Int(cells[i]), t[Int(row)], sumOnly: false)
            }
        case (.values, .tokens32(let t)):
            for (i, row) in selection.enumerated() where t[Int(row)] != ColumnValues.absentTokens {
                column.addInteger(Int(cells[i]), Int64(t[Int(row)]), sumOnly: false)
            }
        case (.values, .cost(let x)) where aggregate.isSumOrAverage:
            x.withUnsafeBufferPointer { x in
                column.valueCount.withUnsafeMutableBufferPointer { count in
                    column.valueFloat.withUnsafeMutableBufferPointer { sum in
                        column.valueCompensation.withUnsafeMutableBufferPointer { compensation in
                            for (i, row) in selection.enumerated() where !x[Int(row)].isNaN {
                                let c = Int(cells[i]), v = x[Int(row)]
                                count[c] &+= 1
                                let t = sum[c] + v
                                compensation[c] += abs(sum[c]) >= abs(v) ? (sum[c] - t) + v : (v - t) + sum[c]
                                sum[c] = t
                            }
                        }
                    }
                }
            }
        case (.values, .cost(let x)):
            for (i, row) in selection.enumerated() where !x[Int(row)].isNaN {
                column.addFloat(Int(cells[i]), x[Int(row)], sumOnly: false)
            }
        default:
            // The general path: any numeric field.
            for (i, row) in selection.enumerated() {
                let (t, payload) = reader.value(Int(row))
                let cell = Int(cells[i])
                switch (column.kind, t) {
                case (.values, FieldReader.int): column.addInteger(cell, Int64(bitPattern: payload), sumOnly: false)
                case (.values, FieldReader.double): column.addFloat(cell, Double(bitPattern: payload), sumOnly: false)
                case (.sketch, FieldReader.int): column.sketches[cell].add(Double(Int64(bitPattern: payload)))
                case (.sketch, FieldReader.double): column.sketches[cell].add(Double(bitPattern: payload))
                case (.histogram, FieldReader.int):
                    let v = Int64(bitPattern: payload)
                    column.histograms[cell * Heatmap.valueBuckets + Heatmap.valueBucket(UInt64(max(0, v)))] &+= 1
                case (.histogram, FieldReader.double):
                    let v = Double(bitPattern: payload)
                    let u: UInt64 = v.isFinite && v > 0 ? (v >= 1.8e19 ? .max : UInt64(v)) : 0
                    column.histograms[cell * Heatmap.valueBuckets + Heatmap.valueBucket(u)] &+= 1
                default: break
                }
            }
        }
    }
}

/// Group-by values of status and kind codes.
enum CodeNames {
    static func groupValue(_ plan: FieldPlan, _ code: UInt64) -> GroupValue {
        switch plan {
        case .status: return .string(["unset", "ok", "error"][Int(min(code, 2))])
        case .kind:
            let kinds = ["unspecified", "internal", "server", "client", "producer", "consumer"]
            return .string(code < UInt64(kinds.count) ? kinds[Int(code)] : "unspecified")
        default: return .int(Int64(bitPattern: code))
        }
    }
}

/// Open-addressing map from a 128-bit key to a group (multiplicative hashing, linear probing). Keys
/// whose high half is 0 live in a table of 16-byte entries, the rest in one of 24; key and value
/// share an entry, so a lookup touches one cache line.
struct SlotMap {
    private struct Entry64 {
        var key: UInt64
        var slot: Int32
    }

    private struct Entry128 {
        var lo: UInt64
        var hi: UInt64
        var slot: Int32
    }

    private var small: [Entry64] = []
    private var smallUsed = 0
    private var large: [Entry128] = []
    private var largeUsed = 0

    init() {
        self.small = [Entry64](repeating: Entry64(key: 0, slot: -1), count: 64)
    }

    @inline(__always) private static func hash(_ a: UInt64, _ b: UInt64, _ mask: Int) -> Int {
        let h = (a &* 0x9E37_79B9_7F4A_7C15) ^ (b &* 0xC2B2_AE3D_27D4_EB4F)
        return Int(truncatingIfNeeded: (h ^ (h >> 29))) & mask
    }

    @inline(__always) func get(_ a: UInt64, _ b: UInt64) -> Int32? {
        if b == 0 {
            return self.small.withUnsafeBufferPointer { e in
                let mask = e.count - 1
                var i = Self.hash(a, 0, mask)
                while true {
                    let s = e[i].slot
                    if s < 0 { return nil }
                    if e[i].key == a { return s }
                    i = (i + 1) & mask
                }
            }
        }
        guard !self.large.isEmpty else { return nil }
        return self.large.withUnsafeBufferPointer { e in
            let mask = e.count - 1
            var i = Self.hash(a, b, mask)
            while true {
                let s = e[i].slot
                if s < 0 { return nil }
                if e[i].lo == a && e[i].hi == b { return s }
                i = (i + 1) & mask
            }
        }
    }

    mutating func put(_ a: UInt64, _ b: UInt64, _ value: Int32) {
        if b == 0 {
            if (self.smallUsed + 1) * 2 > self.small.count { self.rehashSmall(self.small.count * 2) }
            let added = self.small.withUnsafeMutableBufferPointer { e in
                let mask = e.count - 1
                var i = Self.hash(a, 0, mask)
                while e[i].slot >= 0 {
                    if e[i].key == a {
                        e[i].slot = value
                        return false
                    }
                    i = (i + 1) & mask
                }
                e[i] = Entry64(key: a, slot: value)
                return true
            }
            if added { self.smallUsed += 1 }
            return
        }
        if (self.largeUsed + 1) * 2 > self.large.count { self.rehashLarge(Swift.max(64, self.large.count * 2)) }
        let mask = self.large.count - 1
        var i = Self.hash(a, b, mask)
        while self.large[i].slot >= 0 {
            if self.large[i].lo == a && self.large[i].hi == b {
                self.large[i].slot = value
                return
            }
            i = (i + 1) & mask
        }
        self.large[i] = Entry128(lo: a, hi: b, slot: value)
        self.largeUsed += 1
    }

    /// Makes room for `count` keys that fit 64 bits, so that putting them rehashes nothing.
    mutating func reserveSmall(_ count: Int) {
        var capacity = self.small.count
        while capacity < 2 * (count + 1) { capacity *= 2 }
        if capacity > self.small.count { self.rehashSmall(capacity) }
    }

    private mutating func rehashSmall(_ capacity: Int) {
        let old = self.small
        self.small = [Entry64](repeating: Entry64(key: 0, slot: -1), count: capacity)
        self.smallUsed = 0
        for e in old where e.slot >= 0 { self.put(e.key, 0, e.slot) }
    }

    private mutating func rehashLarge(_ capacity: Int) {
        let old = self.large
        self.large = [Entry128](repeating: Entry128(lo: 0, hi: 0, slot: -1), count: capacity)
        self.largeUsed = 0
        for e in old where e.slot >= 0 { self.put(e.lo, e.hi, e.slot) }
    }
}

extension AggregateColumn {
    /// Adds an integer to a `.values` cell (sums and averages keep no minimum or maximum).
    @inline(__always) mutating func addInteger(_ cell: Int, _ v: Int64, sumOnly: Bool) {
        self.valueCount[cell] &+= 1
        self.valueInteger[cell] += Int128(v)
        if sumOnly { return }
        let d = Double(v)
        if d < self.valueMin[cell] { self.valueMin[cell] = d }
        if d > self.valueMax[cell] { self.valueMax[cell] = d }
    }

    /// Adds a float to a `.values` cell with Neumaier's compensated sum.
    @inline(__always) mutating func addFloat(_ cell: Int, _ v: Double, sumOnly: Bool) {
        self.valueCount[cell] &+= 1
        let sum = self.valueFloat[cell]
        let t = sum + v
        if abs(sum) >= abs(v) {
            self.valueCompensation[cell] += (sum - t) + v
        } else {
            self.valueCompensation[cell] += (v - t) + sum
        }
        self.valueFloat[cell] = t
        if sumOnly { return }
        if v < self.valueMin[cell] { self.valueMin[cell] = v }
        if v > self.valueMax[cell] { self.valueMax[cell] = v }
    }
}
