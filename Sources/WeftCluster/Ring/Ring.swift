import WeftModel

/// The consistent-hash ring built from a `RingState`: many tokens per storage node, derived from the
/// node ID, and two compiled lookups.
///
/// - `writes` places keys over storage nodes in state `active`: the replica set new data goes to.
/// - `reads` places keys over storage nodes in state `active` or `leaving`: while a node drains, the
///   sets that still include it (it holds data until the handoff is done).
/// - `joining` and `left` nodes own nothing. Liveness does not change ownership: a dead `active`
///   node still owns its ranges; writers skip it while the quorum holds and repair restores RF later.
///
/// The replica set of a trace is the first RF distinct nodes clockwise from xxHash64(trace ID bytes);
/// with `zoneAware`, the first nodes of distinct zones come first, as long as there are zones left.
public struct Ring: Sendable {
    /// The CRDT state this ring was built from.
    public let state: RingState
    /// The replication factor asked for (each lookup caps it by its eligible node count).
    public let requestedReplicationFactor: Int
    public let writes: ReplicaLookup
    public let reads: ReplicaLookup

    /// Builds both lookups from `state`.
    /// - Parameters:
    ///   - replicationFactor: the wanted number of replicas (3 by default).
    ///   - zoneAware: spread replica sets over distinct zones when there are enough.
    public init(state: RingState, replicationFactor: Int = 3, zoneAware: Bool = true) {
        self.state = state
        self.requestedReplicationFactor = replicationFactor
        let placing = state.entries.values.filter(\.placesTokens)
        self.writes = ReplicaLookup(entries: placing.filter { $0.state.ownsWrites }, replicationFactor: replicationFactor, zoneAware: zoneAware)
        self.reads = ReplicaLookup(entries: placing.filter { $0.state.ownsReads }, replicationFactor: replicationFactor, zoneAware: zoneAware)
    }

    /// The sum of the entry versions (see `RingState.version`).
    public var version: UInt64 { self.state.version }

    /// Where a trace's new spans go.
    public func writeReplicas(for traceID: TraceID) -> [NodeID] { self.writes.replicas(for: traceID) }

    /// Who may hold a trace's spans written under this ring.
    public func readReplicas(for traceID: TraceID) -> [NodeID] { self.reads.replicas(for: traceID) }

    /// The tokens of a node: xxHash64 of (node ID bytes, token index as 4 big-endian bytes), so a
    /// restarted node with the same ID places the same tokens.
    public static func tokens(for node: NodeID, count: Int) -> [UInt64] {
        var input = Array(node.rawValue.utf8)
        let prefix = input.count
        input.append(contentsOf: [0, 0, 0, 0])
        return (0..<count).map { i in
            input[prefix] = UInt8(truncatingIfNeeded: i >> 24)
            input[prefix + 1] = UInt8(truncatingIfNeeded: i >> 16)
            input[prefix + 2] = UInt8(truncatingIfNeeded: i >> 8)
            input[prefix + 3] = UInt8(truncatingIfNeeded: i)
            return input.withUnsafeBytes { XXHash64.hash(raw: $0, seed: Ring.tokenSeed) }
        }
    }

    /// The fixed hash seed of token derivation (keys are hashed with seed 0).
    public static let tokenSeed: UInt64 = 0x5745_4654_544F_4B4E
}
