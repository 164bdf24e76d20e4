import Testing
import WeftCluster
import WeftModel

/// Feeds events to one SWIM instance and pattern-matches the directives.
struct SWIMInstanceTests {
    static let second: UInt64 = 1_000_000_000
    static let settings = SWIMSettings()

    /// An instance "a" that knows `peers` alive members p1...pN (addresses 2...N+1).
    static func makeInstance(peers: Int = 5) -> SWIMInstance {
        var swim = SWIMInstance(myself: node("a"), address: address(1), settings: settings, seed: 7)
        _ = swim.onStart(now: 0)
        let members = (1...peers).map { MemberUpdate(node: node("p\($0)"), address: address($0 + 1), status: .alive, incarnation: 0) }
        _ = swim.onMessage(message(from: 1, .syncResponse(MembershipSnapshot(members: members, ring: []))), now: 0)
        return swim
    }

    static func message(from peer: Int, incarnation: UInt64 = 0, _ kind: SWIMMessage.Kind, gossip: [GossipUpdate] = []) -> SWIMMessage {
        SWIMMessage(sender: node("p\(peer)"), senderAddress: address(peer + 1), senderIncarnation: incarnation, ringDigest: 0, kind: kind, gossip: gossip)
    }

    static func sends(_ directives: [SWIMDirective]) -> [(SWIMMessage, NodeAddress)] {
        directives.compactMap { if case .send(let m, let to) = $0 { (m, to) } else { nil } }
    }

    static func statusChanges(_ directives: [SWIMDirective]) -> [MemberStatusChange] {
        directives.compactMap { if case .memberStatusChanged(let c) = $0 { c } else { nil } }
    }

    /// Ticks at one period: exactly one ping goes out. Returns its sequence, target and send time.
    static func probe(_ swim: inout SWIMInstance, at now: UInt64 = second) -> (sequence: UInt64, target: Int) {
        let pings = sends(swim.onTick(now: now)).compactMap { m, to -> (UInt64, Int)? in
            if case .ping(let s) = m.kind { (s, Int(to.host.split(separator: ".").last!)! - 1) } else { nil }
        }
        #expect(pings.count == 1)
        return pings[0]
    }

    @Test func test_onTick_probeAcked_noPingRequestNoSuspicion() {
        var swim = Self.makeInstance()
        let (sequence, target) = Self.probe(&swim)
        _ = swim.onMessage(Self.message(from: target, .ack(sequence: sequence, target: node("p\(target)"))), now: Self.second + 10_000_000)
        let later = swim.onTick(now: Self.second + Self.second / 2 + 1)
        #expect(!Self.sends(later).contains { if case .pingRequest = $0.0.kind { true } else { false } })
        let end = swim.onTick(now: 2 * Self.second - 1)
        #expect(Self.statusChanges(end).isEmpty)
        #expect(swim.members.values.allSatisfy { $0.status == .alive })
        #expect(swim.localHealth == 0)
    }

    @Test func test_onTick_missedAck_sendsPingRequestToKOthers() {
        var swim = Self.makeInstance()
        let (sequence, target) = Self.probe(&swim)
        let requests = Self.sends(swim.onTick(now: Self.second + Self.settings.probeTimeout)).filter {
            if case .pingRequest(let s, let t, _) = $0.0.kind { s == sequence && t == node("p\(target)") } else { false }
        }
        #expect(requests.count == Self.settings.indirectProbeCount)
        #expect(Set(requests.map(\.1)).count == requests.count)
        #expect(!requests.contains { $0.1 == address(target + 1) })
    }

    @Test func test_onTick_noIndirectAck_marksSuspect_andTellsTheSuspect() {
        var swim = Self.makeInstance()
        let (_, target) = Self.probe(&swim)
        _ = swim.onTick(now: Self.second + Self.settings.probeTimeout)
        let end = swim.onTick(now: 2 * Self.second)
        #expect(Self.statusChanges(end).contains { $0.member.node == node("p\(target)") && $0.member.status == .suspect && $0.previous == .alive })
        #expect(Self.sends(end).contains { m, to in to == address(target + 1) && m.gossip.first == .member(MemberUpdate(node: node("p\(target)"), address: address(target + 1), status: .suspect, incarnation: 0)) })
    }

    @Test func test_onMessage_indirectAck_preventsSuspicion() {
        var swim = Self.makeInstance()
        let (sequence, target) = Self.probe(&swim)
        let requests = Self.sends(swim.onTick(now: Self.second + Self.settings.probeTimeout))
        let relay = Int(requests[0].1.host.split(separator: ".").last!)! - 1
        _ = swim.onMessage(Self.message(from: relay, .ack(sequence: sequence, target: node("p\(target)"))), now: Self.second + 700_000_000)
        #expect(Self.statusChanges(swim.onTick(now: 2 * Self.second)).isEmpty)
        #expect(swim.members[node("p\(target)")]?.status == .alive)
    }

    @Test func test_onMessage_suspicionOfMyself_refutesWithHigherIncarnation() {
        var swim = Self.makeInstance()
        let accusation = MemberUpdate(node: node("a"), address: address(1), status: .suspect, incarnation: 0)
        let reply = swim.onMessage(Self.message(from: 2, .ping(sequence: 9), gossip: [.member(accusation)]), now: Self.second / 2)
        #expect(swim.incarnation == 1)
        let ack = Self.sends(reply).first { if case .ack(9, _) = $0.0.kind { true } else { false } }
        #expect(ack?.0.senderIncarnation == 1)
        #expect(ack?.0.gossip.contains(.member(MemberUpdate(node: node("a"), address: address(1), status: .alive, incarnation: 1))) == true)
    }

    @Test func test_onMessage_deathOfMyself_afterRestart_comesBackAboveIt() {
        var swim = Self.makeInstance()
        let obituary = MemberUpdate(node: node("a"), address: address(1), status: .dead, incarnation: 4)
        _ = swim.onMessage(Self.message(from: 2, .syncResponse(MembershipSnapshot(members: [obituary], ring: []))), now: 1)
        #expect(swim.incarnation == 5)
    }

    @Test func test_onMessage_refutation_clearsSuspicion_olderClaimsIgnored() {
        var swim = Self.makeInstance()
        let suspect = MemberUpdate(node: node("p3"), address: address(4), status: .suspect, incarnation: 0)
        _ = swim.onMessage(Self.message(from: 1, .ping(sequence: 1), gossip: [.member(suspect)]), now: 1)
        #expect(swim.members[node("p3")]?.status == .suspect)
        let changes = Self.statusChanges(swim.onMessage(Self.message(from: 3, incarnation: 1, .ping(sequence: 2)), now: 2))
        #expect(changes == [MemberStatusChange(member: MemberUpdate(node: node("p3"), address: address(4), status: .alive, incarnation: 1), previous: .suspect)])
        _ = swim.onMessage(Self.message(from: 1, .ping(sequence: 3), gossip: [.member(suspect)]), now: 3)
        #expect(swim.members[node("p3")]?.status == .alive)
    }

    @Test func test_onTick_suspicionTimeout_marksDead() {
        var swim = Self.makeInstance()
        let suspect = MemberUpdate(node: node("p3"), address: address(4), status: .suspect, incarnation: 0)
        _ = swim.onMessage(Self.message(from: 1, .ping(sequence: 1), gossip: [.member(suspect)]), now: 0)
        let timeout = Self.settings.suspicionTimeout(memberCount: swim.clusterSize)
        #expect(!Self.statusChanges(swim.onTick(now: timeout - 1)).contains { $0.member.status == .dead })
        let changes = Self.statusChanges(swim.onTick(now: timeout))
        #expect(changes.contains { $0.member.node == node("p3") && $0.member.status == .dead })
        #expect(swim.members[node("p3")]?.status == .dead)
    }

    @Test func test_localHealth_missingNacks_widenTimeoutsAndInterval() {
        var swim = Self.makeInstance()
        _ = Self.probe(&swim)
        _ = swim.onTick(now: Self.second + Self.settings.probeTimeout)
        _ = swim.onTick(now: 2 * Self.second)  // no ack, no nack: the fault may be ours
        #expect(swim.localHealth == 1)
        // The probe sent in this same tick waits twice as long before asking relays.
        let early = Self.sends(swim.onTick(now: 2 * Self.second + Self.settings.probeTimeout))
        #expect(!early.contains { if case .pingRequest = $0.0.kind { true } else { false } })
        let late = Self.sends(swim.onTick(now: 2 * Self.second + 2 * Self.settings.probeTimeout))
        #expect(late.contains { if case .pingRequest = $0.0.kind { true } else { false } })
        // And the next probe comes two periods later.
        #expect(Self.sends(swim.onTick(now: 3 * Self.second + Self.second / 2)).allSatisfy { if case .ping = $0.0.kind { false } else { true } })
    }

    @Test func test_localHealth_allRelaysNack_doesNotRaiseHealth() {
        var swim = Self.makeInstance()
        let (sequence, target) = Self.probe(&swim)
        let relays = Self.sends(swim.onTick(now: Self.second + Self.settings.probeTimeout)).filter { if case .pingRequest = $0.0.kind { true } else { false } }
        for (_, relay) in relays {
            let peer = Int(relay.host.split(separator: ".").last!)! - 1
            _ = swim.onMessage(Self.message(from: peer, .nack(sequence: sequence, target: node("p\(target)"))), now: Self.second + 900_000_000)
        }
        _ = swim.onTick(now: 2 * Self.second)
        #expect(swim.localHealth == 0)
        #expect(swim.members[node("p\(target)")]?.status == .suspect)
    }

    @Test func test_onMessage_pingRequest_relaysThenForwardsAck_orNacksOnTimeout() {
        var swim = Self.makeInstance()
        let out = Self.sends(swim.onMessage(Self.message(from: 1, .pingRequest(sequence: 77, target: node("p2"), targetAddress: address(3))), now: 0))
        guard case .ping(let relaySequence)? = out.first(where: { $0.1 == address(3) })?.0.kind else {
            Issue.record("no relayed ping")
            return
        }
        let forwarded = Self.sends(swim.onMessage(Self.message(from: 2, .ack(sequence: relaySequence, target: node("p2"))), now: 10))
        #expect(forwarded.contains { $0.0.kind == .ack(sequence: 77, target: node("p2")) && $0.1 == address(2) })

        _ = swim.onMessage(Self.message(from: 1, .pingRequest(sequence: 78, target: node("p4"), targetAddress: address(5))), now: 20)
        let timeout = Self.settings.probeTimeout * Self.settings.relayTimeoutPercent / 100
        let nacks = Self.sends(swim.onTick(now: 20 + timeout))
        #expect(nacks.contains { $0.0.kind == .nack(sequence: 78, target: node("p4")) && $0.1 == address(2) })
    }

    @Test func test_gossip_eachUpdateIsSentAtMostLambdaLogNTimes() {
        var swim = Self.makeInstance(peers: 7)
        let news = MemberUpdate(node: node("new"), address: address(50), status: .alive, incarnation: 3)
        let first = Self.sends(swim.onMessage(Self.message(from: 1, .ping(sequence: 1), gossip: [.member(news)]), now: 0))
        var carried = first.filter { $0.0.gossip.contains(.member(news)) }.count
        for i in 0..<100 {
            let replies = Self.sends(swim.onMessage(Self.message(from: 1 + i % 7, .ping(sequence: UInt64(i + 2))), now: UInt64(i + 1)))
            carried += replies.filter { $0.0.gossip.contains(.member(news)) }.count
        }
        #expect(carried == Self.settings.retransmitLimit(memberCount: swim.clusterSize))
        #expect(carried > 0)
    }

    @Test func test_onStart_withSeeds_sendsSyncRequests_untilAnswered() {
        var swim = SWIMInstance(myself: node("a"), address: address(1), seeds: [address(1), address(2), address(3)], seed: 1)
        let start = Self.sends(swim.onStart(now: 0))
        #expect(start.map(\.1) == [address(2), address(3)])
        #expect(start.allSatisfy { if case .syncRequest = $0.0.kind { true } else { false } })
        let retry = Self.sends(swim.onTick(now: Self.second))
        #expect(retry.filter { if case .syncRequest = $0.0.kind { true } else { false } }.count == 2)
    }

    @Test func test_ring_ownIntentIsRestatedAboveStaleVersions_butATombstoneIsAccepted() {
        let own = entry("a", version: 1, state: .active)
        var swim = SWIMInstance(myself: node("a"), address: address(1), ringEntry: own, seed: 1)
        _ = swim.onStart(now: 0)
        // A peer still has this node LEAVING at version 5 (from before a restart): the intent wins.
        let stale = entry("a", version: 5, state: .leaving)
        _ = swim.onMessage(Self.message(from: 1, .ping(sequence: 1), gossip: [.ring(stale)]), now: 1)
        #expect(swim.ring[node("a")]?.state == .active)
        #expect(swim.ring[node("a")]?.version == 6)
        // An operator forgot this node: the tombstone stands.
        _ = swim.onMessage(Self.message(from: 1, .ping(sequence: 2), gossip: [.ring(entry("a", version: 7, state: .left))]), now: 2)
        #expect(swim.ring[node("a")]?.state == .left)
    }

    @Test func test_onMessage_ringDigestMismatch_pullsStateAfterTheGrace() {
        var swim = Self.makeInstance()
        var message = Self.message(from: 1, .ping(sequence: 1))
        message.ringDigest = 12345
        let first = Self.sends(swim.onMessage(message, now: 0))
        #expect(!first.contains { if case .syncRequest = $0.0.kind { true } else { false } })
        let later = Self.sends(swim.onMessage(message, now: Self.settings.ringSyncInterval))
        #expect(later.contains { if case .syncRequest = $0.0.kind { $0.1 == address(2) } else { false } })
    }
}
