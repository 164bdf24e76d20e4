import Testing
import WeftModel
import WeftOTLP
@testable import WeftQuery
@testable import WeftStorageEngine
import WeftTestSupport

/// Sealed head chunks answer span-attribute equality through their posting lists: the same trace
/// matches and aggregates as a scan of chunks that have none (still being written).
struct HeadPostingsTests {
    static let base = AggregationTests.base
    static let minute = AggregationTests.minute

    @Test func test_postings_listEveryRowWithTheStringValue() {
        let batch = AggregationTests.traffic(seed: 71)[0]
        var chunk = HeadChunk(org: "o", batch: batch)
        chunk.buildPostings()
        let postings = chunk.postings!
        var checked = 0
        for key in Set(batch.attrs.keys) {
            for value in Set((0..<batch.attrs.count).filter { batch.attrs.keys[$0] == key && batch.attrs.types[$0] == ValueType.string.rawValue }.map { UInt32(batch.attrs.values[$0]) }) {
                let expected = (0..<batch.spanCount).filter { row in
                    batch.attrRange(row).contains { batch.attrs.keys[$0] == key && batch.attrs.types[$0] == ValueType.string.rawValue && UInt32(batch.attrs.values[$0]) == value }
                }.map { Int32($0) }
                #expect(Array(postings.rows(key: key, value: value)) == expected)
                checked += 1
            }
        }
        #expect(checked > 20)
        #expect(postings.rows(key: UInt32.max, value: 0).isEmpty)
        // A key's column from the lists is the one a scan of the rows builds.
        var columns = 0
        for key in Set(batch.attrs.keys) {
            let stringsOnly = (0..<batch.attrs.count).allSatisfy { batch.attrs.keys[$0] != key || batch.attrs.types[$0] == ValueType.string.rawValue }
            guard let column = postings.stringColumn(key: key) else {
                #expect(!stringsOnly, "key \(batch.strings.string(key)) has string values only")
                continue
            }
            guard case .stringAttribute(let scanned) = batch.scanColumn(.attribute(key)) else {
                Issue.record("key \(batch.strings.string(key)) scans to another form")
                continue
            }
            #expect(column == scanned)
            columns += 1
        }
        #expect(columns > 5 && columns < Set(batch.attrs.keys).count)
        #expect(postings.stringColumn(key: UInt32.max) == [UInt32](repeating: ColumnValues.absentID, count: batch.spanCount))
    }

    @Test(arguments: [
        "{ span.tenant_id = \"TENANT\" }",
        "{ span.tenant_id = \"TENANT\" && span.gen_ai.request.model = \"MODEL\" && span.region = \"REGION\" }",
        "{ .tenant_id = \"TENANT\" && kind = client }",
        "{ span.tenant_id = \"TENANT\" || span.region = \"REGION\" }",
        "{ span.tenant_id = \"no-such-tenant\" }",
        "{ span.tenant_id != \"TENANT\" && span.region = \"REGION\" }",
    ])
    func test_sealedChunks_answerAsAScan(_ traceQL: String) throws {
        let batches = AggregationTests.traffic(seed: 73)
        let sealed = StorageEngine(head: Head(configuration: .init(chunkSpans: 256)), store: BlockStore(disk: SimulatedDisk(), directory: "/s"))
        let open = StorageEngine(head: Head(configuration: .init(chunkSpans: 1_000_000)), store: BlockStore(disk: SimulatedDisk(), directory: "/o"))
        for b in batches {
            sealed.head.append(b, org: "o")
            open.head.append(b, org: "o")
        }
        #expect(sealed.snapshot(org: "o").chunks.filter { $0.postings != nil }.count > 3)
        #expect(open.snapshot(org: "o").chunks.allSatisfy { $0.postings == nil })
        // Values of the busiest tenant's first client span.
        func value(_ key: String, _ row: Int) -> String? {
            let b = batches[0]
            return b.attrRange(row).first { b.strings.string(b.attrs.keys[$0]) == key }.map { b.strings.string(UInt32(b.attrs.values[$0])) }
        }
        let row = (0..<batches[0].spanCount).first { value("tenant_id", $0) != nil && value("region", $0) != nil }!
        let model = batches[0].strings.string(batches[0].genAIRequestModel[row])
        let text = traceQL.replacing("TENANT", with: value("tenant_id", row)!).replacing("REGION", with: value("region", row)!)
            .replacing("MODEL", with: model)
        let filter = try TraceQLQuery(parsing: text).filter
        // Whole range and a window that cuts chunks.
        for (start, end) in [(Self.base, Self.base + 8 * Self.minute), (Self.base + Self.minute + 7, Self.base + 3 * Self.minute)] {
            func matches(_ e: StorageEngine) throws -> TraceMatchesPartial {
                var p = try TraceMatchExecutor.partial(filter, startNanos: start, endNanos: end, snapshot: e.snapshot(org: "o"), store: e.store)
                p.stats = ScanStats()
                return p
            }
            let expected = try matches(open)
            #expect(try matches(sealed) == expected)
            let query = AggregationQuery(
                filter: filter, groupBy: [.attribute(.span, "region")], aggregates: [.count, .sum(.attribute(.span, "gen_ai.usage.cost"))],
                startNanos: start, endNanos: end, stepNanos: Self.minute
            )
            let a = try AggregationExecutor.partial(query, snapshot: sealed.snapshot(org: "o"), store: sealed.store)
            let b = try AggregationExecutor.partial(query, snapshot: open.snapshot(org: "o"), store: open.store)
            #expect(a.sameContents(as: b))
        }
    }

    /// A sealed chunk keeps the attribute columns a scan builds; later scans read them and answer the
    /// same, and a copy of the chunk taken while it was still growing never reads them.
    @Test func test_sealedChunks_keepBuiltColumns() throws {
        let batches = AggregationTests.traffic(seed: 79)
        let engine = StorageEngine(head: Head(configuration: .init(chunkSpans: 256)), store: BlockStore(disk: SimulatedDisk(), directory: "/k"))
        let open = StorageEngine(head: Head(configuration: .init(chunkSpans: 1_000_000)), store: BlockStore(disk: SimulatedDisk(), directory: "/ko"))
        func rows(_ range: Range<Int>) -> SpanBatch {
            var part = SpanBatch()
            part.strings = batches[0].strings
            part.appendRows(Array(range), of: batches[0])
            return part
        }
        engine.head.append(rows(0..<100), org: "o")
        let growing = try #require(engine.snapshot(org: "o").chunks.last)
        engine.head.append(rows(100..<batches[0].spanCount), org: "o")
        for b in batches.dropFirst() { engine.head.append(b, org: "o") }
        for b in batches { open.head.append(b, org: "o") }
        let query = AggregationQuery(
            filter: try TraceQLQuery(parsing: "{ span.tenant_id != \"\" }").filter, groupBy: [.attribute(.span, "tenant_id")],
            aggregates: [.count, .sum(.attribute(.span, "gen_ai.usage.cost"))], startNanos: Self.base, endNanos: Self.base + 8 * Self.minute
        )
        let expected = try AggregationExecutor.partial(query, snapshot: open.snapshot(org: "o"), store: open.store)
        let first = try AggregationExecutor.partial(query, snapshot: engine.snapshot(org: "o"), store: engine.store)
        #expect(first.sameContents(as: expected))
        let sealed = engine.snapshot(org: "o").chunks.filter { $0.postings != nil }
        #expect(sealed.count > 3)
        for chunk in sealed {
            let key = try #require(chunk.batch.strings.lookup("tenant_id"))
            let kept = try #require(chunk.keptColumn(.attribute(key)))
            #expect(kept.bytes == chunk.spanCount * 4, "all tenant values are strings: 4 bytes a row")
            // The one column kept is what the chunk counts against the process-wide budget.
            #expect(chunk.derived.columns.withLock { $0.bytes } == kept.bytes)
        }
        #expect(HeadChunk.columnCacheBytes > 0)
        let second = try AggregationExecutor.partial(query, snapshot: engine.snapshot(org: "o"), store: engine.store)
        #expect(second.sameContents(as: expected))
        // The copy taken while the chunk grew: its rows only, never the sealed chunk's columns.
        #expect(growing.spanCount < 256 && growing.postings == nil)
        let key = try #require(growing.batch.strings.lookup("tenant_id"))
        #expect(growing.keptColumn(.attribute(key)) == nil)
        #expect(growing.scanColumn(.attribute(key)).bytes == growing.spanCount * 4)
    }

    /// A span that has a key twice is read by its first value there, as a scan reads it: a chunk
    /// holding one checks its posting-list rows again; chunks without one take the lists' word.
    @Test func test_repeatedKeys_answerAsAScan() throws {
        var spans: [TestSpan] = []
        for k in 0..<600 {
            let start = Self.base + UInt64(k) * 1_000_000
            var attributes: [(String, TestValue)] = [("tenant_id", .string("t\(k % 3)")), ("region", .string("r\(k % 2)"))]
            // In the first chunk only: span 5 says tenant t2 and then t0.
            if k == 5 { attributes.append(("tenant_id", .string("t0"))) }
            spans.append(TestSpan(traceID: TraceID(high: 1, low: UInt64(k / 4 + 1)), spanID: UInt64(k + 1), name: "call", start: start, end: start + 1000, attributes: attributes))
        }
        let sealed = StorageEngine(head: Head(configuration: .init(chunkSpans: 200)), store: BlockStore(disk: SimulatedDisk(), directory: "/r"))
        let open = StorageEngine(head: Head(configuration: .init(chunkSpans: 1_000_000)), store: BlockStore(disk: SimulatedDisk(), directory: "/ro"))
        var decoder = OTLPProtobufDecoder()
        for part in stride(from: 0, to: spans.count, by: 200) {
            var batch = SpanBatch()
            let bytes = RequestBuilder.request([("svc", Array(spans[part..<part + 200]))])
            _ = try bytes.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            sealed.head.append(batch, org: "o")
            open.head.append(batch, org: "o")
        }
        let chunks = sealed.snapshot(org: "o").chunks
        #expect(chunks.compactMap { $0.postings?.keysAreUnique } == [false, true, true])
        for text in ["{ span.tenant_id = \"t0\" && span.region = \"r1\" }", "{ span.tenant_id = \"t2\" }", "{ span.tenant_id = \"t0\" }"] {
            let filter = try TraceQLQuery(parsing: text).filter
            func matches(_ e: StorageEngine) throws -> TraceMatchesPartial {
                var p = try TraceMatchExecutor.partial(filter, startNanos: Self.base, endNanos: Self.base + Self.minute, snapshot: e.snapshot(org: "o"), store: e.store)
                p.stats = ScanStats()
                return p
            }
            #expect(try matches(sealed) == matches(open), "\(text)")
            let query = AggregationQuery(filter: filter, groupBy: [.attribute(.span, "region")], aggregates: [.count], startNanos: Self.base, endNanos: Self.base + Self.minute)
            let a = try AggregationExecutor.partial(query, snapshot: sealed.snapshot(org: "o"), store: sealed.store)
            let b = try AggregationExecutor.partial(query, snapshot: open.snapshot(org: "o"), store: open.store)
            #expect(a.sameContents(as: b), "\(text)")
        }
    }
    /// A chunk still taking rows keeps its span attribute columns and extends them as it grows:
    /// each read equals a scan of the rows the reader's copy holds, whatever the value types.
    @Test func test_openChunk_extendsItsAttributeColumns_asAScanOfItsRows() throws {
        var decoder = OTLPProtobufDecoder()
        func batch(_ range: Range<Int>) throws -> SpanBatch {
            let spans = range.map { k -> TestSpan in
                let start = Self.base + UInt64(k) * 1_000_000
                // The tenant is a string, but an integer in some spans after the first part, and absent in others.
                var attributes: [(String, TestValue)] = [("region", .string("r\(k % 5)"))]
                if k % 7 != 0 { attributes.append(("tenant_id", k >= 300 && k % 11 == 0 ? .int(Int64(k)) : .string("t\(k % 3)"))) }
                return TestSpan(traceID: TraceID(high: 2, low: UInt64(k / 4 + 1)), spanID: UInt64(k + 1), name: "call", start: start, end: start + 1000, attributes: attributes)
            }
            var batch = SpanBatch()
            let bytes = RequestBuilder.request([("svc", spans)])
            _ = try bytes.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            return batch
        }
        func same(_ a: ColumnValues, _ b: ColumnValues) -> Bool {
            switch (a, b) {
            case (.stringAttribute(let x), .stringAttribute(let y)): return x == y
            case (.attribute(let t, let v), .attribute(let u, let w)): return t == u && v == w
            default: return false
            }
        }
        let engine = StorageEngine(head: Head(configuration: .init(chunkSpans: 1_000_000, stripes: 1)), store: BlockStore(disk: SimulatedDisk(), directory: "/g"))
        var copies: [HeadChunk] = []
        for part in [0..<200, 200..<300, 300..<450, 450..<460] {
            engine.head.append(try batch(part), org: "o")
            let chunk = try #require(engine.snapshot(org: "o").chunks.first)
            #expect(chunk.postings == nil)
            copies.append(chunk)
            for name in ["tenant_id", "region"] {
                let key = try #require(chunk.batch.strings.lookup(name))
                let read = chunk.scanColumn(.attribute(key))
                #expect(same(read, chunk.batch.scanColumn(.attribute(key))), "\(name) over \(chunk.spanCount) rows")
                #expect(chunk.keptColumn(.attribute(key)) != nil, "kept for \(chunk.spanCount) rows")
            }
        }
        let tenant = try #require(copies[0].batch.strings.lookup("tenant_id"))
        guard case .attribute = copies[3].scanColumn(.attribute(tenant)) else {
            Issue.record("integer tenants make the column one of mixed types")
            return
        }
        // Copies taken before the chunk grew read their own rows only, from the longer column kept.
        for copy in copies.dropLast() {
            #expect(copy.keptColumn(.attribute(tenant)) == nil)
            #expect(same(copy.scanColumn(.attribute(tenant)), copy.batch.scanColumn(.attribute(tenant))), "\(copy.spanCount) rows")
        }
        // A filter over the open chunk matches what a chunk read from scratch matches.
        let filter = try TraceQLQuery(parsing: "{ span.tenant_id = \"t1\" && span.region = \"r2\" }").filter
        let fresh = StorageEngine(head: Head(configuration: .init(chunkSpans: 1_000_000, stripes: 1)), store: BlockStore(disk: SimulatedDisk(), directory: "/f"))
        fresh.head.append(try batch(0..<460), org: "o")
        func matches(_ e: StorageEngine) throws -> TraceMatchesPartial {
            var p = try TraceMatchExecutor.partial(filter, startNanos: Self.base, endNanos: Self.base + Self.minute, snapshot: e.snapshot(org: "o"), store: e.store)
            p.stats = ScanStats()
            return p
        }
        let expected = try matches(fresh)
        #expect(!expected.traces.isEmpty)
        #expect(try matches(engine) == expected)
    }
}
