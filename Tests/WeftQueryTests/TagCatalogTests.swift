import Testing
import WeftModel
import WeftStorageEngine
@testable import WeftQuery

@Suite struct TagCatalogTests {
    /// Tag names read from blocks' key lists equal those of every row group decoded in full, per
    /// scope, GenAI keys kept in typed columns included; and the whole catalog (head and blocks) equals
    /// that of the same spans held in the head alone.
    @Test(arguments: [5, 6] as [UInt64])
    func test_blockKeyLists_equalDecodedRowGroups(seed: UInt64) throws {
        let (head, mixed) = try AggregationTests.engines(AggregationTests.traffic(seed: seed))
        var blocksOnly = mixed.snapshot(org: "o")
        blocksOnly.chunks = []
        var span = Set<String>(), resource = Set<String>()
        for meta in blocksOnly.blocks {
            let reader = try mixed.store.reader(meta)
            for g in 0..<reader.groups.count {
                let b = try reader.decodedGroup(g, parts: [.attributes])
                for k in b.attrs.keys { span.insert(b.strings.string(k)) }
                for k in b.resourceAttrs.keys { resource.insert(b.strings.string(k)) }
            }
        }
        #expect(span.contains("gen_ai.request.model") && span.contains("gen_ai.usage.cost") && span.contains("tenant_id"))
        for scope in [nil, "all", "span", "resource"] as [String?] {
            let fromBlocks = try TagCatalog.names(scope: scope, snapshot: blocksOnly, store: mixed.store, blockSpans: 1 << 30)
            #expect(fromBlocks.stats.blocks == 2)
            #expect(fromBlocks.span == (scope == "resource" ? [] : span.sorted()), "scope \(String(describing: scope))")
            #expect(fromBlocks.resource == (scope == "span" ? [] : resource.sorted()), "scope \(String(describing: scope))")
            let all = try TagCatalog.names(scope: scope, snapshot: mixed.snapshot(org: "o"), store: mixed.store, blockSpans: 1 << 30)
            let inHead = try TagCatalog.names(scope: scope, snapshot: head.snapshot(org: "o"), store: head.store, blockSpans: 1 << 30)
            #expect(all.span == inHead.span && all.resource == inHead.resource, "scope \(String(describing: scope))")
        }
    }
}
