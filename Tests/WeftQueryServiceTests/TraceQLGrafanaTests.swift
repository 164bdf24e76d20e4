import Testing
import WeftModel
import WeftQuery
import WeftQueryService
import WeftStorageEngine
import WeftTestSupport

/// What Grafana's TraceQL query builder writes: `nil` comparisons and scoped intrinsic spellings.
struct TraceQLGrafanaTests {
    @Test func test_nilComparisons_parse() throws {
        #expect(try TraceQLQuery(parsing: "{ span.x != nil }").filter == .comparison(.attribute(.span, "x"), .notEqual, .absent))
        #expect(try TraceQLQuery(parsing: "{ .x = nil }").filter == .comparison(.attribute(.any, "x"), .equal, .absent))
        #expect(throws: TraceQLError.self) { try TraceQLQuery(parsing: "{ span.x > nil }") }
        #expect(throws: TraceQLError.self) { try TraceQLQuery(parsing: "{ span.x =~ nil }") }
    }

    @Test func test_scopedIntrinsics_parseAsTheirUnscopedNames() throws {
        let spellings: [(String, TraceQLField.Intrinsic)] = [
            ("span:name = \"a\"", .name), ("span:status = error", .status), ("span:kind = server", .kind), ("span:duration > 1s", .duration),
            ("span:statusMessage = \"x\"", .statusMessage), ("trace:rootService = \"a\"", .rootServiceName),
            ("trace:rootName = \"a\"", .rootName), ("trace:duration > 1s", .traceDuration),
        ]
        for (text, intrinsic) in spellings {
            guard case .comparison(let field, _, _) = try TraceQLQuery(parsing: "{ \(text) }").filter else {
                Issue.record("\(text): not a comparison")
                continue
            }
            #expect(field == .intrinsic(intrinsic), "\(text)")
        }
        let metrics = try TraceQLQuery(parsing: "{ } | quantile_over_time(span:duration, .9) by (trace:rootService)").metrics
        #expect(metrics == TraceQLMetrics(function: .quantileOverTime(.intrinsic(.duration), [0.9]), by: [.intrinsic(.rootServiceName)]))
        do {
            _ = try TraceQLQuery(parsing: "{ event:name = \"x\" }")
            Issue.record("event:name parsed")
        } catch {
            #expect(error.position == 2 && error.message.contains("unsupported intrinsic 'event:name'"))
        }
    }

    /// Both evaluators (per-span over head chunks, and columnar) agree on who has an attribute.
    @Test func test_nilComparisons_selectSpansWithAndWithoutTheAttribute() throws {
        let head = SearchTests.head()
        let engine = StorageEngine(head: head, store: BlockStore(disk: SimulatedDisk(), directory: "/b"))
        let cases: [(String, Set<UInt64>)] = [
            ("{ span.cached != nil }", [3]),
            ("{ span.tenant_id = nil }", [1, 4]),
            ("{ .tenant_id != nil && span:kind = client }", [2, 3]),
            ("{ resource.service.name != nil }", [1, 2, 3, 4]),
            ("{ span.never_written != nil }", []),
            ("{ span.never_written = nil && span:name = \"SELECT\" }", [4]),
        ]
        for (q, spans) in cases {
            let request = try SearchRequest(parameters: ["q": q, "spss": "10"])
            let perSpan = SearchExecutor.search(request, in: head.snapshot(org: "o"))
            let columnar = try SearchExecutor.columnar(request, snapshot: engine.snapshot(org: "o"), store: engine.store)
            for result in [perSpan, columnar] {
                #expect(Set(result.traces.flatMap { $0.matchedSpans.map(\.spanID) }) == spans, "\(q)")
            }
        }
    }

    @Test func test_select_parsesAndRefusesWhatItCannotJoin() throws {
        let q = try TraceQLQuery(parsing: "{ status = error } | select(span.tenant_id, resource.service.name)")
        #expect(q.select == [.attribute(.span, "tenant_id"), .attribute(.resource, "service.name")] && q.metrics == nil)
        #expect(throws: TraceQLError.self) { try TraceQLQuery(parsing: "{ } | select(span.a) | rate()") }
        #expect(throws: TraceQLError.self) { try TraceQLQuery(parsing: "{ } | rate() | select(span.a)") }
        for structural in ["{ } >> { }", "{ .a = 1 } && { .b = 2 }", "{ } ~ { }", "{ } < { }"] {
            do {
                _ = try TraceQLQuery(parsing: structural)
                Issue.record("\(structural) parsed")
            } catch {
                #expect(error.message.contains("spanset operators"), "\(structural)")
            }
        }
        do {
            _ = try TraceQLQuery(parsing: "{ } | count() > 2")
            Issue.record("count() parsed")
        } catch {
            #expect(error.message.contains("the spanset stage '| count(…)' is not supported"))
        }
    }

    /// Matching spans carry the attributes the filter compares, then the selected ones.
    @Test func test_searchShowsComparedAndSelectedAttributes() throws {
        let engine = StorageEngine(head: SearchTests.head(), store: BlockStore(disk: SimulatedDisk(), directory: "/b"))
        let request = try SearchRequest(parameters: ["q": "{ span.tenant_id != nil } | select(span.retries, resource.service.name, span.absent)"])
        let result = try SearchExecutor.columnar(request, snapshot: engine.snapshot(org: "o"), store: engine.store)
        let shown = Dictionary(uniqueKeysWithValues: result.traces.flatMap(\.matchedSpans).map { s in
            (s.spanID, s.attributes.map { "\($0.key)=\($0.value)" })
        })
        #expect(shown[2] == ["tenant_id=acme", "retries=2", "service.name=tfy-llm-gateway"])
        #expect(shown[3] == ["tenant_id=globex", "service.name=tfy-llm-gateway"])
        #expect(shown.count == 2)
    }
}
