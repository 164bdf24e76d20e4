import Testing
import WeftAggregates

@Suite struct SketchMergeTests {
    static func sketch(_ values: [Double]) -> QuantileSketch {
        var s = QuantileSketch()
        for v in values { s.add(v) }
        return s
    }

    /// Merging sketches whose bins lie below, inside, above and around each other's equals one
    /// sketch of all their values, and leaves the merged-in sketch as it was.
    @Test func test_merge_widensEitherSide_equalsSketchOfUnion() {
        let parts: [[Double]] = [[100, 120, 130], [1, 2, 3], [110, 115], [1e6, 2e6], [-5, -50, 0.5, 5e7], [125]]
        var merged = QuantileSketch()
        for p in parts {
            let part = Self.sketch(p)
            merged.merge(part)
            #expect(part == Self.sketch(p))
        }
        let all = Self.sketch(parts.flatMap { $0 })
        #expect(merged == all)
        for q in [0.0, 0.1, 0.5, 0.9, 1.0] { #expect(merged.quantile(q) == all.quantile(q)) }
    }

    /// Edges of one (parent, child) pair add up in place; an edge added stays unchanged in its
    /// other copies (its sketch shares no storage with the sum).
    @Test func test_serviceMapAdd_sumsPairs_leavesAddedEdgesAlone() {
        var map = ServiceMapPartial()
        let a = ServiceMapEdge(parent: "api", child: "db", calls: 2, errors: 1, latency: Self.sketch([10, 20]))
        let b = ServiceMapEdge(parent: "api", child: "db", calls: 3, errors: 0, latency: Self.sketch([5, 4000]))
        let c = ServiceMapEdge(parent: "api", child: "cache", calls: 1, errors: 0, latency: Self.sketch([7]))
        map.add(a)
        map.add(b)
        map.add(c)
        map.add(a)
        #expect(a.latency == Self.sketch([10, 20]))
        let edges = map.sorted
        #expect(edges.map(\.child) == ["cache", "db"])
        #expect(edges[1].calls == 7 && edges[1].errors == 2)
        #expect(edges[1].latency == Self.sketch([10, 20, 5, 4000, 10, 20]))
        #expect(edges[0] == c)
    }
}
