import WeftModel

/// A compiled ring for one purpose (writes or reads): the sorted tokens of the eligible nodes and,
/// per token range, the index of its replica set ("placement"), each set computed once.
///
/// A key with hash `h` belongs to the range of the first token `t >= h` (wrapping to the smallest
/// token). A bucket index over the top bits of the hash (about one token per bucket) narrows the
/// search to a few tokens, so a lookup is one hash, a couple of array reads and a short scan.
public struct ReplicaLookup: Sendable {
    /// The eligible nodes; replica sets refer to them by index.
    public let nodes: [NodeID]
    /// The replication factor in effect: the requested one capped by the number of eligible nodes.
    public let replicationFactor: Int
    /// Sorted tokens of the eligible nodes.
    @usableFromInline let tokens: [UInt64]
    /// The placement of the range ending at `tokens[i]`.
    @usableFromInline let rangePlacements: [UInt32]
    /// Node indices of every placement, `replicationFactor` per placement, the primary first.
    @usableFromInline let placementReplicas: [UInt16]
    /// `bucketStarts[b]` is the index of the first token whose top bits are >= b (one extra entry at the end).
    @usableFromInline let bucketStarts: [UInt32]
    /// 64 minus the number of bucket bits.
    @usableFromInline let bucketShift: UInt64

    /// An empty lookup (no eligible node): every key maps to no replicas.
    public static let empty = ReplicaLookup(nodes: [], replicationFactor: 0, tokens: [], rangePlacements: [], placementReplicas: [])

    init(nodes: [NodeID], replicationFactor: Int, tokens: [UInt64], rangePlacements: [UInt32], placementReplicas: [UInt16]) {
        self.nodes = nodes
        self.replicationFactor = replicationFactor
        self.tokens = tokens
        self.rangePlacements = rangePlacements
        self.placementReplicas = placementReplicas
        var bits: UInt64 = 1
        while (1 << bits) < tokens.count, bits < 24 { bits += 1 }
        self.bucketShift = 64 - bits
        var starts = [UInt32](repeating: 0, count: (1 << Int(bits)) + 1)
        var index = 0
        for bucket in 0..<(1 << Int(bits)) {
            while index < tokens.count, tokens[index] >> self.bucketShift < UInt64(bucket) { index += 1 }
            starts[bucket] = UInt32(index)
        }
        starts[1 << Int(bits)] = UInt32(tokens.count)
        self.bucketStarts = starts
    }

    /// Builds the lookup over `entries` (all assumed eligible), each placing its tokens.
    /// - Parameters:
    ///   - replicationFactor: the wanted number of replicas; capped by the number of nodes.
    ///   - zoneAware: when true, a replica set spans min(RF, number of zones) distinct zones.
    init(entries: [RingEntry], replicationFactor: Int, zoneAware: Bool) {
        let sorted = entries.sorted { $0.nodeID < $1.nodeID }
        guard !sorted.isEmpty, sorted.count <= Int(UInt16.max) else {
            self = .empty
            return
        }
        let rf = max(1, min(replicationFactor, sorted.count))
        var owned: [(token: UInt64, node: UInt16)] = []
        owned.reserveCapacity(sorted.reduce(0) { $0 + Int($1.tokenCount) })
        for (index, entry) in sorted.enumerated() {
            for token in Ring.tokens(for: entry.nodeID, count: Int(entry.tokenCount)) {
                owned.append((token, UInt16(index)))
            }
        }
        // Equal tokens (vanishingly rare) are ordered by node so every node builds the same ring.
        owned.sort { $0.token != $1.token ? $0.token < $1.token : $0.node < $1.node }
        let zoneOfNode = sorted.map(\.zone)
        let zoneCount = Set(zoneOfNode).count
        let zoneTarget = zoneAware ? min(rf, zoneCount) : 1

        var placementIndex: [[UInt16]: UInt32] = [:]
        var rangePlacements: [UInt32] = []
        var placementReplicas: [UInt16] = []
        rangePlacements.reserveCapacity(owned.count)
        var chosen: [UInt16] = []
        var chosenZones: [Zone] = []
        for start in owned.indices {
            chosen.removeAll(keepingCapacity: true)
            chosenZones.removeAll(keepingCapacity: true)
            // Pass 1: walk clockwise taking nodes from zones not yet used, until enough zones are covered.
            if zoneTarget > 1 {
                var step = 0
                while chosenZones.count < zoneTarget, step < owned.count {
                    let node = owned[(start + step) % owned.count].node
                    let zone = zoneOfNode[Int(node)]
                    if !chosen.contains(node), !chosenZones.contains(zone) {
                        chosen.append(node)
                        chosenZones.append(zone)
                    }
                    step += 1
                }
            }
            // Pass 2: fill up with the next distinct nodes clockwise, whatever their zone.
            var step = 0
            while chosen.count < rf, step < owned.count {
                let node = owned[(start + step) % owned.count].node
                if !chosen.contains(node) { chosen.append(node) }
                step += 1
            }
            if let existing = placementIndex[chosen] {
                rangePlacements.append(existing)
            } else {
                let index = UInt32(placementIndex.count)
                placementIndex[chosen] = index
                placementReplicas.append(contentsOf: chosen)
                rangePlacements.append(index)
            }
        }
        self.init(
            nodes: sorted.map(\.nodeID), replicationFactor: rf, tokens: owned.map(\.token),
            rangePlacements: rangePlacements, placementReplicas: placementReplicas
        )
    }

    /// The number of distinct replica lists (the same nodes in another order count again).
    public var placementCount: Int { self.replicationFactor == 0 ? 0 : self.placementReplicas.count / self.replicationFactor }

    /// The number of distinct replica sets: the placements spans are stored under (``PlacementKey``).
    public var replicaSetCount: Int {
        guard self.replicationFactor > 0 else { return 0 }
        var sets = Set<[UInt16]>()
        for start in stride(from: 0, to: self.placementReplicas.count, by: self.replicationFactor) {
            sets.insert(self.placementReplicas[start..<(start + self.replicationFactor)].sorted())
        }
        return sets.count
    }

    /// The number of tokens (and of ranges).
    public var tokenCount: Int { self.tokens.count }

    /// The placement (replica set index) of a key hash; -1 when the ring is empty.
    @inlinable public func placement(forHash hash: UInt64) -> Int {
        self.tokens.withUnsafeBufferPointer { tokens in
            guard !tokens.isEmpty else { return -1 }
            // The first token >= hash lies in the hash's bucket or is the first token of a later one.
            let bucket = Int(truncatingIfNeeded: hash >> self.bucketShift)
            var index = self.bucketStarts.withUnsafeBufferPointer { Int($0[bucket]) }
            while index < tokens.count, tokens[index] < hash { index &+= 1 }
            if index == tokens.count { index = 0 }
            return Int(self.rangePlacements.withUnsafeBufferPointer { $0[index] })
        }
    }

    /// The placement of a trace.
    @inlinable public func placement(for traceID: TraceID) -> Int {
        self.placement(forHash: XXHash64.hash(traceID))
    }

    /// Index (into `nodes`) of the `rank`-th replica of `placement`; rank 0 is the primary.
    @inlinable public func replica(_ rank: Int, ofPlacement placement: Int) -> Int {
        Int(self.placementReplicas.withUnsafeBufferPointer { $0[placement &* self.replicationFactor &+ rank] })
    }

    /// The replica set of `placement`, primary first.
    public func replicas(ofPlacement placement: Int) -> [NodeID] {
        guard placement >= 0 else { return [] }
        return (0..<self.replicationFactor).map { self.nodes[self.replica($0, ofPlacement: placement)] }
    }

    /// The replica set of a trace, primary first (empty when no node is eligible).
    public func replicas(for traceID: TraceID) -> [NodeID] {
        self.replicas(ofPlacement: self.placement(for: traceID))
    }
}
