import Testing
import WeftLoad
import WeftModel
import WeftOTLP
@testable import WeftQuery
import WeftStorageEngine

/// Every node operation: the merge of its partials over any split of the data (2–4 parts, whole
/// traces per part, as placement keeps them) equals its partial over all of it, and requests and
/// partials survive their byte forms while malformed bytes are refused.
struct NodeQueryTests {
    static let base = AggregationTests.base
    static let minute = AggregationTests.minute
    static let range = (start: base, end: base + 8 * minute)

    /// An engine holding `batches`: the first two thirds of them in blocks, the rest in the head.
    static func engine(_ batches: [SpanBatch], directory: String) throws -> StorageEngine {
        let engine = StorageEngine(
            head: Head(configuration: .init(chunkSpans: 512)), store: BlockStore(disk: SimulatedDisk(), directory: directory),
            configuration: .init(blockOptions: .init(zstdLevel: 3, groupSpans: 128))
        )
        for (i, b) in batches.enumerated() { engine.head.append(b, org: "o", segment: i * 3 / max(1, batches.count) + 1) }
        _ = try engine.flush(segment: 1)
        _ = try engine.flush(segment: 2)
        return engine
    }

    /// The rows of `batch` whose trace falls in part `part` of `parts`.
    static func part(_ batch: SpanBatch, _ part: Int, of parts: Int) -> SpanBatch {
        let rows = (0..<batch.spanCount).filter { Int(batch.traceLow[$0] % UInt64(parts)) == part }
        var out = SpanBatch()
        out.strings = batch.strings
        out.appendRows(rows, of: batch)
        return out
    }

    static let operations: [NodeQueryRequest.Operation] = [
        .traceMatches(filter: .comparison(.intrinsic(.status), .equal, .status(2)), startNanos: range.start, endNanos: range.end),
        .traceMatches(filter: .all, startNanos: range.start + minute, endNanos: range.end),
        .tagNames(scope: nil, blockSpans: 1 << 30),
        .tagNames(scope: "resource", blockSpans: 1 << 30),
        .tagValues(field: .intrinsic(.name), filter: .all, startNanos: range.start, endNanos: range.end, limit: 100_000),
        .tagValues(field: .attribute(.span, "tenant_id"), filter: .comparison(.intrinsic(.kind), .equal, .kind(2)), startNanos: 0, endNanos: .max, limit: 3),
        .aggregate(AggregationQuery(
            groupBy: [.attribute(.resource, "service.name")], aggregates: [.count, .avg(.intrinsic(.duration)), .quantiles(.intrinsic(.duration), [0.5, 0.99])],
            startNanos: range.start, endNanos: range.end, stepNanos: minute
        )),
        .aggregate(AggregationQuery(
            filter: .comparison(.intrinsic(.status), .equal, .status(2)), groupBy: [.intrinsic(.name), .attribute(.span, "tenant_id")],
            aggregates: [.histogram(.intrinsic(.duration)), .sum(.intrinsic(.duration))], startNanos: range.start, endNanos: range.end
        )),
        .serviceMap(startNanos: 0, endNanos: .max),
        .search(Self.search(conditions: [TagCondition(key: "status", value: "error")], minDuration: 1_000)),
        .search(Self.search(traceQL: .comparison(.intrinsic(.status), .equal, .status(2)))),
        .search(Self.search()),
    ]

    static func search(conditions: [TagCondition] = [], minDuration: UInt64? = nil, traceQL: TraceQLFilter? = nil) -> SearchRequest {
        var s = SearchRequest()
        s.conditions = conditions
        s.minDurationNanos = minDuration
        s.traceQL = traceQL
        s.startNanos = range.start
        s.endNanos = range.end
        s.limit = 7
        return s
    }

    /// Equal answers (statistics aside).
    static func same(_ a: NodePartial, _ b: NodePartial) -> Bool {
        switch (a, b) {
        case (.trace(let x), .trace(let y)): return spanIDs(x) == spanIDs(y)
        case (.traces(let x), .traces(let y)): return spanIDs(x) == spanIDs(y)
        case (.summaries(let x), .summaries(let y)): return digest(x) == digest(y)
        case (.traceMatches(let x), .traceMatches(let y)): return x == y
        case (.tagNames(let x), .tagNames(let y)): return x == y
        case (.tagValues(let x), .tagValues(let y)): return x == y
        case (.aggregate(let x), .aggregate(let y)): return x.sameContents(as: y)
        case (.serviceMap(let x), .serviceMap(let y)): return x == y
        case (.spanServices(let x), .spanServices(let y)): return x.services == y.services
        default: return false
        }
    }

    /// The span IDs of a trace partial, sorted (repeats would show).
    static func spanIDs(_ p: TracePartial) -> [UInt64] {
        p.chunks.flatMap { c in c.rows(of: p.traceID).map { c.batch.spanID[$0] } }.sorted()
    }

    /// What a summaries partial says of each trace, comparable.
    static func digest(_ p: SummariesPartial) -> [String] {
        p.traces.values.sorted { $0.traceID < $1.traceID }.map { t in
            let spans = t.matchedSpans.map { "\($0.spanID):\($0.name):\($0.startNanos):\($0.durationNanos):\($0.attributes.map { "\($0.key)=\($0.value)" })" }
            let services = t.serviceStats.sorted { $0.service < $1.service }.map { "\($0.service):\($0.spans):\($0.errors)" }
            return "\(t.traceID) \(t.rootServiceName) \(t.rootTraceName) \(t.startNanos) \(t.durationNanos) \(t.matched) \(spans.sorted()) \(services)"
        }
    }

    /// The distinct span IDs of each trace of a many-traces partial.
    static func spanIDs(_ p: TracesPartial) -> [TraceID: Set<UInt64>] {
        var out: [TraceID: Set<UInt64>] = [:]
        for c in p.chunks {
            for row in 0..<c.batch.spanCount { out[c.batch.traceID(row), default: []].insert(c.batch.spanID[row]) }
        }
        return out
    }

    @Test(arguments: [(UInt64(7), 2), (11, 3), (23, 4)])
    func test_mergeOfSplits_equalsTheWhole_forEveryOperation(seed: UInt64, parts: Int) throws {
        let batches = AggregationTests.traffic(seed: seed)
        let whole = try Self.engine(batches, directory: "/whole")
        let splits = try (0..<parts).map { p in try Self.engine(batches.map { Self.part($0, p, of: parts) }, directory: "/part\(p)") }
        let someTrace = batches[3].traceID(5)
        var operations = Self.operations
        operations.append(.trace(someTrace))
        let manyTraces = [someTrace, batches[0].traceID(0), batches[5].traceID(1), TraceID(high: 9, low: 9)]
        operations.append(.traces(manyTraces, startNanos: 0, endNanos: .max))
        // Round 2 of a service map: spans of several traces, one that no part holds.
        operations.append(.spanServices([
            ServiceMapExecutor.SpanKey(trace: someTrace, span: batches[3].spanID[5]), ServiceMapExecutor.SpanKey(trace: batches[0].traceID(0), span: batches[0].spanID[0]),
            ServiceMapExecutor.SpanKey(trace: batches[6].traceID(2), span: batches[6].spanID[2]), ServiceMapExecutor.SpanKey(trace: someTrace, span: 12_345),
        ]))
        // Round 2 of a search: the summaries of the traces round 1 chose (whole traces per part).
        for search in [Self.search(conditions: [TagCondition(key: "status", value: "error")]), Self.search(traceQL: .comparison(.intrinsic(.status), .equal, .status(2)))] {
            guard case .traceMatches(let m) = try NodeQuery.run(NodeQueryRequest(.search(search)), snapshot: whole.snapshot(org: "o"), store: whole.store, context: .serial) else { continue }
            #expect(!m.traces.isEmpty)
            operations.append(.summaries(search, m.latest(search.limit)))
        }
        // Round 2 of a table: the groups round 1 chose, over every aggregate.
        let table = AggregationQuery(
            groupBy: [.attribute(.span, "tenant_id")], aggregates: [.count, .quantiles(.intrinsic(.duration), [0.9])], startNanos: Self.range.start, endNanos: Self.range.end
        )
        let round1 = try NodeQuery.run(
            NodeQueryRequest(.aggregate(AggregationQuery(groupBy: table.groupBy, aggregates: [.count], startNanos: Self.range.start, endNanos: Self.range.end))),
            snapshot: whole.snapshot(org: "o"), store: whole.store, context: .serial
        )
        guard case .aggregate(let chosenFrom) = round1 else { Issue.record("round 1 is not an aggregate"); return }
        let keys = NodeQuery.chosenGroups(chosenFrom, table, orderBy: 0, descending: true, limit: 3)
        #expect(keys.count == 3)
        operations.append(.aggregateGroups(table, keys: keys))

        for operation in operations {
            let request = NodeQueryRequest(operation)
            let expected = try NodeQuery.run(request, snapshot: whole.snapshot(org: "o"), store: whole.store, context: .serial)
            let partials = try splits.map { try NodeQuery.run(request, snapshot: $0.snapshot(org: "o"), store: $0.store, context: .serial) }
            let forwards = try NodeQuery.merge(partials, of: operation)
            let backwards = try NodeQuery.merge(partials.reversed(), of: operation)
            // Associativity: the last two merged first.
            var grouped = partials[0]
            try grouped.merge(try NodeQuery.merge(Array(partials.dropFirst()), of: operation))
            if case .tagValues(let field, let filter, let start, let end, let limit) = operation, case .tagValues(let all) = expected, !all.isComplete {
                // More values than the limit: each answer holds `limit` of the values there are.
                let unlimited = NodeQueryRequest(.tagValues(field: field, filter: filter, startNanos: start, endNanos: end, limit: 1 << 20))
                guard case .tagValues(let every) = try NodeQuery.run(unlimited, snapshot: whole.snapshot(org: "o"), store: whole.store, context: .serial) else { continue }
                for answer in [forwards, backwards, grouped] {
                    guard case .tagValues(let merged) = answer else { Issue.record("not tag values"); continue }
                    #expect(merged.values.count == limit)
                    #expect(Set(merged.values).isSubset(of: Set(every.values)))
                }
                continue
            }
            #expect(Self.same(forwards, expected), "\(operation)")
            #expect(Self.same(backwards, expected), "\(operation)")
            #expect(Self.same(grouped, expected), "\(operation)")
        }
    }

    /// The search answer from round 1's partial is the one the search executors give.
    @Test func test_searchResultFromThePartial_equalsTheExecutors() throws {
        let engine = try Self.engine(AggregationTests.traffic(seed: 29), directory: "/search")
        let snapshot = engine.snapshot(org: "o")
        for case .search(let request) in Self.operations {
            let partial = try SearchExecutor.partial(request, snapshot: snapshot, store: engine.store)
            #expect(!partial.traces.isEmpty)
            let got = try SearchExecutor.result(request, partial, snapshot: snapshot, store: engine.store)
            let expected = SearchExecutor.isColumnar(request)
                ? try SearchExecutor.columnar(request, snapshot: snapshot, store: engine.store)
                : try SearchExecutor.search(request, snapshot: snapshot, store: engine.store)
            #expect(got.traces.count == min(request.limit, partial.traces.count))
            #expect(got.traces.map(\.traceID) == expected.traces.map(\.traceID))
            #expect(got.traces.map(\.matched) == expected.traces.map(\.matched))
            #expect(got.traces.map { $0.matchedSpans.map(\.spanID) } == expected.traces.map { $0.matchedSpans.map(\.spanID) })
            #expect(got.traces.map { $0.serviceStats.map(\.spans) } == expected.traces.map { $0.serviceStats.map(\.spans) })
            #expect(got.traces.map(\.durationNanos) == expected.traces.map(\.durationNanos))
            if SearchExecutor.isColumnar(request) {
                // The executor reads newest data first and may stop before the rest.
                #expect(expected.stats.inspectedTraces <= got.stats.inspectedTraces)
            } else {
                #expect(got.stats.inspectedTraces == expected.stats.inspectedTraces)
            }
        }
    }

    /// Worker states merge in worker order, so an answer is the same whichever worker ran first or
    /// took which units: group order included.
    @Test func test_answers_doNotDependOnTheOrderWorkersRun() throws {
        let engine = try Self.engine(AggregationTests.traffic(seed: 31), directory: "/order")
        let query = AggregationQuery(groupBy: [.attribute(.span, "tenant_id")], aggregates: [.count, .quantiles(.intrinsic(.duration), [0.5])], startNanos: Self.range.start, endNanos: Self.range.end)
        func run(_ workers: any ScanWorkers) throws -> AggregationPartial {
            let request = NodeQueryRequest(.aggregate(query), parallelism: 3)
            guard case .aggregate(let p) = try NodeQuery.run(request, snapshot: engine.snapshot(org: "o"), store: engine.store, context: QueryContext(now: { 0 }, workers: workers)) else {
                throw AggregationError.invalid("not an aggregate")
            }
            return p
        }
        let forwards = try run(SerialScanWorkers())
        let reversed = try run(ReversedScanWorkers())
        #expect(forwards.groupCount > 10)
        #expect(reversed.keys == forwards.keys)
        #expect(reversed.sameContents(as: forwards))
        for _ in 0..<3 {
            let threaded = try run(ThreadedScanWorkers())
            #expect(threaded.sameContents(as: forwards))
        }
    }

    @Test func test_mergingDifferentOperations_throws() throws {
        var a = NodePartial.empty(.tagNames(scope: nil, blockSpans: 1))
        #expect(throws: AggregationError.self) { try a.merge(.empty(.serviceMap(startNanos: 0, endNanos: 1))) }
    }

    @Test func test_trace_keepsEachSpanIDOnce_acrossHeadBlocksAndCopies() throws {
        let batches = AggregationTests.traffic(seed: 5, requests: 3)
        let engine = try Self.engine(batches, directory: "/dup")
        // The same spans again in the head: once more for every batch, twice for the last (the
        // head's block check off, as copies written before it existed).
        engine.head.setStoredCheck(nil)
        for b in batches + [batches[2]] { engine.head.append(b, org: "o", segment: 9) }
        let id = batches[0].traceID(0)
        let distinct = Set((0..<batches[0].spanCount).filter { batches[0].traceID($0) == id }.map { batches[0].spanID[$0] })
        #expect(distinct.count > 1)
        let snapshot = engine.snapshot(org: "o")
        let raw = snapshot.chunks.reduce(0) { $0 + $1.rows(of: id).count } + (try engine.store.findTrace(id, in: snapshot.blocks)).reduce(0) { $0 + $1.spanCount }
        #expect(raw >= 2 * distinct.count)
        let chunks = try TraceLookup.chunks(id, snapshot: snapshot, store: engine.store)
        let ids = chunks.flatMap { c in c.rows(of: id).map { c.batch.spanID[$0] } }
        #expect(ids.count == distinct.count)
        #expect(Set(ids) == distinct)
        // Two replicas answering with the same spans merge to one copy of each.
        let partial = try NodeQuery.run(NodeQueryRequest(.trace(id)), snapshot: snapshot, store: engine.store, context: .serial)
        var merged = partial
        try merged.merge(partial)
        guard case .trace(let t) = merged else { Issue.record("not a trace"); return }
        #expect(Self.spanIDs(t) == distinct.sorted())
    }

    @Test func test_deadline_isCheckedOnTheInjectedClock() throws {
        let engine = try Self.engine(AggregationTests.traffic(seed: 3, requests: 2), directory: "/late")
        let clock = QueryContext(now: { 5_000 }, workers: SerialScanWorkers())
        let late = NodeQueryRequest(.serviceMap(startNanos: 0, endNanos: .max), deadline: 4_999)
        #expect(throws: AggregationError.timeout(seconds: late.timeoutSeconds)) {
            _ = try NodeQuery.run(late, snapshot: engine.snapshot(org: "o"), store: engine.store, context: clock)
        }
        let inTime = NodeQueryRequest(.serviceMap(startNanos: 0, endNanos: .max), deadline: 5_000)
        _ = try NodeQuery.run(inTime, snapshot: engine.snapshot(org: "o"), store: engine.store, context: clock)
    }

    // MARK: Wire forms

    @Test func test_requests_roundtrip_andMalformedBytesThrow() throws {
        var operations = Self.operations
        operations.append(.trace(TraceID(high: 1, low: 2)))
        operations.append(.tagValues(field: .intrinsic(.status), filter: .or(.and(.all, .comparison(.attribute(.any, "x"), .matches, .string("a.*"))),
            .comparison(.intrinsic(.duration), .greater, .duration(5))), startNanos: 1, endNanos: 2, limit: 5))
        operations.append(.aggregateGroups(AggregationQuery(groupBy: [.intrinsic(.name), .attribute(.span, "n")], aggregates: [.count], startNanos: 0, endNanos: 9),
            keys: [[.string("a"), .int(-3)], [.absent, .bool(true)], [.double(1.5), .bool(false)]]))
        var selecting = SearchRequest()
        selecting.traceQL = .comparison(.attribute(.span, "gen_ai.request.model"), .notEqual, .absent)
        selecting.select = [.attribute(.span, "tenant_id"), .intrinsic(.duration)]
        operations.append(.search(selecting))
        operations.append(.traces([TraceID(high: 1, low: 2), TraceID(high: 0, low: 3)], startNanos: 4, endNanos: 5))
        operations.append(.traces([], startNanos: 0, endNanos: .max))
        operations.append(.summaries(selecting, [TraceMatch(traceID: TraceID(high: 3, low: 4), latestStart: 5, matched: 6)]))
        operations.append(.spanServices([ServiceMapExecutor.SpanKey(trace: TraceID(high: 5, low: 6), span: 7), ServiceMapExecutor.SpanKey(trace: TraceID(high: 0, low: 1), span: 2)]))
        for operation in operations {
            let request = NodeQueryRequest(operation, deadline: 123, timeoutSeconds: 7.5, maxSeries: 9, maxMemoryBytes: 1 << 20, parallelism: 3)
            let bytes = request.encoded()
            // Only the newer operations need a newer version: nodes knowing version 1 answer the rest.
            switch operation {
            case .traces, .summaries: #expect(bytes.first == 2)
            case .spanServices: #expect(bytes.first == 3)
            default: #expect(bytes.first == 1)
            }
            let back = try NodeQueryRequest.decode(bytes)
            #expect(back.operation == operation)
            #expect(back.deadline == 123 && back.timeoutSeconds == 7.5 && back.maxSeries == 9 && back.maxMemoryBytes == 1 << 20 && back.parallelism == 3)
            for n in 0..<bytes.count {
                #expect(throws: (any Error).self) { try NodeQueryRequest.decode(Array(bytes.prefix(n))) }
            }
            #expect(throws: (any Error).self) { try NodeQueryRequest.decode(bytes + [0]) }
        }
        Self.garbage { bytes in _ = try? NodeQueryRequest.decode(bytes) }
    }

    @Test func test_partials_roundtrip_andMalformedBytesThrow() throws {
        let batches = AggregationTests.traffic(seed: 19, requests: 3)
        let engine = try Self.engine(batches, directory: "/wire")
        var operations = Self.operations
        operations.append(.trace(batches[1].traceID(0)))
        operations.append(.traces([batches[1].traceID(0), batches[2].traceID(3)], startNanos: 0, endNanos: .max))
        operations.append(.summaries(Self.search(), [batches[1].traceID(0), batches[2].traceID(3)].map { TraceMatch(traceID: $0, latestStart: 1, matched: 1) }))
        operations.append(.spanServices((0..<4).map { ServiceMapExecutor.SpanKey(trace: batches[2].traceID($0), span: batches[2].spanID[$0]) }))
        for operation in operations {
            let partial = try NodeQuery.run(NodeQueryRequest(operation), snapshot: engine.snapshot(org: "o"), store: engine.store, context: .serial)
            let bytes = partial.encoded()
            let back = try NodePartial.decode(bytes, for: operation)
            #expect(Self.same(back, partial), "\(operation)")
            #expect(back.stats.inspectedSpans == partial.stats.inspectedSpans)
            // Every prefix of a small partial; a sample of a large one's.
            let step = max(1, bytes.count / 400)
            for n in stride(from: 0, to: bytes.count, by: step) {
                #expect(throws: (any Error).self) { try NodePartial.decode(Array(bytes.prefix(n)), for: operation) }
            }
            #expect(throws: (any Error).self) { try NodePartial.decode(bytes + [1], for: operation) }
            let other: NodeQueryRequest.Operation = operation == .serviceMap(startNanos: 0, endNanos: .max) ? .tagNames(scope: nil, blockSpans: 1) : .serviceMap(startNanos: 0, endNanos: .max)
            #expect(throws: (any Error).self) { try NodePartial.decode(bytes, for: other) }
            Self.garbage { bytes in _ = try? NodePartial.decode(bytes, for: operation) }
        }
    }

    @Test func test_searchMatchesWithSummaries_roundtrip_andMalformedBytesThrow() throws {
        let batches = AggregationTests.traffic(seed: 29, requests: 3)
        let engine = try Self.engine(batches, directory: "/wire-summaries")
        let search = Self.search()
        let operation = NodeQueryRequest.Operation.search(search)
        guard case .traceMatches(var matches) = try NodeQuery.run(NodeQueryRequest(operation), snapshot: engine.snapshot(org: "o"), store: engine.store, context: .serial)
        else { Issue.record("not trace matches"); return }
        let summaries = try SummariesPartial.of(search, matches.latest(search.limit), snapshot: engine.snapshot(org: "o"), store: engine.store, limits: AggregationLimits())
        matches.summaries = summaries.traces
        matches.spansPerSpanSet = search.spansPerSpanSet
        #expect(matches.summaries.count == min(search.limit, matches.traces.count) && !matches.summaries.isEmpty)
        let bytes = NodePartial.traceMatches(matches).encoded()
        guard case .traceMatches(let back) = try NodePartial.decode(bytes, for: operation) else { Issue.record("not trace matches"); return }
        #expect(back == matches)
        for n in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 400)) {
            #expect(throws: (any Error).self) { try NodePartial.decode(Array(bytes.prefix(n)), for: operation) }
        }
        // Summaries answer only a search, and only of traces that matched.
        #expect(throws: (any Error).self) { try NodePartial.decode(bytes, for: .tagNames(scope: nil, blockSpans: 1)) }
        var stray = matches
        let (id, summary) = stray.summaries.first!
        stray.traces[id] = nil
        #expect(throws: (any Error).self) { try NodePartial.decode(NodePartial.traceMatches(stray).encoded(), for: operation) }
        // Partials of disjoint traces keep every summary; a trace with matches in two partials lies in
        // two placements, so neither partial's summary of it is kept.
        var (left, right) = (TraceMatchesPartial(), TraceMatchesPartial())
        for (k, (t, e)) in matches.traces.enumerated() {
            if k % 2 == 0 { left.traces[t] = e } else { right.traces[t] = e }
            if let s = matches.summaries[t] { if k % 2 == 0 { left.summaries[t] = s } else { right.summaries[t] = s } }
        }
        var joined = left
        joined.merge(right)
        #expect(joined.summaries == matches.summaries)
        var twice = matches
        twice.merge(matches)
        #expect(twice.summaries.isEmpty && twice.traces.count == matches.traces.count)
        _ = summary
    }

    /// Feeds seeded random byte strings (some behind a valid version and operation byte) to `decode`,
    /// which must return or throw, never trap.
    static func garbage(_ decode: ([UInt8]) -> Void) {
        var state: UInt64 = 0x5EED
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for i in 0..<300 {
            let n = Int(next() % 64)
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) }
            if i % 2 == 0 { bytes = [1, UInt8(i / 2 % 7)] + bytes }
            if i % 10 == 1 { bytes = [2, i % 20 == 1 ? 8 : 6] + bytes }
            if i % 10 == 3 { bytes = [2, i % 20 == 3 ? 9 : 7] + bytes }
            decode(bytes)
        }
    }
}
