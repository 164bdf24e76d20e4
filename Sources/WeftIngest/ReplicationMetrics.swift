import Logging
import Prometheus
import Synchronization
import WeftCluster

/// Replicated-write metrics on the node's `/metrics` (pushes by peer and outcome, push latency,
/// quorum failures, bytes sent and in flight, writes refused), and one log line per quorum failure, at most
/// one a second (the rest counted in the next line).
public final class ReplicationMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let pushCounters = Mutex<[String: Counter]>([:])
    private let pushLatency: DurationHistogram
    private let pushedBytes: Counter
    private let quorumFailures: Counter
    private let refusedWrites: Counter
    private let inFlight: Gauge
    private let logger: Logger
    private let logState = Mutex<(last: ContinuousClock.Instant?, suppressed: Int)>((nil, 0))

    public init(registry: PrometheusCollectorRegistry, logger: Logger) {
        self.registry = registry
        self.logger = logger
        self.pushLatency = registry.makeDurationHistogram(
            descriptor: .init(namespace: "weft", metricName: "replication_push_duration", unitName: "seconds", helpText: "Time from sending a push to a replica to its answer."),
            buckets: [.microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5)]
        )
        self.pushedBytes = registry.makeCounter(descriptor: .init(namespace: "weft", metricName: "replication_pushed_bytes", unitName: "total", helpText: "Encoded span batch bytes sent to replicas (each copy counted)."))
        self.quorumFailures = registry.makeCounter(descriptor: .init(namespace: "weft", metricName: "replication_quorum_failures", unitName: "total", helpText: "Writes answered 503 because a placement lost its write quorum."))
        self.refusedWrites = registry.makeCounter(descriptor: .init(namespace: "weft", metricName: "replication_refused_writes", unitName: "total", helpText: "Writes refused because the bytes in flight to replicas were at their limit."))
        self.inFlight = registry.makeGauge(descriptor: .init(namespace: "weft", metricName: "replication_in_flight", unitName: "bytes", helpText: "Bytes of pushes to replicas awaiting an answer."))
    }

    /// One push ended (`outcome`: durable, failed, timeout or skipped), after `duration` when sent.
    func pushed(peer: NodeID, outcome: String, duration: Duration?, bytes: Int = 0) {
        let key = peer.rawValue + "\u{0}" + outcome
        let counter = self.pushCounters.withLock { counters in
            if let c = counters[key] { return c }
            let c = self.registry.makeCounter(
                descriptor: .init(namespace: "weft", metricName: "replication_pushes", unitName: "total", helpText: "Pushes to replicas by peer and outcome."),
                labels: [("peer", peer.rawValue), ("outcome", outcome)]
            )
            counters[key] = c
            return c
        }
        counter.increment()
        if let duration { self.pushLatency.record(duration) }
        if bytes > 0 { self.pushedBytes.increment(by: Int64(bytes)) }
    }

    /// A missed part was left as a hint for `target` (`stored`), or no replica that stored it took the hint (`lost`).
    func hinted(target: NodeID, outcome: String) {
        let key = "hint\u{0}" + target.rawValue + "\u{0}" + outcome
        let counter = self.pushCounters.withLock { counters in
            if let c = counters[key] { return c }
            let c = self.registry.makeCounter(
                descriptor: .init(namespace: "weft", metricName: "replication_hints_sent", unitName: "total", helpText: "Missed parts left as hints with a replica that stored them, by target and outcome."),
                labels: [("target", target.rawValue), ("outcome", outcome)]
            )
            counters[key] = c
            return c
        }
        counter.increment()
    }

    func inFlightBytes(_ bytes: Int) { self.inFlight.set(Double(bytes)) }

    func refused() { self.refusedWrites.increment() }

    /// Counts a lost quorum and logs it unless a line went out less than a second ago.
    func quorumFailed(_ message: String) {
        self.quorumFailures.increment()
        let now = ContinuousClock.now
        let suppressed = self.logState.withLock { s -> Int? in
            if let last = s.last, now - last < .seconds(1) {
                s.suppressed += 1
                return nil
            }
            defer { s = (now, 0) }
            return s.suppressed
        }
        guard let suppressed else { return }
        self.logger.warning("write refused: \(message)", metadata: suppressed > 0 ? ["alsoRefusedSinceLastLine": "\(suppressed)"] : [:])
    }
}
