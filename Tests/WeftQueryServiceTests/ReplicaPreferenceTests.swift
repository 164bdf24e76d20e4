import Synchronization
import Testing
import WeftAggregates
import WeftModel
import WeftQuery
import WeftQueryService

/// Holders that lack spans (not in sync, or with hints pending for them) are read only when no
/// other holder answers.
struct ReplicaPreferenceTests {
    /// Random holders and random holders to avoid (seeded): every placement is assigned once, to a
    /// holder not avoided whenever it has one outside `excluding`, and to an avoided one otherwise.
    @Test(arguments: 0..<200 as Range<UInt64>)
    func plannerPrefersHoldersInSync(seed: UInt64) {
        let (holders, nodes) = QueryPlannerTests.randomHolders(seed: seed)
        var random = SplitMix64(seed: seed ^ 0xA5A5)
        var avoid: [String: Set<String>] = [:]
        for (p, hs) in holders { avoid[p] = hs.filter { _ in Int.random(in: 0..<3, using: &random) == 0 } }
        let excluding = Set(nodes.filter { _ in Int.random(in: 0..<5, using: &random) == 0 })
        let local = nodes[Int(random.next() % UInt64(nodes.count))]
        let plan = QueryPlanner.assign(holders, local: local, excluding: excluding, avoid: avoid)
        var assigned: [String: String] = [:]
        for (node, placements) in plan.assignments {
            for p in placements {
                #expect(assigned[p] == nil, "\(p) assigned twice")
                assigned[p] = node
            }
        }
        for (p, hs) in holders {
            let usable = hs.subtracting(excluding)
            guard !usable.isEmpty else {
                #expect(plan.uncovered.contains(p))
                continue
            }
            let chosen = try! #require(assigned[p])
            #expect(usable.contains(chosen))
            let preferred = usable.subtracting(avoid[p] ?? [])
            if !preferred.isEmpty { #expect(preferred.contains(chosen), "\(p): \(chosen) lacks spans while \(preferred) does not") }
            // A placement read from a holder that may lack spans is reported, with the holders that do not.
            #expect((plan.lagging[p] != nil) == preferred.isEmpty, "\(p)")
            if let complete = plan.lagging[p] { #expect(complete == hs.subtracting(avoid[p] ?? []).sorted()) }
            if preferred.contains(local) { #expect(chosen == local) }
        }
    }

    @Test func coordinatorReadsALaggingHolderOnlyWhenNoOtherAnswers() async throws {
        // "a" is not in sync for a+b+c; "b" has hints pending on "c" for it; only "c" is preferred.
        let lagging = LaggingNodes(["a": ["a+b+c"], "b": ["a+b+c"], "c": ["a+b+c"]], notInSync: ["a": ["a+b+c"]], hintsFor: ["b": ["a+b+c"]])
        let coordinator = Coordinator(local: "a", nodes: ["a", "b", "c"], replicationFactor: 3, client: lagging)
        let holdings = await coordinator.holdings(org: "acme")
        #expect(holdings.avoid == ["a+b+c": ["a", "b"]])
        let answer = try await coordinator.run(CoordinatorTests.all, org: "acme", holdings: holdings)
        #expect(answer.missing.isEmpty)
        #expect(lagging.answered.withLock { $0 } == ["c"])
        // With "c" down, a lagging holder answers rather than nothing, and the answer says it may
        // miss spans only "c" has (partial, never a silent undercount).
        let fallback = LaggingNodes(["a": ["a+b+c"], "b": ["a+b+c"], "c": ["a+b+c"]], notInSync: ["a": ["a+b+c"]], hintsFor: ["b": ["a+b+c"]], down: ["c"])
        let second = Coordinator(local: "a", nodes: ["a", "b", "c"], replicationFactor: 3, client: fallback)
        let again = try await second.run(CoordinatorTests.all, org: "acme", holdings: await second.holdings(org: "acme"))
        #expect(again.missing == [MissingData(placement: "a+b+c", nodes: ["c"])])
        #expect(CoordinatorTests.matches(again).spans == 1)
        #expect(fallback.answered.withLock { $0 }.last == "a")
    }

    @Test func catalogV2RoundTrips_andV1StillDecodes() throws {
        let catalog = PlacementCatalog(
            entries: [
                .init(org: "acme", placement: "n1+n2+n3", minStart: 10, maxStart: 20, inSync: false),
                .init(org: "globex", placement: "n1", minStart: 5, maxStart: 5),
            ],
            pendingHints: [.init(target: "n3", org: "acme", placement: "n1+n2+n3", hints: 4)]
        )
        let bytes = catalog.encoded()
        #expect(bytes.first == 2)
        #expect(try PlacementCatalog.decode(bytes) == catalog)
        for cut in 0..<bytes.count { #expect(throws: BlockFormatError.self) { try PlacementCatalog.decode(Array(bytes.prefix(cut))) } }
        #expect(throws: BlockFormatError.self) { try PlacementCatalog.decode(bytes + [0]) }
        // Version 1: [1][count] org, placement, min, max — read as in sync, no hints.
        var v1: [UInt8] = [1, 1, 4] + Array("acme".utf8) + [2] + Array("n1".utf8)
        for v in [7, 9] as [UInt64] { for i in 0..<8 { v1.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        #expect(try PlacementCatalog.decode(v1) == PlacementCatalog(entries: [.init(org: "acme", placement: "n1", minStart: 7, maxStart: 9)]))
        // An in-sync byte other than 0 or 1 is refused.
        var flag = PlacementCatalog(entries: [.init(org: "o", placement: "p", minStart: 1, maxStart: 1)]).encoded()
        flag[flag.count - 2] = 7
        #expect(throws: BlockFormatError.self) { try PlacementCatalog.decode(flag) }
    }
}

/// Storage nodes whose catalogs mark placements not in sync or with hints pending for another node.
final class LaggingNodes: StorageNodeClient {
    let holdings: [String: Set<String>]
    let notInSync: [String: Set<String>]
    /// Target → placements node "c" holds hints for, for that target.
    let hintsFor: [String: Set<String>]
    let down: Set<String>
    let answered = Mutex<[String]>([])

    init(_ holdings: [String: Set<String>], notInSync: [String: Set<String>], hintsFor: [String: Set<String>], down: Set<String> = []) {
        self.holdings = holdings
        self.notInSync = notInSync
        self.hintsFor = hintsFor
        self.down = down
    }

    func catalog(of node: String) async throws -> PlacementCatalog {
        let entries = self.holdings[node, default: []].sorted().map {
            PlacementCatalog.Entry(org: "acme", placement: $0, minStart: 1, maxStart: 100, inSync: !(self.notInSync[node]?.contains($0) ?? false))
        }
        // Node "c" holds the hints, for the targets named in `hintsFor`.
        let pending = node != "c" ? [] : self.hintsFor.keys.sorted().flatMap { target in
            self.hintsFor[target]!.sorted().map { PlacementCatalog.PendingHints(target: target, org: "acme", placement: $0, hints: 2) }
        }
        return PlacementCatalog(entries: entries, pendingHints: pending)
    }

    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial {
        self.answered.withLock { $0.append(node) }
        guard !self.down.contains(node) else { throw FakeStorageNodes.Down() }
        var partial = TraceMatchesPartial()
        for p in placements {
            partial.traces[FakeStorageNodes.trace(p)] = .init(latestStart: 1, matched: 1)
            partial.spans += 1
        }
        return .traceMatches(partial)
    }
}
