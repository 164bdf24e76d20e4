import WeftCluster

/// How a node takes part in the cluster: its identity, roles, internal address, seeds and limits.
public struct ClusterSettings: Sendable {
    /// This node's stable ID (persisted by storage nodes in their data directory).
    public var nodeID: NodeID
    public var roles: NodeRoles
    /// Where peers reach this node's internal HTTP/2 port.
    public var address: NodeAddress
    /// `HOST:PORT` of nodes to join through (a name that resolves to several addresses names them all).
    public var seeds: [String]
    public var zone: Zone
    /// Wanted replicas per trace (capped by the number of storage nodes).
    public var replicationFactor: Int
    /// Sent and required on every node-to-node request when set.
    public var secret: String?
    /// Ring tokens this node places (storage nodes only).
    public var tokenCount: UInt16
    public var swim: SWIMSettings

    public init(
        nodeID: NodeID, roles: NodeRoles, address: NodeAddress, seeds: [String] = [], zone: Zone = .none,
        replicationFactor: Int = 3, secret: String? = nil, tokenCount: UInt16 = RingEntry.defaultTokenCount,
        swim: SWIMSettings = SWIMSettings()
    ) {
        self.nodeID = nodeID
        self.roles = roles
        self.address = address
        self.seeds = seeds
        self.zone = zone
        self.replicationFactor = replicationFactor
        self.secret = secret
        self.tokenCount = tokenCount
        self.swim = swim
    }

    /// The header that carries the cluster secret on internal requests.
    public static let secretHeader = "x-weft-cluster-secret"

    /// Parses `--roles` (`all`, or a comma-separated list of `ingest`, `storage`, `query`).
    public static func parseRoles(_ text: String) -> NodeRoles? {
        var roles: NodeRoles = []
        for part in text.split(separator: ",") {
            switch part.trimmingCharacters(in: " ").lowercased() {
            case "all": roles.formUnion(.all)
            case "ingest": roles.insert(.ingest)
            case "storage": roles.insert(.storage)
            case "query": roles.insert(.query)
            default: return nil
            }
        }
        return roles.isEmpty ? nil : roles
    }

    /// Splits `HOST:PORT` (IPv6 literals in brackets); nil when malformed.
    public static func splitHostPort(_ text: String) -> (host: String, port: UInt16)? {
        var host: Substring
        var port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            port = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let p = UInt16(port), p > 0 else { return nil }
        return (String(host), p)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return s
    }
}
