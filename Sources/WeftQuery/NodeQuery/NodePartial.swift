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
