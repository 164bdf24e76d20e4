import Testing
import WeftModel

@testable import WeftCluster

struct WriteQuorumTests {
    static let nodes = (0..<7).map { NodeID("n\($0)")! }

    @Test func test_quorum_isMajorityOfReplicas() {
        #expect([1, 2, 3, 4, 5].map { WriteQuorum.quorum(replicas: $0) } == [1, 2, 2, 3, 3])
    }

    @Test func test_twoOfThree_acknowledges_andTheThirdFailureIsRecordedForRepair() {
        var q = WriteQuorum(replicaSets: [Array(Self.nodes[0..<3])])
        #expect(q.start() == .pending)
        #expect(q.record(placement: 0, replica: Self.nodes[0], succeeded: true) == .pending)
        #expect(q.record(placement: 0, replica: Self.nodes[2], succeeded: true) == .acknowledged)
        #expect(q.record(placement: 0, replica: Self.nodes[1], succeeded: false) == .decided)
        #expect(q.isComplete)
        #expect(q.missedReplicas.map(\.replica) == [Self.nodes[1]])
    }

    @Test func test_twoFailuresOfThree_failTheWrite_evenIfOtherPlacementsSucceed() {
        var q = WriteQuorum(replicaSets: [Array(Self.nodes[0..<3]), Array(Self.nodes[3..<6])])
        _ = q.start()
        for n in Self.nodes[3..<6] { _ = q.record(placement: 1, replica: n, succeeded: true) }
        #expect(q.record(placement: 0, replica: Self.nodes[0], succeeded: false) == .pending)
        #expect(q.record(placement: 0, replica: Self.nodes[1], succeeded: false) == .failed(placement: 0))
        #expect(q.record(placement: 0, replica: Self.nodes[2], succeeded: true) == .decided)
    }

    @Test func test_repeatedAndForeignAnswers_areIgnored() {
        var q = WriteQuorum(replicaSets: [Array(Self.nodes[0..<3])])
        _ = q.start()
        #expect(q.record(placement: 0, replica: Self.nodes[0], succeeded: true) == .pending)
        #expect(q.record(placement: 0, replica: Self.nodes[0], succeeded: true) == .pending)
        #expect(q.record(placement: 0, replica: Self.nodes[6], succeeded: true) == .pending)
        #expect(q.record(placement: 0, replica: Self.nodes[1], succeeded: true) == .acknowledged)
    }

    @Test func test_emptyWrite_acknowledgesAtOnce_andAPlacementWithoutReplicasFails() {
        var empty = WriteQuorum(replicaSets: [])
        #expect(empty.start() == .acknowledged)
        var orphan = WriteQuorum(replicaSets: [[Self.nodes[0]], []])
        #expect(orphan.start() == .failed(placement: 1))
    }

    /// Random placements, replica sets and answer orders (seeded): the first decision is reported exactly
    /// once, and it is "acknowledged" exactly when every placement ends with a majority of successes.
    @Test(arguments: 0..<200) func test_randomAnswerOrders_decideOnceAndAgreeWithTheOutcome(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let placementCount = Int(rng.next() % 5) + 1
        var sets: [[NodeID]] = []
        for _ in 0..<placementCount {
            let rf = Int(rng.next() % 5) + 1
            let start = Int(rng.next() % UInt64(Self.nodes.count - rf + 1))
            sets.append(Array(Self.nodes[start..<(start + rf)]))
        }
        var answers: [(Int, NodeID, Bool)] = []
        for (p, set) in sets.enumerated() { for n in set { answers.append((p, n, rng.next() % 3 != 0)) } }
        answers.shuffle(using: &rng)
        var q = WriteQuorum(replicaSets: sets)
        var decisions: [WriteQuorum.Decision] = []
        let first = q.start()
        if first != .pending { decisions.append(first) }
        for (p, n, ok) in answers {
            let d = q.record(placement: p, replica: n, succeeded: ok)
            if d != .pending && d != .decided { decisions.append(d) }
        }
        let everyPlacementHasQuorum = sets.indices.allSatisfy { p in
            answers.filter { $0.0 == p && $0.2 }.count >= WriteQuorum.quorum(replicas: sets[p].count)
        }
        #expect(decisions.count == 1, "seed \(seed)")
        #expect((decisions.first == .acknowledged) == everyPlacementHasQuorum, "seed \(seed)")
        #expect(q.isComplete)
        #expect(q.missedReplicas.count == answers.filter { !$0.2 }.count)
    }

    @Test func test_placementKey_sortsReplicas_andParsesOnlyCanonicalForms() {
        let key = PlacementKey(replicas: [Self.nodes[2], Self.nodes[0], Self.nodes[1]])
        #expect(key.rawValue == "n0+n1+n2")
        #expect(PlacementKey(parsing: "n0+n1+n2") == key)
        #expect(PlacementKey(parsing: "local") == .local)
        #expect(key.replicas == Array(Self.nodes[0..<3]))
        for bad in ["", "n1+n0", "n0+n0", "n0++n1", "n0+", "bad id", String(repeating: "a+", count: 20) + "b"] {
            #expect(PlacementKey(parsing: bad) == nil, "\(bad)")
        }
    }
}
