import Testing
import WeftCluster
import WeftModel

struct DesiredHoldersTests {
    static let minute: UInt64 = 60_000_000_000
    static let names = ["a", "b", "c", "d", "e", "f", "g", "h"]

    static func placement(_ names: [String]) -> PlacementKey { PlacementKey(replicas: names.map(node)) }

    @Test func test_membersActiveAndAlive_areTheHolders() {
        let ring = RingState(["a", "b", "c", "d"].map { entry($0) })
        let key = Self.placement(["a", "b", "c"])
        #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: [:], replaceAfterNanos: 10 * Self.minute) == key.replicas)
    }

    @Test func test_leavingMember_isReplaced_deadMemberOnlyAfterTheDelay() {
        var ring = RingState(["a", "b", "c", "d"].map { entry($0) })
        let key = Self.placement(["a", "b", "c"])
        // Dead for less than the delay: kept.
        #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: [node("b"): Self.minute], replaceAfterNanos: 10 * Self.minute) == key.replicas)
        // Dead for longer: replaced by the only other active node.
        #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: [node("b"): 11 * Self.minute], replaceAfterNanos: 10 * Self.minute) == ["a", "c", "d"].map(node))
        // Leaving (a drain): replaced at once.
        ring.apply(entry("c", version: 2, state: .leaving))
        #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: [:], replaceAfterNanos: 10 * Self.minute) == ["a", "b", "d"].map(node))
        // Forgotten (no entry) counts as gone too; nothing left to replace it with: fewer holders.
        let small = RingState(["a", "b"].map { entry($0) })
        #expect(DesiredHolders.holders(of: key, ring: small, deadForNanos: [:], replaceAfterNanos: 0) == ["a", "b"].map(node))
    }

    /// A member restarting (JOINING while it replays its WAL) keeps its placements: nothing is copied
    /// to a stand-in that would keep an extra copy once the member is back.
    @Test func test_restartingMember_staysAHolder() {
        var ring = RingState(["a", "b", "c", "d"].map { entry($0) })
        ring.apply(entry("b", version: 2, state: .joining))
        let key = Self.placement(["a", "b", "c"])
        #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: [:], replaceAfterNanos: 10 * Self.minute) == key.replicas)
    }

    /// A stand-in that restarts (JOINING) or dies for less than the delay keeps its place like a member:
    /// choosing another for those seconds would copy the placement there for good.
    @Test func test_standInThatRestartsOrDiesBriefly_keepsItsPlace() {
        var ring = RingState(["a", "b", "c", "d", "e", "f"].map { entry($0) })
        ring.apply(entry("c", version: 2, state: .leaving))
        let key = Self.placement(["a", "b", "c"])
        let before = DesiredHolders.holders(of: key, ring: ring, deadForNanos: [:], replaceAfterNanos: 10 * Self.minute)
        let standIn = before.first { !key.replicas.contains($0) }!
        var restarting = ring
        restarting.apply(entry(standIn.rawValue, version: 2, state: .joining))
        #expect(DesiredHolders.holders(of: key, ring: restarting, deadForNanos: [:], replaceAfterNanos: 10 * Self.minute) == before)
        #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: [standIn: Self.minute], replaceAfterNanos: 10 * Self.minute) == before)
        let replaced = DesiredHolders.holders(of: key, ring: ring, deadForNanos: [standIn: 11 * Self.minute], replaceAfterNanos: 10 * Self.minute)
        #expect(!replaced.contains(standIn) && replaced.count == 3, "dead for longer: replaced")
    }

    /// A stand-in that already holds a drained member's placement keeps it when a node joins that
    /// would rank higher, so the join does not move the copy (and leave an extra one behind).
    @Test func test_standInThatHoldsThePlacement_keepsItAcrossAJoin() {
        var ring = RingState(["a", "b", "c", "d", "e"].map { entry($0) })
        ring.apply(entry("c", version: 2, state: .leaving))
        let key = Self.placement(["a", "b", "c"])
        let before = DesiredHolders.holders(of: key, ring: ring, deadForNanos: [:], replaceAfterNanos: .max)
        let standIn = before.first { !key.replicas.contains($0) }!
        // Find a joiner that outranks the stand-in without a catalog.
        for name in ["f", "g", "h", "i", "j", "k", "l", "m"] {
            var joined = ring
            joined.apply(entry(name))
            let unaware = DesiredHolders.holders(of: key, ring: joined, deadForNanos: [:], replaceAfterNanos: .max)
            guard !unaware.contains(standIn) else { continue }
            let aware = DesiredHolders.holders(of: key, ring: joined, deadForNanos: [:], replaceAfterNanos: .max, holding: [node("a"), node("b"), standIn])
            #expect(aware == before)
            return
        }
        Issue.record("no joiner outranked the stand-in")
    }

    /// Spans of a placement from a write ring before a drain are written where the repair loop put the
    /// drained member's copy, also after a node joined that outranks that stand-in: the writer prefers
    /// the nodes of the placement's own ring, the repair loop the current holders, and both name the
    /// same stand-in (ranking the joiner first wrote to a second stand-in: four copies for good).
    @Test func test_writerAndRepairLoop_nameTheSameStandIn_afterADrainAndAJoin() {
        var ring = RingState(["a", "b", "c", "d", "e"].map { entry($0) })
        let placedOn = Set(ring.entries.keys)
        ring.apply(entry("c", version: 2, state: .left))
        let key = Self.placement(["a", "b", "c"])
        let handedTo = DesiredHolders.holders(of: key, ring: ring, deadForNanos: [:], replaceAfterNanos: .max, holding: [node("a"), node("b")])
        let standIn = handedTo.first { !key.replicas.contains($0) }!
        #expect(DesiredHolders.writeTargets(of: key, ring: ring, preferring: placedOn).sorted() == handedTo)
        for name in ["f", "g", "h", "i", "j", "k", "l", "m"] {
            var joined = ring
            joined.apply(entry(name))
            guard DesiredHolders.writeTargets(of: key, ring: joined).contains(node(name)) else { continue }
            // This joiner outranks the stand-in: only the preference keeps the writes on the stand-in.
            let kept = DesiredHolders.holders(of: key, ring: joined, deadForNanos: [:], replaceAfterNanos: .max, holding: [node("a"), node("b"), standIn])
            #expect(kept == handedTo)
            #expect(DesiredHolders.writeTargets(of: key, ring: joined, preferring: placedOn).sorted() == kept)
            return
        }
        Issue.record("no joiner outranked the stand-in")
    }

    /// Random clusters, states, deaths and placements (seeded): RF holders whenever at least RF storage
    /// nodes are ACTIVE and alive; holders are distinct ACTIVE storage nodes; members still in the
    /// ring are kept; and changing a node that is neither a member nor a holder changes nothing.
    @Test(arguments: Array(1...200) as [UInt64])
    func test_properties(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let count = 3 + Int(rng.next() % 6)
        let names = Array(Self.names.prefix(count))
        var entries: [RingEntry] = []
        for name in names {
            let roll = rng.next() % 10
            let state: NodeState = roll < 6 ? .active : roll < 7 ? .leaving : roll < 8 ? .left : roll < 9 ? .joining : .active
            entries.append(entry(name, state: state, roles: rng.next() % 8 == 0 ? [.ingest] : .all))
        }
        let ring = RingState(entries)
        let delay = 10 * Self.minute
        var dead: [NodeID: UInt64] = [:]
        for name in names where rng.next() % 4 == 0 { dead[node(name)] = (rng.next() % 20) * Self.minute }
        var pool = names
        var members: [String] = []
        let rf = 1 + Int(rng.next() % 3)
        for _ in 0..<min(rf, pool.count) { members.append(pool.remove(at: Int(rng.next() % UInt64(pool.count)))) }
        let key = Self.placement(members)
        let holders = DesiredHolders.holders(of: key, ring: ring, deadForNanos: dead, replaceAfterNanos: delay)

        func activeStorage(_ n: NodeID) -> Bool { ring[n].map { $0.state == .active && $0.placesTokens } ?? false }
        func restarting(_ n: NodeID) -> Bool { ring[n].map { $0.state == .joining && $0.placesTokens } ?? false }
        func eligible(_ n: NodeID) -> Bool { (activeStorage(n) || restarting(n)) && (dead[n] ?? 0) < delay }
        #expect(Set(holders).count == holders.count)
        // Holders are ACTIVE or restarting (JOINING) storage nodes not dead for longer than the delay.
        #expect(holders.allSatisfy(eligible))
        for m in key.replicas where eligible(m) { #expect(holders.contains(m), "member \(m) kept") }
        let keptMembers = key.replicas.filter(eligible).count
        let standIns = ring.entries.keys.filter { eligible($0) && !key.replicas.contains($0) }.count
        if keptMembers + standIns >= members.count { #expect(holders.count == members.count, "seed \(seed): \(holders) for \(key)") }
        #expect(holders.count <= members.count)

        // Unrelated changes: a node that is neither member nor holder leaves, dies for long, or is forgotten.
        let unrelated = names.map(node).filter { !holders.contains($0) && !key.replicas.contains($0) }
        for other in unrelated {
            var changed = ring
            changed.apply(entry(other.rawValue, version: 5, state: .left))
            #expect(DesiredHolders.holders(of: key, ring: changed, deadForNanos: dead, replaceAfterNanos: delay) == holders)
            var longDead = dead
            longDead[other] = 100 * Self.minute
            #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: longDead, replaceAfterNanos: delay) == holders)
        }
    }
}
