/// How a ring shares the key space: for each eligible node, the fraction of keys it is primary for and
/// the fraction whose replica set includes it (what `weftctl ring` shows).
public struct RingOwnership: Sendable, Equatable {
    public struct Share: Sendable, Equatable {
        public var node: NodeID
        /// Fraction of the hash space whose primary replica is the node (sums to 1 over nodes).
        public var primary: Double
        /// Fraction of the hash space whose replica set includes the node (sums to RF over nodes).
        public var replica: Double
    }

    /// One share per eligible node, in node order.
    public var shares: [Share]
    public var replicationFactor: Int

    /// Exact shares of `lookup`, walking every token range once.
    public init(_ lookup: ReplicaLookup) {
        self.replicationFactor = lookup.replicationFactor
        var primary = [Double](repeating: 0, count: lookup.nodes.count)
        var replica = [Double](repeating: 0, count: lookup.nodes.count)
        let space = Double(UInt64.max) + 1
        let count = lookup.tokenCount
        for i in 0..<count {
            // The range (tokens[i-1], tokens[i]], wrapping around for i == 0.
            let start = i == 0 ? lookup.tokens[count - 1] : lookup.tokens[i - 1]
            let fraction = count == 1 ? 1 : Double(lookup.tokens[i] &- start) / space
            let placement = Int(lookup.rangePlacements[i])
            for rank in 0..<lookup.replicationFactor {
                let node = lookup.replica(rank, ofPlacement: placement)
                if rank == 0 { primary[node] += fraction }
                replica[node] += fraction
            }
        }
        self.shares = lookup.nodes.indices.map { Share(node: lookup.nodes[$0], primary: primary[$0], replica: replica[$0]) }
    }
}
