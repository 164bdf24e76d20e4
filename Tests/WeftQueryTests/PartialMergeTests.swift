import Testing
import WeftAggregates
import WeftModel
@testable import WeftQuery

@Suite struct PartialMergeTests {
    static func cells() -> [ValueSummary] {
        var out: [ValueSummary] = [ValueSummary()]
        var integer = ValueSummary()
        integer.add(integer: -7)
        integer.add(integer: 1 << 40)
        out.append(integer)
        var float = ValueSummary()
        for v in [1e16, 1.0, -1e16, 0.1] { float.add(v) }
        out.append(float)
        var small = ValueSummary()
        for v in [0.3, -2.5e-8, 7.25] { small.add(v) }
        out.append(small)
        var big = ValueSummary()
        big.add(-3e17)
        out.append(big)
        return out
    }

    /// A whole column merged at once (into a mapping of groups with some not taken) gives each
    /// cell exactly what merging cell by cell gives: every lane to the bit.
    @Test func test_columnMerge_equalsCellByCellMerge_toTheBit() {
        let steps = 3
        let cells = Self.cells()
        let groups = 4
        var into = AggregateColumn(kind: .values)
        var from = AggregateColumn(kind: .values)
        into.grow(by: groups * steps)
        from.grow(by: groups * steps)
        for i in 0..<(groups * steps) {
            into.setSummary(i, cells[i % cells.count])
            from.setSummary(i, cells[(i * 3 + 1) % cells.count])
        }
        let target = [2, -1, 0, 3]
        var byCell = into
        for g in target.indices where target[g] >= 0 {
            for s in 0..<steps { byCell.merge(cell: target[g] * steps + s, from: from, cell: g * steps + s) }
        }
        into.merge(from, into: target, steps: steps)
        for i in 0..<(groups * steps) {
            let (x, y) = (into.summary(i), byCell.summary(i))
            #expect(x.count == y.count && x.integerSum == y.integerSum && x.floatSum.bitPattern == y.floatSum.bitPattern)
            #expect(x.compensation.bitPattern == y.compensation.bitPattern && x.min.bitPattern == y.min.bitPattern && x.max.bitPattern == y.max.bitPattern)
        }
        var counts = AggregateColumn(kind: .count)
        var more = AggregateColumn(kind: .count)
        counts.grow(by: groups * steps)
        more.grow(by: groups * steps)
        for i in 0..<(groups * steps) {
            counts.counts[i] = UInt64(i)
            more.counts[i] = UInt64(100 + i)
        }
        counts.merge(more, into: target, steps: steps)
        let expected: [UInt64] = [106, 108, 110, 3, 4, 5, 106, 108, 110, 118, 120, 122]
        #expect(counts.counts == expected)
    }

    /// One group-by field finds groups by field code alone: lookups, merges and the wire form
    /// still find every group, and a decoded partial listing a group twice is refused.
    @Test func test_oneFieldPartial_findsGroups_refusesDuplicates() throws {
        let query = AggregationQuery(groupBy: [.attribute(.span, "tenant_id")], aggregates: [.count], startNanos: 0, endNanos: 10)
        var a = AggregationPartial(query)
        var b = AggregationPartial(query)
        for t in ["x", "y", "z"] { a.columns[0].counts[a.group([.string(t)])] += 1 }
        for t in ["z", "w"] { b.columns[0].counts[b.group([.string(t)])] += 10 }
        #expect(a.group(of: [.string("y")]) == 1 && a.group(of: [.string("w")]) == nil)
        a.merge(b)
        #expect(a.keys == [[.string("x")], [.string("y")], [.string("z")], [.string("w")]])
        #expect(a.columns[0].counts == [1, 1, 11, 10])
        let decoded = try AggregationPartial.decode(a.encoded(), query)
        #expect(decoded.sameContents(as: a) && decoded.group(of: [.string("w")]) == 3)
        // Version 2, one step, one count column, one field with values "x" and "y", groups of codes
        // 0, 1 and `third`, their counts, six statistics.
        func wire(_ third: UInt64) -> [UInt8] {
            var w = ByteWriter()
            for v: UInt64 in [2, 1, 1, 0, 1, 3] { w.varint(v) }
            w.groupValue(.string("x"))
            w.groupValue(.string("y"))
            w.groupValue(.string("z"))
            for v: UInt64 in [3, 0, 1, third, 4, 4, 4, 0, 0, 0, 0, 0, 0] { w.varint(v) }
            return w.bytes
        }
        #expect(try AggregationPartial.decode(wire(2), query).group(of: [.string("z")]) == 2)
        #expect(throws: BlockFormatError.self) { _ = try AggregationPartial.decode(wire(0), query) }
        #expect(throws: BlockFormatError.self) { _ = try AggregationPartial.decode(wire(3), query) }
    }

    /// A string given as bytes has the code the same string has as a value; bytes that are not
    /// UTF-8 take the code of their repaired string; a closed partial finds only its own strings.
    @Test func test_stringCodes_byBytes_agreeWithValues() {
        let query = AggregationQuery(groupBy: [.attribute(.span, "t"), .attribute(.span, "n")], aggregates: [.count], startNanos: 0, endNanos: 10)
        var p = AggregationPartial(query)
        func code(_ f: Int, _ bytes: [UInt8]) -> UInt32? { bytes.withUnsafeBytes { p.code(field: f, utf8: $0) } }
        let first = p.code(field: 0, .string("tenant-1"))
        #expect(code(0, Array("tenant-1".utf8)) == first)
        #expect(code(1, Array("tenant-1".utf8)) == 0, "fields number their values apart")
        let second = code(0, Array("tenant-2".utf8))
        #expect(second != first && p.code(field: 0, .string("tenant-2")) == second)
        #expect(p.code(field: 0, .int(7)) == 2 && p.code(field: 0, .absent) == 3)
        let repaired = p.code(field: 0, .string(String(decoding: [0x61, 0xFF], as: UTF8.self)))
        #expect(code(0, [0x61, 0xFF]) == repaired && code(0, [0x61, 0xFE]) == repaired)
        let g = p.group([.string("tenant-2"), .string("x")])
        #expect(p.group(of: [.string("tenant-2"), .string("x")]) == g && p.group(of: [.string("tenant-3"), .string("x")]) == nil)
        var closed = AggregationPartial.closed(query, to: [[.string("tenant-2"), .string("x")]])
        #expect(closed.code(field: 0, .string("tenant-1")) == nil)
        #expect(Array("tenant-1".utf8).withUnsafeBytes { closed.code(field: 0, utf8: $0) } == nil)
        #expect(Array("tenant-2".utf8).withUnsafeBytes { closed.code(field: 0, utf8: $0) } == 0)
    }

    /// The latest traces of a search partial, few of many or many, are those a full sort gives:
    /// latest match first, ties by trace ID.
    @Test(arguments: [0, 1, 3, 20, 150, 257, 600, 1999, 2000, 5000])
    func test_latestTraces_equalAFullSort(_ limit: Int) {
        var p = TraceMatchesPartial()
        var state: UInt64 = 42
        for i in 0..<2000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            // Few distinct starts: many ties, settled by trace ID.
            p.traces[TraceID(high: state >> 60, low: UInt64(i) &* 0x9E37_79B9)] = .init(latestStart: (state >> 33) % 97, matched: i % 5 + 1)
        }
        let expected = p.traces.sorted { a, b in a.value.latestStart != b.value.latestStart ? a.value.latestStart > b.value.latestStart : a.key < b.key }
            .prefix(limit).map(\.key)
        #expect(p.latest(limit).map(\.traceID) == Array(expected))
        #expect(p.latest(limit).map(\.matched) == expected.map { p.traces[$0]!.matched })
    }

    /// A slot map given room first keeps every key it is then given, as one that grows does.
    @Test func test_slotMap_reserved_keepsEveryKey() {
        var reserved = SlotMap()
        var grown = SlotMap()
        reserved.reserveSmall(5000)
        for k in 0..<5000 {
            let key = UInt64(k) &* 0x9E37_79B9 | UInt64(k) << 40
            reserved.put(key, 0, Int32(k))
            grown.put(key, 0, Int32(k))
        }
        reserved.put(7, 0, 1)
        for k in 0..<5000 {
            let key = UInt64(k) &* 0x9E37_79B9 | UInt64(k) << 40
            #expect(reserved.get(key, 0) == Int32(k) && grown.get(key, 0) == Int32(k))
        }
        #expect(reserved.get(7, 0) == 1 && grown.get(7, 0) == nil)
    }

    /// A three-field partial of many groups reads back whole from its wire form (its slot map
    /// sized once), and one listing a group twice is refused.
    @Test func test_threeFieldPartial_roundTrips_refusesDuplicates() throws {
        let query = AggregationQuery(
            groupBy: [.attribute(.span, "a"), .attribute(.span, "b"), .attribute(.span, "c")], aggregates: [.count], startNanos: 0, endNanos: 10
        )
        var p = AggregationPartial(query)
        for i in 0..<3000 {
            let g = p.group([.string("a\(i % 50)"), .string("b\(i / 50)"), .int(Int64(i % 7))])
            p.columns[0].counts[g] += UInt64(i)
        }
        let decoded = try AggregationPartial.decode(p.encoded(), query)
        #expect(decoded.groupCount == p.groupCount && decoded.sameContents(as: p))
        #expect(decoded.group(of: [.string("a3"), .string("b59"), .int(Int64(2953 % 7))]) == 2953)
        // Version 2, one step, one count column, three fields of two values each, two groups, their
        // counts, six statistics.
        func wire(_ second: UInt64) -> [UInt8] {
            var w = ByteWriter()
            for v: UInt64 in [2, 1, 1, 0, 3] { w.varint(v) }
            for _ in 0..<3 {
                w.varint(2)
                w.groupValue(.string("x"))
                w.groupValue(.string("y"))
            }
            for v: UInt64 in [2, 0, 0, 0, 0, 0, second, 5, 5, 0, 0, 0, 0, 0, 0] { w.varint(v) }
            return w.bytes
        }
        #expect(try AggregationPartial.decode(wire(1), query).groupCount == 2)
        #expect(throws: BlockFormatError.self) { _ = try AggregationPartial.decode(wire(0), query) }
    }
}
