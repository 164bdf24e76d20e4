import Dispatch
import Synchronization
import Testing
import WeftAggregates
import WeftModel
import WeftQuery
import WeftQueryService

/// Storage nodes without sockets for the fan-out's fault handling: each node holds placements with
/// a span start range, answers at once, after a delay, or not until cancelled; every placement read
/// gives one matching trace (named after the placement, latest start = the placement's newest span),
/// so a double read shows as `matched == 2`.
final class ScriptedNodes: StorageNodeClient {
    enum Behaviour: Sendable {
        case prompt
        /// Answers only when cancelled, then throws.
        case hangs
        /// Answers after the delay, even when cancelled meanwhile (a late answer).
        case late(Duration)
        case fails
        /// Answers 20 ms after it is asked, once every gated node has been asked: all at once.
        case gated
    }

    /// Node → placement → newest span start.
    let holdings: [String: [String: UInt64]]
    let behaviour: [String: Behaviour]
    let asked = Mutex<[(String, [String])]>([])
    let cancelled = Mutex<[String]>([])
    private let gate = Mutex<[CheckedContinuation<Void, Never>]>([])

    init(_ holdings: [String: [String: UInt64]], behaviour: [String: Behaviour] = [:]) {
        self.holdings = holdings
        self.behaviour = behaviour
    }

    struct Down: Error {}

    static func trace(_ placement: String) -> TraceID { TraceID(high: 9, low: QueryPlannerTests.hash(placement)) }

    func catalog(of node: String) async throws -> PlacementCatalog {
        PlacementCatalog(entries: self.holdings[node, default: [:]].sorted { $0.key < $1.key }.map {
            PlacementCatalog.Entry(org: "acme", placement: $0.key, minStart: 1, maxStart: $0.value)
        })
    }

    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial {
        self.asked.withLock { $0.append((node, placements)) }
        switch self.behaviour[node] ?? .prompt {
        case .prompt: break
        case .fails: throw Down()
        case .hangs:
            do {
                try await Task.sleep(for: .seconds(600))
            } catch {
                self.cancelled.withLock { $0.append(node) }
                throw error
            }
        case .late(let delay):
            try? await Task.sleep(for: delay)
        case .gated:
            try? await Task.sleep(for: .milliseconds(20))
            let gated = self.behaviour.values.filter { if case .gated = $0 { return true } else { return false } }.count
            await withCheckedContinuation { (waiting: CheckedContinuation<Void, Never>) in
                let released: [CheckedContinuation<Void, Never>] = self.gate.withLock { all in
                    all.append(waiting)
                    guard all.count == gated else { return [] }
                    defer { all = [] }
                    return all
                }
                for r in released { r.resume() }
            }
        }
        var partial = TraceMatchesPartial()
        for p in placements {
            partial.traces[Self.trace(p)] = .init(latestStart: self.holdings[node]![p]!, matched: 1)
            partial.spans += 1
        }
        return .traceMatches(partial)
    }
}

struct FanoutTests {
    static let all = NodeQueryRequest(.traceMatches(filter: .all, startNanos: 0, endNanos: .max))

    /// Health that hedges `nodes` after 1 ms (eight 1 ms answers recorded).
    static func eager(_ nodes: [String]) -> FanoutHealth {
        let health = FanoutHealth(floor: .milliseconds(1))
        for node in nodes { for _ in 0..<FanoutHealth.minimumSamples { health.record(node, .milliseconds(1)) } }
        return health
    }

    static func matches(_ partial: NodePartial) -> TraceMatchesPartial {
        guard case .traceMatches(let m) = partial else { Issue.record("not trace matches"); return TraceMatchesPartial() }
        return m
    }

    /// Polls `condition` until it holds or 10 s pass.
    static func eventually(_ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    @Test func aSlowNodeIsHedgedAndTheHedgeAnswers() async throws {
        // "b" reads what it holds (it is the local node) but never answers: "a" and "c" answer for it.
        let nodes = ScriptedNodes(["a": ["a+b": 10], "b": ["a+b": 10, "b+c": 10], "c": ["b+c": 10]], behaviour: ["b": .hangs])
        let coordinator = Coordinator(local: "b", nodes: ["a", "b", "c"], replicationFactor: 2, client: nodes, health: Self.eager(["b"]))
        let tally = FanoutTally()
        let answer = try await coordinator.run(Self.all, org: "acme", holdings: await coordinator.holdings(org: "acme"), figures: tally)
        let m = Self.matches(answer.partial)
        #expect(answer.missing.isEmpty)
        #expect(Set(m.traces.keys) == [ScriptedNodes.trace("a+b"), ScriptedNodes.trace("b+c")])
        #expect(m.traces.values.allSatisfy { $0.matched == 1 })
        #expect(tally.figures.hedges == 1)
        #expect(tally.figures.placementsCovered == 2)
        #expect(tally.figures.nodesAnswered == ["a", "c"])
        // The slow node's request is cancelled once the hedge answered.
        #expect(await Self.eventually { nodes.cancelled.withLock { $0 } == ["b"] })
    }

    @Test func aLateAnswerAfterTheHedgeWonIsNeverMergedToo() async throws {
        let nodes = ScriptedNodes(["a": ["a+b": 10], "b": ["a+b": 10]], behaviour: ["b": .late(.milliseconds(300))])
        let coordinator = Coordinator(local: "b", nodes: ["a", "b"], replicationFactor: 2, client: nodes, health: Self.eager(["b"]))
        let answer = try await coordinator.run(Self.all, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(Self.matches(answer.partial).traces[ScriptedNodes.trace("a+b")]?.matched == 1)
        #expect(Self.matches(answer.partial).spans == 1)
    }

    @Test func withoutRecentLatenciesNobodyIsHedged() async throws {
        let nodes = ScriptedNodes(["a": ["a+b": 10], "b": ["a+b": 10]], behaviour: ["b": .late(.milliseconds(20))])
        let coordinator = Coordinator(local: "b", nodes: ["a", "b"], replicationFactor: 2, client: nodes, health: FanoutHealth(floor: .milliseconds(1)))
        let tally = FanoutTally()
        _ = try await coordinator.run(Self.all, org: "acme", holdings: await coordinator.holdings(org: "acme"), figures: tally)
        #expect(tally.figures.hedges == 0)
        #expect(nodes.asked.withLock { $0.map(\.0) } == ["b"])
    }

    @Test func aFailedHedgeLeavesThePrimaryToAnswer() async throws {
        let nodes = ScriptedNodes(["a": ["a+b": 10], "b": ["a+b": 10]], behaviour: ["a": .fails, "b": .late(.milliseconds(50))])
        let coordinator = Coordinator(local: "b", nodes: ["a", "b"], replicationFactor: 2, client: nodes, health: Self.eager(["b"]))
        let answer = try await coordinator.run(Self.all, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(answer.missing.isEmpty)
        #expect(Self.matches(answer.partial).spans == 1)
    }

    @Test func aQuerySlowOnEveryNodeIsNotHedged() async throws {
        // Every node answers after the 1 ms hedge delay, all at once: the query is slow, no node is.
        let nodes = ScriptedNodes(
            ["a": ["a+b": 10, "c+a": 10], "b": ["a+b": 10, "b+c": 10], "c": ["b+c": 10, "c+a": 10]],
            behaviour: ["a": .gated, "b": .gated, "c": .gated]
        )
        let coordinator = Coordinator(local: nil, nodes: ["a", "b", "c"], replicationFactor: 2, client: nodes, health: Self.eager(["a", "b", "c"]))
        let tally = FanoutTally()
        let answer = try await coordinator.run(Self.all, org: "acme", holdings: await coordinator.holdings(org: "acme"), figures: tally)
        #expect(Self.matches(answer.partial).traces.count == 3)
        #expect(tally.figures.hedges == 0)
        // Each placement was asked for once.
        #expect(nodes.asked.withLock { $0.flatMap(\.1).count } == 3)
    }

    @Test func aNodeSlowNextToItsPeersIsHedged() async throws {
        // "c" never answers while "a" and "b" answer at once: "c"'s placements go to them as well.
        let nodes = ScriptedNodes(
            ["a": ["a+b": 10, "c+a": 10], "b": ["a+b": 10, "b+c": 10], "c": ["b+c": 10, "c+a": 10]], behaviour: ["c": .hangs]
        )
        let coordinator = Coordinator(local: "c", nodes: ["a", "b", "c"], replicationFactor: 2, client: nodes, health: Self.eager(["a", "b", "c"]))
        let tally = FanoutTally()
        let answer = try await coordinator.run(Self.all, org: "acme", holdings: await coordinator.holdings(org: "acme"), figures: tally)
        let m = Self.matches(answer.partial)
        #expect(answer.missing.isEmpty)
        #expect(m.traces.count == 3 && m.traces.values.allSatisfy { $0.matched == 1 })
        #expect(tally.figures.hedges == 1)
        #expect(await Self.eventually { nodes.cancelled.withLock { $0 } == ["c"] })
    }

    @Test func aHedgeWaitsForHalfThePeersAndTwiceTheirMedian() {
        let ms = { (n: Int) in Duration.milliseconds(n) }
        #expect(HedgeRule.decide(elapsed: ms(5), peers: 0, answered: []) == .now)
        #expect(HedgeRule.decide(elapsed: ms(500), peers: 4, answered: [ms(40)]) == .waitForPeers)
        #expect(HedgeRule.decide(elapsed: ms(50), peers: 4, answered: [ms(40), ms(10)]) == .at(ms(80)))
        #expect(HedgeRule.decide(elapsed: ms(80), peers: 4, answered: [ms(40), ms(10)]) == .now)
        #expect(HedgeRule.decide(elapsed: ms(50), peers: 3, answered: [ms(30), ms(20), ms(90)]) == .at(ms(60)))
        #expect(HedgeRule.decide(elapsed: ms(61), peers: 1, answered: [ms(30)]) == .now)
    }

    @Test func p95ComesFromRecentAnswersWithAFloor() {
        let health = FanoutHealth(floor: .milliseconds(10))
        #expect(health.hedgeDelay("n") == nil)
        for ms in 1...100 { health.record("n", .milliseconds(ms)) }
        // The last 64 answers are 37…100 ms: their p95 is the 61st of them, 97 ms.
        #expect(health.p95("n") == .milliseconds(97))
        for _ in 0..<64 { health.record("n", .milliseconds(1)) }
        #expect(health.hedgeDelay("n") == .milliseconds(10))
    }

    @Test func aSearchStopsWaitingForNodesThatCannotBeatItsCutOff() async throws {
        // "old" holds only spans started up to 5; the other two hold two traces newer than that.
        let nodes = ScriptedNodes(["a": ["a+b": 50], "b": ["a+b": 50, "b+c": 40], "c": ["b+c": 40], "old": ["old": 5]], behaviour: ["old": .hangs])
        let coordinator = Coordinator(local: nil, nodes: ["a", "b", "c", "old"], replicationFactor: 2, client: nodes)
        var search = SearchRequest()
        search.limit = 2
        let tally = FanoutTally()
        let answer = try await coordinator.run(NodeQueryRequest(.search(search)), org: "acme", holdings: await coordinator.holdings(org: "acme"), figures: tally)
        #expect(Self.matches(answer.partial).latest(2).map(\.traceID) == [ScriptedNodes.trace("a+b"), ScriptedNodes.trace("b+c")])
        #expect(tally.figures.placementsSkipped == 1)
        #expect(answer.missing.isEmpty)
        #expect(await Self.eventually { nodes.cancelled.withLock { $0 } == ["old"] })
        // With a larger limit the old placement can change the answer: it is waited for.
        search.limit = 3
        let stuck = Task { try await coordinator.run(NodeQueryRequest(.search(search)), org: "acme", holdings: await coordinator.holdings(org: "acme")) }
        #expect(await Self.eventually { nodes.asked.withLock { $0.filter { $0.0 == "old" }.count } == 2 })
        stuck.cancel()
        await #expect(throws: CancellationError.self) { try await stuck.value }
    }

    /// `Coordinator.wait` on a thread of its own, as a query worker calls it.
    static func waitOnThread<T: Sendable>(
        cancellation: QueryCancellation?, deadline: UInt64?, _ body: @escaping @Sendable () async throws -> T
    ) async -> Result<T, any Error> {
        await withCheckedContinuation { done in
            DispatchQueue.global().async {
                done.resume(returning: Result { try Coordinator.wait(cancellation: cancellation, deadline: deadline, timeoutSeconds: 3, body) })
            }
        }
    }

    @Test func aClientThatWentAwayCancelsTheNodeRequests() async throws {
        let nodes = ScriptedNodes(["a": ["a+b": 10], "b": ["a+b": 10]], behaviour: ["a": .hangs, "b": .hangs])
        let coordinator = Coordinator(local: nil, nodes: ["a", "b"], replicationFactor: 2, client: nodes)
        let holdings = await coordinator.holdings(org: "acme")
        let cancellation = QueryCancellation()
        let waiting = Task { await Self.waitOnThread(cancellation: cancellation, deadline: nil) { try await coordinator.run(Self.all, org: "acme", holdings: holdings) } }
        #expect(await Self.eventually { !nodes.asked.withLock { $0 }.isEmpty })
        cancellation.cancel()
        let result = await waiting.value
        #expect(throws: AggregationError.cancelled) { try result.get() }
        #expect(await Self.eventually { nodes.cancelled.withLock { $0 }.count == 1 })
    }

    @Test func thePerQueryDeadlineEndsTheFanOut() async throws {
        let nodes = ScriptedNodes(["a": ["a+b": 10], "b": ["a+b": 10]], behaviour: ["a": .hangs, "b": .hangs])
        let coordinator = Coordinator(local: nil, nodes: ["a", "b"], replicationFactor: 2, client: nodes)
        let holdings = await coordinator.holdings(org: "acme")
        let deadline = QueryContext.live.now() + 100_000_000
        let result = await Self.waitOnThread(cancellation: nil, deadline: deadline) { try await coordinator.run(Self.all, org: "acme", holdings: holdings) }
        #expect(throws: AggregationError.timeout(seconds: 3)) { try result.get() }
        #expect(await Self.eventually { nodes.cancelled.withLock { $0 }.count == 1 })
    }

    @Test func fanOutSlotsAreBounded() {
        let reference = CoordinatorReference(maxConcurrent: 2)
        #expect(reference.acquire())
        #expect(reference.acquire())
        #expect(!reference.acquire())
        reference.release()
        #expect(reference.acquire())
        #expect(reference.inFlight == 2)
    }
}
