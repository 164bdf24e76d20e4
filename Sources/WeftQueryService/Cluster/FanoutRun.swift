import WeftAggregates
import WeftQuery

/// One fan-out of one node request: the jobs (a node and the placements it reads), their attempts
/// (the first, retries after a failure, hedges after a slow answer) as tasks reporting into one
/// stream, and the merge. Checked, every request carries the fingerprint of its node's catalog,
/// and nodes whose catalog came from the cache but which answered no request are asked for their
/// catalog: the run ends only when each has confirmed its catalog, and throws ``StaleCatalog`` as
/// soon as one has not. Used by ``Coordinator/runChecked(_:org:holdings:figures:)``.
struct FanoutRun {
    private enum Event: Sendable {
        case answer(attempt: Int, Result<NodePartial, any Error>, Duration)
        case hedgeDue(job: Int)
        case probed(node: String, Result<PlacementCatalog, any Error>)
    }

    /// A node and the placements it was given; answered by its own attempt or by all of a hedge's.
    private struct Job {
        var node: String
        var placements: [String]
        var primary: Int?
        var primaryFailed = false
        var hedge: Set<Int> = []
        var hedgeStarted = false
        var hedgeFailed = false
        var hedgePartials: [NodePartial] = []
        var resolved = false
        /// When the first attempt was sent.
        var launched = ContinuousClock.now
        /// Its hedge delay passed before enough other jobs had answered to compare it with them.
        var hedgeWaiting = false
    }

    private struct Attempt {
        var job: Int
        var node: String
        var placements: [String]
        var isHedge: Bool
    }

    let coordinator: Coordinator
    let request: NodeQueryRequest
    let org: String
    let holdings: Coordinator.Holdings
    /// Whether requests carry catalog fingerprints and cached catalogs are confirmed.
    let checked: Bool
    private(set) var merged: NodePartial
    private(set) var missing: [MissingData] = []
    private(set) var figures = FanoutFigures()
    private(set) var mergeTime: Duration = .zero

    private let holders: [String: Set<String>]
    private var failed: Set<String>
    private var jobs: [Job] = []
    private var attempts: [Int: Attempt] = [:]
    private var tasks: [Int: Task<Void, Never>] = [:]
    private var timers: [Task<Void, Never>] = []
    private var nextAttempt = 0
    /// How long the jobs' first attempts took to answer, for those that answered.
    private var answerLatencies: [Duration] = []
    /// Per node, the fingerprint of its catalog for this request (checked runs only).
    private let fingerprints: [String: CatalogFingerprint]
    /// Nodes whose catalog is known to be current: they answered a checked request or a probe.
    private(set) var confirmed: Set<String> = []
    /// Catalog requests in flight, by node.
    private var probes: [String: Task<Void, Never>] = [:]
    private let events: AsyncStream<Event>
    private let sink: AsyncStream<Event>.Continuation

    /// - Parameter placements: which placements to read (all by default).
    init(
        coordinator: Coordinator, request: NodeQueryRequest, org: String, holdings: Coordinator.Holdings, checked: Bool = false,
        placements: (String) -> Bool = { _ in true }
    ) {
        self.coordinator = coordinator
        self.request = request
        self.org = org
        self.holdings = holdings
        self.checked = checked
        self.fingerprints = checked ? holdings.sources.mapValues { $0.fingerprint(for: request.operation, org: org) } : [:]
        self.merged = NodePartial.empty(request.operation)
        self.holders = holdings.holders(startedIn: request.operation.spanStartRange).filter { placements($0.key) }
        self.failed = holdings.unreachable
        (self.events, self.sink) = AsyncStream.makeStream(of: Event.self)
    }

    /// Cancels every attempt and timer still running.
    mutating func cancelAll() {
        for (attempt, task) in self.tasks {
            task.cancel()
            if let a = self.attempts[attempt] { self.coordinator.health?.metrics?.request(node: a.node, .cancelled) }
        }
        self.tasks = [:]
        self.attempts = [:]
        for t in self.timers { t.cancel() }
        self.timers = []
        for t in self.probes.values { t.cancel() }
        self.probes = [:]
        self.sink.finish()
    }

    /// Cached nodes whose catalog could not be confirmed because they failed: as unreachable as a
    /// node whose catalog did not come.
    var unconfirmed: Set<String> { self.checked ? self.holdings.cached.intersection(self.failed).subtracting(self.confirmed) : [] }

    mutating func run() async throws {
        self.plan(self.holders)
        // Nodes given nothing to read may still hold a placement the cached catalogs do not show.
        self.probeUnconfirmed()
        var iterator = self.events.makeAsyncIterator()
        while true {
            if !self.jobs.contains(where: { !$0.resolved }) {
                // Nodes whose requests were skipped, hedged or cancelled confirm their catalogs too.
                self.probeUnconfirmed()
                if self.probes.isEmpty { break }
            }
            // nil: the calling task was cancelled.
            guard let event = await iterator.next() else { throw CancellationError() }
            switch event {
            case .hedgeDue(let j): self.considerHedge(j)
            case .answer(let id, let result, let elapsed): try self.answered(id, result, elapsed)
            case .probed(let node, let result): try self.probed(node, result)
            }
            self.stopEarly()
        }
        self.missing.sort { ($0.placement ?? "") < ($1.placement ?? "") }
        // With as many nodes unreachable as there are replicas, a placement may lie on them alone.
        let unreachable = self.holdings.unreachable.union(self.unconfirmed).sorted()
        if !unreachable.isEmpty && unreachable.count >= min(self.coordinator.replicationFactor, self.coordinator.nodes.count) {
            self.missing.append(MissingData(placement: nil, nodes: unreachable))
        }
    }

    /// Gives each placement of `pending` to one holder that has not failed, and starts the jobs.
    private mutating func plan(_ pending: [String: Set<String>]) {
        let plan = QueryPlanner.assign(pending, local: self.coordinator.local, excluding: self.failed, avoid: self.holdings.avoid)
        for placement in plan.uncovered {
            self.missing.append(MissingData(placement: placement, nodes: pending[placement, default: []].sorted()))
        }
        // Read from a holder that may lack spans (the holders known complete are unreachable, or
        // none is): the answer may miss them, so it says so rather than undercount silently.
        for (placement, complete) in plan.lagging.sorted(by: { $0.key < $1.key }) {
            self.missing.append(MissingData(placement: placement, nodes: complete.isEmpty ? pending[placement, default: []].sorted() : complete))
        }
        for (node, placements) in plan.assignments.sorted(by: { $0.key < $1.key }) {
            let j = self.jobs.count
            self.jobs.append(Job(node: node, placements: placements))
            self.jobs[j].primary = self.launch(job: j, node: node, placements: placements, isHedge: false)
            if let delay = self.coordinator.health?.hedgeDelay(node) { self.scheduleHedge(j, after: delay) }
        }
    }

    private mutating func scheduleHedge(_ j: Int, after delay: Duration) {
        let sink = self.sink
        self.timers.append(Task {
            try? await Task.sleep(for: delay)
            if !Task.isCancelled { sink.yield(.hedgeDue(job: j)) }
        })
    }

    /// Job `j` has run past its node's hedge delay: hedged as ``HedgeRule`` says, next to the
    /// answer times of the other jobs of this fan-out.
    private mutating func considerHedge(_ j: Int) {
        let job = self.jobs[j]
        guard !job.resolved, !job.hedgeStarted, !job.primaryFailed else { return }
        self.jobs[j].hedgeWaiting = false
        let elapsed = ContinuousClock.now - job.launched
        switch HedgeRule.decide(elapsed: elapsed, peers: self.jobs.count - 1, answered: self.answerLatencies) {
        case .now: self.hedge(j)
        case .waitForPeers: self.jobs[j].hedgeWaiting = true
        case .at(let due): self.scheduleHedge(j, after: due - elapsed)
        }
    }

    /// Asks each cached node that has neither confirmed its catalog, failed, nor is being asked
    /// already, for its catalog (checked runs only).
    private mutating func probeUnconfirmed() {
        guard self.checked else { return }
        let busy = Set(self.attempts.values.map(\.node))
        for node in self.holdings.cached.sorted()
        where !self.confirmed.contains(node) && !self.failed.contains(node) && self.probes[node] == nil && !busy.contains(node) {
            let (client, sink) = (self.coordinator.client, self.sink)
            self.figures.probes += 1
            self.probes[node] = Task {
                let result: Result<PlacementCatalog, any Error>
                do {
                    result = .success(try await client.catalog(of: node))
                } catch {
                    result = .failure(error)
                }
                sink.yield(.probed(node: node, result))
            }
        }
    }

    private mutating func probed(_ node: String, _ result: Result<PlacementCatalog, any Error>) throws {
        guard self.probes.removeValue(forKey: node) != nil else { return }
        switch result {
        case .success(let catalog):
            guard catalog.fingerprint(for: self.request.operation, org: self.org) == self.fingerprints[node] else {
                throw StaleCatalog(node: node, catalog: catalog)
            }
            self.confirmed.insert(node)
        case .failure:
            self.failed.insert(node)
        }
    }

    private mutating func launch(job: Int, node: String, placements: [String], isHedge: Bool) -> Int {
        let id = self.nextAttempt
        self.nextAttempt += 1
        self.attempts[id] = Attempt(job: job, node: node, placements: placements, isHedge: isHedge)
        self.figures.requests += 1
        self.figures.nodesAsked.insert(node)
        let (client, request, org, sink) = (self.coordinator.client, self.request, self.org, self.sink)
        let planned = self.fingerprints[node]
        self.tasks[id] = Task {
            let started = ContinuousClock.now
            let result: Result<NodePartial, any Error>
            do {
                if let planned {
                    result = .success(try await client.query(request, org: org, placements: placements, on: node, planned: planned))
                } else {
                    result = .success(try await client.query(request, org: org, placements: placements, on: node))
                }
            } catch {
                result = .failure(error)
            }
            sink.yield(.answer(attempt: id, result, ContinuousClock.now - started))
        }
        return id
    }

    /// The job's node is slow: its placements go to other holders as well, when they cover them all.
    private mutating func hedge(_ j: Int) {
        let job = self.jobs[j]
        guard !job.resolved, !job.hedgeStarted, !job.primaryFailed else { return }
        var pending: [String: Set<String>] = [:]
        for p in job.placements { pending[p] = self.holders[p] }
        let plan = QueryPlanner.assign(pending, local: nil, excluding: self.failed.union([job.node]), avoid: self.holdings.avoid)
        // A hedge goes only to holders known complete: a lagging one could win with fewer spans.
        guard plan.uncovered.isEmpty, plan.lagging.isEmpty, !plan.assignments.isEmpty else { return }
        self.jobs[j].hedgeStarted = true
        self.figures.hedges += 1
        self.coordinator.health?.metrics?.hedges.increment()
        for (node, placements) in plan.assignments.sorted(by: { $0.key < $1.key }) {
            self.jobs[j].hedge.insert(self.launch(job: j, node: node, placements: placements, isHedge: true))
        }
    }

    private mutating func answered(_ id: Int, _ result: Result<NodePartial, any Error>, _ elapsed: Duration) throws {
        guard let attempt = self.attempts.removeValue(forKey: id) else { return }
        self.tasks[id] = nil
        let metrics = self.coordinator.health?.metrics
        let j = attempt.job
        if self.jobs[j].resolved {
            metrics?.request(node: attempt.node, .cancelled)
            return
        }
        switch result {
        case .success(let partial):
            self.coordinator.health?.record(attempt.node, elapsed)
            metrics?.request(node: attempt.node, .ok)
            self.figures.answered += 1
            self.figures.nodesAnswered.insert(attempt.node)
            if self.fingerprints[attempt.node] != nil { self.confirmed.insert(attempt.node) }
            if !attempt.isHedge {
                try self.merge([partial])
                self.resolve(j, covered: true)
                // Timed from when the job was planned, like the wait of the jobs it is compared with.
                self.answerLatencies.append(ContinuousClock.now - self.jobs[j].launched)
                for k in self.jobs.indices where self.jobs[k].hedgeWaiting { self.considerHedge(k) }
            } else {
                self.jobs[j].hedgePartials.append(partial)
                self.jobs[j].hedge.remove(id)
                if self.jobs[j].hedge.isEmpty {
                    try self.merge(self.jobs[j].hedgePartials)
                    self.resolve(j, covered: true)
                }
            }
        case .failure(let error as NodeRefusal):
            metrics?.request(node: attempt.node, .refused)
            throw error
        case .failure(let stale as StaleCatalog):
            metrics?.request(node: attempt.node, .ok)
            throw stale
        case .failure:
            metrics?.request(node: attempt.node, .error)
            self.failed.insert(attempt.node)
            if attempt.isHedge {
                self.jobs[j].hedgeFailed = true
                // The hedge cannot be whole any more: the rest of it is not needed.
                for other in self.jobs[j].hedge { self.cancel(other) }
                self.jobs[j].hedge = []
            } else {
                self.jobs[j].primaryFailed = true
            }
            let hedgeRunning = self.jobs[j].hedgeStarted && !self.jobs[j].hedgeFailed
            let primaryRunning = !self.jobs[j].primaryFailed
            guard !hedgeRunning && !primaryRunning else { return }
            // Neither side can answer: read the job's placements from holders that have not failed.
            self.resolve(j, covered: false)
            var pending: [String: Set<String>] = [:]
            for p in self.jobs[j].placements { pending[p] = self.holders[p] }
            self.plan(pending)
        }
    }

    private mutating func merge(_ partials: [NodePartial]) throws {
        let started = ContinuousClock.now
        for p in partials { try self.merged.merge(p) }
        let took = ContinuousClock.now - started
        self.mergeTime += took
        self.figures.mergeNanos += UInt64(took.components.seconds) * 1_000_000_000 + UInt64(took.components.attoseconds / 1_000_000_000)
    }

    /// Marks job `j` done and cancels whatever of it still runs.
    private mutating func resolve(_ j: Int, covered: Bool) {
        self.jobs[j].resolved = true
        if covered { self.figures.placementsCovered += self.jobs[j].placements.count }
        if let primary = self.jobs[j].primary { self.cancel(primary) }
        for h in self.jobs[j].hedge { self.cancel(h) }
    }

    private mutating func cancel(_ attempt: Int) {
        guard let task = self.tasks.removeValue(forKey: attempt) else { return }
        task.cancel()
        if let a = self.attempts.removeValue(forKey: attempt) { self.coordinator.health?.metrics?.request(node: a.node, .cancelled) }
    }

    /// A search with `limit` traces whose cut-off (the limit-th latest match) is newer than every
    /// span a node's placements hold needs nothing more from that node.
    private mutating func stopEarly() {
        guard case .search(let search) = self.request.operation, search.limit > 0, case .traceMatches(let matches) = self.merged,
            matches.traces.count >= search.limit
        else { return }
        let open = self.jobs.indices.filter { !self.jobs[$0].resolved }
        guard !open.isEmpty, let cutoff = matches.latest(search.limit).last?.latestStart else { return }
        for j in open {
            let job = self.jobs[j]
            let entries = self.holdings.catalogs[job.node] ?? []
            let newest = entries.filter { job.placements.contains($0.placement) }.map(\.maxStart).max() ?? .max
            guard newest < cutoff else { continue }
            self.figures.placementsSkipped += job.placements.count
            self.resolve(j, covered: false)
        }
    }
}

/// When a node request that has run past its node's hedge delay is hedged: when its node is also
/// slow next to the other requests of the same fan-out (at least half of them answered, and it has
/// run twice their median answer time), or when there is no other request to compare it with. A
/// query that is slow on every node is not hedged: a second copy of its work would only slow
/// every node further.
package enum HedgeRule {
    package enum Decision: Equatable {
        case now
        /// Not before this long after the request was sent.
        case at(Duration)
        /// Decide again when another request answers.
        case waitForPeers
    }

    /// - Parameters:
    ///   - elapsed: how long the request has run.
    ///   - peers: the other requests of the fan-out.
    ///   - answered: how long those that answered took.
    package static func decide(elapsed: Duration, peers: Int, answered: [Duration]) -> Decision {
        guard peers > 0 else { return .now }
        guard answered.count * 2 >= peers else { return .waitForPeers }
        let due = answered.sorted()[answered.count / 2] * 2
        return elapsed >= due ? .now : .at(due)
    }
}
