import Testing
import WeftModel

@testable import WeftCluster

struct HintQueueTests {
    static let a = node("a")
    static let b = node("b")

    static func queue(maxBytes: Int = 1000) -> HintQueue {
        HintQueue(settings: .init(maxBytes: maxBytes, initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(400)))
    }

    /// The hints due at `now`, as (id, target) pairs.
    static func due(_ q: inout HintQueue, _ now: Duration, reachable: (NodeID) -> Bool) -> [(id: Int, target: NodeID)] {
        q.due(now: now, reachable: reachable)
    }

    @Test func test_due_sendsOldestHintPerReachableNode_oneAtATime() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 10)
        q.add(id: 3, segment: 1, target: Self.a, bytes: 10)
        let first = Self.due(&q, .zero) { _ in true }
        #expect(first.map(\.id) == [1, 2])
        let due1 = Self.due(&q, .zero) { _ in true }
        #expect(due1.isEmpty)
        q.delivered(1)
        let due2 = Self.due(&q, .zero) { _ in true }
        #expect(due2.map(\.id) == [3])
    }

    @Test func test_due_skipsUnreachableNodes() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 10)
        let due3 = Self.due(&q, .zero) { $0 == Self.b }
        #expect(due3.map(\.target) == [Self.b])
        let due4 = Self.due(&q, .zero) { _ in true }
        #expect(due4.map(\.target) == [Self.a])
    }

    @Test func test_failure_backsOffDoublingUpToTheMaximum_andDeliveryResetsIt() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.a, bytes: 10)
        var now = Duration.zero
        for backoff in [100, 200, 400, 400] {
            let due5 = Self.due(&q, now) { _ in true }
            #expect(due5.map(\.id) == [1])
            q.failed(1, now: now)
            let due6 = Self.due(&q, now + .milliseconds(backoff - 1)) { _ in true }
            #expect(due6.isEmpty)
            now += .milliseconds(backoff)
        }
        let due7 = Self.due(&q, now) { _ in true }
        #expect(due7.map(\.id) == [1])
        q.delivered(1)
        let due8 = Self.due(&q, now) { _ in true }
        #expect(due8.map(\.id) == [2])
        q.failed(2, now: now)
        let due9 = Self.due(&q, now + .milliseconds(100)) { _ in true }
        #expect(due9.map(\.id) == [2])
    }

    @Test func test_expedite_endsTheBackoffOfOneNodeOnly() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 10)
        let due10 = Self.due(&q, .zero) { _ in true }
        #expect(due10.count == 2)
        q.failed(1, now: .zero)
        q.failed(2, now: .zero)
        q.expedite(Self.b)
        let due11 = Self.due(&q, .milliseconds(1)) { _ in true }
        #expect(due11.map(\.target) == [Self.b])
    }

    @Test func test_segmentGoes_onlyWhenAllItsHintsAreDelivered_andNotTheCurrentOne() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 10)
        q.add(id: 3, segment: 2, target: Self.a, bytes: 10)
        _ = Self.due(&q, .zero) { _ in true }
        q.delivered(1)
        let removable1 = q.removableSegments(current: 2)
        #expect(removable1.isEmpty)
        q.delivered(2)
        let removable2 = q.removableSegments(current: 2)
        #expect(removable2 == [1])
        let removable3 = q.removableSegments(current: 2)
        #expect(removable3.isEmpty)
        _ = Self.due(&q, .zero) { _ in true }
        q.delivered(3)
        let removable4 = q.removableSegments(current: 2)
        #expect(removable4.isEmpty)
        let removable5 = q.removableSegments(current: 3)
        #expect(removable5 == [2])
    }

    @Test func test_bound_refusesAndCountsHintsBeyondMaxBytes() {
        var q = Self.queue(maxBytes: 25)
        let fits10 = q.admit(bytes: 10)
        #expect(fits10)
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        let fits15 = q.admit(bytes: 15)
        #expect(fits15)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 15)
        let fits1 = q.admit(bytes: 1)
        #expect(!fits1)
        var expected = HintStatus()
        expected.pending = 2
        expected.pendingBytes = 25
        expected.byTarget = [Self.a: (1, 10), Self.b: (1, 15)]
        expected.queued = 2
        expected.dropped = 1
        #expect(q.status == expected)
        _ = Self.due(&q, .zero) { _ in true }
        q.delivered(1)
        let refits = q.admit(bytes: 10)
        #expect(refits)
        #expect(q.status.byTarget.count == 1)
        #expect(q.status.delivered == 1)
    }

    @Test func test_record_roundTrips_andRejectsTruncatedBytes() {
        let record = HintRecord(target: Self.a, org: "acme", placement: PlacementKey(replicas: [Self.a, Self.b]), payload: [1, 2, 3])
        let bytes = record.encoded()!
        #expect(bytes.withUnsafeBytes { HintRecord(decoding: $0) } == record)
        #expect(Array(bytes.prefix(5)).withUnsafeBytes { HintRecord(decoding: $0) } == nil)
    }
}
