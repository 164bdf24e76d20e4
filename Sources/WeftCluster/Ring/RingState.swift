/// The ring as a state-based CRDT: one `RingEntry` per node ever seen, merged entry-wise by keeping the
/// greater entry in `RingEntry`'s total order.
///
/// Merge is the least upper bound of a join-semilattice, hence commutative, associative and
/// idempotent. Nothing is ever deleted: leaving or forgetting a node writes a `left` entry with a
/// higher version (a tombstone), which beats every older entry a lagging peer may still gossip.
public struct RingState: Hashable, Sendable {
    /// The entries, by node.
    public private(set) var entries: [NodeID: RingEntry] = [:]
    /// An order-independent fingerprint of the entries (wrapping sum of per-entry hashes); equal
    /// states have equal digests, so peers compare digests before exchanging whole states.
    public private(set) var digest: UInt64 = 0

    public init() {}

    public init(_ entries: some Sequence<RingEntry>) {
        for entry in entries { self.apply(entry) }
    }

    /// The entry of `node`, if any.
    public subscript(node: NodeID) -> RingEntry? { self.entries[node] }

    /// The entries sorted by node ID (a stable order for encoding and display).
    public var sortedEntries: [RingEntry] { self.entries.values.sorted { $0.nodeID < $1.nodeID } }

    /// The sum of the entries' versions: grows with every change that bumps a version.
    public var version: UInt64 { self.entries.values.reduce(0) { $0 &+ $1.version } }

    /// Merges one entry; returns true when it changed the state.
    @discardableResult
    public mutating func apply(_ entry: RingEntry) -> Bool {
        if let current = self.entries[entry.nodeID] {
            guard current.isSuperseded(by: entry) else { return false }
            self.digest &-= Self.fingerprint(current)
        }
        self.entries[entry.nodeID] = entry
        self.digest &+= Self.fingerprint(entry)
        return true
    }

    /// Merges `other` into this state; returns the entries that changed here.
    @discardableResult
    public mutating func merge(_ other: RingState) -> [RingEntry] {
        var changed: [RingEntry] = []
        for entry in other.entries.values where self.apply(entry) { changed.append(entry) }
        return changed
    }

    /// The merge of this state and `other`.
    public func merged(with other: RingState) -> RingState {
        var result = self
        result.merge(other)
        return result
    }

    /// The entry's contribution to `digest`: xxHash64 of its wire encoding.
    static func fingerprint(_ entry: RingEntry) -> UInt64 {
        var writer = ByteWriter()
        writer.write(entry)
        return writer.bytes.withUnsafeBytes { XXHash64.hash(raw: $0, seed: 0x5745_4654_5249_4E47) }
    }
}
