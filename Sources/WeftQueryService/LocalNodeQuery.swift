import WeftRuntime
import WeftQuery
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

    /// `request` over the current snapshot of `org`.
    package static func run(_ request: NodeQueryRequest, engine: StorageEngine, org: String) throws -> NodePartial {
        try NodeQuery.run(request, snapshot: engine.snapshot(org: org), store: engine.store, context: .live)
    }
}
