import Dispatch
import Synchronization
import WeftQuery

/// The reads a coordinator sends to storage nodes (over the internal port in a running cluster).
package protocol StorageNodeClient: Sendable {
    /// The placements `node` holds.
    func catalog(of node: String) async throws -> PlacementCatalog
    /// `request` over `placements` of `org` on `node`.
    /// - Throws: ``NodeRefusal`` when the node refused the query itself (bad query, limit hit); any
    ///   other error means the node did not answer.
    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial
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

    package init(local: String?, nodes: [String], replicationFactor: Int, client: any StorageNodeClient, health: FanoutHealth? = nil) {
        self.local = local
        self.nodes = nodes.sorted()
        self.replicationFactor = max(1, replicationFactor)
        self.client = client
        self.health = health
    }

    /// Asks every storage node for its catalog.
    package func holdings(org: String) async -> Holdings {
        var holdings = Holdings(catalogs: [:], unreachable: [])
        await withTaskGroup(of: (String, PlacementCatalog?).self) { group in
            for node in self.nodes {
                group.addTask { (node, try? await self.client.catalog(of: node)) }
            }
            for await (node, catalog) in group {
                guard let catalog else {
                    holdings.unreachable.insert(node)
                    continue
                }
                holdings.catalogs[node] = catalog.entries.filter { $0.org == org }
                for e in catalog.entries where e.org == org && !e.inSync { holdings.avoid[e.placement, default: []].insert(node) }
                for h in catalog.pendingHints where h.org == org && h.hints > 0 { holdings.avoid[h.placement, default: []].insert(h.target) }
            }
        }
        return holdings
    }

    /// Runs `request` over every placement of `org` with spans in the request's time range once, and
    /// merges the partials. A node that fails or times out has its placements read from other
    /// holders; one that has not answered within its recent p95 latency (``FanoutHealth``) is
    /// hedged: its placements are sent to other holders too and the first complete answer is taken
    /// (never both). A search stops waiting for nodes whose placements hold no span newer than the
    /// cut-off of the traces it already has. Cancelling the calling task cancels every node request.
    /// - Parameter figures: where to count nodes asked and answered and placements read.
    /// - Returns: the merged partial and what could not be read.
    /// - Throws: ``NodeRefusal`` when a node refused the query; ``AggregationError`` when partials do
    ///   not merge; `CancellationError` when cancelled.
    package func run(
        _ request: NodeQueryRequest, org: String, holdings: Holdings, figures: FanoutTally? = nil
    ) async throws -> (partial: NodePartial, missing: [MissingData]) {
        var fanout = FanoutRun(coordinator: self, request: request, org: org, holdings: holdings)
        defer { fanout.cancelAll() }
        try await fanout.run()
        figures?.add(fanout.figures)
        if !fanout.missing.isEmpty { self.health?.metrics?.partialAnswers.increment() }
        self.health?.metrics?.mergeDuration.record(fanout.mergeTime)
        return (fanout.merged, fanout.missing)
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
        case .trace, .traces, .summaries, .tagNames, .serviceMap: return nil
        }
        return bounds.0 <= bounds.1 ? bounds.0...bounds.1 : nil
    }
}
