import Testing
import WeftCluster
import WeftModel

struct TracePlacementsTests {
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 1_800_000_000 * 1_000_000_000
    static let margin: UInt64 = 60 * second

    static func ring(_ names: [String], leaving: Set<String> = []) -> Ring {
        Ring(state: RingState(names.map { entry($0, state: leaving.contains($0) ? .leaving : .active) }), replicationFactor: 3)
    }

    static func key(_ lookup: ReplicaLookup, _ trace: TraceID) -> PlacementKey { PlacementKey(replicas: lookup.replicas(for: trace)) }

    /// A trace whose replica set differs between the two rings (found by trying IDs in order).
    static func movedTrace(_ a: ReplicaLookup, _ b: ReplicaLookup) -> TraceID {
        for i in 1...1_000 as ClosedRange<UInt64> {
            let trace = WriteRingHistoryTests.trace(i)
            if Self.key(a, trace) != Self.key(b, trace) { return trace }
        }
        Issue.record("no trace moved")
        return WriteRingHistoryTests.trace(1)
    }

    @Test func test_candidates_areTheTracesReplicaSetsUnderEveryEpochAndTheReadRing() {
        let four = Self.ring(["a", "b", "c", "d"])
        let five = Self.ring(["a", "b", "c", "d", "e"])
        var history = WriteRingHistory(requestedReplicationFactor: 3)
        history.observe(four.writes, now: Self.t0)
        history.observe(five.writes, now: Self.t0 + 100 * Self.second)
        let trace = Self.movedTrace(four.writes, five.writes)
        // Now "b" drains: it still holds what it held, and the read ring still names it.
        let draining = Self.ring(["a", "b", "c", "d", "e"], leaving: ["b"])
        let placements = TracePlacements(traceID: trace, history: history, reads: draining.reads, now: Self.t0 + 200 * Self.second)
        let expected: Set = [Self.key(four.writes, trace), Self.key(five.writes, trace), Self.key(draining.reads, trace)]
        #expect(placements.candidates == expected)
        #expect(placements.candidates.count == 2, "the read ring with b leaving places like the five-node ring")
        #expect(placements.candidates.allSatisfy { $0.replicas.count == 3 })
    }

    @Test func test_covers_startsWithinTheHistoryAwayFromRingChanges() {
        let retention = 600 * Self.second
        var history = WriteRingHistory(requestedReplicationFactor: 3, retentionNanos: retention)
        history.observe(Self.ring(["a", "b", "c", "d"]).writes, now: Self.t0)
        let change = Self.t0 + 300 * Self.second
        history.observe(Self.ring(["a", "b", "c", "d", "e"]).writes, now: change)
        let now = Self.t0 + 500 * Self.second
        let placements = TracePlacements(
            traceID: WriteRingHistoryTests.trace(3), history: history, reads: Self.ring(["a", "b", "c", "d", "e"]).reads, now: now, margin: Self.margin
        )
        #expect(placements.wholeFrom == Self.t0 + Self.margin, "the first ring seen, within the retention")
        #expect(placements.covers(spanStarts: [Self.t0 + 100 * Self.second, change + 100 * Self.second]), "one span each side of the change")
        #expect(!placements.covers(spanStarts: [Self.t0 + 100 * Self.second, Self.t0 + 30 * Self.second]), "near the history's start")
        #expect(!placements.covers(spanStarts: [Self.t0 - 1]), "older than the history")
        #expect(!placements.covers(spanStarts: [change - 10 * Self.second]), "near a ring change: another node may have used another ring")
        #expect(!placements.covers(spanStarts: [change + Self.margin]))
        #expect(placements.covers(spanStarts: [change + Self.margin + 1]))
        #expect(placements.covers(spanStarts: [UInt64]()), "nothing found is not incomplete (the caller reads the rest on a miss)")

        // Later than the retention, the floor rules: older starts went by some ingest node's current ring.
        let later = TracePlacements(
            traceID: WriteRingHistoryTests.trace(3), history: history, reads: Self.ring(["a", "b", "c", "d", "e"]).reads,
            now: Self.t0 + 2_000 * Self.second, margin: Self.margin
        )
        #expect(later.wholeFrom == Self.t0 + 1_400 * Self.second + Self.margin)
        #expect(!later.covers(spanStarts: [Self.t0 + 1_000 * Self.second]))
        #expect(later.covers(spanStarts: [Self.t0 + 1_500 * Self.second]))
    }

    @Test func test_withoutHistory_nothingIsCovered() {
        let reads = Self.ring(["a", "b", "c"]).reads
        let placements = TracePlacements(traceID: WriteRingHistoryTests.trace(1), history: WriteRingHistory(requestedReplicationFactor: 3), reads: reads, now: Self.t0)
        #expect(placements.candidates == [Self.key(reads, WriteRingHistoryTests.trace(1))])
        #expect(!placements.covers(spanStarts: [Self.t0]))
    }
}
