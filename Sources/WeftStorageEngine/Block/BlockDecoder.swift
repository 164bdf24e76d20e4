import WeftModel

/// Readers for the value layouts the block encoder writes.
extension BlockCodec {
    static func checkedValue(_ type: UInt8, _ v: UInt64, _ stringCount: Int) throws(BlockFormatError) -> UInt64 {
        if (ValueType(rawValue: type) ?? .empty).isInterned && v >= UInt64(stringCount) {
            throw BlockFormatError("attribute value ID \(v) outside the dictionary")
        }
        return v
    }

    static func readValues(_ r: inout ByteReader, count: Int) throws(BlockFormatError) -> (types: [UInt8], values: [UInt64]) {
        let types = try r.packed8()
        guard types.count == count else { throw BlockFormatError("attribute types have the wrong count") }
        let ids = try r.packed()
        let ints = try r.packed()
        let doubleCount = try r.count(max: count)
        var doubles: [UInt64] = []
        for _ in 0..<doubleCount { doubles.append(try r.fixed64()) }
        let bools = try r.packed()
        var values: [UInt64] = []
        values.reserveCapacity(count)
        var (i, j, k, b) = (0, 0, 0, 0)
        for t in types {
            switch ValueType(rawValue: t) ?? .empty {
            case .string, .array, .kvlist, .bytes:
                guard i < ids.count else { throw BlockFormatError("attribute ID values run short") }
                values.append(ids[i])
                i += 1
            case .int:
                guard j < ints.count else { throw BlockFormatError("attribute integer values run short") }
                values.append(UInt64(bitPattern: unzigzag(ints[j])))
                j += 1
            case .double:
                guard k < doubles.count else { throw BlockFormatError("attribute double values run short") }
                values.append(doubles[k])
                k += 1
            case .bool:
                guard b < bools.count else { throw BlockFormatError("attribute bool values run short") }
                values.append(bools[b])
                b += 1
            case .empty:
                values.append(0)
            }
        }
        return (types, values)
    }

    static func readFlatAttributes(_ r: inout ByteReader, _ stringCount: Int) throws(BlockFormatError) -> AttributeColumns {
        let keys = try r.packed32()
        let (types, values) = try readValues(&r, count: keys.count)
        var attrs = AttributeColumns()
        for i in 0..<keys.count {
            guard Int(keys[i]) < stringCount else { throw BlockFormatError("attribute key outside the dictionary") }
            attrs.append(key: keys[i], type: ValueType(rawValue: types[i]) ?? .empty, value: try checkedValue(types[i], values[i], stringCount))
        }
        return attrs
    }

    static func readOwnedAttributes(_ r: inout ByteReader, _ stringCount: Int) throws(BlockFormatError) -> ([UInt64], AttributeColumns) {
        let counts = try r.packed()
        let attrs = try readFlatAttributes(&r, stringCount)
        guard Int(counts.reduce(0, +)) == attrs.count else { throw BlockFormatError("owned attribute counts disagree") }
        return (counts, attrs)
    }
}
