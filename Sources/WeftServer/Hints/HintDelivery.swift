import Logging
import NIOCore
import Prometheus
import Synchronization
import WeftCluster
import WeftIngest
import WeftModel

/// Delivers the hints a storage node holds: every `interval` (and at once on ``repair(_:)``), each
/// due hint is pushed to its target over the same push route as a write, to targets in the ring;
/// delivered hints leave the log and segments that hold only delivered hints are removed.
final class HintDelivery: Sendable {
    let log: HintLog
    private let transport: any ReplicaTransport
    private let ring: @Sendable () -> Ring
    private let loop: any EventLoop
    private let logger: Logger
    private let gauges: (pending: Gauge, bytes: Gauge)
    private let counters: (queued: Counter, delivered: Counter, dropped: Counter)
    /// The log's running totals as last added to the counters.
    private let counted = Mutex<(queued: Int, delivered: Int, dropped: Int)>((0, 0, 0))
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(log: HintLog, transport: any ReplicaTransport, ring: @escaping @Sendable () -> Ring, loop: any EventLoop, registry: PrometheusCollectorRegistry, logger: Logger) {
        self.log = log
        self.transport = transport
        self.ring = ring
        self.loop = loop
        self.logger = logger
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: .init(namespace: "weft", metricName: name, helpText: help))
        }
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: .init(namespace: "weft", metricName: name, unitName: "total", helpText: help))
        }
        self.gauges = (
            gauge("hints_pending", "Hints held for other replicas, not delivered yet."),
            gauge("hints_pending_bytes", "Payload bytes of hints not delivered yet.")
        )
        self.counters = (
            counter("hints_queued", "Hints taken into the hints log (replayed ones included)."),
            counter("hints_delivered", "Hints delivered to their replica."),
            counter("hints_dropped", "Hints refused because the hints log was full.")
        )
    }

    /// Starts delivering every `interval`.
    func start(interval: Duration) {
        let task = Task { [self] in
            while !Task.isCancelled {
                self.deliverDue()
                try? await Task.sleep(for: interval)
            }
        }
        self.task.withLock { $0 = task }
    }

    func shutdown() async {
        let task = self.task.withLock { $0 }
        task?.cancel()
        await task?.value
    }

    /// Ends the backoff of the hints for `target` (all when nil) and sends what is due now (off the caller's thread).
    func repair(_ target: NodeID?) {
        self.log.expedite(target)
        Task { [self] in self.deliverDue() }
    }

    /// Sends the due hints, removes delivered segments, and updates the metrics.
    func deliverDue() {
        let ring = self.ring()
        let log = self.log
        for (id, record) in log.due(reachable: { ring.state[$0].map { $0.state != .left } ?? false }) {
            guard let address = ring.state[record.target]?.address else {
                log.failed(id)
                continue
            }
            self.transport.push(ByteBuffer(bytes: record.payload), org: record.org, placement: record.placement, to: address, on: self.loop).whenSuccess { outcome in
                if outcome == .durable { log.delivered(id) } else { log.failed(id) }
            }
        }
        do {
            try log.removeDelivered()
        } catch {
            self.logger.error("cannot remove delivered hint segments", metadata: ["error": "\(error)"])
        }
        let status = log.status
        self.gauges.pending.set(Double(status.pending))
        self.gauges.bytes.set(Double(status.pendingBytes))
        let (queued, delivered, dropped) = self.counted.withLock { last in
            defer { last = (status.queued, status.delivered, status.dropped) }
            return (status.queued - last.queued, status.delivered - last.delivered, status.dropped - last.dropped)
        }
        self.counters.queued.increment(by: Int64(max(0, queued)))
        self.counters.delivered.increment(by: Int64(max(0, delivered)))
        self.counters.dropped.increment(by: Int64(max(0, dropped)))
    }

    /// The status object of `weftctl status`: pending hints and bytes, by target.
    static func write(_ status: HintStatus, into o: inout JSONWriter) {
        o.key("hintsPending")
        o.number(status.pending)
        o.key("hintsPendingBytes")
        o.number(status.pendingBytes)
        o.key("hintsDelivered")
        o.number(status.delivered)
        o.key("hintsDropped")
        o.number(status.dropped)
        o.key("hintsByTarget")
        o.object { t in
            for (node, pending) in status.byTarget.sorted(by: { $0.key < $1.key }) {
                t.key(node.rawValue)
                t.object { n in
                    n.key("hints")
                    n.number(pending.hints)
                    n.key("bytes")
                    n.number(pending.bytes)
                }
            }
        }
    }
}
