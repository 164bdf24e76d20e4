import NIOCore
import NIOPosix
import Synchronization
import WeftQuery
import WeftRuntime

/// Runs query work on the query thread pool in the order ``FairQueryQueue`` decides: it hands the pool
/// only as many jobs as it has threads, so the pool's own queue never builds up, and a query whose
/// client has gone while it waited is skipped.
package final class QueryScheduler: Sendable {
    /// What the scheduler answers when an org has too many queries waiting.
    package enum Refusal: Error { case tooManyQueued }

    private struct Job: Sendable {
        let run: @Sendable (_ skip: Bool) -> Void
    }

    private let pool: NIOThreadPool
    private let queue: Mutex<FairQueryQueue<Job>>

    package init(pool: NIOThreadPool, maxRunning: Int, maxRunningPerOrg: Int, maxQueuedPerOrg: Int) {
        self.pool = pool
        self.queue = Mutex(FairQueryQueue(maxRunning: maxRunning, maxRunningPerOrg: maxRunningPerOrg, maxQueuedPerOrg: maxQueuedPerOrg))
    }

    /// Runs `work` for `org` when its turn comes; the future fails with ``Refusal/tooManyQueued`` if
    /// the org's queue is full, and with ``RequestCancelled`` if the client went before it started.
    package func submit<T: Sendable>(
        org: String, cancellation: QueryCancellation?, on loop: any EventLoop, _ work: @escaping @Sendable () -> T
    ) -> EventLoopFuture<T> {
        let promise = loop.makePromise(of: T.self)
        let job = Job { skip in
            if skip {
                promise.fail(RequestCancelled())
            } else if cancellation?.isCancelled == true {
                promise.fail(RequestCancelled())
            } else {
                promise.succeed(work())
            }
        }
        switch self.queue.withLock({ $0.submit(job, org: org) }) {
        case .start(let job): self.launch(job, org: org)
        case .queued: break
        case .rejected: promise.fail(Refusal.tooManyQueued)
        }
        return promise.futureResult
    }

    private func launch(_ job: Job, org: String) {
        self.pool.submit { state in
            job.run(state != .active)
            let next = self.queue.withLock { $0.finished(org: org) }
            for (org, job) in next { self.launch(job, org: org) }
        }
    }
}

/// The client of a query went before the query started; nobody reads its answer.
package struct RequestCancelled: Error {}
