/// What a member believes about another member's liveness.
public enum MemberStatus: UInt8, Hashable, Comparable, Sendable, CaseIterable, CustomStringConvertible {
    case alive = 0
    case suspect = 1
    case dead = 2
    /// Left gracefully (announced by the node itself); never suspected again at this incarnation.
    case left = 3

    public static func < (a: MemberStatus, b: MemberStatus) -> Bool { a.rawValue < b.rawValue }

    /// Whether the member is probed and counts as a live peer.
    public var isReachable: Bool { self == .alive || self == .suspect }

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// A claim about one member: its status at an incarnation, and where it listens.
///
/// Claims are ordered `alive(i) < suspect(i) < dead(i) < left(i) < alive(i+1)`; a member keeps the
/// greatest claim it has heard, so only the node itself can overturn a suspicion (or a death, after a
/// restart) by raising its incarnation.
public struct MemberUpdate: Hashable, Sendable, CustomStringConvertible {
    public var node: NodeID
    public var address: NodeAddress
    public var status: MemberStatus
    public var incarnation: UInt64

    public init(node: NodeID, address: NodeAddress, status: MemberStatus, incarnation: UInt64) {
        self.node = node
        self.address = address
        self.status = status
        self.incarnation = incarnation
    }

    /// Whether this claim overrides `other` (about the same node).
    public func supersedes(_ other: MemberUpdate) -> Bool {
        if self.incarnation != other.incarnation { return self.incarnation > other.incarnation }
        return self.status > other.status
    }

    public var description: String { "\(self.node)@\(self.address) \(self.status)#\(self.incarnation)" }
}

/// A change of a member's status as seen by this node (`previous` is nil for a newly learned member).
public struct MemberStatusChange: Hashable, Sendable, CustomStringConvertible {
    public var member: MemberUpdate
    public var previous: MemberStatus?

    public init(member: MemberUpdate, previous: MemberStatus?) {
        self.member = member
        self.previous = previous
    }

    public var description: String { "\(self.member.node): \(self.previous.map(\.description) ?? "new") -> \(self.member.status)" }
}
