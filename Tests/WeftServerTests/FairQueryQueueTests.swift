import Testing
import WeftTestSupport

@testable import WeftQueryService

/// The pure scheduling decisions: caps, per-org queues, and turns between orgs.
struct FairQueryQueueTests {
    /// Starts what `submit` says to start, recording it.
    private static func submit(_ q: inout FairQueryQueue<String>, _ job: String, org: String, started: inout [String]) -> Bool {
        switch q.submit(job, org: org) {
        case .start(let j): started.append(j); return true
        case .queued: return true
        case .rejected: return false
        }
    }

    @Test func test_floodingOrg_isCappedAndAnotherOrgGoesNext() {
        var q = FairQueryQueue<String>(maxRunning: 2, maxRunningPerOrg: 1, maxQueuedPerOrg: 100)
        var started: [String] = []
        for i in 0..<50 { #expect(Self.submit(&q, "a\(i)", org: "a", started: &started)) }
        // One of A's runs; the second thread stays free for anyone else.
        #expect(started == ["a0"])
        #expect(q.waitingCount(of: "a") == 49)
        #expect(Self.submit(&q, "b0", org: "b", started: &started))
        #expect(started == ["a0", "b0"])  // at once, not behind A's 49
        // A's queries follow one at a time as each ends.
        #expect(q.finished(org: "a").map(\.job) == ["a1"])
        #expect(q.finished(org: "b").map(\.job) == [])  // B's slot stays free for B or a third org
        #expect(q.running == 1)
    }

    @Test func test_freedSlots_goToWaitingOrgsInTurn() {
        var q = FairQueryQueue<String>(maxRunning: 1, maxRunningPerOrg: 1, maxQueuedPerOrg: 100)
        var started: [String] = []
        for i in 0..<3 { _ = Self.submit(&q, "a\(i)", org: "a", started: &started) }
        for i in 0..<2 { _ = Self.submit(&q, "b\(i)", org: "b", started: &started) }
        _ = Self.submit(&q, "c0", org: "c", started: &started)
        #expect(started == ["a0"])
        var order: [String] = []
        var org = "a"
        while true {
            guard let next = q.finished(org: org).first else { break }
            order.append(next.job)
            org = next.org
        }
        // Round robin over A, B, C (in the order they first waited), each org's queries in arrival order.
        #expect(order == ["a1", "b0", "c0", "a2", "b1"])
        #expect(q.running == 0)
    }

    @Test func test_orgAtItsShare_keepsItsPlaceInTurn() {
        var q = FairQueryQueue<String>(maxRunning: 3, maxRunningPerOrg: 2, maxQueuedPerOrg: 100)
        var started: [String] = []
        for i in 0..<4 { _ = Self.submit(&q, "a\(i)", org: "a", started: &started) }
        _ = Self.submit(&q, "b0", org: "b", started: &started)
        _ = Self.submit(&q, "b1", org: "b", started: &started)
        #expect(started == ["a0", "a1", "b0"])
        // B ends: A is at its share of 2, so B's next query takes the slot though A waited first.
        #expect(q.finished(org: "b").map(\.job) == ["b1"])
        // A ends: A is first in turn again.
        #expect(q.finished(org: "a").map(\.job) == ["a2"])
        #expect(q.runningCount(of: "a") == 2)
        #expect(q.runningCount(of: "b") == 1)
    }

    @Test func test_fullQueue_isRejected_andAcceptsAgainOnceItDrains() {
        var q = FairQueryQueue<String>(maxRunning: 1, maxRunningPerOrg: 1, maxQueuedPerOrg: 2)
        var started: [String] = []
        #expect(Self.submit(&q, "a0", org: "a", started: &started))
        #expect(Self.submit(&q, "a1", org: "a", started: &started))
        #expect(Self.submit(&q, "a2", org: "a", started: &started))
        #expect(!Self.submit(&q, "a3", org: "a", started: &started))
        // Another org has its own queue.
        #expect(Self.submit(&q, "b0", org: "b", started: &started))
        #expect(q.finished(org: "a").map(\.job) == ["a1"])
        #expect(Self.submit(&q, "a4", org: "a", started: &started))
        #expect(q.waitingCount(of: "a") == 2)
    }

    /// Many orgs, random arrivals and ends (seeded): the caps always hold, and no org waits while a
    /// slot it could use is free.
    @Test func test_randomSchedules_keepTheCapsAndLeaveNoSlotIdle() {
        var rng = SplitMix64(seed: 0x5eed)
        for _ in 0..<50 {
            var q = FairQueryQueue<Int>(maxRunning: 4, maxRunningPerOrg: 2, maxQueuedPerOrg: 5)
            var running: [(org: String, job: Int)] = []
            for step in 0..<400 {
                if running.isEmpty || rng.next() % 3 != 0 {
                    let org = "org\(rng.next() % 6)"
                    if case .start(let j) = q.submit(step, org: org) { running.append((org, j)) }
                } else {
                    let ended = running.remove(at: Int(rng.next() % UInt64(running.count)))
                    running += q.finished(org: ended.org)
                }
                #expect(running.count == q.running && q.running <= 4)
                for org in Set(running.map(\.org)) {
                    #expect(running.filter { $0.org == org }.count <= 2)
                }
                for i in 0..<6 where q.waitingCount(of: "org\(i)") > 0 {
                    // Waiting is only allowed when there is no slot, or the org is at its share.
                    #expect(q.running == 4 || q.runningCount(of: "org\(i)") == 2)
                }
            }
        }
    }
}
