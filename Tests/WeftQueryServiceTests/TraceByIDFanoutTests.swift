import Synchronization
import Testing
import WeftModel
import WeftOTLP
import WeftQuery
import WeftQueryService
import WeftStorageEngine
import WeftTestSupport

/// Storage nodes without sockets that answer many-traces requests: which node holds which
/// placements, and the spans of the trace each placement holds (span ID → start).
final class FakeTraceNodes: StorageNodeClient {
    static let trace = TraceID(high: 0x51, low: 0x77)
    let holdings: [String: Set<String>]
    let spans: [String: [(id: UInt64, start: UInt64)]]
    /// The nodes asked for a query, in order.
    let asked = Mutex<[String]>([])

    init(_ holdings: [String: Set<String>], spans: [String: [(id: UInt64, start: UInt64)]]) {
        self.holdings = holdings
        self.spans = spans
    }

    func catalog(of node: String) async throws -> PlacementCatalog {
        PlacementCatalog(entries: self.holdings[node, default: []].sorted().map { .init(org: "acme", placement: $0, minStart: 1, maxStart: .max - 1) })
    }

    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial {
        #expect(placements.allSatisfy { self.holdings[node, default: []].contains($0) })
        self.asked.withLock { $0.append(node) }
        let spans = placements.flatMap { self.spans[$0, default: []] }
        guard !spans.isEmpty else { return .traces(TracesPartial()) }
        let bytes = RequestBuilder.request([
            ("svc", spans.map { TestSpan(traceID: Self.trace, spanID: $0.id, name: "op", start: $0.start, end: $0.start + 1) })
        ])
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try bytes.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        return .traces(TracesPartial(chunks: [HeadChunk(org: org, batch: batch)]))
    }
}

struct TraceByIDFanoutTests {
    static let request = NodeQueryRequest(.traces([FakeTraceNodes.trace], startNanos: 0, endNanos: .max))
    static let minute: UInt64 = 60_000_000_000
    static let t0: UInt64 = 1_800_000_000 * 1_000_000_000

    /// Five nodes, RF 3: every placement on its three members.
    static let placements = ["a+b+c", "b+c+d", "c+d+e", "a+d+e", "a+b+e"]
    static var byNode: [String: Set<String>] {
        var byNode: [String: Set<String>] = [:]
        for p in placements { for n in p.split(separator: "+") { byNode[String(n), default: []].insert(p) } }
        return byNode
    }

    /// Candidates `a+b+c` (and `b+c+d` when `split`), covering spans that started after `from`.
    static func coordinator(_ fake: FakeTraceNodes, split: Bool = false, from: UInt64 = 0) -> Coordinator {
        let candidates = TraceCandidates(placements: split ? ["a+b+c", "b+c+d"] : ["a+b+c"], covers: { $0.allSatisfy { $0 >= from } })
        return Coordinator(
            local: nil, nodes: ["a", "b", "c", "d", "e"], replicationFactor: 3, client: fake, traceCandidates: { id in
                #expect(id == FakeTraceNodes.trace)
                return candidates
            }
        )
    }

    static func spanIDs(_ partial: NodePartial) -> [UInt64] {
        guard case .traces(let traces) = partial else { Issue.record("not traces"); return [] }
        return TraceLookup.deduplicated(FakeTraceNodes.trace, traces.chunks).flatMap { chunk in chunk.rows(of: FakeTraceNodes.trace).map { chunk.batch.spanID[$0] } }.sorted()
    }

    @Test func test_aTraceInItsCandidatePlacement_asksOnlyOneOfItsHolders() async throws {
        let fake = FakeTraceNodes(Self.byNode, spans: ["a+b+c": [(1, Self.t0), (2, Self.t0 + 1)]])
        let coordinator = Self.coordinator(fake)
        let answer = try await coordinator.runTrace(Self.request, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(Self.spanIDs(answer.partial) == [1, 2])
        #expect(answer.missing.isEmpty)
        let asked = fake.asked.withLock { $0 }
        #expect(asked.count == 1)
        #expect(["a", "b", "c"].contains(asked[0]))
    }

    @Test func test_aTraceSplitAcrossTwoEpochsPlacements_isReturnedWhole() async throws {
        // Spans before a ring change went to a+b+c, later ones to b+c+d; each placement read once.
        let fake = FakeTraceNodes(Self.byNode, spans: ["a+b+c": [(1, Self.t0)], "b+c+d": [(2, Self.t0 + 3 * Self.minute)]])
        let coordinator = Self.coordinator(fake, split: true)
        let answer = try await coordinator.runTrace(Self.request, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(Self.spanIDs(answer.partial) == [1, 2])
        let asked = fake.asked.withLock { $0 }
        #expect(asked.count <= 2)
        #expect(asked.allSatisfy { ["a", "b", "c", "d"].contains($0) })
    }

    @Test func test_aMissInTheCandidates_fallsBackToEveryPlacement() async throws {
        // Placed by a ring this node no longer knows.
        let fake = FakeTraceNodes(Self.byNode, spans: ["a+d+e": [(5, Self.t0)]])
        let coordinator = Self.coordinator(fake)
        let answer = try await coordinator.runTrace(Self.request, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(Self.spanIDs(answer.partial) == [5])
        #expect(answer.missing.isEmpty)
        // One holder for the candidate, then one per other placement (at most every node once more).
        let asked = fake.asked.withLock { $0 }
        #expect(asked.count >= 2)
        #expect(Set(asked.dropFirst()).count == asked.count - 1)
    }

    @Test func test_spansStartedBeforeTheHistory_alsoReadTheOtherPlacements() async throws {
        // Found in the candidate, but a span older than the history may have siblings elsewhere.
        let fake = FakeTraceNodes(Self.byNode, spans: ["a+b+c": [(1, Self.t0)], "c+d+e": [(2, Self.t0 + 1)]])
        let coordinator = Self.coordinator(fake, from: Self.t0 + Self.minute)
        let answer = try await coordinator.runTrace(Self.request, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(Self.spanIDs(answer.partial) == [1, 2])
        let covered = Self.coordinator(fake, from: Self.t0)
        let first = try await covered.runTrace(Self.request, org: "acme", holdings: await covered.holdings(org: "acme"))
        #expect(Self.spanIDs(first.partial) == [1], "covered by the history: the candidate's spans are the answer")
    }

    @Test func test_placementsOfAClusterStillForming_areCandidatesToo() async throws {
        // A ring with fewer nodes than RF is never kept in the history: its placements are read first.
        var byNode = Self.byNode
        byNode["a", default: []].insert("a")
        let fake = FakeTraceNodes(byNode, spans: ["a": [(9, Self.t0)], "a+b+c": [(1, Self.t0)]])
        let coordinator = Self.coordinator(fake)
        let answer = try await coordinator.runTrace(Self.request, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(Self.spanIDs(answer.partial) == [1, 9])
        #expect(fake.asked.withLock { $0 }.allSatisfy { ["a", "b", "c"].contains($0) })
    }

    @Test func test_withoutCandidates_everyPlacementIsRead() async throws {
        let fake = FakeTraceNodes(Self.byNode, spans: ["a+b+c": [(1, Self.t0)]])
        let coordinator = Coordinator(local: nil, nodes: ["a", "b", "c", "d", "e"], replicationFactor: 3, client: fake)
        let answer = try await coordinator.runTrace(Self.request, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(Self.spanIDs(answer.partial) == [1])
        #expect(fake.asked.withLock { $0 }.count >= 2, "five placements over five nodes, spread")
    }

    /// A search's round-1 summary of a trace stands for the whole trace only when every ring gives the
    /// trace one placement, the spans found started within the history away from ring changes, and
    /// no placement of a cluster still forming may hold more of it.
    @Test func test_aSummaryIsTheWholeTraceOnlyForATraceInOneCoveredPlacement() async throws {
        func coordinator(_ fake: FakeTraceNodes, _ placements: Set<String>, coveredFrom: UInt64) -> Coordinator {
            let candidates = TraceCandidates(
                placements: placements, covers: { $0.allSatisfy { $0 >= coveredFrom } }, coversRange: { first, last in first <= last && first >= coveredFrom }
            )
            return Coordinator(local: nil, nodes: ["a", "b", "c", "d", "e"], replicationFactor: 3, client: fake, traceCandidates: { _ in candidates })
        }
        let id = FakeTraceNodes.trace
        let fake = FakeTraceNodes(Self.byNode, spans: [:])
        let settled = coordinator(fake, ["a+b+c"], coveredFrom: Self.t0)
        let holdings = await settled.holdings(org: "acme")
        #expect(settled.liesInOnePlacement(id, startsFrom: Self.t0, to: Self.t0 + Self.minute, holdings: holdings))
        #expect(!settled.liesInOnePlacement(id, startsFrom: Self.t0 - 1, to: Self.t0 + Self.minute, holdings: holdings), "started before the history")
        // The trace's replica set changed within the history: spans the node did not see may lie
        // under the other ring, however far from the change the found ones started.
        let moved = coordinator(fake, ["a+b+c", "b+c+d"], coveredFrom: Self.t0)
        #expect(!moved.liesInOnePlacement(id, startsFrom: Self.t0, to: Self.t0 + Self.minute, holdings: holdings))
        var byNode = Self.byNode
        byNode["a", default: []].insert("a")
        let forming = FakeTraceNodes(byNode, spans: [:])
        let early = coordinator(forming, ["a+b+c"], coveredFrom: Self.t0)
        #expect(!early.liesInOnePlacement(id, startsFrom: Self.t0, to: Self.t0 + 1, holdings: await early.holdings(org: "acme")), "a placement of one node")
        let unknowing = Coordinator(local: nil, nodes: ["a", "b", "c", "d", "e"], replicationFactor: 3, client: fake)
        #expect(!unknowing.liesInOnePlacement(id, startsFrom: Self.t0, to: Self.t0 + 1, holdings: holdings), "no ring history")
    }
}
