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

    /// A member restarting (JOINING again for a moment after a kill or a wiped data dir) stays a holder:
    /// replacing it would copy the placement to a node that keeps it after the member is back.
    @Test func test_joiningMember_keepsItsPlace_replacementsAreActiveOnly() {
        var ring = RingState(["a", "b", "c", "d", "e"].map { entry($0) })
        let key = Self.placement(["a", "b", "c"])
        ring.apply(entry("b", version: 2, state: .joining))
        #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: [:], replaceAfterNanos: 10 * Self.minute) == key.replicas)
        // Dead for longer than the delay while JOINING: replaced like any member.
        let replaced = DesiredHolders.holders(of: key, ring: ring, deadForNanos: [node("b"): 11 * Self.minute], replaceAfterNanos: 10 * Self.minute)
        #expect(!replaced.contains(node("b")) && replaced.count == 3)
        // A JOINING node that is not a member is never chosen as a replacement.
        ring.apply(entry("c", version: 2, state: .leaving))
        ring.apply(entry("d", version: 2, state: .joining))
        #expect(DesiredHolders.holders(of: key, ring: ring, deadForNanos: [:], replaceAfterNanos: 10 * Self.minute) == ["a", "b", "e"].map(node))
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
        func joiningStorage(_ n: NodeID) -> Bool { ring[n].map { $0.state == .joining && $0.placesTokens } ?? false }
        #expect(Set(holders).count == holders.count)
        // Holders are ACTIVE storage nodes, or members restarting (JOINING) that keep their place.
        #expect(holders.allSatisfy { activeStorage($0) || (joiningStorage($0) && key.replicas.contains($0)) })
        for m in key.replicas where (activeStorage(m) || joiningStorage(m)) && (dead[m] ?? 0) < delay { #expect(holders.contains(m), "member \(m) kept") }
        let activeAlive = ring.entries.keys.filter { activeStorage($0) && dead[$0] == nil }.count
        if activeAlive >= members.count { #expect(holders.count == members.count, "seed \(seed): \(holders) for \(key)") }
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
