/// Where a node's internal (node-to-node) port listens: a host name or IP literal and a port.
public struct NodeAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: UInt16

    /// The longest accepted host, in bytes (a DNS name is at most 253).
    public static let maxHostLength = 255

    /// Returns nil for an empty or over-long host, or one with spaces or control characters.
    public init?(host: String, port: UInt16) {
        guard Self.isValidHost(host.utf8) else { return nil }
        self.host = host
        self.port = port
    }

    static func isValidHost(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.withContiguousStorageIfAvailable(Self.isValidHost) ?? Self.isValidHost(Array(bytes))
    }

    static func isValidHost(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= Self.maxHostLength else { return false }
        for b in bytes where b <= 0x20 || b >= 0x7F { return false }
        return true
    }

    public static func < (a: NodeAddress, b: NodeAddress) -> Bool {
        a.host != b.host ? a.host < b.host : a.port < b.port
    }

    public var description: String { "\(self.host):\(self.port)" }
}
