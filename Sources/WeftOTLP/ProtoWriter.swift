import WeftModel

/// A minimal protobuf encoder into a growable byte array, used for responses, test payloads and the
/// load generator. Nested messages are written in place and their length prefix is patched afterwards.
public struct ProtoWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 256) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    public mutating func removeAll() { self.bytes.removeAll(keepingCapacity: true) }

    @inlinable public mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.bytes.append(UInt8(v))
    }

    @inlinable public mutating func tag(_ field: UInt32, _ wire: WireType) {
        self.varint(UInt64(field) << 3 | UInt64(wire.rawValue))
    }

    public mutating func varintField(_ field: UInt32, _ v: UInt64) {
        self.tag(field, .varint)
        self.varint(v)
    }

    public mutating func fixed64Field(_ field: UInt32, _ v: UInt64) {
        self.tag(field, .i64)
        withUnsafeBytes(of: v.littleEndian) { self.bytes.append(contentsOf: $0) }
    }

    public mutating func fixed32Field(_ field: UInt32, _ v: UInt32) {
        self.tag(field, .i32)
        withUnsafeBytes(of: v.littleEndian) { self.bytes.append(contentsOf: $0) }
    }

    public mutating func doubleField(_ field: UInt32, _ v: Double) { self.fixed64Field(field, v.bitPattern) }

    public mutating func bytesField(_ field: UInt32, _ v: some Collection<UInt8>) {
        self.tag(field, .len)
        self.varint(UInt64(v.count))
        self.bytes.append(contentsOf: v)
    }

    public mutating func bytesField(_ field: UInt32, _ v: UnsafeRawBufferPointer) {
        self.tag(field, .len)
        self.varint(UInt64(v.count))
        self.bytes.append(contentsOf: v)
    }

    public mutating func stringField(_ field: UInt32, _ s: String) {
        var s = s
        s.withUTF8 { self.bytesField(field, UnsafeRawBufferPointer($0)) }
    }

    /// A 64-bit ID as 8 big-endian bytes.
    public mutating func id64Field(_ field: UInt32, _ v: UInt64) {
        self.tag(field, .len)
        self.bytes.append(8)
        withUnsafeBytes(of: v.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    /// A trace ID as 16 big-endian bytes.
    public mutating func traceIDField(_ field: UInt32, _ id: TraceID) {
        self.tag(field, .len)
        self.bytes.append(16)
        withUnsafeBytes(of: id.high.bigEndian) { self.bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: id.low.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    /// Writes a nested message: `body` appends its fields, then the length prefix is fixed up.
    @inlinable
    public mutating func message(_ field: UInt32, _ body: (inout ProtoWriter) throws -> Void) rethrows {
        self.tag(field, .len)
        let lengthAt = self.bytes.count
        self.bytes.append(0)
        let start = self.bytes.count
        try body(&self)
        let length = self.bytes.count - start
        if length < 0x80 {
            self.bytes[lengthAt] = UInt8(length)
            return
        }
        var prefix: [UInt8] = []
        var v = UInt64(length)
        while v >= 0x80 {
            prefix.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        prefix.append(UInt8(v))
        self.bytes.replaceSubrange(lengthAt..<(lengthAt + 1), with: prefix)
    }
}

