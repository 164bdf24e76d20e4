import WeftModel

/// One read operation a storage node answers over its own data, with the limits it runs under. The
/// deadline is on the scale of the ``QueryContext`` clock the node runs it with; the request reads
/// no clock itself.
public struct NodeQueryRequest: Sendable {
    /// What to compute.
    public enum Operation: Sendable, Equatable {
        /// Every span of one trace.
        case trace(TraceID)
        /// Every span of many traces at once (how a coordinator fetches the traces a search chose, or
        /// one trace by ID), reading only blocks that may hold spans started in the range.
        case traces([TraceID], startNanos: UInt64, endNanos: UInt64)
        /// Round 2 of a search: the summaries (root, start, duration, spans per service, matching
        /// spans) of the traces round 1 chose, over the node's data, as a single node computes them.
        case summaries(SearchRequest, [TraceMatch])
        /// Round 1 of a search (`tags`, `q`, durations, time range): the traces with matching spans,
        /// the latest matching start and the number of matching spans of each; the answer's traces
        /// are chosen from the merged partial and summarised by ``SearchExecutor/result(_:_:snapshot:store:limits:)``.
        case search(SearchRequest)
        /// Traces with spans matching a TraceQL filter in a time range: the latest matching start and
        /// the number of matching spans of each (the first round of a search).
        case traceMatches(filter: TraceQLFilter, startNanos: UInt64, endNanos: UInt64)
        /// Attribute names by scope (`span`, `resource`, `intrinsic`, nil for all), over the head and
        /// then blocks newest first until `blockSpans` block spans were read.
        case tagNames(scope: String?, blockSpans: Int)
        /// Distinct values of a field among spans matching `filter`, at most `limit`.
        case tagValues(field: TraceQLField, filter: TraceQLFilter, startNanos: UInt64, endNanos: UInt64, limit: Int)
        /// A partial aggregate: a metrics query, or round 1 of an ordered table (its order aggregate
        /// only, for all groups).
        case aggregate(AggregationQuery)
        /// Round 2 of an ordered table: every aggregate, for the chosen groups only.
        case aggregateGroups(AggregationQuery, keys: [[GroupValue]])
        /// Service-map edges whose buckets overlap the range.
        case serviceMap(startNanos: UInt64, endNanos: UInt64)
        /// The service of each of these spans the node holds (how a coordinator joins the calls whose
        /// parent span another node read: round 2 of a service map).
        case spanServices([ServiceMapExecutor.SpanKey])
    }

    public var operation: Operation
    /// When the node stops with ``AggregationError/timeout(seconds:)``; nil for none.
    public var deadline: UInt64?
    /// The timeout the deadline came from (named in the error).
    public var timeoutSeconds: Double
    public var maxSeries: Int
    public var maxMemoryBytes: Int
    /// Threads the node scans with.
    public var parallelism: Int
    /// Set when the answer is no longer wanted (not carried on the wire: a node cancels its own).
    public var cancellation: QueryCancellation?
    /// With a ``Operation/search(_:)`` that has a limit: the node also summarises the traces it
    /// answers with (``TraceMatchesPartial/summaries``). Carried beside the encoded request (a
    /// header), so a node that does not know it answers without summaries.
    public var summarizeLatest = false

    public init(
        _ operation: Operation, deadline: UInt64? = nil, timeoutSeconds: Double = 30, maxSeries: Int = 100_000,
        maxMemoryBytes: Int = QueryLimits.defaultMaxMemoryBytes, parallelism: Int = 2, cancellation: QueryCancellation? = nil
    ) {
        self.operation = operation
        self.deadline = deadline
        self.timeoutSeconds = timeoutSeconds
        self.maxSeries = maxSeries
        self.maxMemoryBytes = maxMemoryBytes
        self.parallelism = max(1, parallelism)
        self.cancellation = cancellation
    }

    /// The limits a scan of this request checks, on `context`.
    public func limits(_ context: QueryContext) -> AggregationLimits {
        var limits = AggregationLimits(
            maxSeries: self.maxSeries, timeoutSeconds: self.timeoutSeconds, parallelism: self.parallelism, maxMemoryBytes: self.maxMemoryBytes,
            cancellation: self.cancellation, context: context
        )
        limits.deadline = self.deadline
        return limits
    }
}
