import Synchronization
import Testing
import WeftAggregates
import WeftModel
import WeftQuery
import WeftQueryService

/// Storage nodes without sockets whose holdings change between queries, and which check a request's
/// catalog fingerprint as a real node does: a stale plan is answered with the node's catalog.
/// Every placement read gives one matching trace named after it, so a double read shows as
/// `matched == 2` and a placement left out as a missing trace.
final class ChangingNodes: StorageNodeClient {
    /// Node → placement → newest span start (spans start at 1…newest).
    let holdings: Mutex<[String: [String: UInt64]]>
    let down = Mutex<Set<String>>([])
    let catalogsAsked = Mutex(0)
    let queriesAnswered = Mutex(0)

    init(_ holdings: [String: [String: UInt64]]) { self.holdings = Mutex(holdings) }

    struct Down: Error {}

    func catalog(of node: String) async throws -> PlacementCatalog {
        guard !self.down.withLock({ $0.contains(node) }) else { throw Down() }
        self.catalogsAsked.withLock { $0 += 1 }
        return self.current(node)
    }

    func current(_ node: String) -> PlacementCatalog {
        let held = self.holdings.withLock { $0[node, default: [:]] }
        return PlacementCatalog(entries: held.sorted { $0.key < $1.key }.map { PlacementCatalog.Entry(org: "acme", placement: $0.key, minStart: 1, maxStart: $0.value) })
    }

    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial {
        guard !self.down.withLock({ $0.contains(node) }) else { throw Down() }
        self.queriesAnswered.withLock { $0 += 1 }
        let held = self.holdings.withLock { $0[node, default: [:]] }
        var partial = TraceMatchesPartial()
        for p in placements {
            guard let newest = held[p] else { continue }
            partial.traces[Self.trace(p)] = .init(latestStart: newest, matched: 1)
            partial.spans += 1
        }
        return .traceMatches(partial)
    }

    func query(
        _ request: NodeQueryRequest, org: String, placements: [String], on node: String, planned: CatalogFingerprint
    ) async throws -> NodePartial {
        guard !self.down.withLock({ $0.contains(node) }) else { throw Down() }
        let mine = self.current(node)
        guard mine.fingerprint(for: request.operation, org: org) == planned else { throw StaleCatalog(node: node, catalog: mine) }
        return try await self.query(request, org: org, placements: placements, on: node)
    }

    static func trace(_ placement: String) -> TraceID { TraceID(high: 11, low: QueryPlannerTests.hash(placement)) }
}

struct CatalogCacheTests {
    static let all = NodeQueryRequest(.traceMatches(filter: .all, startNanos: 0, endNanos: .max))

    static func cluster() -> ChangingNodes {
        // "a", "b" and "c" each hold a placement no other node holds, so each is given a request; "d" none.
        ChangingNodes(["a": ["pa": 10, "ab": 10], "b": ["pb": 10, "ab": 10], "c": ["pc": 10], "d": [:]])
    }

    /// One query as ``QueryReads`` makes it: holdings (cached where known), then the checked run.
    static func query(_ coordinator: Coordinator, _ request: NodeQueryRequest = all) async throws -> (m: TraceMatchesPartial, missing: [MissingData], figures: FanoutFigures) {
        let tally = FanoutTally()
        let holdings = await coordinator.holdings(org: "acme")
        let answer = try await coordinator.runChecked(request, org: "acme", holdings: holdings, figures: tally)
        guard case .traceMatches(let m) = answer.partial else { Issue.record("not trace matches"); return (TraceMatchesPartial(), [], tally.figures) }
        return (m, answer.missing, tally.figures)
    }

    static func expectEachOnce(_ m: TraceMatchesPartial, _ placements: [String]) {
        #expect(Set(m.traces.keys) == Set(placements.map(ChangingNodes.trace)))
        #expect(m.traces.values.allSatisfy { $0.matched == 1 })
    }

    @Test func aSecondQueryPlansFromTheCacheWithoutAskingForCatalogs() async throws {
        let nodes = Self.cluster()
        let coordinator = Coordinator(local: nil, nodes: ["a", "b", "c", "d"], replicationFactor: 2, client: nodes, catalogs: CatalogCache())
        let first = try await Self.query(coordinator)
        Self.expectEachOnce(first.m, ["pa", "pb", "pc", "ab"])
        #expect(nodes.catalogsAsked.withLock { $0 } == 4)
        let second = try await Self.query(coordinator)
        Self.expectEachOnce(second.m, ["pa", "pb", "pc", "ab"])
        // Only "d", which reads nothing, is asked for its catalog (alongside the node requests).
        #expect(nodes.catalogsAsked.withLock { $0 } == 5)
        #expect(second.figures.probes == 1 && second.figures.replans == 0)
    }

    @Test func aPlacementTheCacheDoesNotKnowIsFoundAndReadOnce() async throws {
        let nodes = Self.cluster()
        let coordinator = Coordinator(local: nil, nodes: ["a", "b", "c", "d"], replicationFactor: 2, client: nodes, catalogs: CatalogCache())
        _ = try await Self.query(coordinator)
        // A new placement on "a" and "b" after the catalogs were cached.
        nodes.holdings.withLock { h in
            h["a"]!["new"] = 10
            h["b"]!["new"] = 10
        }
        let answer = try await Self.query(coordinator)
        Self.expectEachOnce(answer.m, ["pa", "pb", "pc", "ab", "new"])
        #expect(answer.missing.isEmpty)
        #expect(answer.figures.replans == 1)
    }

    @Test func aNodeWithNothingToReadConfirmsItsCatalog() async throws {
        let nodes = Self.cluster()
        let coordinator = Coordinator(local: nil, nodes: ["a", "b", "c", "d"], replicationFactor: 2, client: nodes, catalogs: CatalogCache())
        _ = try await Self.query(coordinator)
        // "d" was given nothing to read; now it alone holds a placement.
        nodes.holdings.withLock { $0["d"]!["only-d"] = 10 }
        let answer = try await Self.query(coordinator)
        Self.expectEachOnce(answer.m, ["pa", "pb", "pc", "ab", "only-d"])
        #expect(answer.figures.replans == 1)
    }

    @Test func spansReachingIntoTheRangeReplanOnlyWhenTheyChangeWhatIsRead() async throws {
        let nodes = ChangingNodes(["a": ["a+b": 10, "old": 2], "b": ["a+b": 10, "old": 2]])
        let coordinator = Coordinator(local: nil, nodes: ["a", "b"], replicationFactor: 2, client: nodes, catalogs: CatalogCache())
        let recent = NodeQueryRequest(.traceMatches(filter: .all, startNanos: 5, endNanos: 20))
        Self.expectEachOnce(try await Self.query(coordinator, recent).m, ["a+b"])
        // Newer spans in a placement already in the range: the same plan, no replan.
        nodes.holdings.withLock { h in
            h["a"]!["a+b"] = 12
            h["b"]!["a+b"] = 12
        }
        let same = try await Self.query(coordinator, recent)
        Self.expectEachOnce(same.m, ["a+b"])
        #expect(same.figures.replans == 0)
        // A placement that had no span in the range now has one: found.
        nodes.holdings.withLock { h in
            h["a"]!["old"] = 6
            h["b"]!["old"] = 6
        }
        let grown = try await Self.query(coordinator, recent)
        Self.expectEachOnce(grown.m, ["a+b", "old"])
        #expect(grown.figures.replans == 1)
    }

    @Test func aCachedNodeThatFailsCountsAsUnreachableAndIsAskedAgainNextTime() async throws {
        let nodes = Self.cluster()
        let cache = CatalogCache()
        let coordinator = Coordinator(local: nil, nodes: ["a", "b", "c", "d"], replicationFactor: 2, client: nodes, catalogs: cache)
        _ = try await Self.query(coordinator)
        nodes.down.withLock { $0 = ["a", "b"] }
        let answer = try await Self.query(coordinator)
        // Every holder of "pa", "pb" and "ab" is down; as many cached nodes failed as there are
        // replicas, so whatever only they hold may be missing too.
        #expect(answer.missing == [
            MissingData(placement: "ab", nodes: ["a", "b"]), MissingData(placement: "pa", nodes: ["a"]), MissingData(placement: "pb", nodes: ["b"]),
            MissingData(placement: nil, nodes: ["a", "b"]),
        ])
        Self.expectEachOnce(answer.m, ["pc"])
        #expect(cache.catalog(of: "a") == nil && cache.catalog(of: "b") == nil && cache.catalog(of: "c") != nil)
        // Next time their catalogs are asked for (and fail): as a coordinator without a cache would.
        let again = try await Self.query(coordinator)
        #expect(again.missing == [MissingData(placement: nil, nodes: ["a", "b"])])
        Self.expectEachOnce(again.m, ["pc"])
    }

    @Test func aLimitedSearchReplansWhenANodeItWouldSkipHasNewerSpans() async throws {
        let nodes = ChangingNodes(["a": ["a": 100], "b": ["b": 50]])
        let coordinator = Coordinator(local: nil, nodes: ["a", "b"], replicationFactor: 1, client: nodes, catalogs: CatalogCache())
        var request = SearchRequest()
        request.limit = 1
        let search = NodeQueryRequest(.search(request))
        _ = try await Self.query(coordinator, search)
        nodes.holdings.withLock { $0["b"]!["b"] = 200 }
        let answer = try await Self.query(coordinator, search)
        #expect(answer.figures.replans == 1)
        #expect(answer.m.traces[ChangingNodes.trace("b")]?.latestStart == 200)
    }

    @Test func fingerprintsIgnoreOtherOrgsAndHintCountsButNotSyncOrHints() {
        let base = PlacementCatalog(entries: [
            .init(org: "acme", placement: "a+b", minStart: 1, maxStart: 10),
            .init(org: "other", placement: "x", minStart: 1, maxStart: 10),
        ])
        let f = base.fingerprint(org: "acme", range: nil, latest: false)
        var otherOrg = base
        otherOrg.entries[1].maxStart = 99
        #expect(otherOrg.fingerprint(org: "acme", range: nil, latest: false) == f)
        var newer = base
        newer.entries[0].maxStart = 11
        #expect(newer.fingerprint(org: "acme", range: nil, latest: false) == f)
        #expect(newer.fingerprint(org: "acme", range: nil, latest: true) != base.fingerprint(org: "acme", range: nil, latest: true))
        var lacking = base
        lacking.entries[0].inSync = false
        #expect(lacking.fingerprint(org: "acme", range: nil, latest: false) != f)
        var hinted = base
        hinted.pendingHints = [.init(target: "c", org: "acme", placement: "a+b", hints: 3)]
        #expect(hinted.fingerprint(org: "acme", range: nil, latest: false) != f)
        var moreHints = hinted
        moreHints.pendingHints[0].hints = 7
        #expect(moreHints.fingerprint(org: "acme", range: nil, latest: false) == hinted.fingerprint(org: "acme", range: nil, latest: false))
        let text = f.description
        #expect(text.count == 32 && CatalogFingerprint(text) == f)
    }
}
