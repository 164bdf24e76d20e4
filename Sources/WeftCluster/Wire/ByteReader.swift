/// Why bytes could not be decoded. Decoders throw this and never trap, whatever the input.
public struct ClusterDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public let reason: String
    /// Where in the input the problem was found.
    public let offset: Int

    public init(_ reason: String, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "cluster message decoding failed at byte \(self.offset): \(self.reason)" }
}

/// Reads the primitives `ByteWriter` writes, checking every length against what is left.
public struct ByteReader: Sendable {
    @usableFromInline let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    /// Bytes not yet read.
    public var remaining: Int { self.bytes.count - self.offset }

    public func error(_ reason: String) -> ClusterDecodingError { ClusterDecodingError(reason, at: self.offset) }

    public mutating func readUInt8() throws(ClusterDecodingError) -> UInt8 {
        guard self.remaining >= 1 else { throw self.error("truncated") }
        defer { self.offset += 1 }
        return self.bytes[self.offset]
    }

    public mutating func readUInt16() throws(ClusterDecodingError) -> UInt16 {
        guard self.remaining >= 2 else { throw self.error("truncated") }
        defer { self.offset += 2 }
        return UInt16(self.bytes[self.offset]) << 8 | UInt16(self.bytes[self.offset + 1])
    }

    public mutating func readUInt64() throws(ClusterDecodingError) -> UInt64 {
        guard self.remaining >= 8 else { throw self.error("truncated") }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(self.bytes[self.offset + i]) }
        self.offset += 8
        return value
    }

    public mutating func readVarint() throws(ClusterDecodingError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.readUInt8()
            if shift == 63, byte > 1 { throw self.error("varint overflows 64 bits") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                // One encoding per value: a trailing zero byte would be a second one.
                if byte == 0, shift > 0 { throw self.error("non-minimal varint") }
                return value
            }
            shift += 7
            if shift > 63 { throw self.error("varint longer than 10 bytes") }
        }
    }

    /// A count that must not exceed `limit` (and cannot exceed the bytes left, given `minimumSize` bytes per item).
    public mutating func readCount(limit: Int, minimumSize: Int = 1) throws(ClusterDecodingError) -> Int {
        let count = try self.readVarint()
        guard count <= UInt64(limit), count * UInt64(max(minimumSize, 0)) <= UInt64(self.remaining) else {
            throw self.error("count \(count) exceeds its limit or the input")
        }
        return Int(count)
    }

    /// A length-prefixed byte string of at most `limit` bytes.
    public mutating func readLengthPrefixed(limit: Int) throws(ClusterDecodingError) -> ArraySlice<UInt8> {
        let length = try self.readVarint()
        guard length <= UInt64(limit), length <= UInt64(self.remaining) else {
            throw self.error("length \(length) exceeds its limit or the input")
        }
        defer { self.offset += Int(length) }
        return self.bytes[self.offset..<(self.offset + Int(length))]
    }
}
