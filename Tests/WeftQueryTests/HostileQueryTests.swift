import Testing
import WeftModel
@testable import WeftQuery
import WeftStorageEngine

/// Hostile input gets a clear error naming what is wrong, never a trap, a deep recursion or an
/// unbounded allocation.
struct HostileQueryTests {
    static func parseError(_ text: String) -> TraceQLError? {
        do {
            _ = try TraceQLQuery(parsing: text)
            return nil
        } catch {
            return error
        }
    }

    @Test func test_deepParentheses_areRefusedAtTheFirstTooDeep() throws {
        let deep = "{" + String(repeating: "(", count: 30_000) + "n=1" + String(repeating: ")", count: 30_000) + "}"
        let error = try #require(Self.parseError(deep))
        #expect(error.position == 1 + TraceQLParser.maxDepth)
        #expect(error.message.contains("nested deeper than 64"))
        let allowed = "{" + String(repeating: "(", count: 64) + "n=1" + String(repeating: ")", count: 64) + "}"
        #expect(Self.parseError(allowed) == nil)
    }

    @Test func test_tooManyConditions_areRefusedAtTheFirstTooMany() throws {
        let terms = (0..<15_000).map { _ in "n=1" }
        let error = try #require(Self.parseError("{" + terms.joined(separator: "||") + "}"))
        #expect(error.position == 1 + 1000 * 5)
        #expect(error.message.contains("more than 1000 conditions"))
        #expect(Self.parseError("{" + terms.prefix(1000).joined(separator: "&&") + "}") == nil)
    }

    /// The largest filter the parser takes (1000 conditions, 64 levels deep) plans and runs on scan threads.
    @Test func test_largestAllowedFilter_runs() throws {
        let (_, mixed) = try AggregationTests.engines(AggregationTests.traffic(seed: 7))
        let chain = (0..<936).map { i in "span.tenant_id = \"t\(i)\"" }.joined(separator: " || ")
        let nested = String(repeating: "(span.x = 1 || ", count: 63) + "(" + chain + ")" + String(repeating: ")", count: 63)
        let query = try TraceQLQuery(parsing: "{ " + nested + " } | count_over_time()")
        let q = AggregationQuery(query, startNanos: 0, endNanos: .max, stepNanos: nil)
        let partial = try AggregationExecutor.partial(q, snapshot: mixed.snapshot(org: "o"), store: mixed.store)
        #expect(partial.stats.inspectedSpans > 0)
    }

    @Test func test_hugeDurations_areOutOfRange() throws {
        for d in ["1e300h", "20000000000h", "100000000000000000000ns", "5124096h"] {
            let error = try #require(Self.parseError("{ duration > \(d) }"), "\(d)")
            #expect(error.message.contains("out of range"), "\(d): \(error)")
            #expect(error.position == 13)
        }
        #expect(Self.parseError("{ duration > 5124095h }") == nil)
    }

    @Test func test_quantileCount_isBounded() throws {
        let qs = Array(repeating: ".5", count: 21).joined(separator: ", ")
        let error = try #require(Self.parseError("{ } | quantile_over_time(duration, \(qs))"))
        #expect(error.message.contains("at most 20 quantiles"))
        #expect(Self.parseError("{ } | quantile_over_time(duration, \(Array(repeating: ".5", count: 20).joined(separator: ", ")))") == nil)
        #expect(throws: TraceQLError.self) { try Aggregate.list(parsing: "quantile(duration, \(qs))") }
    }


    /// `histogram_over_time(duration) by (user)` over 10,999 steps needs ~5.7 MB per group: refused
    /// with a clear message once the groups outgrow the budget (64 MiB here, to keep the test quick),
    /// and up front when one group does not fit.
    @Test func test_memoryBudget_refusesLargeStates() throws {
        let (_, mixed) = try AggregationTests.engines(AggregationTests.traffic(seed: 11))
        let snapshot = mixed.snapshot(org: "o")
        let start = AggregationTests.base, end = AggregationTests.base + 8 * AggregationTests.minute
        let byUser = AggregationQuery(
            groupBy: [.attribute(.span, "user_id")], aggregates: [.histogram(.intrinsic(.duration))], startNanos: start, endNanos: end,
            stepNanos: (end - start) / 10_998
        )
        #expect(byUser.steps == 10_999)
        let budget = AggregationLimits(maxMemoryBytes: 64 << 20)
        do {
            _ = try AggregationExecutor.partial(byUser, snapshot: snapshot, store: mixed.store, limits: budget)
            Issue.record("answered")
        } catch let AggregationError.tooMuchMemory(message) {
            #expect(message.contains("5 MiB per group") && message.contains("64 MiB") && message.contains("at most 4 groups fit"), "\(message)")
        }
        // One group does not fit a small budget: refused before the scan.
        var small = AggregationLimits(maxMemoryBytes: 1 << 20)
        small.parallelism = 1
        let one = AggregationQuery(aggregates: [.histogram(.intrinsic(.duration))], startNanos: start, endNanos: end, stepNanos: (end - start) / 10_998)
        #expect(throws: AggregationError.self) { _ = try AggregationExecutor.partial(one, snapshot: snapshot, store: mixed.store, limits: small) }
        // The same query within a larger budget answers.
        #expect(try AggregationExecutor.partial(one, snapshot: snapshot, store: mixed.store, limits: budget).groupCount == 1)
    }

    /// Quantile series take one pass per step (all quantiles at once) and equal one quantile at a time.
    @Test func test_quantileSeries_equalOneQuantileAtATime() throws {
        let (_, mixed) = try AggregationTests.engines(AggregationTests.traffic(seed: 13))
        let snapshot = mixed.snapshot(org: "o")
        let qs = (1...20).map { Double($0) / 20 }
        let start = AggregationTests.base, end = AggregationTests.base + 8 * AggregationTests.minute
        func series(_ qs: [Double]) throws -> [AggregationSeries] {
            let parsed = try TraceQLQuery(parsing: "{ } | quantile_over_time(duration, \(qs.map { String($0) }.joined(separator: ", "))) by (resource.service.name)")
            let q = AggregationQuery(parsed, startNanos: start, endNanos: end, stepNanos: AggregationTests.minute)
            return try AggregationExecutor.partial(q, snapshot: snapshot, store: mixed.store).series(q, metrics: parsed.metrics, limit: nil)
        }
        let all = try series(qs)
        var one: [AggregationSeries] = []
        for q in qs { one += try series([q]) }
        func text(_ s: [AggregationSeries]) -> [String] {
            s.map { "\($0.labels.map { "\($0.key)=\($0.value)" })" + "\($0.samples.map { "\($0.timeNanos):\($0.value)" })" }.sorted()
        }
        #expect(!all.isEmpty && all.count == one.count)
        #expect(text(all) == text(one))
    }

    /// A cancelled or expired query stops inside long loops, not only between scan units.
    @Test func test_cancellationAndDeadline_areCheckedInsideLoops() throws {
        let (_, mixed) = try AggregationTests.engines(AggregationTests.traffic(seed: 17))
        let snapshot = mixed.snapshot(org: "o")
        let cancellation = QueryCancellation()
        let limits = AggregationLimits(cancellation: cancellation)
        let q = AggregationQuery(groupBy: [.attribute(.span, "user_id")], aggregates: [.count], startNanos: 0, endNanos: .max)
        let partial = try AggregationExecutor.partial(q, snapshot: snapshot, store: mixed.store, limits: limits)
        #expect(try partial.series(q, metrics: nil, limit: nil, checking: limits).count == partial.groupCount)
        cancellation.cancel()
        #expect(throws: AggregationError.cancelled) { try AggregationExecutor.partial(q, snapshot: snapshot, store: mixed.store, limits: limits) }
        #expect(throws: AggregationError.cancelled) { try partial.series(q, metrics: nil, limit: nil, checking: limits) }
        // The regular expression pass over a dictionary stops on its own.
        let strings = SourceStrings(table: nil, dictionary: nil, extra: (0..<5000).map { "value-\($0)" })
        #expect(throws: AggregationError.cancelled) { try strings.matching(try TraceQLRegex("value-.*"), limits) }
        // The injected clock reads past the deadline.
        var expired = AggregationLimits(context: QueryContext(now: { 2_000_000_000 }, workers: SerialScanWorkers()))
        expired.deadline = 1_000_000_000
        #expect(throws: AggregationError.timeout(seconds: expired.timeoutSeconds)) { try strings.matching(try TraceQLRegex("value-.*"), expired) }
        #expect(try strings.matching(try TraceQLRegex("value-1.*"), AggregationLimits()).count == 1111)
    }
}
