import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftQuery

@testable import WeftQueryService

/// The scheduler on a real thread pool, with jobs the test holds until it lets them go.
struct QuerySchedulerTests {
    /// A gate the held jobs wait at until the test opens it.
    final class Gate: Sendable {
        private let condition = NSCondition()
        private let open = Mutex(false)

        func wait() {
            self.condition.lock()
            while !self.open.withLock({ $0 }) { self.condition.wait() }
            self.condition.unlock()
        }

        func release() {
            self.condition.lock()
            self.open.withLock { $0 = true }
            self.condition.broadcast()
            self.condition.unlock()
        }
    }

    @Test func test_otherOrgRuns_whileTheFloodingOrgHoldsItsShare() async throws {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let scheduler = QueryScheduler(pool: pool, maxRunning: 2, maxRunningPerOrg: 1, maxQueuedPerOrg: 100)
        let gate = Gate()
        let finishedA = Mutex(0)
        let flood = (0..<30).map { i in
            scheduler.submit(org: "a", cancellation: nil, on: loop) { () -> Int in
                gate.wait()
                finishedA.withLock { $0 += 1 }
                return i
            }
        }
        let b = try await scheduler.submit(org: "b", cancellation: nil, on: loop) { "b done" }.get()
        #expect(b == "b done")
        #expect(finishedA.withLock { $0 } == 0)  // B did not wait for any of A's
        gate.release()
        for (i, f) in flood.enumerated() { #expect(try await f.get() == i) }
        try await pool.shutdownGracefully()
    }

    @Test func test_fullQueue_isRefused_andCancelledRequestsAreSkipped() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let scheduler = QueryScheduler(pool: pool, maxRunning: 1, maxRunningPerOrg: 1, maxQueuedPerOrg: 2)
        let gate = Gate()
        let ran = Mutex<[String]>([])
        let running = scheduler.submit(org: "a", cancellation: nil, on: loop) { gate.wait(); ran.withLock { $0.append("first") } }
        let gone = QueryCancellation()
        let skipped = scheduler.submit(org: "a", cancellation: gone, on: loop) { ran.withLock { $0.append("skipped") } }
        let queued = scheduler.submit(org: "a", cancellation: nil, on: loop) { ran.withLock { $0.append("queued") } }
        let refused = scheduler.submit(org: "a", cancellation: nil, on: loop) { ran.withLock { $0.append("refused") } }
        await #expect(throws: QueryScheduler.Refusal.self) { try await refused.get() }
        gone.cancel()  // its client left while it waited
        gate.release()
        try await running.get()
        await #expect(throws: RequestCancelled.self) { try await skipped.get() }
        try await queued.get()
        #expect(ran.withLock { $0 } == ["first", "queued"])
        try await pool.shutdownGracefully()
    }
}
