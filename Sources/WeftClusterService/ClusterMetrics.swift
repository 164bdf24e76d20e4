import Prometheus
import Synchronization
import WeftCluster

/// Membership metrics on the node's `/metrics`: members by state, probe round trips, suspicions
/// raised and refuted, ring version and gossip bytes.
public final class ClusterMetrics: Sendable {
    private let byStatus: [MemberStatus: Gauge]
    private let probeRTT: DurationHistogram
    private let suspicionsRaised: Counter
    private let suspicionsRefuted: Counter
    private let deaths: Counter
    private let version: Gauge
    private let gossipSent: Counter

    public init(registry: PrometheusCollectorRegistry) {
        var gauges: [MemberStatus: Gauge] = [:]
        for status in MemberStatus.allCases {
            gauges[status] = registry.makeGauge(
                descriptor: .init(namespace: "weft", metricName: "cluster_members", unitName: "count", helpText: "Other members by the status this node believes."),
                labels: [("status", status.description)]
            )
        }
        self.byStatus = gauges
        self.probeRTT = registry.makeDurationHistogram(
            descriptor: .init(namespace: "weft", metricName: "cluster_probe_round_trip", unitName: "seconds", helpText: "Time to deliver a membership probe to a peer and hear back."),
            buckets: [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1)]
        )
        self.suspicionsRaised = registry.makeCounter(descriptor: .init(namespace: "weft", metricName: "cluster_suspicions_raised", unitName: "total", helpText: "Members this node came to suspect."))
        self.suspicionsRefuted = registry.makeCounter(descriptor: .init(namespace: "weft", metricName: "cluster_suspicions_refuted", unitName: "total", helpText: "Suspected members that proved alive."))
        self.deaths = registry.makeCounter(descriptor: .init(namespace: "weft", metricName: "cluster_members_declared_dead", unitName: "total", helpText: "Members this node came to consider dead."))
        self.version = registry.makeGauge(descriptor: .init(namespace: "weft", metricName: "cluster_ring_version", unitName: "", helpText: "The ring state's version (sum of its entries' versions)."))
        self.gossipSent = registry.makeCounter(descriptor: .init(namespace: "weft", metricName: "cluster_gossip_sent_bytes", unitName: "total", helpText: "Membership message bytes sent."))
    }

    func members(_ statuses: [MemberStatus]) {
        var counts: [MemberStatus: Int] = [:]
        for s in statuses { counts[s, default: 0] += 1 }
        for (status, gauge) in self.byStatus { gauge.set(Double(counts[status] ?? 0)) }
    }

    func memberChanged(_ change: MemberStatusChange) {
        switch (change.previous, change.member.status) {
        case (_, .suspect) where change.previous != .suspect: self.suspicionsRaised.increment()
        case (.suspect?, .alive): self.suspicionsRefuted.increment()
        default: break
        }
        if change.member.status == .dead { self.deaths.increment() }
    }

    func probeRoundTrip(_ d: Duration) { self.probeRTT.record(d) }
    func ringVersion(_ v: UInt64) { self.version.set(Double(v)) }
    func gossipBytes(_ n: Int) { self.gossipSent.increment(by: Int64(n)) }
}
