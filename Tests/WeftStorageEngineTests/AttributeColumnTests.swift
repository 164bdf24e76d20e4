import Testing
import WeftModel
@testable import WeftStorageEngine

/// A group's column of one span attribute, read in place from the inverted attribute section, equals
/// the first value of that key in each decoded row.
struct AttributeColumnTests {
    @Test(arguments: [3, 11] as [UInt64])
    func test_attributeColumn_equalsTheDecodedRows(seed: UInt64) throws {
        let batch = BlockCodecTests.generated(requests: 4, seed: seed)
        let (bytes, _) = BlockCodec.encode(batch, options: .init(zstdLevel: 1, groupSpans: 300))
        let reader = try BlockReader(bytes: bytes)
        #expect(reader.groups.count >= 3)
        let implied = Set(BlockCodec.impliedKeys.map(\.key))
        var checked = 0
        for g in 0..<reader.groups.count {
            let rows = try reader.decodedGroup(g)
            var keys = Set(rows.attrs.keys).subtracting(implied)
            // A string of the block that is no key of the group: every row absent.
            let absent = (0..<UInt32(reader.dictionary.count)).reversed().first { !keys.contains($0) && !implied.contains($0) }!
            keys.insert(absent)
            for key in keys.sorted() {
                var types = [UInt8](repeating: ColumnValues.absent, count: rows.spanCount)
                var values = [UInt64](repeating: 0, count: rows.spanCount)
                for row in 0..<rows.spanCount {
                    for a in Int(rows.attrOffsets[row])..<Int(rows.attrOffsets[row + 1])
                    where rows.attrs.keys[a] == key && types[row] == ColumnValues.absent {
                        types[row] = rows.attrs.types[a]
                        values[row] = rows.attrs.values[a]
                    }
                }
                let column = try reader.scanColumn(g, .attribute(key)).attributeTypesAndValues
                #expect(column.0 == types, "group \(g), key \(key)")
                #expect(column.1 == values, "group \(g), key \(key)")
                checked += 1
            }
        }
        #expect(checked > 20)
    }
}
