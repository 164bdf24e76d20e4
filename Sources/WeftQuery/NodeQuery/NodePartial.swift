import WeftModel
import WeftStorageEngine

/// A node's partial answer to a ``NodeQueryRequest``: merged with the partials of other nodes (or of
/// other parts of one node's data) by ``NodePartial/merge(_:)``, in any order and grouping, then
/// finished into what the renderer needs.
public enum NodePartial: Sendable {
    case trace(TracePartial)
    case traces(TracesPartial)
    case summaries(SummariesPartial)
    case traceMatches(TraceMatchesPartial)
    case tagNames(TagNamesPartial)
    case tagValues(TagValuesPartial)
    case aggregate(AggregationPartial)
    case serviceMap(ServiceMapPartial)
    case spanServices(SpanServicesPartial)

    /// The partial of `operation` over no data.
    public static func empty(_ operation: NodeQueryRequest.Operation) -> NodePartial {
        switch operation {
        case .trace(let id): return .trace(TracePartial(traceID: id))
        case .traces: return .traces(TracesPartial())
        case .summaries(let search, _):
            // Merged summaries keep the search's number of matching spans, not the default.
            var p = SummariesPartial()
            p.spansPerSpanSet = search.spansPerSpanSet
            return .summaries(p)
        case .traceMatches, .search: return .traceMatches(TraceMatchesPartial())
        case .tagNames(let scope, _): return .tagNames(TagNamesPartial(includeIntrinsics: TagCatalog.includesIntrinsics(scope)))
        case .tagValues(_, _, _, _, let limit): return .tagValues(TagValuesPartial(limit: limit))
        case .aggregate(let q): return .aggregate(AggregationPartial(q))
        case .aggregateGroups(let q, let keys): return .aggregate(.closed(q, to: keys))
        case .serviceMap: return .serviceMap(ServiceMapPartial())
        case .spanServices: return .spanServices(SpanServicesPartial())
        }
    }

    /// Adds `other`, a partial of the same operation. The accumulated partial is taken out of `self`
    /// while it grows, so merging never copies it.
    /// - Throws: ``AggregationError/invalid(_:)`` when the two are of different operations.
    public mutating func merge(_ other: NodePartial) throws {
        let mismatch = AggregationError.invalid("partials of different operations")
        // Holds nothing while the accumulated partial is out (an empty service map allocates nothing).
        let hole = NodePartial.serviceMap(ServiceMapPartial())
        switch self {
        case .trace(var a):
            guard case .trace(let b) = other else { throw mismatch }
            self = hole
            a.merge(b)
            self = .trace(a)
        case .traces(var a):
            guard case .traces(let b) = other else { throw mismatch }
            self = hole
            a.merge(b)
            self = .traces(a)
        case .summaries(var a):
            guard case .summaries(let b) = other else { throw mismatch }
            self = hole
            a.merge(b)
            self = .summaries(a)
        case .traceMatches(var a):
            guard case .traceMatches(let b) = other else { throw mismatch }
            self = hole
            a.merge(b)
            self = .traceMatches(a)
        case .tagNames(var a):
            guard case .tagNames(let b) = other else { throw mismatch }
            self = hole
            a.merge(b)
            self = .tagNames(a)
        case .tagValues(var a):
            guard case .tagValues(let b) = other else { throw mismatch }
            self = hole
            a.merge(b)
            self = .tagValues(a)
        case .aggregate(var a):
            guard case .aggregate(let b) = other else { throw mismatch }
            guard a.steps == b.steps, a.columns.map(\.kind) == b.columns.map(\.kind), a.fieldCount == b.fieldCount else {
                throw AggregationError.invalid("partial aggregates of different queries")
            }
            self = hole
            a.merge(b)
            self = .aggregate(a)
        case .serviceMap(var a):
            guard case .serviceMap(let b) = other else { throw mismatch }
            self = hole
            a.merge(b)
            self = .serviceMap(a)
        case .spanServices(var a):
            guard case .spanServices(let b) = other else { throw mismatch }
            self = hole
            a.merge(b)
            self = .spanServices(a)
        }
    }

    /// What the node looked at.
    public var stats: ScanStats {
        switch self {
        case .trace(let p): return p.stats
        case .traces(let p): return p.stats
        case .summaries(let p): return p.stats
        case .traceMatches(let p): return p.stats
        case .tagNames(let p): return p.stats
        case .tagValues(let p): return p.stats
        case .aggregate(let p): return p.stats
        case .serviceMap(let p): return p.stats
        case .spanServices(let p): return p.stats
        }
    }
}

/// The spans of one trace, each span ID once.
public struct TracePartial: Sendable {
    public var traceID: TraceID
    /// Sources of the trace's spans; no span ID is in two of them.
    public private(set) var chunks: [HeadChunk] = []
    public var stats = ScanStats()

    public init(traceID: TraceID, chunks: [HeadChunk] = []) {
        self.traceID = traceID
        self.chunks = TraceLookup.deduplicated(traceID, chunks)
    }

    public var spanCount: Int { self.chunks.reduce(0) { $0 + $1.rows(of: self.traceID).count } }

    /// Adds the spans of `other` this one lacks.
    public mutating func merge(_ other: TracePartial) {
        self.chunks = TraceLookup.deduplicated(self.traceID, self.chunks + other.chunks)
        self.stats.add(other.stats)
    }
}

/// The spans of many traces: self-contained batches holding rows of the wanted traces. A span may
/// come in more than one batch (replicas, head and blocks); readers keep each span ID of a trace
/// once (``TraceLookup/deduplicated(_:_:)``).
public struct TracesPartial: Sendable {
    public var chunks: [HeadChunk] = []
    public var stats = ScanStats()

    public init(chunks: [HeadChunk] = []) { self.chunks = chunks }

    /// The spans of `wanted` in `snapshot`, gathered into one batch (rows of the head chunks that
    /// hold them and the blocks whose filters may hold them).
    public static func gather(_ wanted: [TraceID], snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits) throws -> TracesPartial {
        var out = SpanBatch()
        var stats = ScanStats()
        for chunk in snapshot.chunks {
            try limits.check()
            var rows: [Int] = []
            for id in wanted { rows += chunk.rows(of: id) }
            stats.chunks += 1
            guard !rows.isEmpty else { continue }
            rows.sort()
            out.append(chunk.batch.subset(rows: rows))
        }
        for id in wanted {
            try limits.check()
            for batch in try store.findTrace(id, in: snapshot.blocks) {
                out.append(batch.subset(rows: Array(0..<batch.spanCount)))
            }
        }
        stats.blocks = snapshot.blocks.count
        stats.inspectedSpans = out.spanCount
        stats.inspectedTraces = wanted.count
        var partial = TracesPartial(chunks: out.spanCount > 0 ? [HeadChunk(org: "", batch: out)] : [])
        partial.stats = stats
        return partial
    }

    public var spanCount: Int { self.chunks.reduce(0) { $0 + $1.batch.spanCount } }

    /// Adds the batches of `other`.
    public mutating func merge(_ other: TracesPartial) {
        self.chunks += other.chunks
        self.stats.add(other.stats)
    }

    /// The spans as a snapshot of head chunks (what trace rendering and search summaries read).
    public var snapshot: StorageEngine.Snapshot { StorageEngine.Snapshot(chunks: self.chunks, blocks: []) }
}

/// Search summaries of chosen traces, by trace. A trace normally lies in one placement, so one node
/// summarises it; parts of a trace written to two placements (across a ring change) merge: the
/// earliest start, the latest end, the root where there is one, spans and errors per service added,
/// matching spans each once.
public struct SummariesPartial: Sendable {
    public var traces: [TraceID: TraceSummary] = [:]
    public var stats = ScanStats()
    /// Matching spans kept per trace.
    public var spansPerSpanSet = 3

    public init() {}

    /// The summaries of `chosen` (with round 1's latest match and count) over `snapshot`, those with spans.
    public static func of(
        _ request: SearchRequest, _ chosen: [TraceMatch], snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits
    ) throws -> SummariesPartial {
        var matches = TraceMatchesPartial()
        for m in chosen { matches.traces[m.traceID] = .init(latestStart: m.latestStart, matched: m.matched) }
        var all = request
        all.limit = chosen.count
        let result = try SearchExecutor.result(all, matches, snapshot: snapshot, store: store, limits: limits)
        var partial = SummariesPartial()
        partial.spansPerSpanSet = request.spansPerSpanSet
        for t in result.traces where !t.serviceStats.isEmpty { partial.traces[t.traceID] = t }
        partial.stats = result.stats
        partial.stats.inspectedTraces = partial.traces.count
        return partial
    }

    public mutating func merge(_ other: SummariesPartial) {
        for (id, b) in other.traces {
            guard let a = self.traces[id] else {
                self.traces[id] = b
                continue
            }
            self.traces[id] = TraceSummary.merged(a, b, spansPerSpanSet: max(self.spansPerSpanSet, other.spansPerSpanSet))
        }
        self.stats.add(other.stats)
    }

    /// The search answer: `chosen` (round 1's merged choice, in its order) with their summaries.
    public func result(_ chosen: [TraceMatch], stats: ScanStats) -> SearchResult {
        var traces: [TraceSummary] = []
        for m in chosen {
            guard var t = self.traces[m.traceID] else { continue }
            t.matched = m.matched
            traces.append(t)
        }
        return SearchResult(traces: traces, stats: stats)
    }
}

extension TagNamesPartial {
    /// The names, sorted, as the renderer takes them.
    public var names: TagCatalog.Names {
        var names = TagCatalog.Names()
        names.span = self.span.sorted()
        names.resource = self.resource.sorted()
        names.includeIntrinsics = self.includeIntrinsics
        names.stats = self.stats
        return names
    }
}

/// The services of spans, by span (a span held by several nodes names the same service on each).
public struct SpanServicesPartial: Sendable {
    public var services: [ServiceMapExecutor.SpanKey: String] = [:]
    public var stats = ScanStats()

    public init() {}

    public mutating func merge(_ other: SpanServicesPartial) {
        self.services.merge(other.services) { a, _ in a }
        self.stats.add(other.stats)
    }
}
