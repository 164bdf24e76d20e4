import WeftStorageEngine

/// Which placements a storage node may call in sync in its catalog, by what anti-entropy has compared
/// since the node started.
///
/// A node that restarts replays its WAL but lacks what was written while it was down, and a node whose
/// data directory was wiped lacks everything written before; hints cover neither when the writes were
/// acknowledged without it or the hints died with its files. Until a sync round has compared a
/// placement with another holder, the node cannot tell, so its catalog marks the placement not in sync
/// and coordinators read another holder (or flag the answer partial). Pure: the round reports what it
/// compared.
struct PlacementVerification: Sendable {
    /// Rounds ended since the node started.
    private(set) var rounds = 0
    /// Placements the rounds wanted to compare that no round could compare with another holder yet.
    private(set) var unverified: Set<PartitionKey> = []

    /// The placements to mark not in sync: those a holder has spans of that this node lacks
    /// (`lacking`), and those not compared since the start; before the first round ends, every
    /// placement the node holds (`held`).
    func notInSync(lacking: Set<PartitionKey>, held: () -> [PartitionKey]) -> Set<PartitionKey> {
        guard self.rounds > 0 else { return lacking.union(held()) }
        return lacking.union(self.unverified)
    }

    /// Whether a round knew which placements this node should hold: it read the catalog of every live
    /// storage peer, and of at least one when the node was started to join others (a wiped node that
    /// just started may not know its peers yet; a round then must not count as its first) unless
    /// the ring it has joined has no other storage node at all (the cluster's only storage node,
    /// joined through a node of another role).
    /// - Parameters:
    ///   - joined: the node's ring lists another node (of any role): it has received the cluster's ring.
    ///   - storagePeers: other storage nodes in that ring, live or not, that have not left.
    static func roundKnewPlacements(catalogsComplete: Bool, catalogsRead: Int, expectsPeers: Bool, joined: Bool = false, storagePeers: Int = 0) -> Bool {
        catalogsComplete && (catalogsRead > 0 || !expectsPeers || (joined && storagePeers == 0))
    }

    /// Records that anti-entropy pushed spans of `partition` to this node: it lacked some, so it may
    /// lack more (a copy being handed to it), and is not in sync until a round has compared it.
    mutating func received(repairOf partition: PartitionKey) {
        if self.rounds > 0 { self.unverified.insert(partition) }
    }

    /// Records a round: `compared` are the placements it compared with at least one other holder (or
    /// that have no other holder), `uncompared` those it wanted to but could not (every other holder
    /// unreachable). A placement compared once stays verified: what it misses later is hinted or
    /// found by a later round. Placements first held after the first round are new since the start
    /// (unless a repair push brings them: ``received(repairOf:)``).
    mutating func roundEnded(compared: Set<PartitionKey>, uncompared: Set<PartitionKey>) {
        if self.rounds == 0 {
            self.unverified = uncompared.subtracting(compared)
        } else {
            self.unverified.subtract(compared)
        }
        self.rounds += 1
    }
}
