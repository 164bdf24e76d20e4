import WeftModel
import WeftStorageEngine

/// Whole-trace summaries (root, first start, last end, spans and errors per service) of many traces
/// at once: from head rows, and from the scan columns of only the block row groups that hold them
/// (through the column cache), so no trace is decoded on its own. Each span ID counts once, the
/// first copy met (head before blocks, older blocks first), as ``TraceLookup`` keeps it.
///
/// A trace held only by the head chunks of one partition needs no span-ID check (the head keeps each
/// span of a partition once): its head rows are summed directly, a few nanoseconds a span. A trace
/// also met in a block (or in chunks of two partitions, or in chunks that are not the head's) is
/// summed span ID by span ID by ``finish(snapshot:store:limits:)``.
struct TraceSummaries {
    private struct Accumulator {
        var seen = Set<UInt64>()
        var minStart = UInt64.max
        var maxEnd: UInt64 = 0
        var root: (service: String, name: String)?
        /// Per service in order of first appearance (a trace has few: a linear search beats hashing).
        var services: [(service: String, spans: Int, errors: Int)] = []
    }

    /// A trace summed from head rows without span-ID checks.
    private struct HeadFacts {
        var placement: String
        /// Met in chunks that may repeat a span (another partition, or chunks not from the head).
        var mayRepeat = false
        var minStart = UInt64.max
        var maxEnd: UInt64 = 0
        var root: (service: String, name: String)?
        var services: [(service: String, spans: Int, errors: Int)] = []
    }

    private var traces: [TraceID: Accumulator]
    private var head: [TraceID: HeadFacts] = [:]
    /// Traces met in a block row group.
    private var inBlocks = Set<TraceID>()

    init(_ ids: some Sequence<TraceID>) {
        self.traces = [:]
        for id in ids { self.traces[id] = Accumulator() }
    }

    /// Counts one span of a wanted trace; false when its span ID was already counted. `name` is read
    /// for the first root only.
    @discardableResult
    mutating func add(
        _ id: TraceID, spanID: UInt64, start: UInt64, end: UInt64, isRoot: Bool, isError: Bool, service: String, name: () throws -> String
    ) rethrows -> Bool {
        guard let i = self.traces.index(forKey: id) else { return false }
        return try self.add(at: i, spanID: spanID, start: start, end: end, isRoot: isRoot, isError: isError, service: service, name: name)
    }

    /// ``add(_:spanID:start:end:isRoot:isError:service:name:)`` for the trace at index `i` of `traces`.
    @discardableResult
    private mutating func add(
        at i: Dictionary<TraceID, Accumulator>.Index, spanID: UInt64, start: UInt64, end: UInt64, isRoot: Bool, isError: Bool, service: String,
        name: () throws -> String
    ) rethrows -> Bool {
        // In place: a copy of the accumulator would copy its set and array on every write.
        guard self.traces.values[i].seen.insert(spanID).inserted else { return false }
        self.traces.values[i].minStart = min(self.traces.values[i].minStart, start)
        self.traces.values[i].maxEnd = max(self.traces.values[i].maxEnd, end)
        if isRoot && self.traces.values[i].root == nil { self.traces.values[i].root = (service, try name()) }
        let error = isError ? 1 : 0
        if let k = self.traces.values[i].services.firstIndex(where: { $0.service == service }) {
            self.traces.values[i].services[k].spans += 1
            self.traces.values[i].services[k].errors += error
        } else {
            self.traces.values[i].services.append((service, 1, error))
        }
        return true
    }

    /// Counts the wanted traces' spans in head chunks, span ID by span ID.
    private mutating func addHeadRows(_ chunks: [HeadChunk], _ ids: [TraceID]) {
        for chunk in chunks {
            let b = chunk.batch
            for id in ids {
                for row in chunk.rows(of: id) {
                    self.add(
                        id, spanID: b.spanID[row], start: b.startTime[row], end: b.endTime[row], isRoot: b.parentSpanID[row] == 0,
                        isError: b.statusCode[row] == 2, service: b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])]),
                        name: { b.strings.string(b.name[row]) }
                    )
                }
            }
        }
    }

    /// Sums the wanted traces' spans in head chunks: per trace, its rows of each chunk in order
    /// (chunks in snapshot order), services named once per chunk.
    mutating func addHead(_ chunks: [HeadChunk]) {
        let wanted = Array(self.traces.keys)
        var rows: [Int] = []
        for chunk in chunks {
            let b = chunk.batch
            let fromHead = chunk.holdsEachSpanOnce
            var serviceOfResource = [String?](repeating: nil, count: b.resourceCount)
            func service(_ row: Int) -> String {
                let r = Int(b.resourceIndex[row])
                if let s = serviceOfResource[r] { return s }
                let s = b.strings.string(b.resourceServiceName[r])
                serviceOfResource[r] = s
                return s
            }
            func sum(_ id: TraceID, last: UInt32) {
                rows.removeAll(keepingCapacity: true)
                var row = last
                while row != .max {
                    rows.append(Int(row))
                    row = chunk.previousInTrace[Int(row)]
                }
                let i = self.head.index(forKey: id) ?? {
                    self.head[id] = HeadFacts(placement: chunk.placement)
                    return self.head.index(forKey: id)!
                }()
                if !fromHead || self.head.values[i].placement != chunk.placement { self.head.values[i].mayRepeat = true }
                for row in rows.reversed() {
                    let start = b.startTime[row], end = b.endTime[row]
                    if start < self.head.values[i].minStart { self.head.values[i].minStart = start }
                    if end > self.head.values[i].maxEnd { self.head.values[i].maxEnd = end }
                    let svc = service(row)
                    if b.parentSpanID[row] == 0 && self.head.values[i].root == nil { self.head.values[i].root = (svc, b.strings.string(b.name[row])) }
                    let error = b.statusCode[row] == 2 ? 1 : 0
                    if let k = self.head.values[i].services.firstIndex(where: { $0.service == svc }) {
                        self.head.values[i].services[k].spans += 1
                        self.head.values[i].services[k].errors += error
                    } else {
                        self.head.values[i].services.append((svc, 1, error))
                    }
                }
            }
            if wanted.count <= chunk.lastRowOfTrace.count {
                for id in wanted { if let last = chunk.lastRowOfTrace[id] { sum(id, last: last) } }
            } else {
                for (id, last) in chunk.lastRowOfTrace where self.traces[id] != nil { sum(id, last: last) }
            }
        }
    }

    /// Sums again, span ID by span ID over head and blocks, the traces whose head rows may repeat a
    /// span held elsewhere: those also met in blocks, in chunks of two partitions or in chunks that
    /// are not the head's. Call after ``addHead(_:)`` and every ``addBlockRows(_:_:)``.
    mutating func finish(snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits) throws {
        let exact = self.head.filter { $0.value.mayRepeat || self.inBlocks.contains($0.key) }.map(\.key)
        guard !exact.isEmpty else { return }
        for id in exact {
            self.head[id] = nil
            self.traces[id] = Accumulator()
        }
        self.addHeadRows(snapshot.chunks, exact)
        let blocks = Set(exact).intersection(self.inBlocks)
        try BlockGroupColumns.forEach(holding: blocks, snapshot: snapshot, store: store, limits: limits) { rows, group in
            try self.addBlockRows(rows, group)
        }
    }

    /// Counts the spans of the rows `rows` (ascending, with their traces) of a block row group.
    mutating func addBlockRows(_ rows: [(trace: TraceID, row: Int)], _ group: BlockGroupColumns) throws {
        let chunk = group.chunk
        let (start, end) = try chunk.timing()
        let spanID = try chunk.words(.spanID), parent = try chunk.words(.parentSpanID)
        let resource = try chunk.ids(.resource), status = try chunk.bytes(.status), name = try chunk.ids(.name)
        // Hoisted: the row loop touches neither the group nor its resource batch.
        let strings = group.strings
        let serviceNames = group.resources.resourceServiceName
        var services: [UInt32: String] = [:]
        // Rows of one trace are adjacent: its accumulator is looked up once per run.
        var last: (id: TraceID, index: Dictionary<TraceID, Accumulator>.Index?)?
        for (id, row) in rows {
            if last?.id != id {
                self.inBlocks.insert(id)
                last = (id, self.traces.index(forKey: id))
            }
            guard let i = last?.index else { continue }
            let r = Int(resource[row])
            guard r < serviceNames.count else { throw BlockFormatError("span resource \(r) outside the resource table") }
            let serviceID = serviceNames[r]
            let service: String
            if let s = services[serviceID] {
                service = s
            } else {
                service = try strings.string(serviceID)
                services[serviceID] = service
            }
            try self.add(
                at: i, spanID: spanID[row], start: start[row], end: end[row], isRoot: parent[row] == 0, isError: status[row] == 2,
                service: service, name: { try strings.string(name[row]) }
            )
        }
    }

    /// The summary of trace `id` as ``SearchExecutor/summarize(_:in:)`` gives it (no matched spans yet).
    func summary(_ id: TraceID) -> TraceSummary {
        if let h = self.head[id] {
            let start = h.minStart == .max ? 0 : h.minStart
            return TraceSummary(
                traceID: id,
                rootServiceName: h.root?.service ?? "<root span not yet received>",
                rootTraceName: h.root?.name ?? "",
                startNanos: start,
                durationNanos: h.maxEnd > start ? h.maxEnd - start : 0,
                matchedSpans: [],
                matched: 0,
                serviceStats: h.services
            )
        }
        let t = self.traces[id] ?? Accumulator()
        let start = t.minStart == .max ? 0 : t.minStart
        return TraceSummary(
            traceID: id,
            rootServiceName: t.root?.service ?? "<root span not yet received>",
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
    let chunk: ChunkColumns
    let strings: SourceStrings
    let resources: SpanBatch

    /// Calls `body` for every row group of the snapshot's blocks that holds spans of `wanted`, with
    /// those rows (ascending) and their traces; blocks in snapshot order, groups in order. Groups are
    /// found by their Bloom filters and confirmed by their trace IDs. A block that fails to read is
    /// quarantined and skipped, as a trace lookup does.
    static func forEach(
        holding wanted: Set<TraceID>, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits,
        _ body: ([(trace: TraceID, row: Int)], BlockGroupColumns) throws -> Void
    ) throws {
        guard !wanted.isEmpty else { return }
        for meta in snapshot.blocks where !store.isQuarantined(meta.id) {
            try limits.check()
            var found: [(rows: [(trace: TraceID, row: Int)], group: BlockGroupColumns)] = []
            do {
                let reader = try store.reader(meta)
                var groups = Set<Int>()
                // Bloom probes until every group is a candidate (many wanted traces reach that soon).
                for id in wanted where groups.count < reader.groups.count { groups.formUnion(try reader.candidateGroups(id)) }
                if groups.isEmpty { continue }
                let strings = SourceStrings(table: nil, dictionary: reader.dictionary)
                let resources = try reader.blockLevelBatch(strings: StringTable())
                for g in groups.sorted() {
                    let chunk = ChunkColumns(rows: Int(reader.groups.spans[g])) { c in try store.column(meta, reader, group: g, c) }
                    guard case .traces(let traceOf, let high, let low) = try chunk.values(.traces), traceOf.count == chunk.rows else {
                        throw BlockFormatError("column traces has the wrong shape")
                    }
                    let held = high.indices.map { i -> TraceID? in
                        let id = TraceID(high: high[i], low: low[i])
                        return wanted.contains(id) ? id : nil
                    }
                    var rows: [(trace: TraceID, row: Int)] = []
                    for (row, t) in traceOf.enumerated() {
                        guard Int(t) < held.count else { throw BlockFormatError("row \(row) of group \(g) names no trace") }
                        if let id = held[Int(t)] { rows.append((id, row)) }
                    }
                    if !rows.isEmpty { found.append((rows, BlockGroupColumns(chunk: chunk, strings: strings, resources: resources))) }
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
