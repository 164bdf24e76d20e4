/// Which nodes should hold a placement's data under a ring: the repair loop makes them hold it.
///
/// A placement's members that are still in the ring keep it: ACTIVE (or restarting, JOINING) storage
/// nodes that are alive or have been dead for less than `replaceAfterNanos`. Each member that is gone
/// (LEAVING, LEFT, forgotten, or dead for longer) is replaced by a stand-in: a storage node that is not
/// a member and is eligible the same way (ACTIVE or JOINING, not dead for longer), chosen by rendezvous
/// hashing on (placement, node): the same choice on every node, and unchanged by nodes that are neither
/// members nor chosen, so a stand-in that restarts or dies for a while keeps its place like a member.
public enum DesiredHolders {
    /// The holders of `placement`, sorted. `deadForNanos` gives, for each node SWIM declares dead,
    /// how long it has been dead (absent: not dead).
    ///
    /// `holding` names nodes known to hold the placement already (from their catalogs): a replacement
    /// is chosen among them first, so a stand-in keeps its place when a node joins and would rank
    /// higher (otherwise the join would move the copy, and the old stand-in would keep an extra one).
    public static func holders(
        of placement: PlacementKey, ring: RingState, deadForNanos: [NodeID: UInt64], replaceAfterNanos: UInt64, holding: Set<NodeID> = []
    ) -> [NodeID] {
        let members = placement.replicas
        guard !members.isEmpty else { return [] }
        /// A JOINING member is a restarting node (a new node is a member of no placement yet): it
        /// keeps its placements rather than having them copied elsewhere for the seconds of its replay;
        /// a node dead for less than the delay keeps them too.
        func keeps(_ node: NodeID) -> Bool {
            guard let entry = ring[node] else { return false }
            return (entry.state == .active || entry.state == .joining) && entry.placesTokens
                && (deadForNanos[node].map { $0 < replaceAfterNanos } ?? true)
        }
        var kept: [NodeID] = []
        var gone = 0
        for member in members {
            if keeps(member) {
                kept.append(member)
            } else {
                gone += 1
            }
        }
        if gone > 0 {
            let taken = Set(members)
            let candidates = ring.entries.keys.filter { !taken.contains($0) && keeps($0) }
            let ranked = candidates.sorted { a, b in
                let (ha, hb) = (holding.contains(a), holding.contains(b))
                if ha != hb { return ha }
                let (sa, sb) = (Self.score(placement, a), Self.score(placement, b))
                return sa != sb ? sa > sb : a < b
            }
            kept += ranked.prefix(gone)
        }
        return kept.sorted()
    }

    /// Where new spans of `placement` are written when it comes from an earlier write ring (see
    /// `WriteRingHistory`): its members that are ACTIVE or JOINING storage nodes (a JOINING one is
    /// restarting: it misses the write and gets a hint), each other member (LEAVING, LEFT, forgotten)
    /// replaced by a storage node outside the set, chosen by the same eligibility and rendezvous ranking
    /// as `holders(of:)` (without liveness, which the writer does not track: a dead one misses the write
    /// and gets a hint). Members keep their order; replacements take the places of the members they replace.
    ///
    /// `preferring` names the nodes of the ring the placement came from: they rank before nodes that
    /// joined since. The repair loop handed the gone member's copy to a stand-in chosen among those
    /// nodes and keeps it there when a node joins (it prefers current holders); ranking a newcomer
    /// first would write new spans to a second stand-in, and the copies would never come back to RF.
    public static func writeTargets(of placement: PlacementKey, ring: RingState, preferring: Set<NodeID> = []) -> [NodeID] {
        let members = placement.replicas
        func keeps(_ node: NodeID) -> Bool {
            guard let entry = ring[node], entry.placesTokens else { return false }
            return entry.state == .active || entry.state == .joining
        }
        guard !members.allSatisfy(keeps) else { return members }
        let taken = Set(members)
        var candidates = ring.entries.values.filter { !taken.contains($0.nodeID) && keeps($0.nodeID) }.map(\.nodeID)
        candidates.sort { a, b in
            let (pa, pb) = (preferring.contains(a), preferring.contains(b))
            if pa != pb { return pa }
            let (sa, sb) = (Self.score(placement, a), Self.score(placement, b))
            return sa != sb ? sa > sb : a < b
        }
        var next = candidates.makeIterator()
        return members.compactMap { keeps($0) ? $0 : next.next() }
    }

    /// The rendezvous score of `node` for `placement`.
    static func score(_ placement: PlacementKey, _ node: NodeID) -> UInt64 {
        var bytes = Array(placement.rawValue.utf8)
        bytes.append(0)
        bytes += Array(node.rawValue.utf8)
        return bytes.withUnsafeBytes { XXHash64.hash(raw: $0, seed: 0x5745_4654_484F_4C44) }
    }
}
