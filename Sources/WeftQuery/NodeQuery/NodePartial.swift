import WeftModel
import WeftStorageEngine

/// A node's partial answer to a ``NodeQueryRequest``: merged with the partials of other nodes (or of
/// other parts of one node's data) by ``NodePartial/merge(_:)``, in any order and grouping, then
/// finished into what the renderer needs.
public enum NodePartial: Sendable {
    case trace(TracePartial)
    case traceMatches(TraceMatchesPartial)
    case tagNames(TagNamesPartial)
    case tagValues(TagValuesPartial)
    case aggregate(AggregationPartial)
    case serviceMap(ServiceMapPartial)

    /// The partial of `operation` over no data.
    public static func empty(_ operation: NodeQueryRequest.Operation) -> NodePartial {
        switch operation {
        case .trace(let id): return .trace(TracePartial(traceID: id))
        case .traceMatches, .search: return .traceMatches(TraceMatchesPartial())
        case .tagNames(let scope, _): return .tagNames(TagNamesPartial(includeIntrinsics: TagCatalog.includesIntrinsics(scope)))
        case .tagValues(_, _, _, _, let limit): return .tagValues(TagValuesPartial(limit: limit))
        case .aggregate(let q): return .aggregate(AggregationPartial(q))
        case .aggregateGroups(let q, let keys): return .aggregate(.closed(q, to: keys))
        case .serviceMap: return .serviceMap(ServiceMapPartial())
        }
    }

    /// Adds `other`, a partial of the same operation.
    /// - Throws: ``AggregationError/invalid(_:)`` when the two are of different operations.
    public mutating func merge(_ other: NodePartial) throws {
        switch (self, other) {
        case (.trace(var a), .trace(let b)):
            a.merge(b)
            self = .trace(a)
        case (.traceMatches(var a), .traceMatches(let b)):
            a.merge(b)
            self = .traceMatches(a)
        case (.tagNames(var a), .tagNames(let b)):
            a.merge(b)
            self = .tagNames(a)
        case (.tagValues(var a), .tagValues(let b)):
            a.merge(b)
            self = .tagValues(a)
        case (.aggregate(var a), .aggregate(let b)):
            guard a.steps == b.steps, a.columns.map(\.kind) == b.columns.map(\.kind), a.fieldCount == b.fieldCount else {
                throw AggregationError.invalid("partial aggregates of different queries")
            }
            a.merge(b)
            self = .aggregate(a)
        case (.serviceMap(var a), .serviceMap(let b)):
            a.merge(b)
            self = .serviceMap(a)
        default:
            throw AggregationError.invalid("partials of different operations")
        }
    }

    /// What the node looked at.
    public var stats: ScanStats {
        switch self {
        case .trace(let p): return p.stats
        case .traceMatches(let p): return p.stats
        case .tagNames(let p): return p.stats
        case .tagValues(let p): return p.stats
        case .aggregate(let p): return p.stats
        case .serviceMap(let p): return p.stats
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

/// Traces with matching spans: per trace, the latest matching start and how many spans matched.
public struct TraceMatchesPartial: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var latestStart: UInt64
        public var matched: Int
    }

    public var traces: [TraceID: Entry] = [:]
    /// Matching spans in all.
    public var spans = 0
    public var stats = ScanStats()

    public init() {}

    public mutating func merge(_ other: TraceMatchesPartial) {
        for (id, e) in other.traces {
            if let mine = self.traces[id] {
                self.traces[id] = Entry(latestStart: max(mine.latestStart, e.latestStart), matched: mine.matched + e.matched)
            } else {
                self.traces[id] = e
            }
        }
        self.spans += other.spans
        self.stats.add(other.stats)
    }

    /// The `limit` traces with the latest matching span, most recent first (ties by trace ID).
    public func latest(_ limit: Int) -> [TraceMatch] {
        self.traces.sorted { a, b in a.value.latestStart != b.value.latestStart ? a.value.latestStart > b.value.latestStart : a.key < b.key }
            .prefix(max(0, limit)).map { TraceMatch(traceID: $0.key, latestStart: $0.value.latestStart, matched: $0.value.matched) }
    }

    public static func == (a: TraceMatchesPartial, b: TraceMatchesPartial) -> Bool { a.traces == b.traces && a.spans == b.spans }
}

/// Attribute names by scope.
public struct TagNamesPartial: Sendable, Equatable {
    public var span = Set<String>()
    public var resource = Set<String>()
    public var includeIntrinsics: Bool
    public var stats = ScanStats()

    public init(includeIntrinsics: Bool) { self.includeIntrinsics = includeIntrinsics }

    public mutating func merge(_ other: TagNamesPartial) {
        self.span.formUnion(other.span)
        self.resource.formUnion(other.resource)
        self.includeIntrinsics = self.includeIntrinsics || other.includeIntrinsics
        self.stats.add(other.stats)
    }

    /// The names, sorted, as the renderer takes them.
    public var names: TagCatalog.Names {
        var names = TagCatalog.Names()
        names.span = self.span.sorted()
        names.resource = self.resource.sorted()
        names.includeIntrinsics = self.includeIntrinsics
        names.stats = self.stats
        return names
    }

    public static func == (a: TagNamesPartial, b: TagNamesPartial) -> Bool {
        a.span == b.span && a.resource == b.resource && a.includeIntrinsics == b.includeIntrinsics
    }
}

/// Distinct values of a field, at most `limit` (the smallest kept when more are known). A node stops
/// scanning once it knows `limit` values, so a full partial holds `limit` of the values, not
/// necessarily the smallest; one with fewer holds them all.
public struct TagValuesPartial: Sendable, Equatable {
    public private(set) var values: [GroupValue] = []
    public let limit: Int
    public var stats = ScanStats()

    public init(limit: Int, values: some Sequence<GroupValue> = []) {
        self.limit = max(0, limit)
        self.values = Array(Set(values)).sorted().prefix(self.limit).map { $0 }
    }

    /// Whether every value is known (fewer than `limit` were found).
    public var isComplete: Bool { self.values.count < self.limit }

    public mutating func merge(_ other: TagValuesPartial) {
        self.values = Array(Set(self.values).union(other.values)).sorted().prefix(self.limit).map { $0 }
        self.stats.add(other.stats)
    }

    public static func == (a: TagValuesPartial, b: TagValuesPartial) -> Bool { a.values == b.values && a.limit == b.limit }
}

/// Service-map edges summed per (parent, child).
public struct ServiceMapPartial: Sendable, Equatable {
    public struct Pair: Hashable, Sendable {
        public var parent: String
        public var child: String
    }

    public var edges: [Pair: ServiceMapEdge] = [:]
    public var stats = ScanStats()

    public init() {}

    public mutating func add(_ e: ServiceMapEdge) {
        let key = Pair(parent: e.parent, child: e.child)
        guard var mine = self.edges[key] else {
            self.edges[key] = e
            return
        }
        mine.calls += e.calls
        mine.errors += e.errors
        mine.latency.merge(e.latency)
        self.edges[key] = mine
    }

    public mutating func merge(_ other: ServiceMapPartial) {
        for e in other.edges.values { self.add(e) }
        self.stats.add(other.stats)
    }

    /// The edges by parent, then child.
    public var sorted: [ServiceMapEdge] { self.edges.values.sorted { ($0.parent, $0.child) < ($1.parent, $1.child) } }

    public static func == (a: ServiceMapPartial, b: ServiceMapPartial) -> Bool { a.edges == b.edges }
}
