import Testing
import WeftModel

@testable import WeftCluster

struct HintQueueTests {
    static let a = node("a")
    static let b = node("b")

    static func queue(maxBytes: Int = 1000) -> HintQueue {
        HintQueue(settings: .init(maxBytes: maxBytes, initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(400)))
    }

    @Test func test_due_sendsOldestHintPerReachableNode_oneAtATime() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 10)
        q.add(id: 3, segment: 1, target: Self.a, bytes: 10)
        let first = q.due(now: .zero) { _ in true }
        #expect(first.map(\.id) == [1, 2])
        #expect(q.due(now: .zero) { _ in true }.isEmpty)
        q.delivered(1)
        #expect(q.due(now: .zero) { _ in true }.map(\.id) == [3])
    }

    @Test func test_due_skipsUnreachableNodes() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 10)
        #expect(q.due(now: .zero) { $0 == Self.b }.map(\.target) == [Self.b])
        #expect(q.due(now: .zero) { _ in true }.map(\.target) == [Self.a])
    }

    @Test func test_failure_backsOffDoublingUpToTheMaximum_andDeliveryResetsIt() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.a, bytes: 10)
        var now = Duration.zero
        for backoff in [100, 200, 400, 400] {
            #expect(q.due(now: now) { _ in true }.map(\.id) == [1])
            q.failed(1, now: now)
            #expect(q.due(now: now + .milliseconds(backoff - 1)) { _ in true }.isEmpty)
            now += .milliseconds(backoff)
        }
        #expect(q.due(now: now) { _ in true }.map(\.id) == [1])
        q.delivered(1)
        #expect(q.due(now: now) { _ in true }.map(\.id) == [2])
        q.failed(2, now: now)
        #expect(q.due(now: now + .milliseconds(100)) { _ in true }.map(\.id) == [2])
    }

    @Test func test_expedite_endsTheBackoffOfOneNodeOnly() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 10)
        #expect(q.due(now: .zero) { _ in true }.count == 2)
        q.failed(1, now: .zero)
        q.failed(2, now: .zero)
        q.expedite(Self.b)
        #expect(q.due(now: .milliseconds(1)) { _ in true }.map(\.target) == [Self.b])
    }

    @Test func test_segmentGoes_onlyWhenAllItsHintsAreDelivered_andNotTheCurrentOne() {
        var q = Self.queue()
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        q.add(id: 2, segment: 1, target: Self.b, bytes: 10)
        q.add(id: 3, segment: 2, target: Self.a, bytes: 10)
        _ = q.due(now: .zero) { _ in true }
        q.delivered(1)
        #expect(q.removableSegments(current: 2).isEmpty)
        q.delivered(2)
        #expect(q.removableSegments(current: 2) == [1])
        #expect(q.removableSegments(current: 2).isEmpty)
        _ = q.due(now: .zero) { _ in true }
        q.delivered(3)
        #expect(q.removableSegments(current: 2).isEmpty)
        #expect(q.removableSegments(current: 3) == [2])
    }

    @Test func test_bound_refusesAndCountsHintsBeyondMaxBytes() {
        var q = Self.queue(maxBytes: 25)
        #expect(q.admit(bytes: 10))
        q.add(id: 1, segment: 1, target: Self.a, bytes: 10)
        #expect(q.admit(bytes: 15))
        q.add(id: 2, segment: 1, target: Self.b, bytes: 15)
        #expect(!q.admit(bytes: 1))
        var expected = HintStatus()
        expected.pending = 2
        expected.pendingBytes = 25
        expected.byTarget = [Self.a: (1, 10), Self.b: (1, 15)]
        expected.queued = 2
        expected.dropped = 1
        #expect(q.status == expected)
        _ = q.due(now: .zero) { _ in true }
        q.delivered(1)
        #expect(q.admit(bytes: 10))
        #expect(q.status.byTarget.count == 1)
        #expect(q.status.delivered == 1)
    }

    @Test func test_record_roundTrips_andRejectsTruncatedBytes() {
        let record = HintRecord(target: Self.a, org: "acme", placement: PlacementKey(replicas: [Self.a, Self.b]), payload: [1, 2, 3])
        let bytes = record.encoded()!
        #expect(bytes.withUnsafeBytes { HintRecord(decoding: $0) } == record)
        #expect(bytes.prefix(5).withUnsafeBytes { HintRecord(decoding: UnsafeRawBufferPointer(rebasing: $0)) } == nil)
    }
}
