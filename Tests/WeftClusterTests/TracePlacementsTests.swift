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

        // Later than the retention, a start older than the floor went by the ring in force at its
        // write time less the retention: the last ring for a start after the last change, unknown
        // for an older one.
        let later = TracePlacements(
            traceID: WriteRingHistoryTests.trace(3), history: history, reads: Self.ring(["a", "b", "c", "d", "e"]).reads,
            now: Self.t0 + 2_000 * Self.second, margin: Self.margin
        )
        #expect(later.wholeFrom == change + Self.margin)
        #expect(later.covers(spanStarts: [Self.t0 + 1_000 * Self.second, Self.t0 + 1_500 * Self.second]))
        #expect(!later.covers(spanStarts: [change + Self.margin]))
        #expect(!later.covers(spanStarts: [Self.t0 + 100 * Self.second]), "written late, it went by the five-node ring; on time, the four-node one")
    }

    /// A range of starts is covered exactly when every start in it is: checked start by start over
    /// seeded ranges, on a small time scale (nanoseconds) where every start can be enumerated.
    @Test(arguments: 0..<20 as Range<UInt64>)
    func test_coversRange_isEveryStartInItCovered(seed: UInt64) {
        let (t0, margin): (UInt64, UInt64) = (1_000, 10)
        var history = WriteRingHistory(requestedReplicationFactor: 3, retentionNanos: 600)
        history.observe(Self.ring(["a", "b", "c", "d"]).writes, now: t0)
        history.observe(Self.ring(["a", "b", "c", "d", "e"]).writes, now: t0 + 200)
        history.observe(Self.ring(["a", "b", "c", "e"]).writes, now: t0 + 350)
        let placements = TracePlacements(
            traceID: WriteRingHistoryTests.trace(seed), history: history, reads: Self.ring(["a", "b", "c", "e"]).reads, now: t0 + 500, margin: margin
        )
        var rng = SplitMix64(seed: seed)
        for _ in 0..<200 {
            let a = t0 - 50 + rng.next() % 600
            let b = a + rng.next() % (rng.next() % 4 == 0 ? 300 : 30)
            #expect(placements.covers(startsFrom: a, to: b) == placements.covers(spanStarts: Array(a...b)), "\(a)...\(b)")
        }
        #expect(!placements.covers(startsFrom: t0 + 300, to: t0 + 100), "an empty range is not a trace's")
    }

    /// Where a span went (the ring ``WriteRingHistory/epoch(forStart:now:)`` gives an ingest node
    /// writing it at any time from its start on, with a history begun whenever that node started)
    /// is among the reader's candidates whenever the reader, started at another time, says it covers
    /// the start: checked over random ring changes, node starts, span starts and write times.
    @Test(arguments: 0..<100 as Range<UInt64>)
    func test_covered_startsLieAmongTheCandidates_atAnyWriteTime(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let retention = 600 * Self.second
        let rings = [["a", "b", "c"], ["a", "b", "c", "d"], ["a", "b", "c", "d", "e"], ["a", "c", "d", "e"], ["b", "c", "d", "e", "f"]].map { Self.ring($0) }
        // A change the reader never records: followed within the margin by another, both reached the
        // reader in one update (the writer saw the ring between them).
        var changes: [(at: UInt64, ring: Int, unseen: Bool)] = [(Self.t0, 0, false)]
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let quick = Bool.random(using: &rng)
            let at = changes.last!.at + UInt64.random(in: 30...1_500, using: &rng) * Self.second
            changes.append((at, (changes.last!.ring + Int.random(in: 1..<rings.count, using: &rng)) % rings.count, quick))
            if quick { changes.append((at + 10 * Self.second, (changes.last!.ring + Int.random(in: 1..<rings.count, using: &rng)) % rings.count, false)) }
        }
        let end = changes.last!.at + 2_000 * Self.second
        /// The history of a node started at `started`: the ring current then, and every change after.
        func history(started: UInt64, at now: UInt64, reader: Bool) -> WriteRingHistory {
            var h = WriteRingHistory(requestedReplicationFactor: 3, retentionNanos: retention)
            for (i, c) in changes.enumerated() where c.at <= now && !(reader && c.unseen) {
                let next = i + 1 < changes.count ? changes[i + 1].at : .max
                if next <= started { continue }
                h.observe(rings[c.ring].writes, now: max(c.at, started))
            }
            return h
        }
        var covered = 0
        for _ in 0..<300 {
            let trace = WriteRingHistoryTests.trace(UInt64.random(in: 1...10_000, using: &rng))
            let start = UInt64.random(in: Self.t0 - 1_000 * Self.second...end, using: &rng)
            let written = UInt64.random(in: max(start, Self.t0)...end + 1_000 * Self.second, using: &rng)
            let writerStarted = UInt64.random(in: Self.t0...written, using: &rng)
            let now = UInt64.random(in: written...end + 2_000 * Self.second, using: &rng)
            let readerStarted = UInt64.random(in: Self.t0...now, using: &rng)
            // Not modelled (no reader can know it): a writer started after the span began places it by
            // its ring at write time, and that ring is one the reader never recorded.
            if writerStarted > start, changes.last(where: { $0.at <= written })!.unseen { continue }
            let writer = history(started: writerStarted, at: written, reader: false)
            guard let epoch = writer.epoch(forStart: start, now: written) else { continue }
            let stored = Self.key(writer.epochs[epoch].lookup, trace)
            let reads = rings[changes.filter { $0.at <= now }.last!.ring].reads
            let reader = TracePlacements(traceID: trace, history: history(started: readerStarted, at: now, reader: true), reads: reads, now: now, margin: Self.margin)
            guard reader.covers(spanStarts: [start]) else { continue }
            covered += 1
            #expect(
                reader.candidates.contains(stored),
                "seed \(seed): start \(Int64(bitPattern: start &- Self.t0) / 1_000_000_000) s, writer up \((writerStarted - Self.t0) / Self.second) s, written \((written - Self.t0) / Self.second) s, reader up \((readerStarted - Self.t0) / Self.second) s, read \((now - Self.t0) / Self.second) s"
            )
        }
        #expect(covered > 0)
    }

    /// The replica sets a ring reports are the placement keys its keys go to: the same nodes in
    /// another order are one set.
    @Test func test_replicaSetCount_isTheNumberOfPlacementKeys() {
        for names in [["a", "b", "c"], ["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "e", "f", "g"]] {
            let lookup = Self.ring(names).writes
            var keys = Set<PlacementKey>()
            for i in 1...20_000 as ClosedRange<UInt64> { keys.insert(Self.key(lookup, WriteRingHistoryTests.trace(i))) }
            #expect(lookup.replicaSetCount == keys.count, "\(names.count) nodes")
            #expect(lookup.replicaSetCount <= lookup.placementCount)
        }
        #expect(Self.ring(["a", "b", "c"]).writes.replicaSetCount == 1)
    }

    @Test func test_withoutHistory_nothingIsCovered() {
        let reads = Self.ring(["a", "b", "c"]).reads
        let placements = TracePlacements(traceID: WriteRingHistoryTests.trace(1), history: WriteRingHistory(requestedReplicationFactor: 3), reads: reads, now: Self.t0)
        #expect(placements.candidates == [Self.key(reads, WriteRingHistoryTests.trace(1))])
        #expect(!placements.covers(spanStarts: [Self.t0]))
    }
}
