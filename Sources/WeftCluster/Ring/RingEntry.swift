/// The administrative state of a node in the ring (liveness is SWIM's business, not the ring's).
///
/// | state     | owns ranges for writes | owns ranges for reads | meaning |
/// |-----------|:---:|:---:|---|
/// | `joining` | no  | no  | announced, tokens known, storage not ready yet |
/// | `active`  | yes | yes | a full member |
/// | `leaving` | no  | yes | draining: new writes go to the next owners, its data is still read until handed off |
/// | `left`    | no  | no  | tombstone: drained or forgotten; kept so that stale gossip cannot resurrect it |
public enum NodeState: UInt8, Hashable, Comparable, Sendable, CaseIterable, CustomStringConvertible {
    case joining = 0
    case active = 1
    case leaving = 2
    case left = 3

    /// Whether a storage node in this state receives new writes.
    public var ownsWrites: Bool { self == .active }
    /// Whether a storage node in this state is asked for data it holds.
    public var ownsReads: Bool { self == .active || self == .leaving }

    public static func < (a: NodeState, b: NodeState) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .joining: "JOINING"
        case .active: "ACTIVE"
        case .leaving: "LEAVING"
        case .left: "LEFT"
        }
    }
}

/// One node's entry in the ring CRDT. The entry with the higher `version` wins a merge; equal versions
/// are ordered by the remaining fields (state first), so every replica picks the same winner.
public struct RingEntry: Hashable, Sendable, CustomStringConvertible {
    public var nodeID: NodeID
    /// Bumped by whoever changes the entry (the node itself, or an operator's `drain`/`forget`).
    public var version: UInt64
    public var state: NodeState
    public var address: NodeAddress
    public var zone: Zone
    /// Number of tokens (virtual nodes) this node places on the ring; 0 for nodes without storage.
    public var tokenCount: UInt16
    public var roles: NodeRoles

    /// The default number of tokens per storage node.
    public static let defaultTokenCount: UInt16 = 128

    public init(
        nodeID: NodeID, version: UInt64, state: NodeState, address: NodeAddress, zone: Zone = .none,
        tokenCount: UInt16 = RingEntry.defaultTokenCount, roles: NodeRoles = .all
    ) {
        self.nodeID = nodeID
        self.version = version
        self.state = state
        self.address = address
        self.zone = zone
        self.tokenCount = tokenCount
        self.roles = roles
    }

    /// Whether this entry places tokens on the ring (a storage node that has not left).
    public var placesTokens: Bool { self.roles.contains(.storage) && self.state != .left && self.tokenCount > 0 }

    /// The total order merge uses: version, then state, address, zone, token count and roles.
    /// Entries of different nodes are never compared.
    public func isSuperseded(by other: RingEntry) -> Bool {
        if self.version != other.version { return self.version < other.version }
        if self.state != other.state { return self.state < other.state }
        if self.address != other.address { return self.address < other.address }
        if self.zone != other.zone { return self.zone < other.zone }
        if self.tokenCount != other.tokenCount { return self.tokenCount < other.tokenCount }
        return self.roles.rawValue < other.roles.rawValue
    }

    public var description: String {
        "\(self.nodeID) v\(self.version) \(self.state) \(self.address) zone=\(self.zone) tokens=\(self.tokenCount) roles=\(self.roles)"
    }
}
