import Synchronization
import Testing
import WeftAggregates
import WeftModel
import WeftQuery
import WeftQueryService

/// A cluster without sockets: which node holds which placements (spans started at 1…100, "old" at
/// 1…2), which nodes fail, and a partial per placement read (one matching trace each) so that a
/// double read shows as `matched == 2`.
final class FakeStorageNodes: StorageNodeClient {
    let holdings: [String: Set<String>]
    let down: Set<String>
    let catalogDown: Set<String>
    let refusing: Bool
    /// (node, placements) of every query answered.
    let answered = Mutex<[(String, [String])]>([])

    init(_ holdings: [String: Set<String>], down: Set<String> = [], catalogDown: Set<String> = [], refusing: Bool = false) {
        self.holdings = holdings
        self.down = down
        self.catalogDown = catalogDown
        self.refusing = refusing
    }

    struct Down: Error {}

    static func trace(_ placement: String) -> TraceID { TraceID(high: 7, low: QueryPlannerTests.hash(placement)) }

    func catalog(of node: String) async throws -> PlacementCatalog {
        guard !self.catalogDown.contains(node) else { throw Down() }
        let entries = self.holdings[node, default: []].sorted().map { PlacementCatalog.Entry(org: "acme", placement: $0, minStart: 1, maxStart: $0 == "old" ? 2 : 100) }
        return PlacementCatalog(entries: entries + [PlacementCatalog.Entry(org: "other", placement: "elsewhere", minStart: 1, maxStart: 2)])
    }

    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial {
        guard !self.down.contains(node) else { throw Down() }
        if self.refusing { throw NodeRefusal(status: 422, message: "too many series") }
        #expect(placements.allSatisfy { self.holdings[node, default: []].contains($0) })
        self.answered.withLock { $0.append((node, placements)) }
        var partial = TraceMatchesPartial()
        for p in placements {
            partial.traces[Self.trace(p)] = .init(latestStart: 1, matched: 1)
            partial.spans += 1
        }
        return .traceMatches(partial)
    }
}

struct QueryPlannerTests {
    static func hash(_ text: String) -> UInt64 { text.utf8.reduce(1469598103934665603) { ($0 ^ UInt64($1)) &* 1099511628211 } }

    /// Random clusters: nodes n0…, each placement on 1–3 of them.
    static func randomHolders(seed: UInt64) -> (holders: [String: Set<String>], nodes: [String]) {
        var random = SplitMix64(seed: seed)
        let nodes = (0..<Int.random(in: 2...7, using: &random)).map { "n\($0)" }
        var holders: [String: Set<String>] = [:]
        for i in 0..<Int.random(in: 1...40, using: &random) {
            let replicas = Set(nodes.shuffled(using: &random).prefix(Int.random(in: 1...min(3, nodes.count), using: &random)))
            holders["p\(i)-" + replicas.sorted().joined(separator: "+")] = replicas
        }
        return (holders, nodes)
    }

    @Test(arguments: 0..<200 as Range<UInt64>)
    func everyPlacementGoesToExactlyOneHolder(seed: UInt64) {
        let (holders, nodes) = Self.randomHolders(seed: seed)
        var random = SplitMix64(seed: seed ^ 0xabcdef)
        let local = Bool.random(using: &random) ? nodes.randomElement(using: &random) : nil
        let excluded = Set(nodes.filter { _ in Int.random(in: 0..<4, using: &random) == 0 })
        let plan = QueryPlanner.assign(holders, local: local, excluding: excluded)
        var seen: [String: Int] = [:]
        for (node, placements) in plan.assignments {
            #expect(!excluded.contains(node))
            for p in placements {
                seen[p, default: 0] += 1
                #expect(holders[p]!.contains(node))
                if let local, holders[p]!.contains(local), !excluded.contains(local) { #expect(node == local) }
            }
        }
        #expect(seen.values.allSatisfy { $0 == 1 })
        for p in plan.uncovered {
            #expect(seen[p] == nil)
            #expect(holders[p]!.isSubset(of: excluded))
        }
        #expect(seen.count + plan.uncovered.count == holders.count)
        #expect(QueryPlanner.assign(holders, local: local, excluding: excluded) == plan)
    }

    @Test func placementsHeldEverywhereAreSpreadEvenly() {
        let nodes: Set<String> = ["a", "b", "c"]
        let holders = Dictionary(uniqueKeysWithValues: (0..<30).map { ("p\($0)", nodes) })
        let loads = QueryPlanner.assign(holders, local: nil).assignments.values.map(\.count)
        #expect(loads.count == 3)
        #expect(loads.max()! - loads.min()! <= 1)
    }
}

struct CoordinatorTests {
    static let all = NodeQueryRequest(.traceMatches(filter: .all, startNanos: 0, endNanos: .max))

    static func matches(_ answer: (partial: NodePartial, missing: [MissingData])) -> TraceMatchesPartial {
        guard case .traceMatches(let m) = answer.partial else { Issue.record("not trace matches"); return TraceMatchesPartial() }
        return m
    }

    @Test(arguments: 0..<50 as Range<UInt64>)
    func readsEachPlacementOnceDespiteFailures(seed: UInt64) async throws {
        let (holders, nodes) = QueryPlannerTests.randomHolders(seed: seed)
        var byNode: [String: Set<String>] = [:]
        for (p, hs) in holders { for n in hs { byNode[n, default: []].insert(p) } }
        var random = SplitMix64(seed: seed)
        let down = Set(nodes.filter { _ in Int.random(in: 0..<3, using: &random) == 0 })
        let fake = FakeStorageNodes(byNode, down: down)
        let coordinator = Coordinator(local: nodes[0], nodes: nodes, replicationFactor: 3, client: fake)
        let holdings = await coordinator.holdings(org: "acme")
        #expect(holdings.holders(startedIn: nil) == holders)
        let answer = try await coordinator.run(Self.all, org: "acme", holdings: holdings)
        let m = Self.matches(answer)
        // Exactly once: no placement counted twice, every one with a live holder counted.
        #expect(m.traces.values.allSatisfy { $0.matched == 1 })
        let readable = holders.filter { !$0.value.isSubset(of: down) }.keys
        #expect(Set(m.traces.keys) == Set(readable.map(FakeStorageNodes.trace)))
        #expect(m.spans == readable.count)
        let lost = holders.filter { $0.value.isSubset(of: down) }
        #expect(answer.missing == lost.keys.sorted().map { MissingData(placement: $0, nodes: lost[$0]!.sorted()) })
    }

    @Test func catalogsMissingFromAsManyNodesAsReplicasFlagThePartial() async throws {
        let byNode: [String: Set<String>] = ["a": ["a+b"], "b": ["a+b", "b+c"], "c": ["b+c"]]
        let one = Coordinator(local: nil, nodes: ["a", "b", "c"], replicationFactor: 2, client: FakeStorageNodes(byNode, catalogDown: ["c"]))
        let single = try await one.run(Self.all, org: "acme", holdings: await one.holdings(org: "acme"))
        #expect(single.missing.isEmpty)
        #expect(Self.matches(single).spans == 2)
        let two = Coordinator(local: nil, nodes: ["a", "b", "c"], replicationFactor: 2, client: FakeStorageNodes(byNode, catalogDown: ["b", "c"]))
        let double = try await two.run(Self.all, org: "acme", holdings: await two.holdings(org: "acme"))
        #expect(double.missing == [MissingData(placement: nil, nodes: ["b", "c"])])
        #expect(Self.matches(double).spans == 1)
    }

    @Test func placementsWithoutSpansInTheRangeAreNeitherReadNorMissed() async throws {
        // Placement "old" (spans started at 1…2) is on node "b" alone, which is down.
        let fake = FakeStorageNodes(["a": ["a+c"], "b": ["old"], "c": ["a+c"]], down: ["b"])
        let coordinator = Coordinator(local: nil, nodes: ["a", "b", "c"], replicationFactor: 2, client: fake)
        let holdings = await coordinator.holdings(org: "acme")
        let recent = NodeQueryRequest(.traceMatches(filter: .all, startNanos: 3, endNanos: 10))
        let answer = try await coordinator.run(recent, org: "acme", holdings: holdings)
        #expect(answer.missing.isEmpty)
        #expect(Self.matches(answer).spans == 1)
        let everything = try await coordinator.run(Self.all, org: "acme", holdings: holdings)
        #expect(everything.missing == [MissingData(placement: "old", nodes: ["b"])])
    }

    @Test func aRefusalIsTheAnswerNotAFailover() async throws {
        let fake = FakeStorageNodes(["a": ["a+b"], "b": ["a+b"]], refusing: true)
        let coordinator = Coordinator(local: "a", nodes: ["a", "b"], replicationFactor: 2, client: fake)
        let holdings = await coordinator.holdings(org: "acme")
        await #expect(throws: NodeRefusal(status: 422, message: "too many series")) {
            try await coordinator.run(Self.all, org: "acme", holdings: holdings)
        }
    }

    @Test func thisNodeReadsWhatItHolds() async throws {
        let fake = FakeStorageNodes(["a": ["a+b", "a+c"], "b": ["a+b", "b+c"], "c": ["a+c", "b+c"]])
        let coordinator = Coordinator(local: "a", nodes: ["a", "b", "c"], replicationFactor: 2, client: fake)
        _ = try await coordinator.run(Self.all, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        let answered = fake.answered.withLock { $0 }
        #expect(answered.first { $0.0 == "a" }?.1 == ["a+b", "a+c"])
        #expect(answered.map(\.1.count).reduce(0, +) == 3)
    }
}

struct PlacementCatalogTests {
    @Test func roundTripsAndRejectsDamage() throws {
        let catalog = PlacementCatalog(entries: [
            .init(org: "acme", placement: "n1+n2+n3", minStart: 10, maxStart: 20), .init(org: "globex", placement: "n1", minStart: 5, maxStart: 5),
        ])
        let bytes = catalog.encoded()
        #expect(try PlacementCatalog.decode(bytes) == catalog)
        #expect(throws: BlockFormatError.self) { try PlacementCatalog.decode(Array(bytes.dropLast())) }
        #expect(throws: BlockFormatError.self) { try PlacementCatalog.decode(bytes + [0]) }
    }
}
