import Dispatch
import Synchronization
import WeftModel
import WeftQuery
import WeftStorageEngine

/// The reads a coordinator sends to storage nodes (over the internal port in a running cluster).
package protocol StorageNodeClient: Sendable {
    /// The placements `node` holds.
    func catalog(of node: String) async throws -> PlacementCatalog
    /// `request` over `placements` of `org` on `node`.
    /// - Throws: ``NodeRefusal`` when the node refused the query itself (bad query, limit hit); any
    ///   other error means the node did not answer.
    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial
    /// As ``query(_:org:placements:on:)``, planned with a catalog of `node` whose fingerprint for the
    /// request is `planned` (``PlacementCatalog/fingerprint(org:range:latest:)``).
    /// - Throws: ``StaleCatalog`` (with the node's catalog) when the node's catalog no longer has
    ///   that fingerprint: the plan may have missed or misplaced a placement, so there is no answer.
    func query(
        _ request: NodeQueryRequest, org: String, placements: [String], on node: String, planned: CatalogFingerprint
    ) async throws -> NodePartial
}

extension StorageNodeClient {
    /// Asks for the node's catalog after its answer and compares: two round trips, where a node
    /// that checks the fingerprint itself needs one.
    package func query(
        _ request: NodeQueryRequest, org: String, placements: [String], on node: String, planned: CatalogFingerprint
    ) async throws -> NodePartial {
        let partial = try await self.query(request, org: org, placements: placements, on: node)
        let catalog = try await self.catalog(of: node)
        guard catalog.fingerprint(for: request.operation, org: org) == planned else { throw StaleCatalog(node: node, catalog: catalog) }
        return partial
    }
}

/// A node's catalog is no longer the one a query was planned with: here is its current one.
package struct StaleCatalog: Error, Sendable {
    package var node: String
    package var catalog: PlacementCatalog

    package init(node: String, catalog: PlacementCatalog) {
        self.node = node
        self.catalog = catalog
    }
}

/// The storage nodes' catalogs as last seen, kept across queries so that a query plans without
/// first asking every node. Every node request carries the fingerprint of the catalog it was
/// planned with, and nodes without a request are asked for their catalog alongside, so a plan made
/// from a catalog that has changed is found out before its answer is given (and made again).
package final class CatalogCache: Sendable {
    private let state = Mutex<[String: PlacementCatalog]>([:])

    package init() {}

    package func catalog(of node: String) -> PlacementCatalog? { self.state.withLock { $0[node] } }

    package func store(_ catalog: PlacementCatalog, of node: String) { self.state.withLock { $0[node] = catalog } }

    /// Drops what is known of `node` (it failed: the next query asks it again).
    package func forget(_ node: String) { _ = self.state.withLock { $0.removeValue(forKey: node) } }
}

extension PlacementCatalog {
    /// The fingerprint of what a plan of `operation` over `org` takes from this catalog.
    package func fingerprint(for operation: NodeQueryRequest.Operation, org: String) -> CatalogFingerprint {
        self.fingerprint(org: org, range: operation.spanStartRange, latest: operation.stopsEarlyByLatestStart)
    }
}

/// A storage node refused a query (400 bad query, 422 limit hit): the same answer for every holder.
package struct NodeRefusal: Error, Sendable, Equatable {
    package var status: Int
    package var message: String

    package init(status: Int, message: String) {
        self.status = status
        self.message = message
    }
}

/// Data a query could not read: a placement whose holders all failed, or (placement nil) whatever
/// only a set of unreachable nodes may hold.
package struct MissingData: Sendable, Equatable, CustomStringConvertible {
    package var placement: String?
    package var nodes: [String]

    package init(placement: String?, nodes: [String]) {
        self.placement = placement
        self.nodes = nodes
    }

    package var description: String { "\(self.placement ?? "*")@\(self.nodes.joined(separator: ","))" }
}

/// Fans a node request out to the storage nodes so that each placement is read exactly once, and
/// merges their partials: a placement whose chosen node fails is read from another holder; one no
/// holder answers for is reported missing, never silently left out.
package struct Coordinator: Sendable {
    /// Where the placements of one org are, as the catalogs said.
    package struct Holdings: Sendable, Equatable {
        /// Node → its placements of the org, with their span start ranges.
        package var catalogs: [String: [PlacementCatalog.Entry]]
        /// Nodes whose catalog did not come.
        package var unreachable: Set<String>
        /// Placement → holders to read only when no other holder answers: not in sync for it, or
        /// with hints for it pending on another node.
        package var avoid: [String: Set<String>] = [:]
        /// Each node's whole catalog, whose fingerprint its node requests carry.
        package var sources: [String: PlacementCatalog] = [:]
        /// Nodes whose catalog came from the ``CatalogCache``: the query's answer counts only once
        /// each of them has confirmed it (by its answer, or by its catalog asked alongside).
        package var cached: Set<String> = []

        /// Adds `node`'s catalog.
        mutating func add(_ catalog: PlacementCatalog, of node: String, org: String) {
            self.sources[node] = catalog
            self.catalogs[node] = catalog.entries.filter { $0.org == org }
            for e in catalog.entries where e.org == org && !e.inSync { self.avoid[e.placement, default: []].insert(node) }
            for h in catalog.pendingHints where h.org == org && h.hints > 0 { self.avoid[h.placement, default: []].insert(h.target) }
        }

        /// Placement → the nodes holding it, for placements with spans started in `range` (nil: all).
        package func holders(startedIn range: ClosedRange<UInt64>?) -> [String: Set<String>] {
            var holders: [String: Set<String>] = [:]
            for (node, entries) in self.catalogs {
                for e in entries where range.map({ e.minStart <= $0.upperBound && e.maxStart >= $0.lowerBound }) ?? true {
                    holders[e.placement, default: []].insert(node)
                }
            }
            return holders
        }
    }

    /// This node's ID when it is a storage node.
    package let local: String?
    /// The storage nodes that hold data to read.
    package let nodes: [String]
    /// Replicas per placement: at least this many unreachable nodes may hide a placement.
    package let replicationFactor: Int
    package let client: any StorageNodeClient
    /// Recent node latencies (for hedging) and the fan-out metrics; nil: no hedging, no metrics.
    package let health: FanoutHealth?

    /// Catalogs kept across queries (nil: every query asks every node first).
    package let catalogs: CatalogCache?

    /// Where a trace's spans are expected, as the write rings say (nil: a trace is read from every
    /// placement, like any query).
    package let traceCandidates: (@Sendable (TraceID) -> TraceCandidates)?

    package init(
        local: String?, nodes: [String], replicationFactor: Int, client: any StorageNodeClient, health: FanoutHealth? = nil,
        catalogs: CatalogCache? = nil, traceCandidates: (@Sendable (TraceID) -> TraceCandidates)? = nil
    ) {
        self.local = local
        self.nodes = nodes.sorted()
        self.replicationFactor = max(1, replicationFactor)
        self.client = client
        self.health = health
        self.catalogs = catalogs
        self.traceCandidates = traceCandidates
    }

    /// Every storage node's catalog from the cache, without waiting; nil when some node's is not cached.
    package func cachedHoldings(org: String) -> Holdings? {
        guard let catalogs = self.catalogs else { return nil }
        var holdings = Holdings(catalogs: [:], unreachable: [])
        for node in self.nodes {
            guard let catalog = catalogs.catalog(of: node) else { return nil }
            holdings.add(catalog, of: node, org: org)
            holdings.cached.insert(node)
        }
        return holdings
    }

    /// Every storage node's catalog: the cached one where there is one (unless `cached` is false),
    /// else asked now (and cached).
    package func holdings(org: String, cached: Bool = true) async -> Holdings {
        var holdings = Holdings(catalogs: [:], unreachable: [])
        var ask: [String] = []
        for node in self.nodes {
            if cached, let catalog = self.catalogs?.catalog(of: node) {
                holdings.add(catalog, of: node, org: org)
                holdings.cached.insert(node)
            } else {
                ask.append(node)
            }
        }
        guard !ask.isEmpty else { return holdings }
        await withTaskGroup(of: (String, PlacementCatalog?).self) { group in
            for node in ask {
                group.addTask { (node, try? await self.client.catalog(of: node)) }
            }
            for await (node, catalog) in group {
                guard let catalog else {
                    holdings.unreachable.insert(node)
                    continue
                }
                self.catalogs?.store(catalog, of: node)
                holdings.add(catalog, of: node, org: org)
            }
        }
        return holdings
    }

    /// Runs `request` over every placement of `org` with spans in the request's time range once, and
    /// merges the partials. A node that fails or times out has its placements read from other
    /// holders; one that has not answered within its recent p95 latency (``FanoutHealth``), nor
    /// within twice the median time of the nodes that answered this query, is hedged: its
    /// placements are sent to other holders too and the first complete answer is taken (never
    /// both). A search stops waiting for nodes whose placements hold no span newer than the cut-off
    /// of the traces it already has. Cancelling the calling task cancels every node request.
    /// - Parameter figures: where to count nodes asked and answered and placements read.
    /// - Returns: the merged partial and what could not be read.
    /// - Throws: ``NodeRefusal`` when a node refused the query; ``AggregationError`` when partials do
    ///   not merge; `CancellationError` when cancelled.
    package func run(
        _ request: NodeQueryRequest, org: String, holdings: Holdings, figures: FanoutTally? = nil
    ) async throws -> (partial: NodePartial, missing: [MissingData]) {
        let answer = try await self.runChecked(request, org: org, holdings: holdings, figures: figures)
        return (answer.partial, answer.missing)
    }

    /// ``run(_:org:holdings:figures:)``, which also gives the holdings the answer was planned from
    /// (for the query's next round). When some of `holdings` came from the ``CatalogCache``, each
    /// node request carries the fingerprint of its node's catalog, and cached nodes with nothing to
    /// read are asked for their catalog alongside; a node whose catalog has changed answers with
    /// its catalog instead (``StaleCatalog``), and then every catalog is asked again and the query
    /// planned again from them, as without a cache (nothing of the stale plan is merged). A cached
    /// node that fails counts as unreachable and is asked for its catalog again by the next query.
    /// - Parameter placements: which placements to read (all by default).
    package func runChecked(
        _ request: NodeQueryRequest, org: String, holdings: Holdings, figures: FanoutTally? = nil,
        placements: (String) -> Bool = { _ in true }
    ) async throws -> (partial: NodePartial, missing: [MissingData], holdings: Holdings) {
        var holdings = holdings
        while true {
            var fanout = FanoutRun(
                coordinator: self, request: request, org: org, holdings: holdings, checked: !holdings.cached.isEmpty, placements: placements
            )
            defer { fanout.cancelAll() }
            do {
                try await fanout.run()
            } catch let stale as StaleCatalog {
                self.catalogs?.store(stale.catalog, of: stale.node)
                var figured = fanout.figures
                figured.replans = 1
                let started = ContinuousClock.now
                holdings = await self.holdings(org: org, cached: false)
                figured.catalogNanos = Self.nanoseconds(ContinuousClock.now - started)
                figures?.add(figured)
                continue
            }
            for node in fanout.unconfirmed { self.catalogs?.forget(node) }
            // Confirmed now: the query's next round trusts them, as it trusts catalogs asked for it.
            holdings.cached.subtract(fanout.confirmed)
            figures?.add(fanout.figures)
            if !fanout.missing.isEmpty { self.health?.metrics?.partialAnswers.increment() }
            self.health?.metrics?.mergeDuration.record(fanout.mergeTime)
            return (fanout.merged, fanout.missing, holdings)
        }
    }

    /// The spans of one trace (`request` is a many-traces request for that trace alone), read first
    /// from its candidate placements only (``traceCandidates``, and the placements of a cluster still
    /// forming, which no ring history keeps: keys with fewer members than the replication factor),
    /// each once as ``runChecked(_:org:holdings:figures:placements:)`` reads. The other placements
    /// are read too when that finds no span, or finds spans that may have siblings elsewhere (one
    /// started before the ring history or near a ring change): the answer is then that of a read of
    /// every placement. Any other request is run as ``runChecked(_:org:holdings:figures:placements:)``.
    package func runTrace(
        _ request: NodeQueryRequest, org: String, holdings: Holdings, figures: FanoutTally? = nil
    ) async throws -> (partial: NodePartial, missing: [MissingData], holdings: Holdings) {
        guard case .traces(let ids, _, _) = request.operation, ids.count == 1, let candidates = self.traceCandidates?(ids[0]) else {
            return try await self.runChecked(request, org: org, holdings: holdings, figures: figures)
        }
        let replicationFactor = self.replicationFactor
        let first = { (placement: String) in
            candidates.placements.contains(placement) || placement.split(separator: "+").count < replicationFactor
        }
        let found = try await self.runChecked(request, org: org, holdings: holdings, figures: figures, placements: first)
        if case .traces(let traces) = found.partial {
            let starts = TraceCandidates.spanStarts(of: ids[0], in: traces.chunks)
            if !starts.isEmpty, candidates.covers(starts) { return found }
        }
        let rest = try await self.runChecked(request, org: org, holdings: found.holdings, figures: figures, placements: { !first($0) })
        var merged = found.partial
        try merged.merge(rest.partial)
        var missing = found.missing
        for m in rest.missing where !missing.contains(m) { missing.append(m) }
        return (merged, missing, rest.holdings)
    }

    /// Whether every span of trace `id` lies in one placement, judged from the spans a node found of
    /// it, started from `first` to `last`: every ring of the history and the read ring give the trace
    /// the same replica set (one candidate placement), the found spans are covered by the history
    /// (``TraceCandidates/coversRange``), and no placement of a cluster still forming exists. Then the
    /// node that read that placement saw the whole trace, and its summary of it is the trace's. A
    /// trace whose replica set changed within the history may have spans the node did not see (under
    /// the other ring, even far from the change), so it is never judged whole.
    package func liesInOnePlacement(_ id: TraceID, startsFrom first: UInt64, to last: UInt64, holdings: Holdings) -> Bool {
        guard let candidates = self.traceCandidates?(id), candidates.placements.count == 1, candidates.coversRange(first, last) else { return false }
        // A cluster still forming keeps spans under smaller replica sets, which no ring history names.
        return holdings.catalogs.values.allSatisfy { entries in entries.allSatisfy { $0.placement.split(separator: "+").count >= self.replicationFactor } }
    }

    static func nanoseconds(_ d: Duration) -> UInt64 {
        UInt64(max(0, d.components.seconds)) * 1_000_000_000 + UInt64(max(0, d.components.attoseconds) / 1_000_000_000)
    }

    /// Waits for `body` on the calling thread (a query worker, never an event loop). When
    /// `cancellation` is set or the `deadline` (on ``QueryContext/live``'s clock) passes, the task is
    /// cancelled (and with it every node request it has in flight) and this throws
    /// ``AggregationError/cancelled`` or ``AggregationError/timeout(seconds:)``.
    package static func wait<T: Sendable>(
        cancellation: QueryCancellation? = nil, deadline: UInt64? = nil, timeoutSeconds: Double = 0,
        _ body: @escaping @Sendable () async throws -> T
    ) throws -> T {
        let box = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let task = Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            box.withLock { $0 = result }
            done.signal()
        }
        guard cancellation != nil || deadline != nil else {
            done.wait()
            return try box.withLock { $0! }.get()
        }
        while done.wait(timeout: .now() + .milliseconds(20)) == .timedOut {
            let cancelled = cancellation?.isCancelled ?? false
            let late = deadline.map { QueryContext.live.now() > $0 } ?? false
            guard cancelled || late else { continue }
            task.cancel()
            done.wait()
            if case .success(let value)? = box.withLock({ $0 }) { return value }
            throw cancelled ? AggregationError.cancelled : AggregationError.timeout(seconds: timeoutSeconds)
        }
        return try box.withLock { $0! }.get()
    }
}

/// Where one trace's spans are expected: the placements a trace-by-ID read asks first.
package struct TraceCandidates: Sendable {
    /// The placement keys to read first.
    package var placements: Set<String>
    /// Whether spans with these start times (nanoseconds since the Unix epoch) all lie in
    /// ``placements``; false sends the read to the other placements too.
    package var covers: @Sendable ([UInt64]) -> Bool
    /// Whether spans started anywhere in a range (first, last) all lie in ``placements`` and were all
    /// placed by one ring (no ring change near the range): in one placement.
    package var coversRange: @Sendable (UInt64, UInt64) -> Bool

    package init(
        placements: Set<String>, covers: @escaping @Sendable ([UInt64]) -> Bool, coversRange: @escaping @Sendable (UInt64, UInt64) -> Bool = { _, _ in false }
    ) {
        self.placements = placements
        self.covers = covers
        self.coversRange = coversRange
    }

    /// The start times of trace `id`'s spans in `chunks`.
    static func spanStarts(of id: TraceID, in chunks: [HeadChunk]) -> [UInt64] {
        var starts: [UInt64] = []
        for chunk in chunks {
            for row in chunk.rows(of: id) { starts.append(chunk.batch.startTime[row]) }
        }
        return starts
    }
}

extension NodeQueryRequest.Operation {
    /// The span start times the operation reads, as its scan prunes head chunks and blocks (nil:
    /// any, or not by span start alone).
    package var spanStartRange: ClosedRange<UInt64>? {
        let bounds: (UInt64, UInt64)
        switch self {
        case .aggregate(let q), .aggregateGroups(let q, _): bounds = (q.startNanos, q.endNanos)
        case .traceMatches(_, let start, let end), .tagValues(_, _, let start, let end, _): bounds = (start, end)
        case .search(let search): bounds = (search.startNanos ?? 0, search.endNanos ?? .max)
        // A trace's range prunes blocks on each node, as on a lone node (whose head it does not prune).
        case .trace, .traces, .summaries, .tagNames, .serviceMap, .spanServices: return nil
        }
        return bounds.0 <= bounds.1 ? bounds.0...bounds.1 : nil
    }

    /// Whether a fan-out of the operation stops waiting for nodes by their placements' latest span
    /// start (a search with a limit), so a plan depends on those starts too.
    package var stopsEarlyByLatestStart: Bool {
        guard case .search(let search) = self else { return false }
        return search.limit > 0
    }
}
