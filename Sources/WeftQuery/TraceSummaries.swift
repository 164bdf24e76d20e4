import WeftModel
import WeftStorageEngine

extension HeadChunk {
    /// The rows of the `wanted` traces in this chunk, ascending.
    func rows(of wanted: WantedTraces) -> [Int] { self.rows(of: self.lastRows(of: wanted)) }

    /// The `wanted` traces this chunk holds: each one's position in `wanted` and its last row here.
    func lastRows(of wanted: WantedTraces) -> [(trace: Int, last: UInt32)] {
        var out: [(trace: Int, last: UInt32)] = []
        if wanted.isFewAgainst(self.lastRowOfTrace.count) {
            for (i, id) in wanted.ids.enumerated() { if let last = self.lastRowOfTrace[id] { out.append((i, last)) } }
        } else {
            for (id, last) in self.lastRowOfTrace { if let i = wanted.position(id) { out.append((i, last)) } }
        }
        return out
    }

    /// The rows of traces given by their last rows (``lastRows(of:)``), ascending.
    func rows(of traces: [(trace: Int, last: UInt32)]) -> [Int] {
        var rows: [Int] = []
        for (_, last) in traces { self.appendRows(endingAt: last, to: &rows) }
        return rows.sorted()
    }
}

/// A set of traces at dense positions (0..<count, in the order given, repeats dropped): per-trace
/// values live in arrays, and a row's trace is found with one multiplicative hash, not `Hasher`.
struct WantedTraces {
    let ids: [TraceID]
    private var slots = SlotMap()

    init(_ traces: some Sequence<TraceID>) {
        var ids: [TraceID] = []
        for id in traces where self.slots.get(id.low, id.high) == nil {
            self.slots.put(id.low, id.high, Int32(ids.count))
            ids.append(id)
        }
        self.ids = ids
    }

    var count: Int { self.ids.count }
    var isEmpty: Bool { self.ids.isEmpty }

    /// Whether looking each wanted trace up in a chunk's trace index (a `Hasher` per lookup) beats
    /// walking that index of `traces` traces and finding each here (one multiplication each).
    @inline(__always) func isFewAgainst(_ traces: Int) -> Bool { self.ids.count * 8 <= traces }

    /// The position of trace `id`, nil when it is not wanted.
    @inline(__always) func position(_ id: TraceID) -> Int? { self.slots.get(id.low, id.high).map(Int.init) }

    /// The position of the trace with these halves, -1 when it is not wanted.
    @inline(__always) func position(high: UInt64, low: UInt64) -> Int32 { self.slots.get(low, high) ?? -1 }
}

/// Whole-trace summaries (root, first start, last end, spans and errors per service) of many traces
/// at once: from head rows, and from the scan columns of only the block row groups that hold them
/// (through the column cache), so no trace is decoded on its own. Each span ID counts once, the
/// first copy met (head before blocks, older blocks first), as ``TraceLookup`` keeps it.
///
/// A trace met in one source only — the head chunks of one partition, or one block (each holds a
/// span once) — needs no span-ID check: its rows are summed directly, a few nanoseconds a span. A
/// trace met in two sources (or in chunks that are not the head's) is summed again, span ID by span
/// ID, by ``finish(snapshot:store:limits:)``.
struct TraceSummaries {
    private struct Facts {
        var minStart = UInt64.max
        var maxEnd: UInt64 = 0
        var root: (service: String, name: String)?
        /// Per service in order of first appearance (a trace has few: a linear search beats hashing).
        var services: [(service: String, spans: Int, errors: Int)] = []
        /// Where its rows were first met.
        var source: Source?
        /// Met in a second source, or in chunks that may repeat a span: summed again exactly.
        var mayRepeat = false

        @inline(__always) mutating func add(start: UInt64, end: UInt64, isRoot: Bool, isError: Bool, service: String, name: () throws -> String) rethrows {
            if start < self.minStart { self.minStart = start }
            if end > self.maxEnd { self.maxEnd = end }
            if isRoot && self.root == nil { self.root = (service, try name()) }
            let error = isError ? 1 : 0
            if let k = self.services.firstIndex(where: { $0.service == service }) {
                self.services[k].spans += 1
                self.services[k].errors += error
            } else {
                self.services.append((service, 1, error))
            }
        }

        mutating func met(in source: Source) {
            if let first = self.source {
                if first != source { self.mayRepeat = true }
            } else {
                self.source = source
            }
        }
    }

    /// A source that holds each span of a trace once.
    private enum Source: Equatable {
        /// The head chunks of one placement.
        case head(String)
        /// One block.
        case block(UInt64)
    }

    let wanted: WantedTraces
    private var facts: [Facts]

    init(_ wanted: WantedTraces) {
        self.wanted = wanted
        self.facts = Array(repeating: Facts(), count: wanted.count)
    }

    /// Sums the wanted traces' spans in head chunks: per trace, its rows of each chunk in order
    /// (chunks in snapshot order), services named once per chunk.
    mutating func addHead(_ chunks: [HeadChunk], lastRows: [[(trace: Int, last: UInt32)]]? = nil) {
        var rows: [Int] = []
        for (c, chunk) in chunks.enumerated() {
            let b = chunk.batch
            let source = Source.head(chunk.placement)
            let fromHead = chunk.holdsEachSpanOnce
            var serviceOfResource = [String?](repeating: nil, count: b.resourceCount)
            func service(_ row: Int) -> String {
                let r = Int(b.resourceIndex[row])
                if let s = serviceOfResource[r] { return s }
                let s = b.strings.string(b.resourceServiceName[r])
                serviceOfResource[r] = s
                return s
            }
            func sum(_ i: Int, last: UInt32) {
                rows.removeAll(keepingCapacity: true)
                chunk.appendRows(endingAt: last, to: &rows)
                self.facts[i].met(in: source)
                if !fromHead { self.facts[i].mayRepeat = true }
                for row in rows.reversed() {
                    self.facts[i].add(
                        start: b.startTime[row], end: b.endTime[row], isRoot: b.parentSpanID[row] == 0, isError: b.statusCode[row] == 2,
                        service: service(row), name: { b.strings.string(b.name[row]) }
                    )
                }
            }
            for (i, last) in lastRows?[c] ?? chunk.lastRows(of: self.wanted) { sum(i, last: last) }
        }
    }

    /// Sums the spans of the rows `rows` (ascending, with their traces' positions) of a block row group.
    mutating func addBlockRows(_ rows: [(trace: Int32, row: Int32)], _ group: BlockGroupColumns) throws {
        var none: [Int: Set<UInt64>] = [:]
        try self.addBlockRows(rows, group, spanIDs: nil, seen: &none)
    }

    /// ``addBlockRows(_:_:)``; with `spanIDs` (the group's span ID column), a span counts only when
    /// its ID is new to its trace's set in `seen`.
    private mutating func addBlockRows(
        _ rows: [(trace: Int32, row: Int32)], _ group: BlockGroupColumns, spanIDs: [UInt64]?, seen: inout [Int: Set<UInt64>]
    ) throws {
        let chunk = group.chunk
        let (start, end) = try chunk.timing()
        let parent = try chunk.words(.parentSpanID)
        let resource = try chunk.ids(.resource), status = try chunk.bytes(.status), name = try chunk.ids(.name)
        // Hoisted: the row loop touches neither the group nor its resource batch.
        let strings = group.strings
        let serviceNames = group.resources.resourceServiceName
        let source = Source.block(group.block)
        var services: [UInt32: String] = [:]
        var last: Int32 = -1
        for (t, r) in rows {
            let i = Int(t), row = Int(r)
            // Rows of one trace are adjacent: its source is noted once per run.
            if t != last {
                last = t
                if spanIDs == nil { self.facts[i].met(in: source) }
            }
            if let spanIDs, !seen[i, default: []].insert(spanIDs[row]).inserted { continue }
            let resourceIndex = Int(resource[row])
            guard resourceIndex < serviceNames.count else { throw BlockFormatError("span resource \(resourceIndex) outside the resource table") }
            let serviceID = serviceNames[resourceIndex]
            let service: String
            if let s = services[serviceID] {
                service = s
            } else {
                service = try strings.string(serviceID)
                services[serviceID] = service
            }
            try self.facts[i].add(
                start: start[row], end: end[row], isRoot: parent[row] == 0, isError: status[row] == 2, service: service,
                name: { try strings.string(name[row]) }
            )
        }
    }

    /// Sums again, span ID by span ID over head and blocks, the traces met in more than one source
    /// (or in chunks that may repeat a span). Call after ``addHead(_:)`` and every
    /// ``addBlockRows(_:_:)``.
    mutating func finish(snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits) throws {
        let exact = self.facts.indices.filter { self.facts[$0].mayRepeat }
        guard !exact.isEmpty else { return }
        var seen: [Int: Set<UInt64>] = [:]
        for i in exact {
            self.facts[i] = Facts()
            seen[i] = []
        }
        for chunk in snapshot.chunks {
            let b = chunk.batch
            for i in exact {
                for row in chunk.rows(of: self.wanted.ids[i]) where seen[i, default: []].insert(b.spanID[row]).inserted {
                    self.facts[i].add(
                        start: b.startTime[row], end: b.endTime[row], isRoot: b.parentSpanID[row] == 0, isError: b.statusCode[row] == 2,
                        service: b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])]), name: { b.strings.string(b.name[row]) }
                    )
                }
            }
        }
        let again = WantedTraces(exact.map { self.wanted.ids[$0] })
        try BlockGroupColumns.forEach(holding: again, snapshot: snapshot, store: store, limits: limits) { rows, group in
            let positions = rows.map { (trace: Int32(exact[Int($0.trace)]), row: $0.row) }
            try self.addBlockRows(positions, group, spanIDs: try group.chunk.words(.spanID), seen: &seen)
        }
    }

    /// The summary of trace `id` as ``SearchExecutor/summarize(_:in:)`` gives it (no matched spans yet).
    func summary(_ id: TraceID) -> TraceSummary {
        let t = self.wanted.position(id).map { self.facts[$0] } ?? Facts()
        let start = t.minStart == .max ? 0 : t.minStart
        return TraceSummary(
            traceID: id,
            rootServiceName: t.root?.service ?? TraceSummary.noRoot,
            rootTraceName: t.root?.name ?? "",
            startNanos: start,
            durationNanos: t.maxEnd > start ? t.maxEnd - start : 0,
            matchedSpans: [],
            matched: 0,
            serviceStats: t.services
        )
    }
}

/// One block row group read through the column cache, with the block's strings and resources.
struct BlockGroupColumns {
    /// The block's ID.
    let block: UInt64
    let chunk: ChunkColumns
    let strings: SourceStrings
    let resources: SpanBatch

    /// Calls `body` for every row group of the snapshot's blocks that holds spans of `wanted`, with
    /// those rows (ascending) and their traces' positions in `wanted`; blocks in snapshot order,
    /// groups in order. Groups are found by the block-wide trace filter and the groups' Bloom filters,
    /// and confirmed by their trace IDs. A block that fails to read is quarantined and skipped, as a
    /// trace lookup does.
    static func forEach(
        holding wanted: WantedTraces, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits,
        _ body: ([(trace: Int32, row: Int32)], BlockGroupColumns) throws -> Void
    ) throws {
        guard !wanted.isEmpty else { return }
        for meta in snapshot.blocks where !store.isQuarantined(meta.id) {
            try limits.check()
            var found: [(rows: [(trace: Int32, row: Int32)], group: BlockGroupColumns)] = []
            do {
                let reader = try store.reader(meta)
                // The block-wide filter first (one probe per trace; blocks of other times hold none of
                // them), then the groups' Bloom filters until every group is a candidate.
                let filter = try store.traceFilter(meta) { reader }
                var groups = Set<Int>()
                for id in wanted.ids where groups.count < reader.groups.count && filter?.mayContain(id) != false {
                    groups.formUnion(try reader.candidateGroups(id))
                }
                if groups.isEmpty { continue }
                let strings = SourceStrings(table: nil, dictionary: reader.dictionary)
                let resources = try reader.blockLevelBatch(strings: StringTable())
                for g in groups.sorted() {
                    let chunk = ChunkColumns(rows: Int(reader.groups.spans[g])) { c in try store.column(meta, reader, group: g, c) }
                    guard case .traces(let traceOf, let high, let low) = try chunk.values(.traces), traceOf.count == chunk.rows else {
                        throw BlockFormatError("column traces has the wrong shape")
                    }
                    var held = [Int32](repeating: -1, count: high.count)
                    var any = false
                    for t in high.indices {
                        held[t] = wanted.position(high: high[t], low: low[t])
                        if held[t] >= 0 { any = true }
                    }
                    guard any else { continue }
                    var rows: [(trace: Int32, row: Int32)] = []
                    for (row, t) in traceOf.enumerated() {
                        guard Int(t) < held.count else { throw BlockFormatError("row \(row) of group \(g) names no trace") }
                        let position = held[Int(t)]
                        if position >= 0 { rows.append((position, Int32(row))) }
                    }
                    if !rows.isEmpty {
                        found.append((rows, BlockGroupColumns(block: meta.id, chunk: chunk, strings: strings, resources: resources)))
                    }
                }
                for (rows, group) in found { try body(rows, group) }
            } catch let error as AggregationError {
                throw error
            } catch {
                store.quarantine(meta, error)
            }
        }
    }
}
