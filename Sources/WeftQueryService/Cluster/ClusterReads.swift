import NIOHTTP1
import Synchronization
import WeftModel
import WeftQuery
import WeftRuntime
import WeftStorageEngine

/// Gives the query API a coordinator while the node is in a cluster whose data lies on other
/// storage nodes too (nil: the node answers from its own data), and bounds the fan-out queries the
/// node coordinates at once.
package final class CoordinatorReference: Sendable {
    /// A struct around the closure: a closure held directly in a `Mutex` is re-wrapped in reabstraction
    /// thunks on every `withLock` in unoptimised builds, deepening each later call without bound.
    private struct Provider: Sendable { let coordinator: @Sendable () -> Coordinator? }
    private let provider = Mutex<Provider?>(nil)
    private let running = Atomic<Int>(0)
    /// Fan-out queries coordinated at once; more are refused with 429.
    package let maxConcurrent: Int

    package init(maxConcurrent: Int = 64) { self.maxConcurrent = max(1, maxConcurrent) }

    /// - Parameter storesSpans: whether this node holds spans of its own; a node that does not has
    ///   nothing to answer from while it knows no storage node (``refusesLocalReads``).
    package func set(_ provider: @escaping @Sendable () -> Coordinator?, storesSpans: Bool = true) {
        self.provider.withLock { $0 = Provider(coordinator: provider) }
        self.storesSpans.store(storesSpans, ordering: .relaxed)
    }

    private let storesSpans = Atomic<Bool>(true)

    /// Why a query of the cluster's data cannot be answered now, or nil: a node without spans of its
    /// own that knows no storage node (it has not joined yet, or its join addresses are wrong)
    /// would otherwise answer from its empty store, an undercount no answer could flag.
    package var refusesLocalReads: String? {
        guard !self.storesSpans.load(ordering: .relaxed), self.current == nil else { return nil }
        return "this node stores no spans and knows no storage node yet (check its --join addresses); retry shortly"
    }

    /// The coordinator for a query starting now.
    package var current: Coordinator? { self.provider.withLock { $0 }?.coordinator() }

    /// Takes one of the ``maxConcurrent`` fan-out slots; false when all are taken.
    package func acquire() -> Bool {
        if self.running.add(1, ordering: .relaxed).newValue <= self.maxConcurrent { return true }
        self.running.subtract(1, ordering: .relaxed)
        return false
    }

    package func release() { self.running.subtract(1, ordering: .relaxed) }

    /// Fan-out queries running now.
    package var inFlight: Int { self.running.load(ordering: .relaxed) }
}

/// The node already coordinates its maximum of fan-out queries (answered 429 with Retry-After).
package struct FanoutOverloaded: Error, Sendable {}

/// Where one HTTP query reads: this node's snapshot, or every placement of the cluster through a
/// coordinator (its catalogs taken once per query, from the coordinator's cache where it has them,
/// and taken again when a node reports its catalog changed). Used by one query worker at a time.
package final class QueryReads: @unchecked Sendable {
    private let engine: StorageEngine
    private let org: String
    private let coordinator: Coordinator?
    private let reference: CoordinatorReference?
    private var holdings: Coordinator.Holdings?
    private var holdsSlot = false
    /// What the cluster reads could not reach so far.
    package private(set) var missing: [MissingData] = []
    /// What the cluster reads touched so far.
    package let tally = FanoutTally()

    package init(engine: StorageEngine, org: String, coordinator: Coordinator?, reference: CoordinatorReference? = nil) {
        self.engine = engine
        self.org = org
        self.coordinator = coordinator
        self.reference = reference
    }

    deinit {
        if self.holdsSlot { self.reference?.release() }
    }

    /// Whether the reads go to other nodes.
    package var isDistributed: Bool { self.coordinator != nil }

    /// `request` over everything the org has (the local snapshot, or once per placement in the
    /// cluster). In a cluster the wait ends when the request's cancellation is set (the HTTP client
    /// went away) or its deadline passes, cancelling the node requests in flight.
    /// - Throws: ``FanoutOverloaded`` when the node coordinates too many fan-out queries already.
    package func run(_ request: NodeQueryRequest) throws -> NodePartial {
        try self.run(request, trace: false)
    }

    /// The spans of one trace (`request` is a many-traces request for it alone), as ``run(_:)``; in a
    /// cluster read first from the trace's candidate placements (``Coordinator/runTrace(_:org:holdings:figures:)``).
    package func runTrace(_ request: NodeQueryRequest) throws -> NodePartial {
        try self.run(request, trace: true)
    }

    private func run(_ request: NodeQueryRequest, trace: Bool) throws -> NodePartial {
        guard let coordinator = self.coordinator else {
            return try NodeQuery.run(request, snapshot: self.engine.snapshot(org: self.org), store: self.engine.store, context: .live)
        }
        if !self.holdsSlot, let reference = self.reference {
            guard reference.acquire() else {
                coordinator.health?.metrics?.overloaded.increment()
                throw FanoutOverloaded()
            }
            self.holdsSlot = true
        }
        let org = self.org
        let (cancellation, deadline, timeout) = (request.cancellation, request.deadline, request.timeoutSeconds)
        let holdings: Coordinator.Holdings
        let tally = self.tally
        if let known = self.holdings {
            holdings = known
        } else if let cached = coordinator.cachedHoldings(org: org) {
            // No thread hop when every catalog is cached.
            holdings = cached
        } else {
            let started = ContinuousClock.now
            holdings = try Coordinator.wait(cancellation: cancellation, deadline: deadline, timeoutSeconds: timeout) { await coordinator.holdings(org: org) }
            var waited = FanoutFigures()
            waited.catalogNanos = Coordinator.nanoseconds(ContinuousClock.now - started)
            tally.add(waited)
        }
        let answer = try Coordinator.wait(cancellation: cancellation, deadline: deadline, timeoutSeconds: timeout) {
            if trace { return try await coordinator.runTrace(request, org: org, holdings: holdings, figures: tally) }
            if case .serviceMap = request.operation { return try await coordinator.runServiceMap(request, org: org, holdings: holdings, figures: tally) }
            return try await coordinator.runChecked(request, org: org, holdings: holdings, figures: tally)
        }
        self.holdings = answer.holdings
        for m in answer.missing where !self.missing.contains(m) { self.missing.append(m) }
        return answer.partial
    }

    /// Whether `summary`, a storage node's summary of a trace sent with round 1 of a search, is the
    /// whole trace's (``Coordinator/liesInOnePlacement(_:startsFrom:to:holdings:)``, by the holdings
    /// the reads so far were planned from).
    package func isWhole(_ summary: TraceSummary) -> Bool {
        guard let coordinator = self.coordinator, let holdings = self.holdings else { return false }
        let end = summary.startNanos.addingReportingOverflow(summary.durationNanos)
        return !end.overflow && coordinator.liesInOnePlacement(summary.traceID, startsFrom: summary.startNanos, to: end.partialValue, holdings: holdings)
    }

    /// Names what a cluster answer's fan-out touched (``FanoutFigures/summary``).
    package static let fanoutHeader = "x-weft-fanout"

    /// `response` with the `x-weft-partial` header naming the missing data, when some is missing, and
    /// the `x-weft-fanout` header in a cluster.
    package func flagged(_ response: HTTPResponse) -> HTTPResponse {
        var flagged = response
        if self.isDistributed { flagged.headers.add(name: Self.fanoutHeader, value: self.tally.figures.summary) }
        guard !self.missing.isEmpty else { return flagged }
        flagged.headers.add(name: Self.partialHeader, value: self.missing.map(\.description).joined(separator: " "))
        return flagged
    }

    /// A JSON object answer with a `fanout` object (nodes asked and answered, placements read) in a
    /// cluster, and `"partial": true` with the `missing` list when some is missing.
    /// - Parameter fanout: whether to add the `fanout` object (Weft's own answers; not Jaeger's).
    package func flaggedObject(_ body: [UInt8], fanout: Bool = true) -> [UInt8] {
        guard self.isDistributed, fanout || !self.missing.isEmpty, body.first == UInt8(ascii: "{") else { return body }
        let figures = self.tally.figures
        var w = JSONWriter()
        w.object { o in
            if fanout {
            o.key("fanout")
            o.object { f in
                f.key("nodesAsked")
                f.number(figures.nodesAsked.count)
                f.key("nodesAnswered")
                f.number(figures.nodesAnswered.count)
                f.key("placementsCovered")
                f.number(figures.placementsCovered)
                f.key("placementsSkipped")
                f.number(figures.placementsSkipped)
                f.key("requests")
                f.number(figures.requests)
                f.key("hedges")
                f.number(figures.hedges)
            }
            }
            guard !self.missing.isEmpty else { return }
            o.key("partial")
            o.bool(true)
            o.key("missing")
            o.array { a in
                for m in self.missing {
                    a.object { e in
                        if let placement = m.placement {
                            e.key("placement")
                            e.string(placement)
                        }
                        e.key("nodes")
                        e.array { n in for node in m.nodes { n.string(node) } }
                    }
                }
            }
        }
        // Both are objects: the flag's members, then the answer's.
        var out = Array(w.bytes.dropLast())
        if body.count > 2 { out.append(UInt8(ascii: ",")) }
        out.append(contentsOf: body.dropFirst())
        return out
    }

    /// Names the data a cluster answer lacks: `placement@node,node` entries, `*` for placements
    /// only unreachable nodes may hold.
    package static let partialHeader = "x-weft-partial"
}

/// A refusal from a storage node, answered with its status and message.
extension QueryAPI {
    package static func refused(_ refusal: NodeRefusal) -> HTTPResponse {
        json(HTTPResponseStatus(statusCode: refusal.status), QueryResponses.error(refusal.message))
    }
}
