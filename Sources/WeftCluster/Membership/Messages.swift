/// One SWIM message between two nodes. Every message carries the sender's identity and incarnation,
/// the digest of the sender's ring state, and a few piggybacked updates.
public struct SWIMMessage: Hashable, Sendable {
    public var sender: NodeID
    public var senderAddress: NodeAddress
    public var senderIncarnation: UInt64
    /// `RingState.digest` of the sender: a receiver whose digest differs pulls the full state.
    public var ringDigest: UInt64
    public var kind: Kind
    /// Membership and ring updates being disseminated.
    public var gossip: [GossipUpdate]

    public init(sender: NodeID, senderAddress: NodeAddress, senderIncarnation: UInt64, ringDigest: UInt64, kind: Kind, gossip: [GossipUpdate]) {
        self.sender = sender
        self.senderAddress = senderAddress
        self.senderIncarnation = senderIncarnation
        self.ringDigest = ringDigest
        self.kind = kind
        self.gossip = gossip
    }

    public enum Kind: Hashable, Sendable {
        /// A direct probe; answered by `ack` with the same sequence number.
        case ping(sequence: UInt64)
        /// Asks the receiver to probe `target` and forward the ack (or a nack) under `sequence`.
        case pingRequest(sequence: UInt64, target: NodeID, targetAddress: NodeAddress)
        /// `target` answered the probe numbered `sequence` (sent by `target` itself, or forwarded by a relay).
        case ack(sequence: UInt64, target: NodeID)
        /// A relay did not hear from `target` in time (Lifeguard: tells the prober its own link is fine).
        case nack(sequence: UInt64, target: NodeID)
        /// Carries piggybacked updates only; not answered.
        case gossip
        /// Push-pull: the sender's full state; the receiver merges it and answers with `syncResponse`.
        case syncRequest(MembershipSnapshot)
        /// The answer to `syncRequest`: the receiver's full state.
        case syncResponse(MembershipSnapshot)
    }
}

/// An update piggybacked on messages until it has been sent λ·log(n) times.
public enum GossipUpdate: Hashable, Sendable {
    case member(MemberUpdate)
    case ring(RingEntry)

    /// Updates about the same subject replace each other in the dissemination queue.
    var subject: GossipSubject {
        switch self {
        case .member(let update): .member(update.node)
        case .ring(let entry): .ring(entry.nodeID)
        }
    }
}

/// What a gossip update is about.
enum GossipSubject: Hashable, Sendable {
    case member(NodeID)
    case ring(NodeID)
}

/// A node's full state for push-pull: every member claim it holds (itself included) and its ring.
public struct MembershipSnapshot: Hashable, Sendable {
    public var members: [MemberUpdate]
    public var ring: [RingEntry]

    public init(members: [MemberUpdate], ring: [RingEntry]) {
        self.members = members
        self.ring = ring
    }
}
