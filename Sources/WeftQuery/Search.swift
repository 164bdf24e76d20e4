import WeftModel
import WeftStorageEngine

/// Search results, most recent traces first.
public struct SearchResult: Sendable {
    public var traces: [TraceSummary]
    public var stats: ScanStats
}

/// One condition resolved against a chunk's dictionary.
private enum Resolved {
    case name(UInt32)
    case status(UInt8)
    case kind(UInt8)
    case serviceName(UInt32)
    case provider(UInt32)
    case requestModel(UInt32)
    case responseModel(UInt32)
    /// Index into the attribute-condition list; matched on span and/or resource attributes.
    case attribute(Int)
    case impossible
}

private struct AttributeMatcher {
    var key: UInt32
    var scope: TagCondition.Scope
    /// Acceptable (type, payload) pairs.
    var candidates: [(UInt8, UInt64)]

    func matches(_ attrs: AttributeColumns, _ range: Range<Int>) -> Bool {
        for i in range where attrs.keys[i] == self.key {
            let t = attrs.types[i]
            let v = attrs.values[i]
            for c in self.candidates where c.0 == t && c.1 == v { return true }
        }
        return false
    }
}

/// Tag search over head chunks and blocks.
public enum SearchExecutor {
    /// What matched in one trace so far.
    struct Match {
        var latest: UInt64
        var matched: Int
        var spans: [SpanSummary]
    }

    /// Head-only search (all data in `chunks`).
    public static func search(_ request: SearchRequest, in chunks: [HeadChunk]) -> SearchResult {
        var stats = ScanStats()
        var found: [TraceID: Match] = [:]
        for chunk in chunks {
            stats.inspectedBytes += chunk.batch.memoryFootprint
            self.scan(request, chunk.batch, minStart: chunk.minStart, maxStart: chunk.maxStart, &found, &stats)
        }
        return self.finish(request, found, stats) { id in TraceLookup.deduplicated(id, chunks) }
    }

    /// Whether a search runs on the columnar engine: TraceQL alone (which also answers trace-level
    /// intrinsics); with `tags` or durations it runs on the tag engine.
    public static func isColumnar(_ request: SearchRequest) -> Bool {
        request.traceQL != nil && request.conditions.isEmpty && request.minDurationNanos == nil && request.maxDurationNanos == nil
    }

    /// Round 1 of a search over a snapshot: every trace with matching spans, its latest matching start
    /// and how many matched, on the engine the request calls for (``isColumnar(_:)``).
    public static func partial(
        _ request: SearchRequest, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits = AggregationLimits()
    ) throws -> TraceMatchesPartial {
        if self.isColumnar(request) {
            let query = self.columnarQuery(request)
            return try TraceMatchExecutor.partial(query.filter, startNanos: query.startNanos, endNanos: query.endNanos, snapshot: snapshot, store: store, limits: limits)
        }
        let (found, stats) = try self.matches(request, snapshot: snapshot, store: store, limits: limits)
        var partial = TraceMatchesPartial()
        for (id, m) in found {
            partial.traces[id] = .init(latestStart: m.latest, matched: m.matched)
            partial.spans += m.matched
        }
        partial.stats = stats
        partial.stats.inspectedTraces = found.count
        return partial
    }

    /// Round 1 of a TraceQL search with a limit: only the `limit` traces with the latest matches (all
    /// a coordinator keeps of a node's round 1), found newest data first (``latestMatches(_:snapshot:store:limits:context:)``),
    /// with their matches counted over all the data. Nil for tag searches and searches without a limit.
    public static func latestPartial(
        _ request: SearchRequest, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits
    ) throws -> TraceMatchesPartial? {
        guard self.isColumnar(request), request.limit > 0 else { return nil }
        let context = self.headContext(request, snapshot)
        let (matches, complete) = try self.latestMatches(request, snapshot: snapshot, store: store, limits: limits, context: context)
        var counts = matches.traces.map(\.matched)
        if !complete {
            // The summary pass reads every matching span of these traces: one summary per trace, in order.
            counts = try self.columnarSummaries(request, matches, snapshot: snapshot, store: store, limits: limits, context: context, countMatches: true).traces.map(\.matched)
        }
        var partial = TraceMatchesPartial()
        for (m, matched) in zip(matches.traces, counts) { partial.traces[m.traceID] = .init(latestStart: m.latestStart, matched: matched) }
        partial.spans = matches.spans
        partial.stats = matches.stats
        return partial
    }

    /// The search answer from its (merged) round 1: the `limit` traces with the latest matches, each
    /// summarised over all its spans (each span ID once) with up to `spss` of its matching spans.
    public static func result(
        _ request: SearchRequest, _ matches: TraceMatchesPartial, snapshot: StorageEngine.Snapshot, store: BlockStore,
        limits: AggregationLimits = AggregationLimits()
    ) throws -> SearchResult {
        let chosen = TraceMatches(spans: matches.spans, traces: matches.latest(request.limit), stats: matches.stats)
        if self.isColumnar(request) {
            return try self.columnarSummaries(request, chosen, snapshot: snapshot, store: store, limits: limits, context: self.headContext(request, snapshot))
        }
        let wanted = Set(chosen.traces.map(\.traceID))
        let found = try self.matchingSpans(request, of: wanted, snapshot: snapshot, store: store, limits: limits)
        let summaries = try self.summaries(of: wanted, snapshot: snapshot, store: store, limits: limits)
        var traces: [TraceSummary] = []
        for m in chosen.traces {
            var summary = summaries.summary(m.traceID)
            summary.matched = m.matched
            summary.matchedSpans = found[m.traceID]?.spans ?? []
            traces.append(summary)
        }
        var stats = matches.stats
        stats.inspectedTraces = matches.traces.count
        return SearchResult(traces: traces, stats: stats)
    }

    /// Whole-trace summaries of `wanted` from head rows and block columns (see ``TraceSummaries``).
    static func summaries(
        of wanted: Set<TraceID>, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits
    ) throws -> TraceSummaries {
        var summaries = TraceSummaries(WantedTraces(wanted))
        summaries.addHead(snapshot.chunks)
        try BlockGroupColumns.forEach(holding: summaries.wanted, snapshot: snapshot, store: store, limits: limits) { rows, group in
            try summaries.addBlockRows(rows, group)
        }
        try summaries.finish(snapshot: snapshot, store: store, limits: limits)
        return summaries
    }

    /// The tag engine's matching spans of the `wanted` traces, each span ID once (head first, then
    /// blocks oldest first, as a trace lookup keeps them): one pass over each head chunk's rows of
    /// those traces, and in blocks only the row ranges of those traces, decoded once per block.
    static func matchingSpans(
        _ request: SearchRequest, of wanted: Set<TraceID>, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits
    ) throws -> [TraceID: Match] {
        var found: [TraceID: Match] = [:]
        guard !wanted.isEmpty else { return found }
        var ignored = ScanStats()
        var seen: [TraceID: Set<UInt64>] = [:]
        /// Rows whose span ID the trace has not shown yet.
        func fresh(_ id: TraceID, _ rows: some Sequence<Int>, _ batch: SpanBatch, into out: inout [Int]) {
            for row in rows where seen[id, default: []].insert(batch.spanID[row]).inserted { out.append(row) }
        }
        for chunk in snapshot.chunks {
            try limits.check()
            var rows: [Int] = []
            if wanted.count <= chunk.lastRowOfTrace.count {
                for id in wanted where chunk.lastRowOfTrace[id] != nil { fresh(id, chunk.rows(of: id), chunk.batch, into: &rows) }
            } else {
                for id in chunk.lastRowOfTrace.keys where wanted.contains(id) { fresh(id, chunk.rows(of: id), chunk.batch, into: &rows) }
            }
            guard !rows.isEmpty else { continue }
            rows.sort()
            self.scan(request, chunk.batch, minStart: 0, maxStart: .max, rows: rows, &found, &ignored)
        }
        let traceQLAttributes = request.traceQL.map(CompiledTraceQLFilter.readsAttributes) ?? false
        let parts: GroupParts = traceQLAttributes || request.conditions.contains(where: needsAttributes) ? [.attributes] : []
        for meta in snapshot.blocks where !store.isQuarantined(meta.id) {
            try limits.check()
            do {
                let reader = try store.reader(meta)
                var ranges: [(group: Int, trace: TraceID, rows: Range<Int>)] = []
                for id in wanted {
                    for g in try reader.candidateGroups(id) {
                        if let range = try reader.rows(of: id, inGroup: g) { ranges.append((g, id, range)) }
                    }
                }
                guard !ranges.isEmpty else { continue }
                // Block order: groups ascending, rows ascending.
                ranges.sort { ($0.group, $0.rows.lowerBound) < ($1.group, $1.rows.lowerBound) }
                var batch = try reader.blockLevelBatch(strings: try reader.stringTable())
                for r in ranges { try reader.decodeGroup(r.group, into: &batch, rows: r.rows, parts: parts) }
                var rows: [Int] = []
                var next = 0
                for r in ranges {
                    fresh(r.trace, next..<(next + r.rows.count), batch, into: &rows)
                    next += r.rows.count
                }
                guard next == batch.spanCount else { throw BlockFormatError("decoded \(batch.spanCount) rows, expected \(next)") }
                let traceQL = try request.traceQL.map { CompiledTraceQLFilter($0, strings: try reader.stringTable()) }
                self.scan(request, batch, minStart: 0, maxStart: .max, rows: rows, traceQL: traceQL, &found, &ignored)
            } catch let error as AggregationError {
                throw error
            } catch {
                store.quarantine(meta, error)
            }
        }
        return found
    }

    /// Search over a snapshot of head and blocks. Blocks are pruned by time, by their dictionary (a value
    /// the block never saw cannot match) and per row group by time, duration and posting lists; only
    /// groups that may match are decoded, one at a time.
    /// `limits` (deadline, cancellation) is checked before each chunk and block.
    public static func search(
        _ request: SearchRequest, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits? = nil
    ) throws -> SearchResult {
        let (found, stats) = try self.matches(request, snapshot: snapshot, store: store, limits: limits)
        var result = self.finish(request, found, stats) { _ in [] }
        let summaries = try self.summaries(of: Set(result.traces.map(\.traceID)), snapshot: snapshot, store: store, limits: limits ?? AggregationLimits())
        for i in result.traces.indices {
            var summary = summaries.summary(result.traces[i].traceID)
            summary.matched = result.traces[i].matched
            summary.matchedSpans = result.traces[i].matchedSpans
            result.traces[i] = summary
        }
        return result
    }

    /// The tag engine's scan: matching spans per trace.
    static func matches(
        _ request: SearchRequest, snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits?
    ) throws -> (found: [TraceID: Match], stats: ScanStats) {
        var stats = ScanStats()
        var found: [TraceID: Match] = [:]
        for chunk in snapshot.chunks {
            try limits?.check()
            stats.inspectedBytes += chunk.batch.memoryFootprint
            self.scan(request, chunk.batch, minStart: chunk.minStart, maxStart: chunk.maxStart, &found, &stats)
        }
        for meta in snapshot.blocks {
            if let end = request.endNanos, meta.minStart > end { continue }
            if let start = request.startNanos, meta.maxStart < start { continue }
            try limits?.check()
            do {
                try self.scan(request, meta, store, &found, &stats)
            } catch {
                // Corrupt or unreadable: out of service; the rest still answers.
                store.quarantine(meta, error)
            }
        }
        return (found, stats)
    }

    static func scan(_ request: SearchRequest, _ meta: BlockMeta, _ store: BlockStore, _ found: inout [TraceID: Match], _ stats: inout ScanStats) throws {
        let reader = try store.reader(meta)
        stats.blocks += 1
        let resources = try reader.blockLevelBatch(strings: StringTable())
        guard let answered = try self.postingPlan(request.conditions, reader.dictionary, resources) else {
            stats.skippedGroups += reader.groups.count
            return
        }
        // Conditions the posting lists answer are dropped from the per-row check; the rest decide
        // which parts of a group to decode.
        var rest = request
        rest.conditions = request.conditions.enumerated().filter { answered[$0.offset] == nil }.map(\.element)
        let traceQLAttributes = request.traceQL.map(CompiledTraceQLFilter.readsAttributes) ?? false
        let parts: GroupParts = traceQLAttributes || rest.conditions.contains(where: needsAttributes) ? [.attributes] : []
        // Every group of a block shares its string table: resolve the TraceQL filter once per block.
        let traceQL = try request.traceQL.map { CompiledTraceQLFilter($0, strings: try reader.stringTable()) }
        let g = reader.groups
        for group in 0..<g.count {
            if let end = request.endNanos, g.minStart[group] > end { stats.skippedGroups += 1; continue }
            if let start = request.startNanos, g.maxStart[group] < start { stats.skippedGroups += 1; continue }
            if let min = request.minDurationNanos, g.maxDuration[group] < min { stats.skippedGroups += 1; continue }
            if let max = request.maxDurationNanos, g.minDuration[group] > max { stats.skippedGroups += 1; continue }
            let candidates = answered.isEmpty ? nil : try reader.rows(group: group, matchingAll: answered.values.map { (key: $0.0, value: $0.1) })
            if let candidates, candidates.isEmpty { stats.skippedGroups += 1; continue }
            let batch = try reader.decodedGroup(group, parts: parts)
            stats.inspectedBytes += meta.bytes / max(1, g.count)
            self.scan(rest, batch, minStart: g.minStart[group], maxStart: g.maxStart[group], rows: candidates, traceQL: traceQL, &found, &stats)
        }
    }

    /// Whether checking `c` on a row needs the span's generic attributes (not an intrinsic, the
    /// resource's service name or a typed GenAI column).
    static func needsAttributes(_ c: TagCondition) -> Bool {
        if c.scope == .any && ["name", "status", "kind"].contains(c.key) { return false }
        if c.scope != .span && c.key == "service.name" { return false }
        if c.scope != .resource && typedGenAIKeys.contains(c.key) { return false }
        return c.scope != .resource
    }

    static let typedGenAIKeys: Set<String> = ["gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model", "gen_ai.response.model"]

    /// For one block: the conditions posting lists answer exactly, as (key, value) block string IDs by
    /// condition index; nil if some condition needs a string the block's dictionary lacks (nothing in
    /// the block can match). A condition is answered when its value is a string only a span attribute
    /// can hold: `span.`-scoped, or unscoped with no resource of the block carrying that key.
    static func postingPlan(_ conditions: [TagCondition], _ dictionary: BlockDictionary, _ resources: SpanBatch) throws -> [Int: (UInt32, UInt32)]? {
        var answered: [Int: (UInt32, UInt32)] = [:]
        for (i, c) in conditions.enumerated() {
            if c.scope == .any && ["status", "kind"].contains(c.key) { continue }
            let typedOnly = c.scope == .any && c.key == "name"
                || c.scope != .span && c.key == "service.name"
                || c.scope != .resource && typedGenAIKeys.contains(c.key)
            let mayBeNonString = Int64(c.value) != nil || Double(c.value) != nil || c.value == "true" || c.value == "false"
            let valueID = try dictionary.lookup(c.value)
            if typedOnly {
                if valueID == nil { return nil }
                continue
            }
            guard let keyID = try dictionary.lookup(c.key) else { return nil }
            if valueID == nil && !mayBeNonString { return nil }
            guard !mayBeNonString, let valueID else { continue }
            let spanOnly = c.scope == .span || (c.scope == .any && !resources.resourceAttrs.keys.contains(keyID))
            if spanOnly { answered[i] = (keyID, valueID) }
        }
        return answered
    }

    /// Matches the rows of one batch and records them per trace.
    static func scan(
        _ request: SearchRequest, _ batch: SpanBatch, minStart: UInt64, maxStart: UInt64, rows candidates: [Int]? = nil,
        traceQL compiled: CompiledTraceQLFilter? = nil, _ found: inout [TraceID: Match], _ stats: inout ScanStats
    ) {
        stats.chunks += 1
        if let end = request.endNanos, minStart > end { return }
        if let start = request.startNanos, maxStart < start { return }
        guard let (resolved, matchers) = resolve(request.conditions, batch) else { return }
        let traceQL = compiled ?? request.traceQL.map { CompiledTraceQLFilter($0, strings: batch.strings) }
        // Pre-compute, per resource, which attribute conditions its attributes satisfy.
        var resourceMatch = [[Bool]](repeating: [], count: batch.resourceCount)
        for r in 0..<batch.resourceCount {
            let range = batch.resourceAttrRange(r)
            resourceMatch[r] = matchers.map { $0.scope != .span && $0.matches(batch.resourceAttrs, range) }
        }
        stats.inspectedSpans += candidates?.count ?? batch.spanCount
        // Posting-list candidates when given, else every row (no index array is built for that).
        rows: for i in 0..<(candidates?.count ?? batch.spanCount) {
            let row = candidates?[i] ?? i
            let start = batch.startTime[row]
            if let s = request.startNanos, start < s { continue }
            if let e = request.endNanos, start > e { continue }
            let end = batch.endTime[row]
            let duration = end > start ? end - start : 0
            if let min = request.minDurationNanos, duration < min { continue }
            if let max = request.maxDurationNanos, duration > max { continue }
            for condition in resolved {
                switch condition {
                case .name(let id): if batch.name[row] != id { continue rows }
                case .status(let code): if batch.statusCode[row] != code { continue rows }
                case .kind(let kind): if batch.kind[row] != kind { continue rows }
                case .serviceName(let id):
                    if batch.resourceServiceName[Int(batch.resourceIndex[row])] != id { continue rows }
                case .provider(let id): if batch.genAIProvider[row] != id { continue rows }
                case .requestModel(let id): if batch.genAIRequestModel[row] != id { continue rows }
                case .responseModel(let id): if batch.genAIResponseModel[row] != id { continue rows }
                case .attribute(let m):
                    if resourceMatch[Int(batch.resourceIndex[row])][m] { continue }
                    let matcher = matchers[m]
                    if matcher.scope == .resource || !matcher.matches(batch.attrs, batch.attrRange(row)) { continue rows }
                case .impossible: continue rows
                }
            }
            if let traceQL, !traceQL.matches(batch, row) { continue }
            let id = batch.traceID(row)
            let summary = SpanSummary(
                spanID: batch.spanID[row], name: batch.strings.string(batch.name[row]), startNanos: start, durationNanos: duration
            )
            if var entry = found[id] {
                entry.matched += 1
                if entry.spans.count < request.spansPerSpanSet { entry.spans.append(summary) }
                if start > entry.latest { entry.latest = start }
                found[id] = entry
            } else {
                found[id] = Match(latest: start, matched: 1, spans: [summary])
            }
        }
    }

    /// The most recent `limit` traces, each summarised over all of its spans (`chunks(of:)` gives them).
    static func finish(
        _ request: SearchRequest, _ found: [TraceID: Match], _ stats: ScanStats, chunks: (TraceID) throws -> [HeadChunk]
    ) rethrows -> SearchResult {
        var stats = stats
        stats.inspectedTraces = found.count
        let top = found.sorted { a, b in
            a.value.latest != b.value.latest ? a.value.latest > b.value.latest : a.key < b.key
        }.prefix(request.limit)
        let traces = try top.map { (id, entry) -> TraceSummary in
            var summary = summarize(id, in: try chunks(id))
            summary.matched = entry.matched
            summary.matchedSpans = entry.spans
            return summary
        }
        return SearchResult(traces: traces, stats: stats)
    }

    /// Summary of a whole trace (root, span counts, duration) across chunks.
    public static func summarize(_ id: TraceID, in chunks: [HeadChunk]) -> TraceSummary {
        var minStart = UInt64.max
        var maxEnd: UInt64 = 0
        var rootService = ""
        var rootName = ""
        var rootFound = false
        var services: [String: (Int, Int)] = [:]
        var order: [String] = []
        for chunk in chunks {
            let b = chunk.batch
            for row in chunk.rows(of: id) {
                minStart = min(minStart, b.startTime[row])
                maxEnd = max(maxEnd, b.endTime[row])
                let service = b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])])
                if b.parentSpanID[row] == 0 && !rootFound {
                    rootFound = true
                    rootService = service
                    rootName = b.strings.string(b.name[row])
                }
                if services[service] == nil { order.append(service) }
                services[service, default: (0, 0)].0 += 1
                if b.statusCode[row] == 2 { services[service, default: (0, 0)].1 += 1 }
            }
        }
        if !rootFound {
            rootService = TraceSummary.noRoot
        }
        if minStart == .max { minStart = 0 }
        return TraceSummary(
            traceID: id,
            rootServiceName: rootService,
            rootTraceName: rootName,
            startNanos: minStart,
            durationNanos: maxEnd > minStart ? maxEnd - minStart : 0,
            matchedSpans: [],
            matched: 0,
            serviceStats: order.map { ($0, services[$0]!.0, services[$0]!.1) }
        )
    }

    /// Resolves conditions to dictionary IDs of this chunk; nil if some value cannot occur in it.
    private static func resolve(_ conditions: [TagCondition], _ batch: SpanBatch) -> ([Resolved], [AttributeMatcher])? {
        var resolved: [Resolved] = []
        var matchers: [AttributeMatcher] = []
        let strings = batch.strings
        for c in conditions {
            if c.scope == .any {
                switch c.key {
                case "name":
                    guard let id = strings.lookup(c.value) else { return nil }
                    resolved.append(.name(id))
                    continue
                case "status":
                    switch c.value {
                    case "error": resolved.append(.status(2))
                    case "ok": resolved.append(.status(1))
                    case "unset": resolved.append(.status(0))
                    default: return nil
                    }
                    continue
                case "kind":
                    let kinds = ["unspecified", "internal", "server", "client", "producer", "consumer"]
                    guard let k = kinds.firstIndex(of: c.value) else { return nil }
                    resolved.append(.kind(UInt8(k)))
                    continue
                default: break
                }
            }
            if c.scope != .span && c.key == "service.name" {
                guard let id = strings.lookup(c.value) else { return nil }
                resolved.append(.serviceName(id))
                continue
            }
            if c.scope != .resource {
                switch c.key {
                case "gen_ai.provider.name", "gen_ai.system":
                    guard let id = strings.lookup(c.value) else { return nil }
                    resolved.append(.provider(id))
                    continue
                case "gen_ai.request.model":
                    guard let id = strings.lookup(c.value) else { return nil }
                    resolved.append(.requestModel(id))
                    continue
                case "gen_ai.response.model":
                    guard let id = strings.lookup(c.value) else { return nil }
                    resolved.append(.responseModel(id))
                    continue
                default: break
                }
            }
            guard let key = strings.lookup(c.key) else { return nil }
            var candidates: [(UInt8, UInt64)] = []
            if let id = strings.lookup(c.value) { candidates.append((ValueType.string.rawValue, UInt64(id))) }
            if let i = Int64(c.value) { candidates.append((ValueType.int.rawValue, UInt64(bitPattern: i))) }
            if let d = Double(c.value), d.isFinite { candidates.append((ValueType.double.rawValue, d.bitPattern)) }
            if c.value == "true" { candidates.append((ValueType.bool.rawValue, 1)) }
            if c.value == "false" { candidates.append((ValueType.bool.rawValue, 0)) }
            guard !candidates.isEmpty else { return nil }
            resolved.append(.attribute(matchers.count))
            matchers.append(AttributeMatcher(key: key, scope: c.scope, candidates: candidates))
        }
        return (resolved, matchers)
    }
}
