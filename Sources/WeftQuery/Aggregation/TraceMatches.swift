import WeftModel
import WeftStorageEngine

/// Spans matching a filter in a time range: how many, and the traces with the latest matches.
public struct TraceMatches: Sendable {
    public var spans: Int
    /// Most recent first (by latest matching span; ties by trace ID).
    public var traces: [TraceMatch]
    public var stats: ScanStats
}

/// The columnar span search: the same scan units, plans and filters as aggregation, collecting
/// per trace its latest matching span.
public enum TraceMatchExecutor {
    public static func latest(
        _ filter: TraceQLFilter, startNanos: UInt64, endNanos: UInt64, limit: Int, snapshot: StorageEngine.Snapshot, store: BlockStore,
        limits: AggregationLimits = AggregationLimits()
    ) throws -> TraceMatches {
        let query = AggregationQuery(filter: filter, aggregates: [.count], startNanos: startNanos, endNanos: endNanos)
        return try self.latest(query, limit: limit, snapshot: snapshot, store: store, limits: limits, context: HeadTraceContext.needed(query) ? HeadTraceContext(snapshot.chunks) : nil)
    }

    /// With the head's trace context already built (nil when the filter needs none).
    static func latest(
        _ query: AggregationQuery, limit: Int, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits, context: HeadTraceContext?
    ) throws -> TraceMatches {
        let (found, spans, stats) = try self.all(query, snapshot: snapshot, store: store, limits: limits, context: context)
        return TraceMatches(spans: spans, traces: found.latest(max(0, limit)), stats: stats)
    }

    /// The `limit` traces with the latest matches, found newest data first: the scan stops once
    /// `limit` traces have a match later than any span of the data not yet read (that data can neither
    /// add a trace to them nor move one's latest match). Their latest starts and order are exact; when
    /// `countsComplete` is false, `matched`, `spans` and the scan figures cover only the data read, and
    /// the caller counts the chosen traces' matches over all of it.
    static func latestNewestFirst(
        _ query: AggregationQuery, limit: Int, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits, context: HeadTraceContext?
    ) throws -> (matches: TraceMatches, countsComplete: Bool) {
        let k = max(0, limit)
        let (found, spans, stats, stopped) = try self.all(query, snapshot: snapshot, store: store, limits: limits, context: context, enoughAt: k)
        return (TraceMatches(spans: spans, traces: found.latest(k), stats: stats), !stopped)
    }

    /// Every trace with matching spans, as a partial that merges with those of other data.
    public static func partial(
        _ filter: TraceQLFilter, startNanos: UInt64, endNanos: UInt64, snapshot: StorageEngine.Snapshot, store: BlockStore,
        limits: AggregationLimits = AggregationLimits()
    ) throws -> TraceMatchesPartial {
        let query = AggregationQuery(filter: filter, aggregates: [.count], startNanos: startNanos, endNanos: endNanos)
        let context = HeadTraceContext.needed(query) ? HeadTraceContext(snapshot.chunks) : nil
        let (found, spans, stats) = try self.all(query, snapshot: snapshot, store: store, limits: limits, context: context)
        var partial = TraceMatchesPartial()
        partial.traces.reserveCapacity(found.count)
        found.forEach { id, latest, matched in partial.traces[id] = .init(latestStart: latest, matched: matched) }
        partial.spans = spans
        partial.stats = stats
        return partial
    }

    /// Every trace with matching spans, the matching spans in all, and what the scan looked at.
    static func all(
        _ query: AggregationQuery, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits, context: HeadTraceContext?
    ) throws -> (FoundTraces, Int, ScanStats) {
        let (found, spans, stats, _) = try self.all(query, snapshot: snapshot, store: store, limits: limits, context: context, enoughAt: nil)
        return (found, spans, stats)
    }

    /// With `enoughAt` (k), newest data first, stopping once one thread holds k traces whose latest
    /// match is later than every span left to read.
    static func all(
        _ query: AggregationQuery, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits, context: HeadTraceContext?,
        enoughAt k: Int?
    ) throws -> (FoundTraces, Int, ScanStats, stopped: Bool) {
        let (startNanos, endNanos) = (query.startNanos, query.endNanos)
        if let problem = query.problem { throw AggregationError.invalid(problem) }
        struct State: @unchecked Sendable {
            var worker: Worker
            var found = FoundTraces()
            var spans = 0
            var stats = ScanStats()
        }
        var enough: (@Sendable (inout State, UInt64) -> Bool)? = nil
        if let k {
            enough = { (state: inout State, next: UInt64) -> Bool in state.found.count >= k && state.found.has(k, laterThan: next) }
        }
        let (states, stats, stopped) = try ScanRunner.run(
            startNanos: startNanos, endNanos: endNanos, snapshot: snapshot, store: store, limits: limits,
            make: { State(worker: Worker(query: query, limits: limits)) },
            scan: { state, unit, reader in
                let (chunk, plan, inside): (ChunkColumns, Worker.SourcePlan, Bool)
                switch unit {
                case .head(let c): (chunk, plan, inside) = try state.worker.open(snapshot.chunks[c], context, &state.stats)
                case .group(let b, let g): (chunk, plan, inside) = try state.worker.open(snapshot.blocks[b], reader!, g, store, &state.stats)
                }
                let rows = try state.worker.select(chunk, plan, allInRange: inside)
                if rows.isEmpty { return }
                state.spans += rows.count
                guard case .traces(let traceOf, let high, let low) = try chunk.values(.traces) else { throw BlockFormatError("trace column has the wrong shape") }
                let (start, _) = try chunk.timing()
                // A block group keeps a trace's rows together: fold each run of one trace, then record it once.
                var run = (trace: -1, latest: UInt64(0), matched: 0)
                for (i, row) in rows.enumerated() {
                    if i & AggregationLimits.checkEvery == 0 { try limits.check() }
                    let t = Int(traceOf[Int(row)])
                    let s = start[Int(row)]
                    if t == run.trace {
                        run.latest = max(run.latest, s)
                        run.matched += 1
                        continue
                    }
                    if run.trace >= 0 { state.found.add(high[run.trace], low[run.trace], run.latest, run.matched) }
                    run = (t, s, 1)
                }
                state.found.add(high[run.trace], low[run.trace], run.latest, run.matched)
            },
            enough: enough
        )
        var found = FoundTraces()
        var total = stats
        var spans = 0
        for s in states {
            spans += s.spans
            total.add(s.stats)
            found.merge(s.found)
        }
        total.inspectedTraces = found.count
        return (found, spans, total, stopped)
    }
}

/// Traces with matching spans: the latest matching start and the count per trace, in a map keyed by
/// the trace ID's two halves (random bits, so a multiplicative hash suffices).
struct FoundTraces {
    private var slots = SlotMap()
    private var high: [UInt64] = []
    private var low: [UInt64] = []
    private var latestStart: [UInt64] = []
    private var matched: [Int] = []

    var count: Int { self.high.count }

    mutating func add(_ h: UInt64, _ l: UInt64, _ latest: UInt64, _ n: Int) {
        if let i = self.slots.get(l, h).map(Int.init) {
            self.latestStart[i] = max(self.latestStart[i], latest)
            self.matched[i] += n
            return
        }
        self.slots.put(l, h, Int32(self.high.count))
        self.high.append(h)
        self.low.append(l)
        self.latestStart.append(latest)
        self.matched.append(n)
    }

    /// Whether at least `k` traces have their latest match after `start`.
    func has(_ k: Int, laterThan start: UInt64) -> Bool {
        var n = 0
        for s in self.latestStart where s > start {
            n += 1
            if n >= k { return true }
        }
        return k == 0
    }

    mutating func merge(_ other: FoundTraces) {
        for i in 0..<other.count { self.add(other.high[i], other.low[i], other.latestStart[i], other.matched[i]) }
    }

    /// Calls `body` with each trace, its latest matching start and its matching spans.
    func forEach(_ body: (TraceID, UInt64, Int) -> Void) {
        for i in 0..<self.count { body(TraceID(high: self.high[i], low: self.low[i]), self.latestStart[i], self.matched[i]) }
    }

    /// The `limit` traces with the latest matching span (ties by trace ID).
    func latest(_ limit: Int) -> [TraceMatch] {
        let order = (0..<self.count).sorted { a, b in
            if self.latestStart[a] != self.latestStart[b] { return self.latestStart[a] > self.latestStart[b] }
            return TraceID(high: self.high[a], low: self.low[a]) < TraceID(high: self.high[b], low: self.low[b])
        }
        return order.prefix(limit).map { TraceMatch(traceID: TraceID(high: self.high[$0], low: self.low[$0]), latestStart: self.latestStart[$0], matched: self.matched[$0]) }
    }
}

extension SearchExecutor {
    /// A TraceQL search (`q` only, no tag conditions) on the columnar engine: the traces with the
    /// latest matching spans, each summarised over all its spans, with up to `spss` matching spans
    /// (found by running the same filter over the trace's spans). Trace-level intrinsics
    /// (`rootServiceName`, `rootName`, `traceDuration`) are judged per source: a block row group holds
    /// whole traces; in the head, per chunk.
    public static func columnar(
        _ request: SearchRequest, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits = AggregationLimits()
    ) throws -> SearchResult {
        // One trace context of the head serves both the scan and the matching spans.
        let context = self.headContext(request, snapshot)
        let (matches, complete) = try self.latestMatches(request, snapshot: snapshot, store: store, limits: limits, context: context)
        // When the scan stopped early, the summaries count the chosen traces' matches over all the data.
        return try self.columnarSummaries(request, matches, snapshot: snapshot, store: store, limits: limits, context: context, countMatches: !complete)
    }

    /// The head's trace context a TraceQL-only search needs (nil when its filter reads no trace-level field).
    static func headContext(_ request: SearchRequest, _ snapshot: StorageEngine.Snapshot) -> HeadTraceContext? {
        HeadTraceContext.needed(self.columnarQuery(request)) ? HeadTraceContext(snapshot.chunks) : nil
    }

    /// The `limit` traces with the latest matches of a TraceQL-only search: newest data first
    /// (``TraceMatchExecutor``'s `latestNewestFirst`), except where the summaries cannot count matches
    /// (attributes shown only from decoded spans); `countsComplete` as there.
    static func latestMatches(
        _ request: SearchRequest, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits, context: HeadTraceContext?
    ) throws -> (matches: TraceMatches, countsComplete: Bool) {
        let query = self.columnarQuery(request)
        if SpanAttributeSelection(filter: query.filter, select: request.select).needsDecodedSpans {
            return (try TraceMatchExecutor.latest(query, limit: request.limit, snapshot: snapshot, store: store, limits: limits, context: context), true)
        }
        return try TraceMatchExecutor.latestNewestFirst(query, limit: request.limit, snapshot: snapshot, store: store, limits: limits, context: context)
    }

    /// The span query of a TraceQL-only search.
    static func columnarQuery(_ request: SearchRequest) -> AggregationQuery {
        AggregationQuery(filter: request.traceQL ?? .all, aggregates: [.count], startNanos: request.startNanos ?? 0, endNanos: request.endNanos ?? .max)
    }

    /// The chosen traces of a TraceQL-only search summarised, with their matching spans. With
    /// `countMatches`, each trace's `matched` is counted here over the whole snapshot (the matching
    /// spans are read anyway) instead of taken from `matches`. Not with attributes shown only from
    /// decoded spans (``SpanAttributeSelection/needsDecodedSpans``).
    static func columnarSummaries(
        _ request: SearchRequest, _ matches: TraceMatches, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits,
        context: HeadTraceContext?, countMatches: Bool = false
    ) throws -> SearchResult {
        let query = self.columnarQuery(request)
        let filter = query.filter
        let wanted = WantedTraces(matches.traces.map(\.traceID))
        // Matching spans of the chosen traces in the head: one filter pass per chunk over their rows.
        var spans = [[SpanSummary]](repeating: [], count: wanted.count)
        var counted = [Int](repeating: 0, count: wanted.count)
        let shown = SpanAttributeSelection(filter: filter, select: request.select)
        precondition(!countMatches || !shown.needsDecodedSpans, "matches are counted from block columns")
        func collect(_ batch: SpanBatch, _ rows: [Int], head: HeadChunk?) throws {
            guard !rows.isEmpty else { return }
            let (chunk, strings) = head.flatMap { context?.source($0) }
                ?? (head.map { ChunkColumns(head: $0) } ?? ChunkColumns(rows: batch.spanCount) { c in batch.scanColumn(c) }, SourceStrings(table: batch.strings, dictionary: nil))
            let plan = try FilterPlan(filter, strings, limits)
            var (candidates, rest) = (rows.map { Int32($0) }, plan)
            if let postings = head?.postings, let narrowed = Worker.throughPostings(plan, candidates, postings, batch) {
                (candidates, rest) = narrowed
            }
            // Attribute columns for these rows alone, not every span of the chunk.
            chunk.readOnly(candidates, of: batch)
            let keys = shown.keys(batch)
            for row in try rest.select(candidates, chunk, batch) {
                let r = Int(row)
                let start = batch.startTime[r]
                guard start >= query.startNanos && start <= query.endNanos else { continue }
                guard let i = wanted.position(batch.traceID(r)) else { continue }
                counted[i] += 1
                // A span in the head and in a block is listed once.
                if spans[i].count < request.spansPerSpanSet, !spans[i].contains(where: { $0.spanID == batch.spanID[r] }) {
                    let end = batch.endTime[r]
                    spans[i].append(SpanSummary(
                        spanID: batch.spanID[r], name: batch.strings.string(batch.name[r]), startNanos: start, durationNanos: end > start ? end - start : 0,
                        attributes: shown.values(batch, r, keys: keys)
                    ))
                }
            }
        }
        let lastRows = snapshot.chunks.map { $0.lastRows(of: wanted) }
        for (chunk, traces) in zip(snapshot.chunks, lastRows) {
            try limits.check()
            try collect(chunk.batch, chunk.rows(of: traces), head: chunk)
        }
        // Whole-trace summaries from head rows and block columns; matching spans of the chosen traces
        // in blocks: one filter pass per row group holding any of them, over just their rows.
        var summaries = TraceSummaries(wanted)
        summaries.addHead(snapshot.chunks, lastRows: lastRows)
        if shown.needsDecodedSpans {
            // Attributes blocks keep only in typed columns: the matching spans from decoded traces.
            for m in matches.traces {
                try limits.check()
                for b in try TraceLookup.blockChunks(m.traceID, snapshot: snapshot, store: store) { try collect(b.batch, Array(0..<b.batch.spanCount), head: nil) }
            }
        }
        try BlockGroupColumns.forEach(holding: wanted, snapshot: snapshot, store: store, limits: limits) { rows, group in
            try summaries.addBlockRows(rows, group)
            if shown.needsDecodedSpans { return }
            let chunk = group.chunk
            let plan = try FilterPlan(filter, group.strings, limits)
            let selected = try plan.select(rows.map { Int32($0.row) }, chunk, group.resources)
            if selected.isEmpty { return }
            let (starts, ends) = try chunk.timing()
            let spanIDs = try chunk.words(.spanID), names = try chunk.ids(.name)
            var attributes = try shown.reader(chunk, group.strings, group.resources)
            let strings = group.strings
            var nameCache: [UInt32: String] = [:]
            for row in selected {
                let r = Int(row)
                let start = starts[r]
                // `rows` is ascending: the selected row's trace by binary search, no hashing per row.
                var lo = 0, hi = rows.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if rows[mid].row < r { lo = mid + 1 } else { hi = mid }
                }
                guard start >= query.startNanos && start <= query.endNanos, lo < rows.count, rows[lo].row == r else { continue }
                let i = Int(rows[lo].trace)
                counted[i] += 1
                if spans[i].count < request.spansPerSpanSet, !spans[i].contains(where: { $0.spanID == spanIDs[r] }) {
                    spans[i].append(SpanSummary(
                        spanID: spanIDs[r], name: try nameCache[names[r]] ?? { let n = try strings.string(names[r]); nameCache[names[r]] = n; return n }(), startNanos: start, durationNanos: ends[r] > start ? ends[r] - start : 0,
                        attributes: try attributes.values(r)
                    ))
                }
            }
        }
        try summaries.finish(snapshot: snapshot, store: store, limits: limits)
        var traces: [TraceSummary] = []
        for m in matches.traces {
            var summary = summaries.summary(m.traceID)
            let position = wanted.position(m.traceID)
            summary.matched = countMatches ? position.map { counted[$0] } ?? 0 : m.matched
            summary.matchedSpans = position.map { spans[$0] }?.sorted { $0.startNanos < $1.startNanos } ?? []
            traces.append(summary)
        }
        return SearchResult(traces: traces, stats: matches.stats)
    }
}
