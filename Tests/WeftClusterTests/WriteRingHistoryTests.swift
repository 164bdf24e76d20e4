import Testing
import WeftCluster
import WeftModel

struct WriteRingHistoryTests {
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 1_800_000_000 * 1_000_000_000

    static func writes(_ names: [String], rf: Int = 3) -> ReplicaLookup {
        Ring(state: RingState(names.map { entry($0) }), replicationFactor: rf).writes
    }

    static func trace(_ i: UInt64) -> TraceID { TraceID(high: i &* 0x9E37_79B9_7F4A_7C15, low: ~i) }

    @Test func test_sameOwnership_addsNoEpoch_aChangeAddsOneFromNow() {
        var history = WriteRingHistory(requestedReplicationFactor: 3)
        #expect(history.epoch(forStart: Self.t0, now: Self.t0) == nil)
        let first = history.observe(Self.writes(["a", "b", "c", "d"]), now: Self.t0)
        let same = history.observe(Self.writes(["d", "c", "b", "a"]), now: Self.t0 + Self.second)
        let joined = history.observe(Self.writes(["a", "b", "c", "d", "e"]), now: Self.t0 + 10 * Self.second)
        #expect(first && !same && joined, "same nodes make the same ring")
        #expect(history.epochs.count == 2)
        #expect(history.epochs[0].since == Self.t0)
        #expect(history.epochs[1].since == Self.t0 + 10 * Self.second)
        // Spans started before the change keep the old ring; spans from the change on take the new one.
        #expect(history.epoch(forStart: Self.t0 + 9 * Self.second, now: Self.t0 + 20 * Self.second) == 0)
        #expect(history.epoch(forStart: Self.t0, now: Self.t0 + 20 * Self.second) == 0)
        #expect(history.epoch(forStart: Self.t0 - 1, now: Self.t0 + 20 * Self.second) == 1, "older than the history: the current ring")
        #expect(history.epoch(forStart: Self.t0 + 10 * Self.second, now: Self.t0 + 20 * Self.second) == 1)
        #expect(history.epoch(forStart: Self.t0 + 99 * Self.second, now: Self.t0 + 20 * Self.second) == 1, "a start in the future")
        #expect(history.current.placesLike(Self.writes(["a", "b", "c", "d", "e"])))
    }

    @Test func test_startsOlderThanTheRetention_goByTheRingOfThatBoundary_andOldEpochsArePruned() {
        let retention = 600 * Self.second
        var history = WriteRingHistory(requestedReplicationFactor: 3, retentionNanos: retention)
        history.observe(Self.writes(["a", "b", "c"]), now: Self.t0)
        history.observe(Self.writes(["a", "b", "c", "d"]), now: Self.t0 + 100 * Self.second)
        // 20 minutes later a span that started before the change is placed by the new ring.
        #expect(history.epoch(forStart: Self.t0 + 50 * Self.second, now: Self.t0 + 1_200 * Self.second) == 1)
        // Within the retention it still goes by the old one.
        #expect(history.epoch(forStart: Self.t0 + 50 * Self.second, now: Self.t0 + 600 * Self.second) == 0)
        history.observe(Self.writes(["a", "b", "c", "d", "e"]), now: Self.t0 + 1_200 * Self.second)
        #expect(history.epochs.count == 2, "the first ring can no longer place anything")
        #expect(history.epochs[0].since == Self.t0 + 100 * Self.second)
        #expect(history.epochs[0].lookup.placesLike(Self.writes(["a", "b", "c", "d"])))
    }

    @Test func test_aClusterStillForming_leavesNoHistory() {
        var history = WriteRingHistory(requestedReplicationFactor: 3)
        history.observe(Self.writes(["a"]), now: Self.t0)
        history.observe(Self.writes(["a", "b"]), now: Self.t0 + Self.second)
        history.observe(Self.writes(["a", "b", "c"]), now: Self.t0 + 2 * Self.second)
        #expect(history.epochs.count == 1)
        #expect(history.epochs[0].since == Self.t0)
        let empty = history.observe(.empty, now: Self.t0 + 3 * Self.second)
        #expect(!empty, "an empty ring places nothing: the last one stays")
        #expect(history.epochs.count == 1)
    }

    /// Three nodes, RF=3, one restarting: the compiled ring holds two nodes, but new spans keep the
    /// three-replica placements (two-replica placements would stay at two copies for good).
    @Test func test_aMemberRestartingBelowRF_keepsTheFullRing_aMemberLeavingDoesNot() {
        var history = WriteRingHistory(requestedReplicationFactor: 3)
        history.observe(Self.writes(["a", "b", "c"]), now: Self.t0)
        let c = NodeID("c")!
        let keptFull = history.observe(Self.writes(["a", "b"]), now: Self.t0 + Self.second, restarting: [c])
        #expect(!keptFull)
        #expect(history.epochs.count == 1)
        #expect(history.current.replicationFactor == 3)
        #expect(history.current.replicas(for: Self.trace(1)).contains(c))
        // Back from its restart: nothing changed.
        let back = history.observe(Self.writes(["a", "b", "c"]), now: Self.t0 + 2 * Self.second)
        #expect(!back)
        // A member gone for good (not restarting) does shrink the ring.
        let shrank = history.observe(Self.writes(["a", "b"]), now: Self.t0 + 3 * Self.second)
        #expect(shrank)
        #expect(history.current.replicationFactor == 2)
        // Another node's restart does not keep a ring whose missing member is not restarting.
        var other = WriteRingHistory(requestedReplicationFactor: 3)
        other.observe(Self.writes(["a", "b", "c"]), now: Self.t0)
        let otherShrank = other.observe(Self.writes(["a", "b"]), now: Self.t0 + Self.second, restarting: [NodeID("d")!])
        #expect(otherShrank)
    }

    @Test func test_keepsAtMostMaxEpochs() {
        var history = WriteRingHistory(requestedReplicationFactor: 1, maxEpochs: 3)
        let names = ["a", "b", "c", "d", "e", "f"]
        for n in 1...names.count { history.observe(Self.writes(Array(names.prefix(n)), rf: 1), now: Self.t0 + UInt64(n) * Self.second) }
        #expect(history.epochs.count == 3)
        #expect(history.epochs[0].since == Self.t0 + 4 * Self.second)
        #expect(history.current.nodes.count == 6)
    }

    /// Random sequences of joins, drains and restarts (seeded): a span first written at some moment and
    /// written again at any later moment within the retention is given the same placement key both times
    /// (spans that started after the history began: older ones go by the current ring).
    @Test(arguments: Array(1...100) as [UInt64])
    func test_aSpanSentAgainAfterRingChanges_keepsItsPlacement(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var active = ["n1", "n2", "n3", "n4"]
        var spare = ["n5", "n6", "n7"]
        var history = WriteRingHistory(requestedReplicationFactor: 3)
        var now = Self.t0
        history.observe(Self.writes(active), now: now)
        // (trace, start, key at first write)
        var written: [(TraceID, UInt64, PlacementKey)] = []
        for step in 0..<60 {
            now += 1 + rng.next() % (20 * Self.second)
            switch rng.next() % 6 {
            case 0 where !spare.isEmpty:
                active.append(spare.removeLast())
            case 1 where active.count > 3:
                spare.append(active.remove(at: Int(rng.next() % UInt64(active.count))))
            default:
                break
            }
            history.observe(Self.writes(active), now: now)
            // A span started up to 30 s ago, written now.
            let start = max(Self.t0, now - rng.next() % (30 * Self.second))
            let trace = Self.trace(UInt64(step) &+ seed << 8)
            let epoch = history.epoch(forStart: start, now: now)!
            written.append((trace, start, PlacementKey(replicas: history.epochs[epoch].lookup.replicas(for: trace))))
            // Every earlier span sent again now (within the retention) lands where it first did.
            for (trace, start, key) in written where now - start < history.retentionNanos {
                let again = history.epoch(forStart: start, now: now)!
                #expect(PlacementKey(replicas: history.epochs[again].lookup.replicas(for: trace)) == key, "seed \(seed) step \(step)")
            }
        }
    }

    @Test func test_writeTargets_keepActiveAndJoiningMembers_replaceLeavingAndForgotten() {
        var ring = RingState(["a", "b", "c", "d", "e"].map { entry($0) })
        let key = PlacementKey(replicas: ["a", "b", "c"].map(node))
        #expect(DesiredHolders.writeTargets(of: key, ring: ring) == key.replicas)
        ring.apply(entry("b", version: 2, state: .joining))
        #expect(DesiredHolders.writeTargets(of: key, ring: ring) == key.replicas, "a restarting member gets a hint, not a stand-in")
        ring.apply(entry("c", version: 2, state: .leaving))
        let targets = DesiredHolders.writeTargets(of: key, ring: ring)
        #expect(targets.count == 3)
        #expect(targets[0] == node("a") && targets[1] == node("b"))
        #expect(["d", "e"].map(node).contains(targets[2]))
        // The stand-in is the one the repair loop would choose for a drained member.
        let holders = DesiredHolders.holders(of: key, ring: RingState(["a", "b", "d", "e"].map { entry($0) } + [entry("c", version: 2, state: .leaving)]), deadForNanos: [:], replaceAfterNanos: .max)
        #expect(holders.contains(targets[2]))
        // No active node left outside the set: fewer targets.
        let small = RingState([entry("a"), entry("b"), entry("c", version: 2, state: .left)])
        #expect(DesiredHolders.writeTargets(of: key, ring: small) == ["a", "b"].map(node))
    }
}
