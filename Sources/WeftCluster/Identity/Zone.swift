/// A failure domain (rack, availability zone). Replica sets prefer distinct zones; the empty zone is
/// a zone like any other, so a cluster that sets none behaves as a single zone.
public struct Zone: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// The longest accepted zone name, in bytes.
    public static let maxLength = 64

    /// Returns nil for names over 64 bytes or with spaces or control characters.
    public init?(_ rawValue: String) {
        guard Self.isValid(rawValue.utf8) else { return nil }
        self.rawValue = rawValue
    }

    /// The zone of a cluster that does not use zones.
    public static let none = Zone(unchecked: "")

    init(unchecked rawValue: String) { self.rawValue = rawValue }

    static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.count <= Self.maxLength && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// Byte order (zones are ASCII, so String order is byte order).
    public static func < (a: Zone, b: Zone) -> Bool { a.rawValue < b.rawValue }

    public var description: String { self.rawValue }
}
