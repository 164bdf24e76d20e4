/// Appends the cluster's wire primitives to a byte array: fixed-width big-endian integers, LEB128
/// varints, and length-prefixed byte strings.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { self.bytes.reserveCapacity(capacity) }

    public mutating func write(_ value: UInt8) { self.bytes.append(value) }

    public mutating func write(_ value: UInt16) {
        self.bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        self.bytes.append(UInt8(truncatingIfNeeded: value))
    }

    public mutating func write(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { self.bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.bytes.append(UInt8(v))
    }

    /// A varint length, then the bytes.
    public mutating func writeLengthPrefixed(_ value: some Collection<UInt8>) {
        self.writeVarint(UInt64(value.count))
        self.bytes.append(contentsOf: value)
    }

    public mutating func writeString(_ value: String) { self.writeLengthPrefixed(value.utf8) }
}
