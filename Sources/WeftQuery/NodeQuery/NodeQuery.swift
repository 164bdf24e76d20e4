import WeftModel
import WeftStorageEngine

/// The one entry point of every read a storage node answers: a request over a snapshot of the
/// node's data becomes a mergeable ``NodePartial``. A coordinator sends the same request to each
/// node, merges the partials (``NodePartial/merge(_:)``) and finishes them; a single node does the
/// same with its own partial.
public enum NodeQuery {
    /// Runs `request` over `snapshot`.
    /// - Parameters:
    ///   - request: the operation, its deadline (on `context`'s clock) and limits.
    ///   - snapshot: the head chunks and blocks to read.
    ///   - store: where the snapshot's blocks are.
    ///   - context: the clock and the scan workers.
    /// - Returns: the partial answer over the snapshot.
    /// - Throws: ``AggregationError`` for a bad query, a limit hit or a cancelled query; a storage
    ///   error when a block cannot be read where the operation cannot skip it.
    public static func run(
        _ request: NodeQueryRequest, snapshot: StorageEngine.Snapshot, store: BlockStore, context: QueryContext
    ) throws -> NodePartial {
        let limits = request.limits(context)
        try limits.check()
        switch request.operation {
        case .trace(let id):
            var partial = TracePartial(traceID: id, chunks: try TraceLookup.chunks(id, snapshot: snapshot, store: store))
            partial.stats.chunks = partial.chunks.count
            partial.stats.inspectedSpans = partial.spanCount
            return .trace(partial)
        case .traces(let ids, let start, let end):
            var ranged = snapshot
            ranged.blocks = snapshot.blocks.filter { $0.maxStart >= start && $0.minStart <= end }
            return .traces(try TracesPartial.gather(ids, snapshot: ranged, store: store, limits: limits))
        case .summaries(let search, let chosen):
            return .summaries(try SummariesPartial.of(search, chosen, snapshot: snapshot, store: store, limits: limits))
        case .search(let search):
            return .traceMatches(try SearchExecutor.partial(search, snapshot: snapshot, store: store, limits: limits))
        case .traceMatches(let filter, let start, let end):
            return .traceMatches(try TraceMatchExecutor.partial(filter, startNanos: start, endNanos: end, snapshot: snapshot, store: store, limits: limits))
        case .tagNames(let scope, let blockSpans):
            let names = try TagCatalog.names(scope: scope, snapshot: snapshot, store: store, blockSpans: blockSpans)
            var partial = TagNamesPartial(includeIntrinsics: names.includeIntrinsics)
            partial.span = Set(names.span)
            partial.resource = Set(names.resource)
            partial.stats = names.stats
            return .tagNames(partial)
        case .tagValues(let field, let filter, let start, let end, let limit):
            let (values, stats) = try DistinctValues.values(
                of: field, filter: filter, startNanos: start, endNanos: end, limit: limit, snapshot: snapshot, store: store, limits: limits
            )
            var partial = TagValuesPartial(limit: limit, values: values)
            partial.stats = stats
            return .tagValues(partial)
        case .aggregate(let query):
            return .aggregate(try AggregationExecutor.partial(query, snapshot: snapshot, store: store, limits: limits))
        case .aggregateGroups(let query, let keys):
            return .aggregate(try AggregationExecutor.partial(query, snapshot: snapshot, store: store, limits: limits, start: .closed(query, to: keys)))
        case .serviceMap(let start, let end):
            return .serviceMap(ServiceMapExecutor.partial(startNanos: start, endNanos: end, snapshot: snapshot, store: store))
        case .spanServices(let spans):
            var partial = SpanServicesPartial()
            partial.services = try ServiceMapExecutor.services(of: spans, snapshot: snapshot, store: store, limits: limits)
            partial.stats.inspectedSpans = partial.services.count
            return .spanServices(partial)
        }
    }

    /// Merges partials of one operation, in the order given.
    /// - Throws: ``AggregationError/invalid(_:)`` when they are of different operations.
    public static func merge(_ partials: [NodePartial], of operation: NodeQueryRequest.Operation) throws -> NodePartial {
        var merged = NodePartial.empty(operation)
        for p in partials { try merged.merge(p) }
        return merged
    }
}

/// The final steps that turn merged partials into what the renderer needs.
extension NodeQuery {
    /// The groups round 2 of an ordered table computes: the `limit` best by the order aggregate
    /// (round 1's only aggregate).
    public static func chosenGroups(_ round1: AggregationPartial, _ query: AggregationQuery, orderBy: Int, descending: Bool, limit: Int) -> [[GroupValue]] {
        var first = query
        first.aggregates = [query.aggregates[orderBy]]
        return round1.rows(first, orderBy: 0, descending: descending, limit: limit).map(\.key)
    }

    /// Rows of an aggregation table ordered by aggregate `orderBy`, at most `limit`. When only the
    /// order aggregate is cheap (count, sum, avg, min, max) and others are not, round 1 computes only
    /// it for all groups to choose the groups, and round 2 every aggregate for those groups alone.
    /// - Parameters:
    ///   - request: the limits and deadline of both rounds (its operation is replaced).
    ///   - run: answers one round: over one node's data, or fanned out to nodes and merged.
    /// - Returns: the rows, the number of groups, and the data looked at (round 1's: round 2 reads the
    ///   same spans again, or fewer).
    public static func table(
        _ query: AggregationQuery, orderBy: Int, descending: Bool, limit: Int, request: NodeQueryRequest,
        run: (NodeQueryRequest) throws -> NodePartial
    ) throws -> (rows: [AggregationRow], groups: Int, stats: ScanStats) {
        func aggregate(_ operation: NodeQueryRequest.Operation) throws -> AggregationPartial {
            var round = request
            round.operation = operation
            guard case .aggregate(let p) = try run(round) else { throw AggregationError.invalid("a table round answered with another partial") }
            return p
        }
        guard self.tableNeedsTwoRounds(query, orderBy: orderBy) else {
            let p = try aggregate(.aggregate(query))
            return (p.rows(query, orderBy: orderBy, descending: descending, limit: limit), p.groupCount, p.stats)
        }
        var first = query
        first.aggregates = [query.aggregates[orderBy]]
        let chosen = try aggregate(.aggregate(first))
        let keys = self.chosenGroups(chosen, query, orderBy: orderBy, descending: descending, limit: limit)
        let second = try aggregate(.aggregateGroups(query, keys: keys))
        // Inspected spans count each span once, as for a table of one round.
        var stats = chosen.stats
        stats.elapsedNanos = max(chosen.stats.elapsedNanos, second.stats.elapsedNanos)
        return (second.rows(query, orderBy: orderBy, descending: descending, limit: limit), chosen.groupCount, stats)
    }

    /// Whether an ordered, limited table takes two rounds (only the order aggregate is cheap).
    public static func tableNeedsTwoRounds(_ query: AggregationQuery, orderBy: Int) -> Bool {
        let cheap = query.aggregates.map { $0.stateKind == .count || $0.stateKind == .values }
        return cheap[orderBy] && cheap.contains(false) && !query.groupBy.isEmpty
    }

    /// The values of a tag, typed as Tempo names them.
    public static func typedValues(_ partial: TagValuesPartial, field: TraceQLField) -> TagCatalog.Values {
        let keyword = field == .intrinsic(.status) || field == .intrinsic(.kind)
        let values = partial.values.map { v -> (type: String, value: String) in
            switch v {
            case .string(let s): return (keyword ? "keyword" : "string", s)
            case .int(let i): return ("int", String(i))
            case .double(let d): return ("float", String(d))
            case .bool(let b): return ("bool", String(b))
            case .absent: return ("string", "")
            }
        }
        return TagCatalog.Values(values: values, stats: partial.stats)
    }
}
