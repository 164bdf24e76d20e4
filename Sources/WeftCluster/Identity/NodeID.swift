/// A node's stable name in the cluster: 1–64 bytes of `[A-Za-z0-9._-]`, case-sensitive.
///
/// A storage node persists its ID in its data directory, so a restart keeps its ID and therefore
/// its ring tokens (they are derived from the ID).
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The validated name.
    public let rawValue: String

    /// The longest accepted ID, in bytes.
    public static let maxLength = 64

    /// Validates `rawValue`; returns nil when it is empty, too long, or holds other characters.
    public init?(_ rawValue: String) {
        guard Self.isValid(rawValue.utf8) else { return nil }
        self.rawValue = rawValue
    }

    /// Validates raw UTF-8 bytes (used by the decoder, which must never trap on bad input).
    public init?(utf8 bytes: some Collection<UInt8>) {
        guard Self.isValid(bytes) else { return nil }
        self.rawValue = String(decoding: bytes, as: UTF8.self)
    }

    static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.withContiguousStorageIfAvailable(Self.isValid) ?? Self.isValid(Array(bytes))
    }

    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= Self.maxLength else { return false }
        for b in bytes {
            let valid = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
            if !valid { return false }
        }
        return true
    }

    /// Byte order (IDs are ASCII, so String order is byte order).
    public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }

    public var description: String { self.rawValue }
}
