/// The outcome of one replicated write: a batch split into placements, each pushed to its replica set,
/// acknowledged to the client only when every placement has a write quorum (⌊RF/2⌋+1 replicas durable).
///
/// A pure state machine: the shell reports each replica's answer with ``record(placement:replica:succeeded:)``
/// and acts on the returned ``Decision`` (answer the client once, however many answers are still to come).
/// Replicas that failed while the quorum held are listed by ``missedReplicas`` so they can be repaired.
public struct WriteQuorum: Sendable {
    /// What the shell should do after an answer.
    public enum Decision: Sendable, Equatable {
        /// Keep waiting.
        case pending
        /// Every placement reached its quorum: acknowledge the client (reported once).
        case acknowledged
        /// This placement can no longer reach its quorum: answer the client with a retryable error
        /// (reported once).
        case failed(placement: Int)
        /// The client has its answer already; nothing to do but bookkeeping.
        case decided
    }

    private struct Placement: Sendable {
        var replicas: [NodeID]
        var needed: Int
        var succeeded: [NodeID] = []
        var failed: [NodeID] = []
    }

    private var placements: [Placement]
    private var remainingPlacements: Int
    private var decided = false

    /// - Parameter replicaSets: the replica set of each placement written (one entry per placement).
    public init(replicaSets: [[NodeID]]) {
        self.placements = replicaSets.map { Placement(replicas: $0, needed: Self.quorum(replicas: $0.count)) }
        self.remainingPlacements = self.placements.count
    }

    /// The write quorum for `replicas` replicas: ⌊RF/2⌋+1.
    public static func quorum(replicas: Int) -> Int { replicas / 2 + 1 }

    /// The decision before any answer: an empty write is acknowledged at once; a placement with no
    /// replica can never succeed.
    public mutating func start() -> Decision {
        if let empty = self.placements.firstIndex(where: { $0.replicas.isEmpty }) {
            self.decided = true
            return .failed(placement: empty)
        }
        if self.remainingPlacements == 0 {
            self.decided = true
            return .acknowledged
        }
        return .pending
    }

    /// Records one replica's answer for one placement; repeated answers from a replica are ignored.
    public mutating func record(placement: Int, replica: NodeID, succeeded: Bool) -> Decision {
        precondition(self.placements.indices.contains(placement), "placement \(placement) was not written")
        var p = self.placements[placement]
        guard p.replicas.contains(replica), !p.succeeded.contains(replica), !p.failed.contains(replica) else {
            return self.decided ? .decided : .pending
        }
        let hadQuorum = p.succeeded.count >= p.needed
        if succeeded { p.succeeded.append(replica) } else { p.failed.append(replica) }
        self.placements[placement] = p
        guard !self.decided else { return .decided }
        if !hadQuorum && p.succeeded.count >= p.needed {
            self.remainingPlacements -= 1
            if self.remainingPlacements == 0 {
                self.decided = true
                return .acknowledged
            }
        } else if p.replicas.count - p.failed.count < p.needed {
            self.decided = true
            return .failed(placement: placement)
        }
        return .pending
    }

    /// Whether every replica of every placement has answered.
    public var isComplete: Bool {
        self.placements.allSatisfy { $0.succeeded.count + $0.failed.count == $0.replicas.count }
    }

    /// Replicas that answered with a failure, by placement index, for the write to be repaired on them.
    public var missedReplicas: [(placement: Int, replica: NodeID)] {
        self.placements.enumerated().flatMap { index, p in p.failed.map { (index, $0) } }
    }
}
