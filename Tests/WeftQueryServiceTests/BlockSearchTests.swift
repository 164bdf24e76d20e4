import Testing
import WeftLoad
import WeftModel
import WeftOTLP
import WeftQuery
import WeftQueryService
import WeftStorageEngine

/// Search over blocks (pruned by dictionary, group summaries and posting lists, decoding only the
/// needed parts) must answer exactly what the same search answers over the same spans in the head.
struct BlockSearchTests {
    static func traffic(seed: UInt64) -> [SpanBatch] {
        var generator = TrafficGenerator(profile: LoadProfile(seed: seed))
        var decoder = OTLPProtobufDecoder()
        return (0..<8).map { i in
            let body = generator.nextRequest(spans: 250, startTimeNanos: 1_764_460_800_000_000_000 + UInt64(i) * 60_000_000_000, spacingNanos: 50_000_000)
            var batch = SpanBatch()
            _ = try! body.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            return batch
        }
    }

    enum Value { case string(String), int(Int64), double(Double) }

    /// A span attribute read naively from the batch.
    static func attribute(_ b: SpanBatch, _ row: Int, _ key: String) -> Value? {
        guard let id = b.strings.lookup(key) else { return nil }
        for i in b.attrRange(row) where b.attrs.keys[i] == id {
            switch ValueType(rawValue: b.attrs.types[i]) {
            case .string: return .string(b.strings.string(UInt32(b.attrs.values[i])))
            case .int: return .int(Int64(bitPattern: b.attrs.values[i]))
            case .double: return .double(Double(bitPattern: b.attrs.values[i]))
            default: return nil
            }
        }
        return nil
    }

    @Test func test_searchOverBlocks_equalsSearchOverHead() throws {
        let batches = Self.traffic(seed: 5)
        // Reference: everything in the head.
        let reference = Head(configuration: .init(chunkSpans: 512))
        for b in batches { reference.append(b, org: "o") }
        // Under test: the first six requests flushed to blocks (small row groups), the rest in the head.
        let disk = SimulatedDisk()
        let engine = StorageEngine(
            head: Head(configuration: .init(chunkSpans: 512)), store: BlockStore(disk: disk, directory: "/b"),
            configuration: .init(blockOptions: .init(zstdLevel: 3, groupSpans: 128))
        )
        for (i, b) in batches.enumerated() { engine.head.append(b, org: "o", segment: i < 3 ? 1 : (i < 6 ? 2 : 3)) }
        try engine.flush(segment: 1)
        try engine.flush(segment: 2)
        #expect(engine.snapshot(org: "o").blocks.count == 2)

        // Pick real values from the data so searches match something.
        let sample = batches[1]
        func value(_ key: String) -> String {
            let id = sample.strings.lookup(key)!
            let i = (0..<sample.attrs.count).first { sample.attrs.keys[$0] == id && sample.attrs.types[$0] == ValueType.string.rawValue }!
            return sample.strings.string(UInt32(sample.attrs.values[i]))
        }
        let tenant = value("tenant_id"), user = value("user_id"), region = value("region"), model = value("gen_ai.request.model")
        let queries: [[String: String]] = [
            ["tags": "tenant_id=\(tenant)"],
            ["tags": "span.user_id=\(user)"],
            ["tags": "tenant_id=\(tenant) region=\(region)"],
            ["tags": "gen_ai.request.model=\(model) kind=client", "limit": "500"],
            ["tags": "status=error", "limit": "500"],
            ["tags": "region=\(region)", "minDuration": "2s", "limit": "500"],
            ["tags": "service.name=tfy-llm-gateway kind=client", "limit": "1000"],
            ["tags": "tenant_id=nobody"],
            ["tags": "region=\(region)", "start": "1764460860", "end": "1764461000", "limit": "1000"],
        ]
        for q in queries {
            let request = try SearchRequest(parameters: q)
            let expected = SearchExecutor.search(request, in: reference.snapshot(org: "o"))
            let got = try SearchExecutor.search(request, snapshot: engine.snapshot(org: "o"), store: engine.store)
            #expect(expected.traces.isEmpty == (q["tags"] == "tenant_id=nobody"), "\(q): \(expected.traces.count) traces")
            #expect(got.traces.map(\.traceID) == expected.traces.map(\.traceID), "\(q)")
            #expect(got.traces.map(\.matched) == expected.traces.map(\.matched), "\(q)")
            #expect(got.traces.map(\.durationNanos) == expected.traces.map(\.durationNanos), "\(q)")
            #expect(got.traces.map(\.rootServiceName) == expected.traces.map(\.rootServiceName), "\(q)")
            #expect(got.stats.inspectedTraces == expected.stats.inspectedTraces, "\(q)")
        }
        // TraceQL filters answer exactly what the equivalent tag searches answer, on head and blocks.
        let pairs: [(String, [String: String])] = [
            (#"{ span.tenant_id = "\#(tenant)" }"#, ["tags": "span.tenant_id=\(tenant)"]),
            (#"{ .tenant_id = "\#(tenant)" && .region = "\#(region)" }"#, ["tags": "tenant_id=\(tenant) region=\(region)"]),
            (#"{ status = error }"#, ["tags": "status=error"]),
            (#"{ resource.service.name = "tfy-llm-gateway" && kind = client && duration > 2s }"#, ["tags": "resource.service.name=tfy-llm-gateway kind=client", "minDuration": "2s"]),
        ]
        for (q, tags) in pairs {
            var withQ = tags
            withQ.removeValue(forKey: "tags")
            withQ.removeValue(forKey: "minDuration")
            withQ["q"] = q
            withQ["limit"] = "1000"
            var plain = tags
            plain["limit"] = "1000"
            let expected = SearchExecutor.search(try SearchRequest(parameters: plain), in: reference.snapshot(org: "o"))
            #expect(!expected.traces.isEmpty, "\(q)")
            for result in [
                SearchExecutor.search(try SearchRequest(parameters: withQ), in: reference.snapshot(org: "o")),
                try SearchExecutor.search(try SearchRequest(parameters: withQ), snapshot: engine.snapshot(org: "o"), store: engine.store),
            ] {
                #expect(result.traces.map(\.traceID) == expected.traces.map(\.traceID), "\(q)")
                #expect(result.traces.map(\.matched) == expected.traces.map(\.matched), "\(q)")
            }
        }
        // Regular expressions, ||, numeric comparisons: against a brute-force reading of the spans.
        let traceQLQueries: [(String, (SpanBatch, Int) -> Bool)] = [
            (#"{ span.gen_ai.request.model =~ "gpt-4.*" || span.gen_ai.usage.output_tokens > 900 }"#, { b, r in
                let m = Self.attribute(b, r, "gen_ai.request.model")
                if case .string(let s)? = m, s.hasPrefix("gpt-4") { return true }
                if case .int(let t)? = Self.attribute(b, r, "gen_ai.usage.output_tokens"), t > 900 { return true }
                return false
            }),
            (#"{ span.gen_ai.request.model !~ "gpt.*" && span.gen_ai.usage.cost >= 0.001 && name =~ "chat.*" }"#, { b, r in
                guard b.strings.string(b.name[r]).hasPrefix("chat") else { return false }
                guard case .string(let m)? = Self.attribute(b, r, "gen_ai.request.model"), !m.hasPrefix("gpt") else { return false }
                if case .double(let c)? = Self.attribute(b, r, "gen_ai.usage.cost") { return c >= 0.001 }
                return false
            }),
        ]
        for (q, predicate) in traceQLQueries {
            var expected = Set<TraceID>()
            for b in batches { for r in 0..<b.spanCount where predicate(b, r) { expected.insert(b.traceID(r)) } }
            #expect(!expected.isEmpty, "\(q)")
            let request = try SearchRequest(parameters: ["q": q, "limit": "10000"])
            let onHead = SearchExecutor.search(request, in: reference.snapshot(org: "o"))
            let onBlocks = try SearchExecutor.search(request, snapshot: engine.snapshot(org: "o"), store: engine.store)
            #expect(Set(onHead.traces.map(\.traceID)) == expected, "\(q)")
            #expect(onBlocks.traces.map(\.traceID) == onHead.traces.map(\.traceID), "\(q)")
        }
        #expect(throws: QueryError.self) { try SearchRequest(parameters: ["q": "{ .a = }"]) }
        #expect(throws: QueryError.self) { try SearchRequest(parameters: ["q": "{ } | rate()"]) }

        // A selective attribute query skips most row groups.
        let selective = try SearchExecutor.search(try SearchRequest(parameters: ["tags": "span.user_id=\(user)"]), snapshot: engine.snapshot(org: "o"), store: engine.store)
        #expect(selective.stats.skippedGroups > 0)
    }
}
