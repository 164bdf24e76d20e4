import Testing
import WeftAggregates

@Suite struct QuantileSketchWireTests {
    static func sketch(_ values: [Double]) -> QuantileSketch {
        var s = QuantileSketch()
        for v in values { s.add(v) }
        return s
    }

    static func encoded(_ s: QuantileSketch) -> [UInt8] {
        var w = ByteWriter()
        s.encode(into: &w)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> QuantileSketch {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let s = try QuantileSketch.decode(&r)
            guard r.isAtEnd else { throw BlockFormatError("trailing bytes") }
            return s
        }
    }

    @Test func test_roundtrip_keepsEveryQuantile() throws {
        let s = Self.sketch((0..<500).map { Double($0 * $0) - 40_000 })
        let back = try Self.decode(Self.encoded(s))
        #expect(back == s)
        for q in [0.0, 0.5, 0.99, 1.0] { #expect(back.quantile(q) == s.quantile(q)) }
    }

    @Test func test_truncatedOrGarbage_throws() {
        let bytes = Self.encoded(Self.sketch([1, 2, 3, 1000]))
        for n in 0..<bytes.count {
            #expect(throws: BlockFormatError.self) { try Self.decode(Array(bytes.prefix(n))) }
        }
        var wrongVersion = bytes
        wrongVersion[0] = 9
        #expect(throws: BlockFormatError.self) { try Self.decode(wrongVersion) }
    }

    @Test func test_merge_isTheSketchOfTheUnion() {
        let values = (1...300).map { Double($0) * 1.5 }
        var merged = Self.sketch(Array(values[0..<100]))
        merged.merge(Self.sketch(Array(values[100...])))
        #expect(merged == Self.sketch(values))
    }
}
