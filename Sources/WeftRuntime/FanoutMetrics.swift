import Prometheus
import Synchronization

/// Prometheus metrics of a query coordinator's node requests (on the registry of ``NodeMetrics``).
public final class FanoutMetrics: Sendable {
    /// How one node request ended.
    public enum Outcome: String, Sendable, CaseIterable {
        /// Answered and used.
        case ok
        /// Answered with a refusal (bad query, limit hit): the query's answer.
        case refused
        /// Failed (connection, status, decoding) or timed out: its placements went to another holder.
        case error
        /// Cancelled: a hedge or the other side of a hedge won, the query stopped early, timed out or
        /// its client went away.
        case cancelled
    }

    private let registry: PrometheusCollectorRegistry
    private let requests = Mutex<[String: Counter]>([:])
    private let bytes = Mutex<[String: Counter]>([:])
    public let hedges: Counter
    public let partialAnswers: Counter
    public let mergeDuration: DurationHistogram
    public let overloaded: Counter

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        self.hedges = registry.makeCounter(descriptor: .init(
            namespace: "weft", metricName: "fanout_hedges", unitName: "total",
            helpText: "Node requests sent again to other holders because a node had not answered within its recent p95 latency nor twice the median of the nodes that answered the same query."
        ))
        self.partialAnswers = registry.makeCounter(descriptor: .init(
            namespace: "weft", metricName: "fanout_partial_answers", unitName: "total",
            helpText: "Cluster queries answered without some placements (no holder answered)."
        ))
        self.mergeDuration = registry.makeDurationHistogram(
            descriptor: .init(namespace: "weft", metricName: "fanout_merge_duration", unitName: "seconds", helpText: "Time spent merging node partials, per cluster read."),
            buckets: [.microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1)]
        )
        self.overloaded = registry.makeCounter(descriptor: .init(
            namespace: "weft", metricName: "fanout_overloaded", unitName: "total",
            helpText: "Cluster queries refused with 429 because the node already coordinated its maximum of fan-out queries."
        ))
    }

    /// Counts one node request to `node` that ended with `outcome`.
    public func request(node: String, _ outcome: Outcome) {
        let key = node + "\u{0}" + outcome.rawValue
        let counter = self.requests.withLock { counters in
            if let c = counters[key] { return c }
            let c = self.registry.makeCounter(
                descriptor: .init(namespace: "weft", metricName: "fanout_requests", unitName: "total", helpText: "Node requests a query coordinator sent, by node and outcome."),
                labels: [("node", node), ("outcome", outcome.rawValue)]
            )
            counters[key] = c
            return c
        }
        counter.increment()
    }

    /// Counts `n` bytes of partial answers received from `node`.
    public func partialBytes(node: String, _ n: Int) {
        let counter = self.bytes.withLock { counters in
            if let c = counters[node] { return c }
            let c = self.registry.makeCounter(
                descriptor: .init(namespace: "weft", metricName: "fanout_partial", unitName: "bytes_total", helpText: "Bytes of partial answers received, by node."),
                labels: [("node", node)]
            )
            counters[node] = c
            return c
        }
        counter.increment(by: Int64(n))
    }
}
