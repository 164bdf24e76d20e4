import Synchronization
import Testing
import WeftModel
@testable import WeftQuery
import WeftStorageEngine
import WeftTestSupport

/// Traces whose spans arrive from several services in separate requests, seconds apart, across WAL
/// segment rolls and cuts, answer trace-level queries exactly as if every span had come at once.
struct WholeTraceQueryTests {
    final class Clock: Sendable {
        let nanos = Atomic<UInt64>(1)
        func advance(seconds: UInt64) { self.nanos.add(seconds * 1_000_000_000, ordering: .relaxed) }
    }

    static let base = AggregationTests.base

    /// Per service, the spans of 30 traces: checkout (root) → gateway → provider, with errors and
    /// durations varying by trace.
    static func requests() -> [SpanBatch] {
        let services = ["checkout", "gateway", "provider"]
        return services.indices.map { level in
            AggregationTests.batch([(services[level], (1...30 as ClosedRange<UInt64>).map { t in
                let start = Self.base + t * 1_000_000 + UInt64(level) * 1_000
                return TestSpan(
                    traceID: TraceID(high: 42, low: t), spanID: UInt64(level + 1), parentSpanID: UInt64(level), name: "\(services[level])-op",
                    kind: level == 1 ? 3 : 2, start: start, end: start + t * 10_000 / UInt64(level + 1), statusCode: t % 7 == 0 ? 2 : 0
                )
            })])
        }
    }

    struct Answers: Equatable {
        var edges: [String: [UInt64]]
        var groups: [[GroupValue]: [Double]]
        var search: [TraceID: [String]]
    }

    static func answers(_ engine: StorageEngine) throws -> Answers {
        let snapshot = engine.snapshot(org: "o")
        let (edges, _) = try ServiceMapExecutor.edges(startNanos: Self.base, endNanos: Self.base + AggregationTests.minute, snapshot: snapshot, store: engine.store)
        let filter = try TraceQLQuery(parsing: "{ traceDuration > 150000ns }").filter
        let query = AggregationQuery(
            filter: filter, groupBy: [.intrinsic(.rootServiceName)], aggregates: [.count, .max(.intrinsic(.traceDuration))],
            startNanos: Self.base, endNanos: Self.base + AggregationTests.minute
        )
        let rows = try AggregationExecutor.partial(query, snapshot: snapshot, store: engine.store).rows(query)
        var request = SearchRequest()
        request.traceQL = try TraceQLQuery(parsing: "{ rootServiceName = \"checkout\" && traceDuration > 150000ns }").filter
        request.limit = 1000
        let search = try SearchExecutor.columnar(request, snapshot: snapshot, store: engine.store)
        return Answers(
            edges: Dictionary(uniqueKeysWithValues: edges.map { ("\($0.parent)>\($0.child)", [$0.calls, $0.errors, $0.latency.count]) }),
            groups: Dictionary(uniqueKeysWithValues: rows.map { ($0.key, $0.values.map { $0.scalar ?? -1 }) }),
            search: Dictionary(uniqueKeysWithValues: search.traces.map { ($0.traceID, [$0.rootServiceName, "\($0.durationNanos)"]) })
        )
    }

    @Test func test_tracesSplitAcrossRequestsSegmentsAndCuts_answerAsIfWhole() throws {
        let requests = Self.requests()
        let whole = StorageEngine(head: Head(), store: BlockStore(disk: SimulatedDisk(), directory: "/w"))
        for r in requests { whole.head.append(r, org: "o") }
        let expected = try Self.answers(whole)
        #expect(expected.edges.count == 2 && !expected.groups.isEmpty && !expected.search.isEmpty)

        let clock = Clock()
        let engine = StorageEngine(
            head: Head(configuration: .init(chunkSpans: 16), clock: { clock.nanos.load(ordering: .relaxed) }),
            store: BlockStore(disk: SimulatedDisk(), directory: "/b"),
            configuration: .init(blockOptions: .init(zstdLevel: 3, groupSpans: 32), traceIdleNanos: 5_000_000_000)
        )
        // An unrelated trace, already idle when the first cut runs.
        engine.head.append(AggregationTests.batch([("batch", [TestSpan(traceID: TraceID(high: 1, low: 1), spanID: 1, name: "nightly", start: Self.base, end: Self.base + 5)])]), org: "o", segment: 1)
        clock.advance(seconds: 10)
        // Each service's request in its own WAL segment, two seconds apart, with a cut after each.
        for (i, request) in requests.enumerated() {
            engine.head.append(request, org: "o", stripe: i, segment: i + 2)
            clock.advance(seconds: 2)
            try engine.cut()
        }
        #expect(engine.blocks.map(\.spans) == [1], "only the idle trace was cut")
        clock.advance(seconds: 5)
        try engine.cut()
        #expect(engine.head.spanCount == 0)
        #expect(engine.blocks.count == 2)
        #expect(try Self.answers(engine) == expected)

        // Cut by segment instead, the traces are split across blocks: the service map still joins
        // each call once.
        let split = StorageEngine(head: Head(), store: BlockStore(disk: SimulatedDisk(), directory: "/s"))
        for (i, request) in requests.enumerated() { split.head.append(request, org: "o", segment: i + 1) }
        for i in requests.indices { try split.flush(segment: i + 1) }
        #expect(split.blocks.count == requests.count)
        #expect(try Self.answers(split).edges == expected.edges)
    }
}
