import Dispatch
import Synchronization
import Testing
import WeftLoad
import WeftModel
import WeftOTLP
import WeftQuery
import WeftQueryService
import WeftStorageEngine
import WeftTestSupport

/// Storage nodes without sockets over one engine that keeps each placement's spans apart: a node
/// request is answered as a storage node answers it (``NodeQueryRoute/partial(_:snapshot:store:)``
/// over the placements asked for), through the partial's wire form.
final class EngineNodes: StorageNodeClient {
    let engine: StorageEngine
    let holdings: [String: Set<String>]
    /// The operations asked for, in order.
    let asked = Mutex<[NodeQueryRequest.Operation]>([])

    init(engine: StorageEngine, holdings: [String: Set<String>]) {
        self.engine = engine
        self.holdings = holdings
    }

    func catalog(of node: String) async throws -> PlacementCatalog {
        PlacementCatalog(entries: self.holdings[node, default: []].sorted().map { .init(org: "acme", placement: $0, minStart: 0, maxStart: .max - 1) })
    }

    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial {
        self.asked.withLock { $0.append(request.operation) }
        let partial = try NodeQueryRoute.partial(request, snapshot: self.engine.snapshot(org: org, placements: Set(placements)), store: self.engine.store)
        return try NodePartial.decode(partial.encoded(), for: request.operation)
    }
}

/// A cluster search takes the summaries its storage nodes send with round 1 for traces that lie in
/// one placement, and asks a second round only for the others (here: traces split over two
/// placements, of which a node may have seen one side only): either way its answer is the one a
/// single node holding the same spans gives.
struct OneRoundSearchTests {
    static let base: UInt64 = 1_764_460_800_000_000_000
    static let minute: UInt64 = 60_000_000_000

    /// Whether a trace's spans are split over two placements (as across a ring change that gave it
    /// another replica set): one in seven.
    static func isSplit(_ low: UInt64) -> Bool { low % 7 == 0 }

    /// Five placements over five nodes (RF 3); each trace's spans in one placement, or split over
    /// two (``isSplit(_:)``: alternate spans in the next placement); part in blocks.
    static func cluster() throws -> (nodes: EngineNodes, lone: StorageEngine) {
        let placements = TraceByIDFanoutTests.placements
        func engine() -> StorageEngine {
            StorageEngine(
                head: Head(configuration: .init(chunkSpans: 512)), store: BlockStore(disk: SimulatedDisk(), directory: "/one-round"),
                configuration: .init(blockOptions: .init(zstdLevel: 3, groupSpans: 128))
            )
        }
        let (split, lone) = (engine(), engine())
        var generator = TrafficGenerator(profile: LoadProfile(seed: 41))
        var decoder = OTLPProtobufDecoder()
        for i in 0..<8 {
            let body = generator.nextRequest(spans: 300, startTimeNanos: Self.base + UInt64(i) * Self.minute, spacingNanos: 50_000_000)
            var batch = SpanBatch()
            _ = try body.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            let segment = i < 5 ? 1 : 2
            lone.head.append(batch, org: "acme", segment: segment)
            for (p, placement) in placements.enumerated() {
                let rows = (0..<batch.spanCount).filter { row in
                    let home = Int(batch.traceLow[row] % UInt64(placements.count))
                    let moved = Self.isSplit(batch.traceLow[row]) && row % 2 == 1
                    return (moved ? (home + 1) % placements.count : home) == p
                }
                var part = SpanBatch()
                part.strings = batch.strings
                part.appendRows(rows, of: batch)
                split.head.append(part, org: "acme", placement: placement, segment: segment)
            }
        }
        _ = try split.flush(segment: 1)
        _ = try lone.flush(segment: 1)
        return (EngineNodes(engine: split, holdings: TraceByIDFanoutTests.byNode), lone)
    }

    /// What a search answer says of each trace, in order. Of a split trace's matching spans only how
    /// many are shown: which `spss` of them a node lists depends on the order it reads them in.
    static func digest(_ result: SearchResult) -> [String] {
        result.traces.map { t in
            let spans = Self.isSplit(t.traceID.low)
                ? ["\(t.matchedSpans.count) spans"]
                : t.matchedSpans.map { "\($0.spanID):\($0.name):\($0.startNanos):\($0.durationNanos):\($0.attributes.map { "\($0.key)=\($0.value)" })" }
            let services = t.serviceStats.sorted { $0.service < $1.service }.map { "\($0.service):\($0.spans):\($0.errors)" }
            return "\(t.traceID) \(t.rootServiceName) \(t.rootTraceName) \(t.startNanos) \(t.durationNanos) \(t.matched) \(spans.sorted()) \(services)"
        }
    }

    /// Runs `body` on a thread of its own: a cluster read waits for its node requests there, never
    /// on a thread of the concurrency pool they run on.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    @Test(arguments: [true, false])
    func test_clusterSearch_answersAsOneNode_inOneRoundWhereTracesLieInOnePlacement(covered: Bool) async throws {
        let (nodes, lone) = try Self.cluster()
        let coordinator = Coordinator(
            local: nil, nodes: ["a", "b", "c", "d", "e"], replicationFactor: 3, client: nodes, traceCandidates: { id in
                // A split trace had two replica sets over the history.
                TraceCandidates(placements: Self.isSplit(id.low) ? ["one", "two"] : ["one"], covers: { _ in covered }, coversRange: { _, _ in covered })
            }
        )
        var searches: [SearchRequest] = []
        for (q, limit, spss) in [("{ status = error }", 5, 3), ("{ span.gen_ai.request.model != \"\" }", 20, 2), ("{}", 1000, 3)] {
            var search = SearchRequest()
            search.traceQL = try TraceQLQuery(parsing: q).filter
            search.startNanos = Self.base
            search.endNanos = Self.base + 10 * Self.minute
            search.limit = limit
            search.spansPerSpanSet = spss
            searches.append(search)
        }
        var splitSecondRounds = 0
        for search in searches {
            let want = try SearchExecutor.columnar(search, snapshot: lone.snapshot(org: "acme"), store: lone.store)
            #expect(!want.traces.isEmpty)
            nodes.asked.withLock { $0 = [] }
            let got = try await Self.offPool { [nodes] in
                let reads = QueryReads(engine: nodes.engine, org: "acme", coordinator: coordinator)
                var request = NodeQueryRequest(.search(search))
                request.summarizeLatest = true
                guard case .traceMatches(let matches) = try reads.run(request) else { throw QueryError("not trace matches") }
                #expect(!matches.summaries.isEmpty)
                return try QueryAPI.clusterSearch(search, matches, reads: reads, like: request)
            }
            #expect(Self.digest(got) == Self.digest(want), "\(search.traceQL!)")
            // Round 2 asks for the traces that may lie apart: every one when nothing is covered, else
            // the split ones only.
            var secondRound: [TraceID] = []
            for case .summaries(_, let chosen) in nodes.asked.withLock({ $0 }) { secondRound += chosen.map(\.traceID) }
            let splitChosen = got.traces.map(\.traceID).filter { Self.isSplit($0.low) }
            if covered {
                #expect(Set(secondRound) == Set(splitChosen), "\(search.traceQL!)")
                if !splitChosen.isEmpty { splitSecondRounds += 1 }
            } else {
                #expect(Set(secondRound) == Set(got.traces.map(\.traceID)))
            }
        }
        #expect(!covered || splitSecondRounds > 0, "some search chose a split trace")
    }
}
