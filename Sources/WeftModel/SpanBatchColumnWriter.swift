/// Writes the columns of a ``SpanBatch`` in the layout of ``SpanBatchCodec``: for each column one pass
/// finds the narrowest width (or a constant), then a copy stores it.
struct ColumnWriter: BatchColumnVisitor {
    typealias Failure = Never
    let out: UnsafeMutableRawPointer
    /// Bytes written so far.
    var at = 0

    init(out: UnsafeMutableRawPointer) {
        self.out = out
    }

    mutating func byte(_ value: UInt8) {
        self.out.storeBytes(of: value, toByteOffset: self.at, as: UInt8.self)
        self.at += 1
    }

    mutating func uint32(_ value: UInt32) {
        self.out.storeBytes(of: value.littleEndian, toByteOffset: self.at, as: UInt32.self)
        self.at += 4
    }

    mutating func raw(_ bytes: UnsafeRawBufferPointer) {
        if let source = bytes.baseAddress, bytes.count > 0 {
            (self.out + self.at).copyMemory(from: source, byteCount: bytes.count)
        }
        self.at += bytes.count
    }

    /// The lengths of the strings whose table offsets (with the trailing end) are `offsets`.
    mutating func lengths(_ offsets: UnsafeBufferPointer<UInt32>) {
        let n = offsets.count - 1
        let lengths = [UInt32](unsafeUninitializedCapacity: n) { buffer, count in
            for i in 0..<n { buffer[i] = offsets[i + 1] &- offsets[i] }
            count = n
        }
        lengths.withUnsafeBufferPointer { self.put($0, allowConstant: false) }
    }

    mutating func column<T: FixedWidthInteger>(_ values: inout [T], _ rule: ColumnRule) {
        if case .counts = rule {
            let stored = values.map { ColumnRule.absentAsZero(Int64(truncatingIfNeeded: $0)) }
            stored.withUnsafeBufferPointer { self.put($0, allowConstant: true) }
            return
        }
        values.withUnsafeBufferPointer { self.put($0, allowConstant: rule.allowsConstant) }
    }

    mutating func floats(_ values: inout [Double], _ table: BatchTable) {
        values.withUnsafeBufferPointer { doubles in
            doubles.withMemoryRebound(to: UInt64.self) { self.put($0, allowConstant: true) }
        }
    }

    mutating func attributes(_ attrs: inout AttributeColumns, _ table: BatchTable) {
        attrs.keys.withUnsafeBufferPointer { self.put($0, allowConstant: false) }
        attrs.types.withUnsafeBufferPointer { self.put($0, allowConstant: true) }
        attrs.values.withUnsafeBufferPointer { self.put($0, allowConstant: true) }
    }

    /// One column: `[0][value]` when every value is the same (and `allowConstant`), else
    /// `[width][values in width bytes each]`.
    mutating func put<T: FixedWidthInteger>(_ values: UnsafeBufferPointer<T>, allowConstant: Bool) {
        let size = MemoryLayout<T>.size
        let first = values.first.map { UInt64(truncatingIfNeeded: $0) } ?? 0
        var bits: UInt64 = 0
        var differ: UInt64 = 0
        for v in values {
            let u = UInt64(truncatingIfNeeded: v)
            bits |= u
            differ |= u ^ first
        }
        if allowConstant && values.count > 1 && differ == 0 {
            self.byte(0)
            self.out.storeBytes(of: values[0].littleEndian, toByteOffset: self.at, as: T.self)
            self.at += size
            return
        }
        let needed = bits >> 32 != 0 ? 8 : bits >> 16 != 0 ? 4 : bits >> 8 != 0 ? 2 : 1
        let width = min(size, needed)
        self.byte(UInt8(width))
        let p = self.out + self.at
        if width == size {
            #if _endian(little)
            self.raw(UnsafeRawBufferPointer(values))
            return
            #else
            for i in values.indices { p.storeBytes(of: values[i].littleEndian, toByteOffset: i * size, as: T.self) }
            #endif
        } else if width == 1 {
            for i in values.indices { p.storeBytes(of: UInt8(truncatingIfNeeded: values[i]), toByteOffset: i, as: UInt8.self) }
        } else if width == 2 {
            for i in values.indices { p.storeBytes(of: UInt16(truncatingIfNeeded: values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        } else {
            for i in values.indices { p.storeBytes(of: UInt32(truncatingIfNeeded: values[i]).littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        self.at += width * values.count
    }
}
