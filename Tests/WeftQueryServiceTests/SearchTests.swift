import Foundation
import Testing
import WeftModel
import WeftOTLP
import WeftQuery
import WeftQueryService
import WeftStorageEngine
import WeftTestSupport

struct SearchTests {
    /// Three traces: a gateway call for acme/gpt-4o (error), one for globex/claude, one DB-only trace.
    static func head() -> Head {
        let head = Head(configuration: .init(chunkSpans: 3))
        let t1 = TraceID(high: 1, low: 1)
        let t2 = TraceID(high: 2, low: 2)
        let t3 = TraceID(high: 0, low: 3)
        let s = 1_700_000_000_000_000_000 as UInt64
        let requests: [[(service: String, spans: [TestSpan])]] = [
            [
                ("checkout", [TestSpan(traceID: t1, spanID: 1, name: "POST /buy", kind: 2, start: s, end: s + 900_000_000)]),
                ("tfy-llm-gateway", [
                    TestSpan(traceID: t1, spanID: 2, parentSpanID: 1, name: "chat gpt-4o", kind: 3, start: s + 1_000, end: s + 800_000_000,
                             statusCode: 2,
                             attributes: [("tenant_id", .string("acme")), ("gen_ai.system", .string("openai")),
                                          ("gen_ai.request.model", .string("gpt-4o")), ("retries", .int(2))]),
                ]),
            ],
            [
                ("tfy-llm-gateway", [
                    TestSpan(traceID: t2, spanID: 3, name: "chat claude", kind: 3, start: s + 10_000_000_000, end: s + 10_050_000_000,
                             attributes: [("tenant_id", .string("globex")), ("gen_ai.provider.name", .string("anthropic")),
                                          ("gen_ai.request.model", .string("claude-sonnet")), ("cached", .bool(true))]),
                ]),
            ],
            [("postgres", [TestSpan(traceID: t3, spanID: 4, name: "SELECT", start: s + 20_000_000_000, end: s + 20_001_000_000)])],
        ]
        var decoder = OTLPProtobufDecoder()
        for r in requests {
            var batch = SpanBatch()
            let bytes = RequestBuilder.request(r)
            _ = try! bytes.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            head.append(batch, org: "o")
        }
        return head
    }

    static func search(_ params: [String: String]) throws -> SearchResult {
        let request = try SearchRequest(parameters: params)
        return SearchExecutor.search(request, in: head().snapshot(org: "o"))
    }

    @Test func test_logfmt_parsesQuotedValuesAndScopes() throws {
        let c = try Logfmt.parse(#"service.name=checkout http.url="a b \"c\"" span.x=1 resource.region=eu"#)
        #expect(c == [
            TagCondition(key: "service.name", value: "checkout"),
            TagCondition(key: "http.url", value: #"a b "c""#),
            TagCondition(scope: .span, key: "x", value: "1"),
            TagCondition(scope: .resource, key: "region", value: "eu"),
        ])
        #expect(throws: QueryError.self) { try Logfmt.parse("novalue") }
        #expect(throws: QueryError.self) { try Logfmt.parse(#"a="unterminated"#) }
    }

    @Test func test_goDuration_parsesUnits() {
        #expect(GoDuration.parse("100ms") == 100_000_000)
        #expect(GoDuration.parse("1.5s") == 1_500_000_000)
        #expect(GoDuration.parse("2h45m") == 9_900_000_000_000)
        #expect(GoDuration.parse("10us") == 10_000)
        #expect(GoDuration.parse("abc") == nil)
        #expect(GoDuration.parse("10") == nil)
    }

    @Test func test_badParameters_nameTheParameter() {
        for (params, name) in [
            (["limit": "-1"], "limit"), (["limit": "x"], "limit"), (["start": "yesterday"], "start"),
            (["minDuration": "fast"], "minDuration"), (["start": "200", "end": "100"], "end"),
            (["minDuration": "2s", "maxDuration": "1s"], "maxDuration"), (["tags": "=x"], "tags"),
        ] {
            do {
                _ = try SearchRequest(parameters: params)
                Issue.record("expected an error for \(params)")
            } catch {
                #expect(error.message.contains("'\(name)'"), "\(error.message)")
            }
        }
    }

    @Test func test_tagsAreAnANDOfExactMatches_onSpanResourceAndIntrinsics() throws {
        #expect(try Self.search(["tags": "tenant_id=acme"]).traces.map(\.traceID) == [TraceID(high: 1, low: 1)])
        #expect(try Self.search(["tags": "tenant_id=acm"]).traces.isEmpty)  // exact, not substring
        #expect(try Self.search(["tags": "tenant_id=acme gen_ai.request.model=claude-sonnet"]).traces.isEmpty)
        #expect(try Self.search(["tags": "service.name=tfy-llm-gateway tenant_id=globex"]).traces.map(\.traceID) == [TraceID(high: 2, low: 2)])
        #expect(try Self.search(["tags": "status=error"]).traces.map(\.traceID) == [TraceID(high: 1, low: 1)])
        #expect(try Self.search(["tags": "name=SELECT"]).traces.map(\.traceID) == [TraceID(high: 0, low: 3)])
        #expect(try Self.search(["tags": "kind=client"]).traces.count == 2)
        // Deprecated gen_ai.system is found through the normalised provider column under either name.
        #expect(try Self.search(["tags": "gen_ai.provider.name=openai"]).traces.map(\.traceID) == [TraceID(high: 1, low: 1)])
        #expect(try Self.search(["tags": "gen_ai.system=anthropic"]).traces.map(\.traceID) == [TraceID(high: 2, low: 2)])
        // Typed values: ints and bools match their text.
        #expect(try Self.search(["tags": "retries=2"]).traces.count == 1)
        #expect(try Self.search(["tags": "cached=true"]).traces.count == 1)
        #expect(try Self.search(["tags": "resource.tenant_id=acme"]).traces.isEmpty)
    }

    @Test func test_durationTimeRangeAndLimit() throws {
        let slow = try Self.search(["minDuration": "500ms"]).traces
        #expect(slow.map(\.traceID) == [TraceID(high: 1, low: 1)])
        #expect(slow.first?.matched == 2)  // both spans of trace 1 last at least 500 ms
        #expect(try Self.search(["maxDuration": "2ms"]).traces.map(\.traceID) == [TraceID(high: 0, low: 3)])
        #expect(try Self.search(["start": "1700000015", "end": "1700000030"]).traces.count == 1)
        let all = try Self.search([:])
        #expect(all.traces.map(\.traceID) == [TraceID(high: 0, low: 3), TraceID(high: 2, low: 2), TraceID(high: 1, low: 1)])
        #expect(try Self.search(["limit": "1"]).traces.count == 1)
        #expect(all.stats.inspectedSpans == 4)
    }

    @Test func test_summary_usesTheRootSpan() throws {
        let t1 = try Self.search(["tags": "tenant_id=acme"]).traces[0]
        #expect(t1.rootServiceName == "checkout")
        #expect(t1.rootTraceName == "POST /buy")
        #expect(t1.durationNanos == 900_000_000)
        #expect(t1.serviceStats.map(\.service) == ["checkout", "tfy-llm-gateway"])
        #expect(t1.serviceStats[1].errors == 1)
        let body = QueryResponses.search(try Self.search(["tags": "tenant_id=acme"]))
        let json = try JSONSerialization.jsonObject(with: Data(body)) as! [String: Any]
        let traces = json["traces"] as! [[String: Any]]
        #expect(traces[0]["traceID"] as? String == "10000000000000001")
        #expect(traces[0]["durationMs"] as? Int == 900)
    }

    @Test func test_traceJSON_tempoShape() throws {
        let chunks = Self.head().snapshot(org: "o")
        #expect(TraceRenderer.json(TraceID(high: 9, low: 9), in: chunks, shape: .v1) == nil)
        let body = try #require(TraceRenderer.json(TraceID(high: 1, low: 1), in: chunks, shape: .v1))
        let json = try JSONSerialization.jsonObject(with: Data(body)) as! [String: Any]
        let batches = json["batches"] as! [[String: Any]]
        #expect(batches.count == 2)
        let spans = batches.flatMap { (($0["scopeSpans"] as! [[String: Any]]).flatMap { $0["spans"] as! [[String: Any]] }) }
        #expect(spans.count == 2)
        let gateway = spans.first { $0["name"] as? String == "chat gpt-4o" }!
        #expect(gateway["traceId"] as? String == Base64.encode(TraceID(high: 1, low: 1).bytes))
        #expect(gateway["parentSpanId"] as? String == Base64.encode(Hex.bytes(1)))
        #expect(gateway["kind"] as? String == "SPAN_KIND_CLIENT")
        #expect((gateway["status"] as! [String: Any])["code"] as? String == "STATUS_CODE_ERROR")
        let attrs = gateway["attributes"] as! [[String: Any]]
        let retries = attrs.first { $0["key"] as? String == "retries" }!["value"] as! [String: Any]
        #expect(retries["intValue"] as? String == "2")
        let v2 = try #require(TraceRenderer.json(TraceID(high: 1, low: 1), in: chunks, shape: .v2))
        let j2 = try JSONSerialization.jsonObject(with: Data(v2)) as! [String: Any]
        #expect(j2["status"] as? String == "COMPLETE")
    }

    @Test func test_tagNamesAndValues() throws {
        let chunks = Self.head().snapshot(org: "o")
        let names = try TagCatalog.names(in: chunks, scope: nil)
        #expect(names.span.contains("tenant_id"))
        #expect(names.resource == ["service.name"])
        #expect(throws: QueryError.self) { try TagCatalog.names(in: chunks, scope: "bogus") }
        let snapshot = StorageEngine.Snapshot(chunks: chunks, blocks: [])
        let store = BlockStore(disk: SimulatedDisk(), directory: "/b")
        func values(_ tag: String, limit: Int = 10) throws -> [GroupValue] {
            try DistinctValues.values(of: try TraceQLField.list(parsing: tag)[0], limit: limit, snapshot: snapshot, store: store).values
        }
        #expect(try values("tenant_id") == [.string("acme"), .string("globex")])
        #expect(try values("service.name") == [.string("checkout"), .string("postgres"), .string("tfy-llm-gateway")])
        #expect(try values("service.name", limit: 2).count == 2)
        #expect(try values("status") == [.string("error"), .string("unset")])
    }
}
