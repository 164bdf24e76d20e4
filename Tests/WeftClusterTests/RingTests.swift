import Testing
import WeftCluster
import WeftModel

/// Placement: tokens derived from IDs, replica sets clockwise, zone-aware, and which states own ranges.
struct RingTests {
    @Test func test_xxHash64_matchesReferenceVectors() {
        #expect(XXHash64.hash([UInt8]()) == 0xEF46_DB37_51D8_E999)
        #expect(XXHash64.hash(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        #expect(XXHash64.hash(Array("Nobody inspects the spammish repetition".utf8)) == 0xFBCE_A83C_8A37_8BF1)
    }

    @Test(arguments: 0..<20)
    func test_traceHash_equalsHashOfTheTraceBytes(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let trace = TraceID(high: rng.next(), low: rng.next())
        #expect(XXHash64.hash(trace) == XXHash64.hash(trace.bytes))
    }

    @Test func test_tokens_dependOnlyOnTheNodeID() {
        #expect(Ring.tokens(for: node("storage-1"), count: 128) == Ring.tokens(for: node("storage-1"), count: 128))
        #expect(Set(Ring.tokens(for: node("storage-1"), count: 128)).count == 128)
        #expect(Ring.tokens(for: node("storage-1"), count: 4) != Ring.tokens(for: node("storage-2"), count: 4))
    }

    static func cluster(_ count: Int, zones: Int) -> RingState {
        RingState((0..<count).map { entry("s\($0)", zone: "z\($0 % zones)") })
    }

    /// The replica sets by definition: sort every eligible token, then walk clockwise from the key's hash.
    struct ClockwiseWalk {
        let tokens: [(token: UInt64, entry: RingEntry)]
        let rf: Int
        let zoneTarget: Int

        init(_ state: RingState, eligible: (RingEntry) -> Bool, rf: Int) {
            let nodes = state.entries.values.filter { $0.placesTokens && eligible($0) }
            var tokens = nodes.flatMap { e in Ring.tokens(for: e.nodeID, count: Int(e.tokenCount)).map { (token: $0, entry: e) } }
            tokens.sort { $0.token != $1.token ? $0.token < $1.token : $0.entry.nodeID < $1.entry.nodeID }
            self.tokens = tokens
            self.rf = min(rf, nodes.count)
            self.zoneTarget = min(self.rf, Set(nodes.map(\.zone)).count)
        }

        func replicas(hash: UInt64) -> [NodeID] {
            guard !self.tokens.isEmpty else { return [] }
            let start = self.tokens.firstIndex { $0.token >= hash } ?? 0
            let walk = (0..<self.tokens.count).lazy.map { self.tokens[(start + $0) % self.tokens.count].entry }
            var chosen: [RingEntry] = []
            if self.zoneTarget > 1 {
                for e in walk where chosen.count < self.zoneTarget && !chosen.contains(where: { $0.zone == e.zone }) { chosen.append(e) }
            }
            for e in walk where chosen.count < self.rf && !chosen.contains(where: { $0.nodeID == e.nodeID }) { chosen.append(e) }
            return chosen.map(\.nodeID)
        }
    }

    @Test(arguments: [(7, 3), (12, 2), (5, 1), (30, 4)])
    func test_lookup_matchesTheClockwiseWalk(nodes: Int, zones: Int) {
        var state = Self.cluster(nodes, zones: zones)
        state.apply(entry("s1", version: 2, state: .leaving, zone: "z\(1 % zones)"))
        state.apply(entry("joining", state: .joining))
        state.apply(entry("gone", state: .left))
        state.apply(entry("ingest-only", roles: [.ingest, .query]))
        let ring = Ring(state: state, replicationFactor: 3)
        let writes = ClockwiseWalk(state, eligible: { $0.state.ownsWrites }, rf: 3)
        let reads = ClockwiseWalk(state, eligible: { $0.state.ownsReads }, rf: 3)
        var rng = SplitMix64(seed: UInt64(nodes))
        for _ in 0..<300 {
            let trace = TraceID(high: rng.next(), low: rng.next())
            let hash = XXHash64.hash(trace)
            #expect(ring.writeReplicas(for: trace) == writes.replicas(hash: hash))
            #expect(ring.readReplicas(for: trace) == reads.replicas(hash: hash))
        }
    }

    @Test func test_replicaSets_spanDistinctZones_whenThereAreEnough() {
        let ring = Ring(state: Self.cluster(9, zones: 3), replicationFactor: 3)
        let zoneOf = Dictionary(uniqueKeysWithValues: (0..<9).map { (node("s\($0)"), $0 % 3) })
        var rng = SplitMix64(seed: 3)
        for _ in 0..<1000 {
            let replicas = ring.writeReplicas(for: TraceID(high: rng.next(), low: rng.next()))
            #expect(replicas.count == 3)
            #expect(Set(replicas.map { zoneOf[$0]! }).count == 3)
        }
    }

    @Test func test_replicationFactor_isCappedByEligibleNodes() {
        var state = Self.cluster(2, zones: 1)
        #expect(Ring(state: state, replicationFactor: 3).writes.replicationFactor == 2)
        state.apply(entry("s0", version: 2, state: .leaving))
        let ring = Ring(state: state, replicationFactor: 3)
        #expect(ring.writes.replicationFactor == 1)
        #expect(ring.writeReplicas(for: TraceID(high: 1, low: 2)) == [node("s1")])
        #expect(ring.reads.replicationFactor == 2)
        #expect(Ring(state: RingState(), replicationFactor: 3).writeReplicas(for: TraceID(high: 1, low: 2)).isEmpty)
    }

    @Test func test_states_joiningAndLeftOwnNothing_leavingOnlyReads() {
        let state = RingState([entry("a"), entry("b", state: .joining), entry("c", state: .leaving), entry("d", state: .left)])
        let ring = Ring(state: state, replicationFactor: 3)
        #expect(ring.writes.nodes == [node("a")])
        #expect(ring.reads.nodes == [node("a"), node("c")])
    }
}
