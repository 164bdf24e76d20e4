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
        !bytes.isEmpty && bytes.count <= Self.maxHostLength && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    public static func < (a: NodeAddress, b: NodeAddress) -> Bool {
        a.host != b.host ? a.host.utf8.lexicographicallyPrecedes(b.host.utf8) : a.port < b.port
    }

    public var description: String { "\(self.host):\(self.port)" }
}
