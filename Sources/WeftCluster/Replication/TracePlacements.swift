import WeftModel

/// Where one trace's spans can be, from the write rings of the recent past and the read ring: the
/// placements a trace-by-ID read asks first, and whether what it found there is the whole trace.
///
/// A span is stored under the replica set of its trace under the write ring in force at its start
/// time, or at its write time less the history's retention when it was written later than that
/// (``WriteRingHistory``), so a trace whose spans started within the history lies in the placements
/// of its replica sets under the history's epochs. Spans can lie elsewhere when they started before
/// this node saw its first ring (placed by an ingest node's current ring of the time, which may
/// have been replaced since), when they started before the retention floor and before the last
/// ring change (written late, they went by the ring in force at their write time, unknown here), or
/// so close to a ring change that an ingest node may have seen a ring this node never recorded (two
/// changes arriving here in one update). ``covers(spanStarts:)`` answers false for those, so the
/// caller reads the other placements too. A span that started after the last ring change went by
/// the current ring whenever it was written: in a cluster whose ring has not changed since this
/// node started, every span since then is covered. Not foreseen: an ingest node started after a
/// span began places it by its ring at write time, which may be a ring in force for less than the
/// margin that this node never recorded.
public struct TracePlacements: Sendable {
    /// The placement keys of the trace under every epoch of the history and under the read ring.
    public let candidates: Set<PlacementKey>
    /// Span starts before this (nanoseconds since the Unix epoch) may lie outside ``candidates``.
    public let wholeFrom: UInt64
    /// Starts of the history's ring changes (all epochs but the first).
    let changes: [UInt64]
    /// Allowance for ring gossip delays and clock skew between nodes.
    let margin: UInt64

    /// Allowance for ring gossip delays and clock skew between nodes by default: one minute.
    public static let defaultMarginNanos: UInt64 = 60 * 1_000_000_000

    /// The candidate placements of `traceID`.
    /// - Parameters:
    ///   - history: this node's write rings of the recent past.
    ///   - reads: the current read ring (it includes LEAVING nodes).
    ///   - now: wall-clock nanoseconds since the Unix epoch.
    ///   - margin: how far from a ring change (or from the history's start) a span start must be for
    ///     the ring in force at that start to be the same on every node.
    public init(
        traceID: TraceID, history: WriteRingHistory, reads: ReplicaLookup, now: UInt64, margin: UInt64 = Self.defaultMarginNanos
    ) {
        var keys = Set<PlacementKey>()
        for epoch in history.epochs {
            let replicas = epoch.lookup.replicas(for: traceID)
            if !replicas.isEmpty { keys.insert(PlacementKey(replicas: replicas)) }
        }
        let readReplicas = reads.replicas(for: traceID)
        if !readReplicas.isEmpty { keys.insert(PlacementKey(replicas: readReplicas)) }
        self.candidates = keys
        let floor = now > history.retentionNanos ? now - history.retentionNanos : 0
        // Without a history nothing is known of where spans went: no start is covered.
        let first = history.epochs.first?.since ?? .max
        let last = history.epochs.last?.since ?? .max
        // Before the floor, only starts after the last change are placed alike at any write time.
        let (start, overflow) = max(first, min(floor, last)).addingReportingOverflow(margin)
        self.wholeFrom = overflow ? .max : start
        self.changes = history.epochs.dropFirst().map(\.since)
        self.margin = margin
    }

    /// Whether spans started anywhere from `first` to `last` all lie in ``candidates``: the range
    /// starts at or after ``wholeFrom`` and no ring change lies within the margin of it.
    public func covers(startsFrom first: UInt64, to last: UInt64) -> Bool {
        guard first <= last, first >= self.wholeFrom else { return false }
        let (low, high) = (first > self.margin ? first - self.margin : 0, last > UInt64.max - self.margin ? UInt64.max : last + self.margin)
        return !self.changes.contains { $0 >= low && $0 <= high }
    }

    /// Whether spans with these start times all lie in ``candidates``: each started at or after
    /// ``wholeFrom`` and more than the margin away from every ring change.
    public func covers(spanStarts: some Sequence<UInt64>) -> Bool {
        for start in spanStarts {
            guard start >= self.wholeFrom else { return false }
            for change in self.changes where (start > change ? start - change : change - start) <= self.margin { return false }
        }
        return true
    }
}
