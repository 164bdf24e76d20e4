import Testing
import WeftModel
@testable import WeftQuery
import WeftStorageEngine

/// A TraceQL search reads the newest data first and stops once its `limit` latest traces are
/// known; its answer (traces, order, summaries, matching spans and their counts) is the one a scan
/// of everything gives.
struct NewestFirstSearchTests {
    typealias A = AggregationTests

    /// The answer of a scan of every unit in range, counts from that scan.
    static func fullScan(_ request: SearchRequest, _ engine: StorageEngine) throws -> SearchResult {
        let snapshot = engine.snapshot(org: "o")
        let query = SearchExecutor.columnarQuery(request)
        let context = HeadTraceContext.needed(query) ? HeadTraceContext(snapshot.chunks) : nil
        let limits = AggregationLimits()
        let matches = try TraceMatchExecutor.latest(query, limit: request.limit, snapshot: snapshot, store: engine.store, limits: limits, context: context)
        return try SearchExecutor.columnarSummaries(request, matches, snapshot: snapshot, store: engine.store, limits: limits, context: context)
    }

    @Test func test_newestFirst_answersAsAFullScan() throws {
        let batches = A.traffic(seed: 31)
        let (head, mixed) = try A.engines(batches)
        var stoppedEarly = 0
        for q in ["{ kind = client }", "{ span.gen_ai.request.model != \"\" }", "{ status = error || kind = server }", "{ traceDuration > 1ms }"] {
            for window in [(A.base, A.base + 8 * A.minute), (A.base + A.minute + 7_000_000_000, A.base + 5 * A.minute + 3_000_000_000)] {
                for limit in [1, 3, 7, 20, 1000] {
                    var request = SearchRequest()
                    request.traceQL = try TraceQLQuery(parsing: q).filter
                    (request.startNanos, request.endNanos) = window
                    request.limit = limit
                    for engine in [head, mixed] {
                        let expected = try Self.fullScan(request, engine)
                        let got = try SearchExecutor.columnar(request, snapshot: engine.snapshot(org: "o"), store: engine.store)
                        #expect(!expected.traces.isEmpty, "\(q) limit \(limit)")
                        #expect(String(describing: got.traces) == String(describing: expected.traces), "\(q) window \(window) limit \(limit)")
                        let query = SearchExecutor.columnarQuery(request)
                        let (_, complete) = try TraceMatchExecutor.latestNewestFirst(
                            query, limit: limit, snapshot: engine.snapshot(org: "o"), store: engine.store, limits: AggregationLimits(),
                            context: HeadTraceContext.needed(query) ? HeadTraceContext(engine.snapshot(org: "o").chunks) : nil
                        )
                        if !complete { stoppedEarly += 1 }
                    }
                }
            }
        }
        // The comparisons above cover scans that stopped early, not only ones that read everything.
        #expect(stoppedEarly >= 20)
    }

    /// A node's round 1 in a cluster (its `limit` latest traces, as a coordinator keeps them) found
    /// newest first is the full scan's trimmed to the limit, counts included.
    @Test func test_latestPartial_isTheFullPartialTrimmed() throws {
        let (head, mixed) = try A.engines(A.traffic(seed: 33))
        for q in ["{ kind = client }", "{ status = error || kind = server }", "{ }"] {
            for limit in [1, 5, 20, 1000] {
                var request = SearchRequest()
                request.traceQL = try TraceQLQuery(parsing: q).filter
                (request.startNanos, request.endNanos) = (A.base + A.minute, A.base + 6 * A.minute)
                request.limit = limit
                for engine in [head, mixed] {
                    let snapshot = engine.snapshot(org: "o")
                    let full = try SearchExecutor.partial(request, snapshot: snapshot, store: engine.store)
                    let got = try #require(try SearchExecutor.latestPartial(request, snapshot: snapshot, store: engine.store, limits: AggregationLimits()))
                    let expected = full.latest(limit)
                    #expect(!expected.isEmpty)
                    #expect(got.latest(limit).map(\.traceID) == expected.map(\.traceID), "\(q) limit \(limit)")
                    #expect(got.traces.count == expected.count)
                    for m in expected {
                        #expect(got.traces[m.traceID] == TraceMatchesPartial.Entry(latestStart: m.latestStart, matched: m.matched), "\(q) limit \(limit)")
                    }
                }
            }
        }
    }

    /// A trace whose matches lie in an old block and in the newest head chunk: the scan stops before
    /// the block, and the trace's count still has the block's matches.
    @Test func test_countsIncludeMatchesInUnreadData() throws {
        let batches = A.traffic(seed: 32)
        let (_, mixed) = try A.engines(batches)
        // Spans of one trace from the first request, appended again later under new span IDs and starts.
        let first = batches[0]
        let trace = first.traceID(0)
        let rows = (0..<first.spanCount).filter { first.traceID($0) == trace }
        var late = SpanBatch()
        late.strings = first.strings
        late.appendRows(rows, of: first)
        for i in 0..<late.spanCount {
            late.spanID[i] ^= 0x5A5A_0000_0000_0000
            late.startTime[i] += 9 * A.minute
            late.endTime[i] += 9 * A.minute
        }
        mixed.head.append(late, org: "o")
        var request = SearchRequest()
        request.traceQL = try TraceQLQuery(parsing: "{ }").filter
        (request.startNanos, request.endNanos) = (A.base, A.base + 20 * A.minute)
        request.limit = 1
        let query = SearchExecutor.columnarQuery(request)
        let (matches, complete) = try TraceMatchExecutor.latestNewestFirst(
            query, limit: 1, snapshot: mixed.snapshot(org: "o"), store: mixed.store, limits: AggregationLimits(), context: nil
        )
        #expect(!complete)
        #expect(matches.traces.map(\.traceID) == [trace])
        let got = try SearchExecutor.columnar(request, snapshot: mixed.snapshot(org: "o"), store: mixed.store)
        #expect(got.traces.map(\.traceID) == [trace])
        #expect(got.traces.first?.matched == 2 * rows.count)
        // A node's round 1 in a cluster: the same trace and count.
        let partial = try #require(try SearchExecutor.latestPartial(request, snapshot: mixed.snapshot(org: "o"), store: mixed.store, limits: AggregationLimits()))
        #expect(partial.traces.count == 1)
        #expect(partial.traces[trace]?.matched == 2 * rows.count)
        #expect(String(describing: got.traces) == String(describing: try Self.fullScan(request, mixed).traces))
    }
}
