import Testing
import WeftCluster
import WeftStorageEngine

@testable import WeftServer

/// The hints log on disk: what it took survives a reopen, delivered segments go, a full log refuses.
struct HintLogTests {
    static let b = NodeID("b")!
    static let c = NodeID("c")!

    static func hint(_ target: NodeID, _ payload: [UInt8]) -> HintRecord {
        HintRecord(target: target, org: "acme", placement: PlacementKey(replicas: [NodeID("a")!, Self.b, Self.c]), payload: payload)
    }

    static func open(_ disk: SimulatedDisk, maxBytes: Int = 1 << 20) throws -> HintLog {
        try HintLog(disk: disk, directory: "/data/hints", segmentBytes: 64, settings: .init(maxBytes: maxBytes))
    }

    @Test func test_reopen_replaysUndeliveredHints_andRemovesDeliveredSegments() throws {
        let disk = SimulatedDisk()
        let log = try Self.open(disk)
        for i in 0..<6 { #expect(try log.append(Self.hint(i % 2 == 0 ? Self.b : Self.c, Array(repeating: UInt8(i), count: 40)))) }
        let segments = try disk.list("/data/hints").count
        #expect(segments > 1)
        // Deliver everything for b; c's hints stay.
        while true {
            let due = log.due { $0 == Self.b }
            if due.isEmpty { break }
            for hint in due { log.delivered(hint.id) }
        }
        try log.removeDelivered()
        #expect(log.status.pending == 3)

        let reopened = try Self.open(disk)
        #expect(reopened.status.pending == 3)
        #expect(reopened.status.byTarget[Self.c]?.hints == 3)
        let due = reopened.due { _ in true }
        #expect(due.map(\.record) == [Self.hint(Self.c, Array(repeating: 1, count: 40))])

        for hint in due { reopened.delivered(hint.id) }
        while true {
            let next = reopened.due { _ in true }
            if next.isEmpty { break }
            for hint in next { reopened.delivered(hint.id) }
        }
        try reopened.removeDelivered()
        #expect(try Self.open(disk).status.pending == 0)
        #expect(try disk.list("/data/hints").count <= 1)
    }

    @Test func test_fullLog_refusesAndCountsTheHint() throws {
        let log = try Self.open(SimulatedDisk(), maxBytes: 50)
        #expect(try log.append(Self.hint(Self.b, Array(repeating: 1, count: 40))))
        #expect(try !log.append(Self.hint(Self.b, Array(repeating: 2, count: 40))))
        #expect(log.status.dropped == 1)
        #expect(log.status.pending == 1)
    }
}
