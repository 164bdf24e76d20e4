import Synchronization
import Testing
import WeftAggregates
import WeftModel
import WeftOTLP
import WeftQuery
import WeftQueryService
import WeftStorageEngine
import WeftTestSupport

/// Storage nodes without sockets whose placements hold real spans: a node answers a service map and
/// a many-traces read with the node code over the spans of the placements it is asked for, through
/// the wire form both ways.
final class SpanHoldingNodes: StorageNodeClient {
    let holdings: [String: Set<String>]
    let spans: [String: SpanBatch]
    /// The operations asked, in order.
    let asked = Mutex<[NodeQueryRequest.Operation]>([])
    let store = BlockStore(disk: SimulatedDisk(), directory: "/b")

    init(_ holdings: [String: Set<String>], spans: [String: SpanBatch]) {
        self.holdings = holdings
        self.spans = spans
    }

    func catalog(of node: String) async throws -> PlacementCatalog {
        PlacementCatalog(entries: self.holdings[node, default: []].sorted().map { .init(org: "acme", placement: $0, minStart: 1, maxStart: .max - 1) })
    }

    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial {
        #expect(placements.allSatisfy { self.holdings[node, default: []].contains($0) })
        self.asked.withLock { $0.append(request.operation) }
        let chunks = placements.compactMap { self.spans[$0] }.map { HeadChunk(org: org, batch: $0) }
        let wire = try NodeQueryRequest.decode(request.encoded())
        let partial = try NodeQuery.run(wire, snapshot: StorageEngine.Snapshot(chunks: chunks, blocks: []), store: self.store, context: .live)
        return try NodePartial.decode(partial.encoded(), for: request.operation)
    }
}

struct ServiceMapFanoutTests {
    static let t0: UInt64 = 1_800_000_000 * 1_000_000_000
    static let trace = TraceID(high: 0xAB, low: 0xCD)
    static let other = TraceID(high: 0xAB, low: 0xEF)

    static func batch(_ spans: [(service: String, span: TestSpan)]) throws -> SpanBatch {
        var batch = SpanBatch()
        for (service, span) in spans {
            var decoder = OTLPProtobufDecoder()
            _ = try RequestBuilder.request([(service, [span])]).withUnsafeBytes { try decoder.decode($0, into: &batch) }
        }
        return batch
    }

    /// Trace `trace` written across a ring change: its gateway span in placement `a+b`, the provider
    /// call under it in `c+d`. Trace `other` lies in `a+b` whole, its gateway's parent never stored.
    static func nodes() throws -> SpanHoldingNodes {
        let gateway = TestSpan(traceID: trace, spanID: 1, name: "chat", start: t0, end: t0 + 900)
        let call = TestSpan(traceID: trace, spanID: 2, parentSpanID: 1, name: "openai", start: t0 + 10, end: t0 + 800, statusCode: 2)
        let untraced = TestSpan(traceID: other, spanID: 7, parentSpanID: 99, name: "chat", start: t0, end: t0 + 5)
        let answers = TestSpan(traceID: other, spanID: 8, parentSpanID: 7, name: "openai", start: t0 + 1, end: t0 + 4)
        return SpanHoldingNodes(
            ["a": ["a+b"], "b": ["a+b"], "c": ["c+d"], "d": ["c+d"]],
            spans: [
                "a+b": try batch([("gateway", gateway), ("gateway", untraced), ("provider", answers)]),
                "c+d": try batch([("provider", call)]),
            ]
        )
    }

    static func coordinator(_ nodes: SpanHoldingNodes, apart: Set<TraceID>) -> Coordinator {
        Coordinator(
            local: nil, nodes: ["a", "b", "c", "d"], replicationFactor: 2, client: nodes, traceCandidates: { id in
                TraceCandidates(placements: apart.contains(id) ? ["a+b", "c+d"] : ["a+b"], covers: { _ in true })
            }
        )
    }

    static func edges(_ partial: NodePartial) -> [String: [UInt64]] {
        guard case .serviceMap(let map) = partial else {
            Issue.record("not a service map")
            return [:]
        }
        #expect(map.orphans.isEmpty)
        var out: [String: [UInt64]] = [:]
        for e in map.sorted { out["\(e.parent)>\(e.child)"] = [e.calls, e.errors, e.latency.count] }
        return out
    }

    static let request = NodeQueryRequest(.serviceMap(startNanos: t0 - 3_600_000_000_000, endNanos: t0 + 3_600_000_000_000))

    @Test func aCallWhoseSpansTwoNodesRead_isJoinedByTheCoordinator() async throws {
        let nodes = try Self.nodes()
        let coordinator = Self.coordinator(nodes, apart: [Self.trace])
        let answer = try await coordinator.runServiceMap(Self.request, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        #expect(answer.missing.isEmpty)
        #expect(Self.edges(answer.partial) == ["gateway>provider": [2, 1, 2]])
        // Round 2 asked for the split trace's parent span only: the other's orphan lies in one
        // placement, its parent nowhere.
        let reads = nodes.asked.withLock { $0 }.compactMap { op -> [ServiceMapExecutor.SpanKey]? in
            guard case .spanServices(let spans) = op else { return nil }
            return spans
        }
        #expect(reads.count == 2)
        #expect(reads.allSatisfy { $0 == [ServiceMapExecutor.SpanKey(trace: Self.trace, span: 1)] })
    }

    @Test func orphansOfTracesInOnePlacement_needNoSecondRound() async throws {
        let nodes = try Self.nodes()
        let coordinator = Self.coordinator(nodes, apart: [])
        let answer = try await coordinator.runServiceMap(Self.request, org: "acme", holdings: await coordinator.holdings(org: "acme"))
        // What the candidates say cannot lie apart is not read again (here wrongly, so the call is missed).
        #expect(Self.edges(answer.partial) == ["gateway>provider": [1, 0, 1]])
        #expect(nodes.asked.withLock { $0 }.allSatisfy { if case .serviceMap = $0 { true } else { false } })
    }

    @Test func spanServicesRoundTripTheWire_andRefuseSpansNotAskedFor() throws {
        let asked = [ServiceMapExecutor.SpanKey(trace: Self.trace, span: 1), ServiceMapExecutor.SpanKey(trace: Self.other, span: 9)]
        let request = NodeQueryRequest(.spanServices(asked))
        #expect(try NodeQueryRequest.decode(request.encoded()).operation == request.operation)
        var found = SpanServicesPartial()
        found.services[asked[1]] = "gateway"
        guard case .spanServices(let back) = try NodePartial.decode(NodePartial.spanServices(found).encoded(), for: request.operation) else {
            Issue.record("not the services of spans")
            return
        }
        #expect(back.services == found.services)
        #expect(throws: BlockFormatError.self) {
            try NodePartial.decode(NodePartial.spanServices(found).encoded(), for: .spanServices([asked[0]]))
        }
    }

    @Test func orphansRoundTripTheWire() throws {
        var map = ServiceMapPartial()
        for i in 0..<5 as Range<UInt64> {
            map.orphans.append(
                ServiceOrphan(trace: TraceID(high: i, low: ~i), parentSpanID: i + 1, child: i % 2 == 0 ? "even" : "odd", start: Self.t0 + i, duration: i * 7, isError: i == 3)
            )
        }
        let decoded = try NodePartial.decode(NodePartial.serviceMap(map).encoded(), for: Self.request.operation)
        guard case .serviceMap(let back) = decoded else {
            Issue.record("not a service map")
            return
        }
        #expect(back.orphans == map.orphans)
        var truncated = NodePartial.serviceMap(map).encoded()
        truncated.removeLast()
        #expect(throws: BlockFormatError.self) { try NodePartial.decode(truncated, for: Self.request.operation) }
    }
}
