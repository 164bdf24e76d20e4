import WeftRuntime
import WeftQuery
import WeftModel
import WeftStorageEngine

/// Runs node operations over this node's own data for the query endpoints: the same request and
/// partial a coordinator would send to and merge from each node.
extension QueryAPI {
    /// A request for `operation` under this API's limits, due `timeoutSeconds` from now and cancelled
    /// with the HTTP request.
    package func nodeRequest(_ operation: NodeQueryRequest.Operation, _ request: HTTPRequest, maxSeries: Int? = nil) -> NodeQueryRequest {
        let timeout = self.limits.timeoutSeconds
        return NodeQueryRequest(
            operation, deadline: QueryContext.live.now() + UInt64(min(max(0, timeout), 1e9) * 1e9), timeoutSeconds: timeout,
            maxSeries: maxSeries ?? self.limits.maxSeries, maxMemoryBytes: self.limits.maxMemoryBytes, parallelism: self.parallelism,
            cancellation: request.cancellation
        )
    }

    /// The spans of traces `ids` as a snapshot of head chunks, fetched with one many-traces request
    /// per node (how a cluster search summarises the traces it chose), under `request`'s limits.
    package static func traces(_ ids: [TraceID], reads: QueryReads, like request: NodeQueryRequest) throws -> StorageEngine.Snapshot {
        guard !ids.isEmpty else { return StorageEngine.Snapshot(chunks: [], blocks: []) }
        var lookup = request
        lookup.operation = .traces(ids, startNanos: 0, endNanos: .max)
        guard case .traces(let traces) = try reads.run(lookup) else { throw AggregationError.invalid("not traces") }
        return traces.snapshot
    }

    /// A cluster search's answer from its merged round 1: the chosen traces summarised where they are
    /// stored, by the summaries round 1 brought where each covers its whole trace, and otherwise with
    /// one summaries request per node.
    package static func clusterSearch(
        _ search: SearchRequest, _ matches: TraceMatchesPartial, reads: QueryReads, like request: NodeQueryRequest
    ) throws -> SearchResult {
        let chosen = matches.latest(search.limit)
        var stats = matches.stats
        stats.inspectedTraces = matches.traces.count
        guard !chosen.isEmpty else { return SummariesPartial().result([], stats: stats) }
        // Summaries that came with round 1 and cover their whole trace need no second round.
        var summaries = SummariesPartial()
        summaries.spansPerSpanSet = search.spansPerSpanSet
        var rest: [TraceMatch] = []
        for m in chosen {
            if let s = matches.summaries[m.traceID], reads.isWhole(s) {
                summaries.traces[m.traceID] = s
            } else {
                rest.append(m)
            }
        }
        if !rest.isEmpty {
            var round = request
            round.operation = .summaries(search, rest)
            round.summarizeLatest = false
            guard case .summaries(let found) = try reads.run(round) else { throw AggregationError.invalid("not summaries") }
            summaries.merge(found)
        }
        return summaries.result(chosen, stats: stats)
    }

    /// The largest search limit whose round 1 asks the storage nodes for summaries of their latest
    /// traces (each node summarises up to `limit` traces, of which the answer keeps `limit` in all).
    package static let maxLimitSummarizedInRoundOne = 1_000

    /// The series of a metrics query: on this node with the top-k fallback for too many series, in a
    /// cluster from the merged partials of `round`.
    package static func series(
        _ metrics: MetricsRequest, round: NodeQueryRequest, reads: QueryReads, engine: StorageEngine, org: String, limits: AggregationLimits
    ) throws -> (series: [AggregationSeries], stats: ScanStats) {
        let q = metrics.aggregation
        guard reads.isDistributed else {
            return try AggregationExecutor.series(
                q, metrics: metrics.query.metrics, limit: metrics.query.limit, snapshot: engine.snapshot(org: org), store: engine.store, limits: limits
            )
        }
        guard case .aggregate(let partial) = try reads.run(round) else { throw AggregationError.invalid("not an aggregate") }
        return (try partial.series(q, metrics: metrics.query.metrics, limit: metrics.query.limit, checking: limits), partial.stats)
    }
}
