import Testing
import WeftModel
@testable import WeftQuery
@testable import WeftStorageEngine

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
}
