/// Why an OTLP payload could not be decoded; the message is meant for the client (400 responses).
public struct OTLPDecodeError: Error, Equatable, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}

/// Protobuf wire types.
public enum WireType: UInt8, Sendable {
    case varint = 0
    case i64 = 1
    case len = 2
    case startGroup = 3
    case endGroup = 4
    case i32 = 5
}

/// A bounds-checked protobuf reader over borrowed bytes. Positions are absolute offsets into `base`.
@usableFromInline
struct ProtoReader {
    @usableFromInline let base: UnsafeRawPointer
    @usableFromInline var pos: Int
    @usableFromInline let end: Int

    @inlinable init(base: UnsafeRawPointer, range: Range<Int>) {
        self.base = base
        self.pos = range.lowerBound
        self.end = range.upperBound
    }

    @inline(__always) var isAtEnd: Bool { self.pos >= self.end }

    @inline(__always) mutating func readVarint() throws(OTLPDecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard self.pos < self.end else { throw OTLPDecodeError("truncated varint at byte \(self.pos)") }
            let b = self.base.load(fromByteOffset: self.pos, as: UInt8.self)
            self.pos += 1
            if shift == 63 && b > 1 { throw OTLPDecodeError("varint overflows 64 bits at byte \(self.pos - 1)") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
    }

    /// Reads a tag; returns the field number and wire type.
    @inline(__always) mutating func readTag() throws(OTLPDecodeError) -> (UInt32, UInt8) {
        // Fast path for one-byte tags.
        if self.pos < self.end {
            let b = self.base.load(fromByteOffset: self.pos, as: UInt8.self)
            if b < 0x80 {
                self.pos += 1
                guard b >> 3 != 0 else { throw OTLPDecodeError("field number 0 at byte \(self.pos - 1)") }
                return (UInt32(b >> 3), b & 7)
            }
        }
        let tag = try self.readVarint()
        let field = tag >> 3
        guard field != 0, field <= 536_870_911 else { throw OTLPDecodeError("invalid field number \(field)") }
        return (UInt32(field), UInt8(tag & 7))
    }

    /// Reads a length prefix and returns the absolute range of the payload.
    @inline(__always) mutating func readLength() throws(OTLPDecodeError) -> Range<Int> {
        let n = try self.readVarint()
        guard n <= UInt64(self.end - self.pos) else {
            throw OTLPDecodeError("length \(n) at byte \(self.pos) runs past the end of its message")
        }
        let start = self.pos
        self.pos += Int(n)
        return start..<self.pos
    }

    @inline(__always) mutating func readFixed64() throws(OTLPDecodeError) -> UInt64 {
        guard self.end - self.pos >= 8 else { throw OTLPDecodeError("truncated fixed64 at byte \(self.pos)") }
        let v = self.base.loadUnaligned(fromByteOffset: self.pos, as: UInt64.self)
        self.pos += 8
        return UInt64(littleEndian: v)
    }

    @inline(__always) mutating func readFixed32() throws(OTLPDecodeError) -> UInt32 {
        guard self.end - self.pos >= 4 else { throw OTLPDecodeError("truncated fixed32 at byte \(self.pos)") }
        let v = self.base.loadUnaligned(fromByteOffset: self.pos, as: UInt32.self)
        self.pos += 4
        return UInt32(littleEndian: v)
    }

    /// Skips a field of an unknown number.
    @inline(__always) mutating func skip(wire: UInt8) throws(OTLPDecodeError) {
        switch wire {
        case 0: _ = try self.readVarint()
        case 1:
            guard self.end - self.pos >= 8 else { throw OTLPDecodeError("truncated fixed64 at byte \(self.pos)") }
            self.pos += 8
        case 2: _ = try self.readLength()
        case 5:
            guard self.end - self.pos >= 4 else { throw OTLPDecodeError("truncated fixed32 at byte \(self.pos)") }
            self.pos += 4
        default: throw OTLPDecodeError("unsupported wire type \(wire) at byte \(self.pos)")
        }
    }

    @inline(__always) func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: self.base + range.lowerBound, count: range.count)
    }

    @inline(__always) func sub(_ range: Range<Int>) -> ProtoReader { ProtoReader(base: self.base, range: range) }

    /// Reads 8 bytes of a range as a big-endian ID.
    @inline(__always) func id64(_ range: Range<Int>, at offset: Int = 0) -> UInt64 {
        UInt64(bigEndian: self.base.loadUnaligned(fromByteOffset: range.lowerBound + offset, as: UInt64.self))
    }
}

@inline(__always)
func expectWire(_ wire: UInt8, _ expected: UInt8, _ field: UInt32, _ message: StaticString) throws(OTLPDecodeError) {
    if _slowPath(wire != expected) {
        throw wireTypeError(wire, expected, field, message)
    }
}

@inline(never)
func wireTypeError(_ wire: UInt8, _ expected: UInt8, _ field: UInt32, _ message: StaticString) -> OTLPDecodeError {
    OTLPDecodeError("\(message) field \(field) has wire type \(wire), expected \(expected)")
}
