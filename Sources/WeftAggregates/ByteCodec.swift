/// Byte-level building blocks of the block format and of partial answers: varints and
/// frame-of-reference bit packing. Both sides are inlinable, so the block codec and the readers in
/// other targets get specialised code (unspecialised, the generic writer made block writes 4× slower).
///
/// A packed column is `[count: varint][min: varint][width: UInt8][words…]`: each value is stored as
/// `value - min` in `width` bits (0 bits when all values are equal), little-endian within 64-bit words.
public struct ByteWriter: Sendable {
    /// The bytes written so far. (Stored under another name so the inlinable writers below can append.)
    @usableFromInline var storage: [UInt8] = []
    public var bytes: [UInt8] { self.storage }
    /// Round packed widths up to whole bytes (for sections that are compressed afterwards).
    public var byteAligned: Bool

    @inlinable public init(byteAligned: Bool = false) { self.byteAligned = byteAligned }

    @inlinable public mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            self.storage.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.storage.append(UInt8(v))
    }

    @inlinable public mutating func fixed64(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { self.storage.append(contentsOf: $0) }
    }

    @inlinable public mutating func fixed32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { self.storage.append(contentsOf: $0) }
    }

    @inlinable public mutating func raw(_ b: some Collection<UInt8>) { self.storage.append(contentsOf: b) }

    /// Frame-of-reference bit-packed unsigned values.
    @inlinable public mutating func packed(_ values: some Collection<UInt64>) {
        self.varint(UInt64(values.count))
        guard let minValue = values.min(), let maxValue = values.max() else { return }
        let range = maxValue - minValue
        let bits = range == 0 ? 0 : 64 - range.leadingZeroBitCount
        // Whole bytes: byte-aligned values compress far better under zstd than odd bit widths.
        let width = self.byteAligned ? (bits + 7) / 8 * 8 : bits
        self.varint(minValue)
        self.storage.append(UInt8(width))
        guard width > 0 else { return }
        var word: UInt64 = 0
        var used = 0
        for v in values {
            let d = v - minValue
            word |= d << UInt64(used)
            if used + width >= 64 {
                self.fixed64(word)
                let spill = used + width - 64
                word = spill > 0 ? d >> UInt64(width - spill) : 0
                used = spill
            } else {
                used += width
            }
        }
        if used > 0 { self.fixed64(word) }
    }

    @inlinable public mutating func packed(_ values: [UInt32]) { self.packed(values.lazy.map { UInt64($0) }) }
    @inlinable public mutating func packed(_ values: [UInt8]) { self.packed(values.lazy.map { UInt64($0) }) }
}

/// Why stored bytes could not be read back.
public struct BlockFormatError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}

/// A bounds-checked reader for ``ByteWriter`` output.
public struct ByteReader {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, at position: Int = 0) {
        self.bytes = bytes
        self.offset = position
    }

    /// Bytes read so far.
    @inlinable public var position: Int { self.offset }

    @inlinable public var isAtEnd: Bool { self.offset >= self.bytes.count }

    /// Bytes not read yet.
    @inlinable public var remaining: Int { Swift.max(0, self.bytes.count - self.offset) }

    @inlinable public mutating func varint() throws(BlockFormatError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard self.position < self.bytes.count, shift < 64 else { throw BlockFormatError("truncated varint at \(self.position)") }
            let b = self.bytes[self.position]
            self.offset += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }

    @inlinable public mutating func count(max: Int = 1 << 32) throws(BlockFormatError) -> Int {
        let n = try self.varint()
        guard n <= UInt64(max) else { throw BlockFormatError("count \(n) exceeds \(max) at \(self.position)") }
        return Int(n)
    }

    @inlinable public mutating func fixed64() throws(BlockFormatError) -> UInt64 {
        guard self.bytes.count - self.position >= 8 else { throw BlockFormatError("truncated fixed64 at \(self.position)") }
        defer { self.offset += 8 }
        return UInt64(littleEndian: self.bytes.loadUnaligned(fromByteOffset: self.position, as: UInt64.self))
    }

    @inlinable public mutating func fixed32() throws(BlockFormatError) -> UInt32 {
        guard self.bytes.count - self.position >= 4 else { throw BlockFormatError("truncated fixed32 at \(self.position)") }
        defer { self.offset += 4 }
        return UInt32(littleEndian: self.bytes.loadUnaligned(fromByteOffset: self.position, as: UInt32.self))
    }

    @inlinable public mutating func raw(_ n: Int) throws(BlockFormatError) -> UnsafeRawBufferPointer {
        guard n >= 0, self.bytes.count - self.position >= n else { throw BlockFormatError("truncated bytes at \(self.position)") }
        defer { self.offset += n }
        return UnsafeRawBufferPointer(rebasing: self.bytes[self.position..<(self.position + n)])
    }

    /// Reads a packed column written by ``ByteWriter/packed(_:)``.
    public mutating func packed() throws(BlockFormatError) -> [UInt64] {
        let column = try PackedView(&self)
        return column.values(0..<column.count)
    }

    /// Reads a packed column but unpacks only the values at `range` (the reader still moves past the
    /// whole column). Returns the column's full count and those values.
    public mutating func packed(range: Range<Int>) throws(BlockFormatError) -> (count: Int, values: [UInt64]) {
        let column = try PackedView(&self)
        guard range.lowerBound >= 0, range.upperBound <= column.count else {
            throw BlockFormatError("rows \(range) outside a packed column of \(column.count)")
        }
        return (column.count, column.values(range))
    }

    public mutating func packed32() throws(BlockFormatError) -> [UInt32] { try self.packed().map { UInt32(truncatingIfNeeded: $0) } }
    public mutating func packed8() throws(BlockFormatError) -> [UInt8] { try self.packed().map { UInt8(truncatingIfNeeded: $0) } }
}

/// ZigZag mapping of signed to unsigned integers (small magnitudes stay small).
@inlinable public func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
@inlinable public func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

/// Random access to a packed column in place (no unpacking into an array): for reading a few rows.
public struct PackedView {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    public let count: Int
    @usableFromInline let minValue: UInt64
    @usableFromInline let width: Int
    @usableFromInline let base: Int
    @usableFromInline let mask: UInt64

    /// Parses the column header at the reader's position and moves the reader past the column.
    public init(_ r: inout ByteReader) throws(BlockFormatError) {
        self.bytes = r.bytes
        self.count = try r.count()
        guard self.count > 0 else {
            (self.minValue, self.width, self.base, self.mask) = (0, 0, r.position, 0)
            return
        }
        self.minValue = try r.varint()
        let header = try r.raw(1)
        self.width = Int(header[0])
        guard self.width <= 64 else { throw BlockFormatError("bit width \(self.width) > 64") }
        self.mask = self.width == 64 ? .max : (1 << UInt64(self.width)) - 1
        self.base = r.position
        _ = try r.raw((self.count * self.width + 63) / 64 * 8)
    }

    /// The values at `range`, unpacked.
    public func values(_ range: Range<Int>) -> [UInt64] {
        if self.width == 0 { return [UInt64](repeating: self.minValue, count: range.count) }
        return [UInt64](unsafeUninitializedCapacity: range.count) { dst, n in
            for (i, row) in range.enumerated() { dst[i] = self[row] }
            n = range.count
        }
    }

    @inlinable @inline(__always) public subscript(i: Int) -> UInt64 {
        if self.width == 0 { return self.minValue }
        let bit = i * self.width
        let w = bit >> 6
        let offset = bit & 63
        var v = UInt64(littleEndian: self.bytes.loadUnaligned(fromByteOffset: self.base + w * 8, as: UInt64.self)) >> UInt64(offset)
        if offset + self.width > 64 {
            v |= UInt64(littleEndian: self.bytes.loadUnaligned(fromByteOffset: self.base + (w + 1) * 8, as: UInt64.self)) << UInt64(64 - offset)
        }
        return (v & self.mask) &+ self.minValue
    }
}
