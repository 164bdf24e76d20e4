/// Reads and checks the columns of a ``SpanBatchCodec`` payload; every read is bounds-checked and
/// every reference validated, so a hostile payload throws instead of trapping.
struct ColumnReader: BatchColumnVisitor {
    typealias DecodeError = SpanBatchCodec.DecodeError
    typealias Failure = DecodeError

    let base: UnsafeRawPointer
    let end: Int
    var at: Int
    /// Row counts by ``BatchTable``.
    let rows: [Int]
    /// Strings in the decoded table (known once the strings are read).
    var stringCount: Int
    /// Columns read so far (for error messages).
    private var columnNumber = 0

    init(base: UnsafeRawPointer, end: Int, at: Int, rows: [Int], strings: Int) {
        self.base = base
        self.end = end
        self.at = at
        self.rows = rows
        self.stringCount = strings
    }

    /// Reads the string lengths and bytes, interning them after the well-known strings.
    mutating func strings(count: Int, bytes: Int, into table: inout StringTable) throws(DecodeError) {
        let lengths: [UInt32] = try self.read(count, allowConstant: false, "string lengths")
        var total = 0
        for length in lengths { total += Int(length) }
        guard total == bytes else {
            throw DecodeError("span batch string lengths add up to \(total) bytes, the header says \(bytes)")
        }
        try self.need(bytes, "string bytes")
        var start = self.at
        for (i, length) in lengths.enumerated() {
            let id = table.intern(UnsafeRawBufferPointer(start: self.base + start, count: Int(length)))
            guard Int(id) == WellKnown.all.count + i else {
                throw DecodeError("span batch string \(WellKnown.all.count + i) repeats string \(id)")
            }
            start += Int(length)
        }
        self.at += bytes
    }

    mutating func column<T: FixedWidthInteger>(_ values: inout [T], _ rule: ColumnRule) throws(DecodeError) {
        self.columnNumber += 1
        let what = "column \(self.columnNumber) (\(rule.table))"
        if case .counts = rule {
            let stored: [UInt64] = try self.read(rule.count(self.rows), allowConstant: true, what)
            values = stored.map { T(truncatingIfNeeded: ColumnRule.absentFromZero($0)) }
            return
        }
        values = try self.read(rule.count(self.rows), allowConstant: rule.allowsConstant, what)
        switch rule {
        case .plain, .anchor, .counts:
            break
        case .strings, .anchorStrings:
            try Self.check(values, below: self.stringCount, "string ID", what)
        case .index(_, let into):
            try Self.check(values, below: self.rows[into.rawValue], "\(into) row", what)
        case .offsets(_, let of):
            try Self.checkOffsets(values, total: self.rows[of.rawValue], what)
        }
    }

    mutating func floats(_ values: inout [Double], _ table: BatchTable) throws(DecodeError) {
        self.columnNumber += 1
        let bits: [UInt64] = try self.read(self.rows[table.rawValue], allowConstant: true, "column \(self.columnNumber) (\(table))")
        values = bits.map { Double(bitPattern: $0) }
    }

    mutating func attributes(_ attrs: inout AttributeColumns, _ table: BatchTable) throws(DecodeError) {
        self.columnNumber += 1
        let what = "attributes \(self.columnNumber) (\(table))"
        let n = self.rows[table.rawValue]
        attrs.keys = try self.read(n, allowConstant: false, what)
        attrs.types = try self.read(n, allowConstant: true, what)
        attrs.values = try self.read(n, allowConstant: true, what)
        try Self.check(attrs.keys, below: self.stringCount, "string ID", what)
        for i in 0..<n {
            guard let type = ValueType(rawValue: attrs.types[i]) else {
                throw DecodeError("span batch \(what): attribute \(i) has unknown value type \(attrs.types[i])")
            }
            let value = attrs.values[i]
            if type.isInterned ? value >= UInt64(self.stringCount) : (type == .bool && value > 1) {
                throw DecodeError("span batch \(what): attribute \(i) of type \(type) has invalid value \(value)")
            }
        }
    }

    private mutating func need(_ bytes: Int, _ what: String) throws(DecodeError) {
        guard bytes <= self.end - self.at else {
            throw DecodeError("span batch is torn: \(what) needs \(bytes) bytes at offset \(self.at), \(self.end - self.at) remain")
        }
    }

    /// One column of `count` values (see ``ColumnWriter/put(_:allowConstant:)``).
    mutating func read<T: FixedWidthInteger>(_ count: Int, allowConstant: Bool, _ what: String) throws(DecodeError) -> [T] {
        let size = MemoryLayout<T>.size
        try self.need(1, what)
        let width = Int(self.base.load(fromByteOffset: self.at, as: UInt8.self))
        self.at += 1
        if width == 0 {
            guard allowConstant else { throw DecodeError("span batch \(what) cannot be a constant") }
            try self.need(size, what)
            let value = T(littleEndian: self.base.loadUnaligned(fromByteOffset: self.at, as: T.self))
            self.at += size
            return [T](repeating: value, count: count)
        }
        guard width == 1 || width == 2 || width == 4 || width == 8, width <= size else {
            throw DecodeError("span batch \(what) has invalid width \(width) for \(size)-byte values")
        }
        // `count` is at most the payload size (checked against the header), so this cannot overflow.
        try self.need(count * width, what)
        let p = self.base + self.at
        let values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if width == size {
                #if _endian(little)
                if count > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: p, byteCount: count * size) }
                #else
                for i in 0..<count { buffer[i] = T(littleEndian: p.loadUnaligned(fromByteOffset: i * size, as: T.self)) }
                #endif
            } else if width == 1 {
                for i in 0..<count { buffer[i] = T(truncatingIfNeeded: p.load(fromByteOffset: i, as: UInt8.self)) }
            } else if width == 2 {
                for i in 0..<count { buffer[i] = T(truncatingIfNeeded: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            } else {
                for i in 0..<count { buffer[i] = T(truncatingIfNeeded: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            }
            initialized = count
        }
        self.at += count * width
        return values
    }

    private static func check<T: FixedWidthInteger>(_ values: [T], below limit: Int, _ noun: String, _ what: String) throws(DecodeError) {
        var largest: UInt64 = 0
        for v in values { largest = max(largest, UInt64(truncatingIfNeeded: v)) }
        if !values.isEmpty && largest >= UInt64(limit) {
            throw DecodeError("span batch \(what): \(noun) \(largest) is out of range (\(limit) exist)")
        }
    }

    private static func checkOffsets<T: FixedWidthInteger>(_ offsets: [T], total: Int, _ what: String) throws(DecodeError) {
        var descending = false
        for i in 1..<offsets.count { descending = descending || offsets[i] < offsets[i - 1] }
        guard offsets[0] == 0, !descending, UInt64(truncatingIfNeeded: offsets[offsets.count - 1]) == UInt64(total) else {
            throw DecodeError("span batch \(what): offsets must rise from 0 to \(total)")
        }
    }
}
