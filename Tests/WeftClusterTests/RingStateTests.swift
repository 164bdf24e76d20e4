import Testing
import WeftCluster
import WeftModel

/// The ring state is a CRDT: merge is commutative, associative and idempotent, and tombstones stick.
struct RingStateTests {
    @Test(arguments: 0..<200)
    func test_merge_isCommutativeAssociativeIdempotent(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let a = randomState(&rng)
        let b = randomState(&rng)
        let c = randomState(&rng)
        #expect(a.merged(with: b) == b.merged(with: a))
        #expect(a.merged(with: b).merged(with: c) == a.merged(with: b.merged(with: c)))
        #expect(a.merged(with: a) == a)
        #expect(a.merged(with: b).merged(with: b) == a.merged(with: b))
    }

    @Test(arguments: 0..<50)
    func test_applyInAnyOrder_givesTheSameStateAndDigest(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let entries = (0..<20).map { _ in randomEntry(&rng) }
        let forward = RingState(entries)
        let shuffled = RingState(entries.shuffled(using: &rng))
        #expect(forward == shuffled)
        #expect(forward.digest == shuffled.digest)
    }

    @Test func test_digest_differsWhenAnEntryDiffers() {
        let a = RingState([entry("a"), entry("b")])
        let b = RingState([entry("a"), entry("b", version: 2)])
        #expect(a.digest != b.digest)
    }

    @Test func test_merge_higherVersionWins_tieBrokenByState() {
        var state = RingState([entry("a", version: 2, state: .active)])
        let olderApplied = state.apply(entry("a", version: 1, state: .leaving))
        #expect(!olderApplied)
        let tieApplied = state.apply(entry("a", version: 2, state: .leaving))
        #expect(tieApplied)
        #expect(state[node("a")]?.state == .leaving)
    }

    @Test func test_forgetTombstone_isNotResurrectedByStaleGossip() {
        var here = RingState([entry("a", version: 3, state: .active)])
        here.apply(entry("a", version: 4, state: .left))
        let stalePeer = RingState([entry("a", version: 3, state: .active)])
        here.merge(stalePeer)
        #expect(here[node("a")]?.state == .left)
        #expect(stalePeer.merged(with: here)[node("a")]?.state == .left)
    }
}
