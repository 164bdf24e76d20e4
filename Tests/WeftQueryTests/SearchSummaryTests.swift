import Testing
import WeftModel
@testable import WeftQuery
import WeftStorageEngine

/// Search results summarised from head rows and block columns equal the summaries of full trace
/// lookups, with the matching spans a row-by-row reference finds, over head, blocks and spans held
/// in both.
struct SearchSummaryTests {
    static let base = AggregationTests.base
    static let minute = AggregationTests.minute

    /// The whole-trace parts of two summaries agree (matched spans aside).
    static func expectSame(_ got: TraceSummary, _ expected: TraceSummary) {
        #expect(got.rootServiceName == expected.rootServiceName)
        #expect(got.rootTraceName == expected.rootTraceName)
        #expect(got.startNanos == expected.startNanos)
        #expect(got.durationNanos == expected.durationNanos)
        #expect(got.serviceStats.map(\.service) == expected.serviceStats.map(\.service))
        #expect(got.serviceStats.map(\.spans) == expected.serviceStats.map(\.spans))
        #expect(got.serviceStats.map(\.errors) == expected.serviceStats.map(\.errors))
    }

    @Test(arguments: ["{ kind = client }", "{ status = error }", "{ span.gen_ai.request.model != \"\" && duration > 1ms }", "{ }"])
    func test_summaries_equalTraceLookups(_ traceQL: String) throws {
        let batches = AggregationTests.traffic(seed: 53)
        let (_, mixed) = try AggregationTests.engines(batches)
        // The first request's spans once more in the head: each span must still count once.
        mixed.head.append(batches[0], org: "o", segment: 3)
        let snapshot = mixed.snapshot(org: "o")
        var request = SearchRequest()
        request.traceQL = try TraceQLQuery(parsing: traceQL).filter
        request.startNanos = Self.base + Self.minute / 2
        request.endNanos = Self.base + 7 * Self.minute
        request.limit = 10_000
        request.spansPerSpanSet = 1000
        #expect(SearchExecutor.isColumnar(request))
        let matches = try SearchExecutor.partial(request, snapshot: snapshot, store: mixed.store)
        let result = try SearchExecutor.result(request, matches, snapshot: snapshot, store: mixed.store)
        #expect(result.traces.count == matches.traces.count)
        #expect(result.traces.count > 10)
        let filter = request.traceQL!
        var inBlocks = 0
        for got in result.traces {
            let chunks = try TraceLookup.chunks(got.traceID, snapshot: snapshot, store: mixed.store)
            if !(try TraceLookup.blockChunks(got.traceID, snapshot: snapshot, store: mixed.store)).isEmpty { inBlocks += 1 }
            Self.expectSame(got, SearchExecutor.summarize(got.traceID, in: chunks))
            // Matching spans, row by row over the looked-up trace.
            var reference: [UInt64: (String, UInt64, UInt64)] = [:]
            for chunk in chunks {
                let b = chunk.batch
                let compiled = CompiledTraceQLFilter(filter, strings: b.strings)
                for row in chunk.rows(of: got.traceID) where b.startTime[row] >= request.startNanos! && b.startTime[row] <= request.endNanos! && compiled.matches(b, row) {
                    reference[b.spanID[row]] = (b.strings.string(b.name[row]), b.startTime[row], b.endTime[row] - b.startTime[row])
                }
            }
            #expect(got.matchedSpans.count == reference.count)
            for s in got.matchedSpans {
                let r = reference[s.spanID]
                #expect(r?.0 == s.name && r?.1 == s.startNanos && r?.2 == s.durationNanos)
            }
            #expect(got.matchedSpans.map(\.startNanos) == got.matchedSpans.map(\.startNanos).sorted())
        }
        #expect(inBlocks > 5)
        #expect(inBlocks < result.traces.count)
    }

    /// A trace whose spans lie in two blocks, some span in both (as a replica repair can leave
    /// them), counts each span ID once; a trace held by one block is summed without span-ID checks.
    @Test func test_summaries_countEachSpanOnce_whenTwoBlocksHoldIt() throws {
        let batches = AggregationTests.traffic(seed: 61)
        let (_, mixed) = try AggregationTests.engines(batches)
        let base = mixed.snapshot(org: "o")
        // The first request's spans, already in the first block, in a later block too.
        let again = try mixed.store.write(batches[0], org: "o", placement: base.blocks[0].placement, options: .init(zstdLevel: 3, groupSpans: 128))
        let snapshot = StorageEngine.Snapshot(chunks: base.chunks, blocks: base.blocks + [again])
        var request = SearchRequest()
        request.traceQL = try TraceQLQuery(parsing: "{ }").filter
        request.startNanos = Self.base
        request.endNanos = Self.base + 8 * Self.minute
        request.limit = 10_000
        let matches = try SearchExecutor.partial(request, snapshot: snapshot, store: mixed.store)
        let result = try SearchExecutor.result(request, matches, snapshot: snapshot, store: mixed.store)
        var inTwoBlocks = 0, inOneBlock = 0
        for got in result.traces {
            let blocks = try TraceLookup.blockChunks(got.traceID, snapshot: snapshot, store: mixed.store).count
            if blocks > 1 { inTwoBlocks += 1 } else if blocks == 1 { inOneBlock += 1 }
            Self.expectSame(got, SearchExecutor.summarize(got.traceID, in: try TraceLookup.chunks(got.traceID, snapshot: snapshot, store: mixed.store)))
        }
        #expect(inTwoBlocks > 0)
        #expect(inOneBlock > 0)
    }

    /// Selected and filtered attributes read from block columns (or, for keys blocks keep only in
    /// typed columns under another name, from decoded spans) are the ones the trace's spans carry.
    @Test(arguments: ["gen_ai.request.model", "gen_ai.usage.input_tokens"])
    func test_matchedSpanAttributes_fromBlocksEqualTheSpans(_ typedKey: String) throws {
        let batches = AggregationTests.traffic(seed: 59)
        let (head, mixed) = try AggregationTests.engines(batches)
        var request = SearchRequest()
        request.traceQL = try TraceQLQuery(parsing: "{ span.tenant_id != \"\" && kind = client }").filter
        request.select = [.attribute(.span, "region"), .attribute(.resource, "service.name"), .attribute(.any, typedKey)]
        request.startNanos = Self.base
        request.endNanos = Self.base + 8 * Self.minute
        request.limit = 10_000
        request.spansPerSpanSet = 1000
        func answer(_ engine: StorageEngine) throws -> [TraceID: [String]] {
            let snapshot = engine.snapshot(org: "o")
            let result = try SearchExecutor.result(request, try SearchExecutor.partial(request, snapshot: snapshot, store: engine.store), snapshot: snapshot, store: engine.store)
            var out: [TraceID: [String]] = [:]
            for t in result.traces {
                out[t.traceID] = t.matchedSpans.map { s in "\(s.spanID) \(s.attributes.map { "\($0.key)=\($0.value)" }.joined(separator: ","))" }.sorted()
            }
            return out
        }
        let fromHead = try answer(head)
        #expect(fromHead.count > 10)
        #expect(fromHead.values.contains { $0.contains { $0.contains("region=") && $0.contains("service.name=") && $0.contains(typedKey + "=") } })
        let fromMixed = try answer(mixed)
        for (id, spans) in fromHead where fromMixed[id] != spans {
            Issue.record("trace \(id): \(fromMixed[id] ?? []) instead of \(spans)")
            break
        }
    }
}

/// The tag engine's search results (tags, durations) are summarised and given their matching spans in
/// one pass over the chosen traces' rows, with the answers of one full trace lookup per trace.
struct TagSearchSummaryTests {
    static let base = AggregationTests.base
    static let minute = AggregationTests.minute

    /// The reference: per trace, a full lookup, its summary, and its matching spans in lookup order.
    static func lookedUp(_ request: SearchRequest, _ id: TraceID, _ snapshot: StorageEngine.Snapshot, _ store: BlockStore) throws -> TraceSummary {
        let chunks = try TraceLookup.chunks(id, snapshot: snapshot, store: store)
        var found: [TraceID: SearchExecutor.Match] = [:]
        var ignored = ScanStats()
        for chunk in chunks {
            SearchExecutor.scan(request, chunk.batch, minStart: chunk.minStart, maxStart: chunk.maxStart, rows: chunk.rows(of: id), &found, &ignored)
        }
        var summary = SearchExecutor.summarize(id, in: chunks)
        summary.matchedSpans = found[id]?.spans ?? []
        return summary
    }

    static func same(_ got: TraceSummary, _ expected: TraceSummary) -> Bool {
        got.traceID == expected.traceID && got.rootServiceName == expected.rootServiceName && got.rootTraceName == expected.rootTraceName
            && got.startNanos == expected.startNanos && got.durationNanos == expected.durationNanos
            && got.serviceStats.map { "\($0.service) \($0.spans) \($0.errors)" } == expected.serviceStats.map { "\($0.service) \($0.spans) \($0.errors)" }
            && got.matchedSpans.map { "\($0.spanID) \($0.name) \($0.startNanos) \($0.durationNanos)" }
                == expected.matchedSpans.map { "\($0.spanID) \($0.name) \($0.startNanos) \($0.durationNanos)" }
    }

    @Test(arguments: [
        [TagCondition(key: "kind", value: "client")],
        [TagCondition(key: "status", value: "error")],
        [TagCondition(scope: .span, key: "gen_ai.request.model", value: "gpt-4o-mini"), TagCondition(key: "kind", value: "client")],
        [TagCondition(scope: .resource, key: "service.name", value: "tfy-llm-gateway")],
    ])
    func test_tagSearchSummaries_equalTraceLookups(_ conditions: [TagCondition]) throws {
        let batches = AggregationTests.traffic(seed: 61)
        let (head, mixed) = try AggregationTests.engines(batches)
        // The first request's spans once more in the head: spans held by a block and the head count once
        // (the head's block check off, as copies written before it existed).
        mixed.head.setStoredCheck(nil)
        mixed.head.append(batches[0], org: "o", segment: 3)
        // Head only, with one trace's spans in two placements (a span may repeat across them).
        head.head.append(batches[1], org: "o", placement: "other", segment: 1)
        var request = SearchRequest()
        request.conditions = conditions
        request.minDurationNanos = 1
        request.startNanos = Self.base
        request.endNanos = Self.base + 7 * Self.minute
        request.limit = 10_000
        request.spansPerSpanSet = 3
        #expect(!SearchExecutor.isColumnar(request))
        var split = 0
        for engine in [head, mixed] {
            let snapshot = engine.snapshot(org: "o")
            let matches = try SearchExecutor.partial(request, snapshot: snapshot, store: engine.store)
            let result = try SearchExecutor.result(request, matches, snapshot: snapshot, store: engine.store)
            #expect(result.traces.count == matches.traces.count)
            #expect(result.traces.count > 10)
            for got in result.traces {
                let expected = try Self.lookedUp(request, got.traceID, snapshot, engine.store)
                #expect(Self.same(got, expected), "trace \(got.traceID)")
                if !snapshot.chunks.allSatisfy({ $0.rows(of: got.traceID).isEmpty }), !(try TraceLookup.blockChunks(got.traceID, snapshot: snapshot, store: engine.store)).isEmpty {
                    split += 1
                }
            }
            // The one-call search (matches and summaries) agrees as well.
            let direct = try SearchExecutor.search(request, snapshot: snapshot, store: engine.store)
            #expect(direct.traces.map(\.traceID) == result.traces.map(\.traceID))
            // (Its matching spans come from the scan itself, copies held twice included, as before.)
            for (a, b) in zip(direct.traces, result.traces) {
                var a = a
                a.matchedSpans = b.matchedSpans
                #expect(Self.same(a, b))
            }
        }
        #expect(split > 0)
    }
}
