/// The write rings in force over the recent past, so that a span's placement is a function of the
/// span (its trace ID and start time) rather than of the moment it happens to be sent.
///
/// A client that retries a request after the ring changed (a node joined, drained or restarted)
/// sends the same spans again. Placed by the ring current at each attempt, a retried span could be
/// stored under two placements: more than RF copies, and counted twice by a query that reads both.
/// Placed by the ring in force at the span's start time, every attempt lands in the same placement.
///
/// An epoch starts when this node first sees a ring whose write ownership differs from the last one
/// (wall-clock nanoseconds). A start older than `retentionNanos` is treated as `now - retentionNanos`,
/// so old rings stop taking writes after that long. A span that started before this node saw its
/// first ring goes by the current ring: this node cannot know where it went before (so a node that
/// starts while spans with old timestamps arrive spreads them over the whole ring, not the first
/// members it heard of). A ring with fewer eligible nodes than the replication factor asked for (a
/// cluster still forming) never becomes history: the next ring replaces it.
public struct WriteRingHistory: Sendable {
    /// One write ring and when this node first saw it.
    public struct Epoch: Sendable {
        /// Wall-clock nanoseconds since the Unix epoch (never decreasing along the history).
        public let since: UInt64
        public let lookup: ReplicaLookup
    }

    /// How long a replaced ring still places spans that started while it was in force.
    public static let defaultRetentionNanos: UInt64 = 600 * 1_000_000_000

    /// Oldest first; empty until a ring with at least one placement is observed.
    public private(set) var epochs: [Epoch] = []
    public let retentionNanos: UInt64
    /// The replication factor asked for: rings that cannot give it are replaced, not kept.
    public let requestedReplicationFactor: Int
    /// At most this many epochs are kept (the oldest are dropped first).
    public let maxEpochs: Int

    public init(requestedReplicationFactor: Int, retentionNanos: UInt64 = Self.defaultRetentionNanos, maxEpochs: Int = 32) {
        self.requestedReplicationFactor = requestedReplicationFactor
        self.retentionNanos = retentionNanos
        self.maxEpochs = max(1, maxEpochs)
    }

    /// The ring new spans go to (`.empty` before any ring was observed).
    public var current: ReplicaLookup { self.epochs.last?.lookup ?? .empty }

    /// Records `lookup` as the write ring from `now` on, unless it places keys exactly like the current
    /// one; drops epochs that can no longer place anything. Returns true when an epoch was added or replaced.
    ///
    /// A ring with fewer nodes than the requested replication factor only because members are
    /// restarting (`restarting`: JOINING members that hold tokens) does not replace a ring that had
    /// enough: new spans keep going to the full replica sets, the restarting member included (its
    /// pushes fail or are hinted), rather than to placements of fewer replicas than RF that no repair
    /// would ever complete.
    @discardableResult
    public mutating func observe(_ lookup: ReplicaLookup, now: UInt64, restarting: Set<NodeID> = []) -> Bool {
        if let last = self.epochs.last, last.lookup.placesLike(lookup) { return false }
        guard lookup.placementCount > 0 else { return false }
        if let last = self.epochs.last, lookup.replicationFactor < self.requestedReplicationFactor,
            last.lookup.replicationFactor > lookup.replicationFactor, !restarting.isEmpty,
            Set(last.lookup.nodes).subtracting(lookup.nodes).isSubset(of: restarting)
        {
            return false
        }
        let since = max(now, self.epochs.last?.since ?? 0)
        if let last = self.epochs.last, last.lookup.replicationFactor < self.requestedReplicationFactor {
            // An under-replicated ring was only a cluster forming (or shrinking below RF): it is not history.
            self.epochs[self.epochs.count - 1] = Epoch(since: last.since, lookup: lookup)
        } else {
            self.epochs.append(Epoch(since: since, lookup: lookup))
        }
        self.prune(now: now)
        return true
    }

    /// The index of the epoch that places a span starting at `start` (nanoseconds since the Unix
    /// epoch) when written at `now`; nil when no ring was observed.
    @inlinable public func epoch(forStart start: UInt64, now: UInt64) -> Int? {
        guard !self.epochs.isEmpty else { return nil }
        let floor = now > self.retentionNanos ? now - self.retentionNanos : 0
        let t = max(start, floor)
        // Usually the span is newer than the last change; one older than the whole history goes by the current ring.
        if t >= self.epochs[self.epochs.count - 1].since || t < self.epochs[0].since { return self.epochs.count - 1 }
        var index = self.epochs.count - 2
        while index > 0, self.epochs[index].since > t { index -= 1 }
        return index
    }

    /// Drops epochs that no span can map to any more (their successor began before `now - retention`)
    /// and keeps at most `maxEpochs`.
    private mutating func prune(now: UInt64) {
        let floor = now > self.retentionNanos ? now - self.retentionNanos : 0
        var drop = 0
        while drop + 1 < self.epochs.count, self.epochs[drop + 1].since <= floor { drop += 1 }
        drop = max(drop, self.epochs.count - self.maxEpochs)
        guard drop > 0 else { return }
        self.epochs.removeFirst(drop)
    }
}

extension ReplicaLookup {
    /// Whether both lookups give every key the same replica set in the same order.
    public func placesLike(_ other: ReplicaLookup) -> Bool {
        self.nodes == other.nodes && self.replicationFactor == other.replicationFactor && self.tokens == other.tokens
            && self.rangePlacements == other.rangePlacements && self.placementReplicas == other.placementReplicas
    }
}
