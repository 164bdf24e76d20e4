import Synchronization
import WeftRuntime

/// What the coordinator has learnt about storage nodes across queries: each node's recent answer
/// latencies, from which the hedge delay comes, and the fan-out metrics. One per query node.
package final class FanoutHealth: Sendable {
    /// The hedge delay never goes below this (a node's p95 of a few fast answers would hedge too eagerly).
    package let floor: Duration
    package let metrics: FanoutMetrics?
    private let latencies = Mutex<[String: Window]>([:])

    /// The last answer latencies of one node (a ring of ``Window/size``).
    struct Window {
        static let size = 64
        var samples: [Duration] = []
        var next = 0

        mutating func add(_ d: Duration) {
            if self.samples.count < Self.size {
                self.samples.append(d)
            } else {
                self.samples[self.next] = d
                self.next = (self.next + 1) % Self.size
            }
        }
    }

    /// Answers a node must have given before it is hedged.
    package static let minimumSamples = 8

    package init(floor: Duration = .milliseconds(50), metrics: FanoutMetrics? = nil) {
        self.floor = floor
        self.metrics = metrics
    }

    /// Records how long `node` took to answer.
    package func record(_ node: String, _ latency: Duration) {
        self.latencies.withLock { $0[node, default: Window()].add(latency) }
    }

    /// The node's p95 answer latency over its recent answers (nil: too few answers yet).
    package func p95(_ node: String) -> Duration? {
        let samples = self.latencies.withLock { $0[node]?.samples } ?? []
        guard samples.count >= Self.minimumSamples else { return nil }
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, (sorted.count * 95 + 99) / 100 - 1)]
    }

    /// How long to wait for `node` before hedging (nil: do not hedge it yet).
    package func hedgeDelay(_ node: String) -> Duration? { self.p95(node).map { max($0, self.floor) } }
}

/// What a query's fan-out touched, added up over its cluster reads (shown in Weft's own JSON
/// answers and the `x-weft-fanout` header).
package struct FanoutFigures: Sendable, Equatable {
    /// Node requests sent (hedges and retries included), and those answered.
    package var requests = 0
    package var answered = 0
    /// Distinct nodes asked and nodes that answered.
    package var nodesAsked: Set<String> = []
    package var nodesAnswered: Set<String> = []
    /// Placements read, and placements a search left unread because they could not change its answer.
    package var placementsCovered = 0
    package var placementsSkipped = 0
    package var hedges = 0
    /// Bytes of partials received (when the client reports them), and time spent merging.
    package var mergeNanos: UInt64 = 0
    /// Time spent waiting for catalogs (none when every node's was cached), plans made again
    /// because a node's catalog had changed, and catalog requests sent alongside node requests to
    /// confirm cached catalogs.
    package var catalogNanos: UInt64 = 0
    package var replans = 0
    package var probes = 0

    package init() {}

    package mutating func add(_ o: FanoutFigures) {
        self.requests += o.requests
        self.answered += o.answered
        self.nodesAsked.formUnion(o.nodesAsked)
        self.nodesAnswered.formUnion(o.nodesAnswered)
        self.placementsCovered += o.placementsCovered
        self.placementsSkipped += o.placementsSkipped
        self.hedges += o.hedges
        self.mergeNanos += o.mergeNanos
        self.catalogNanos += o.catalogNanos
        self.replans += o.replans
        self.probes += o.probes
    }

    /// `nodes_asked=3 nodes_answered=3 placements=10 skipped=0 requests=3 hedges=0 merge_ms=0.4
    /// catalog_ms=0 replans=0 probes=0`.
    package var summary: String {
        "nodes_asked=\(self.nodesAsked.count) nodes_answered=\(self.nodesAnswered.count) placements=\(self.placementsCovered)"
            + " skipped=\(self.placementsSkipped) requests=\(self.requests) hedges=\(self.hedges) merge_ms=\(Double(self.mergeNanos) / 1e6)"
            + " catalog_ms=\(Double(self.catalogNanos) / 1e6) replans=\(self.replans) probes=\(self.probes)"
    }
}

/// ``FanoutFigures`` shared by the reads of one query.
package final class FanoutTally: Sendable {
    private let state = Mutex(FanoutFigures())

    package init() {}

    package func add(_ figures: FanoutFigures) { self.state.withLock { $0.add(figures) } }

    package var figures: FanoutFigures { self.state.withLock { $0 } }
}
