import Dispatch
import WeftQuery

/// Scan workers on threads, as a server runs them: all at once.
struct ThreadedScanWorkers: ScanWorkers {
    func run(count: Int, _ body: @Sendable (Int) -> Void) {
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }
}

/// Scan workers run one after another, last first: the worker that runs first takes every unit.
struct ReversedScanWorkers: ScanWorkers {
    func run(count: Int, _ body: @Sendable (Int) -> Void) {
        for worker in (0..<count).reversed() { body(worker) }
    }
}

extension QueryContext {
    /// The serial clock with workers on threads.
    static let threaded = QueryContext(now: { 0 }, workers: ThreadedScanWorkers())
}
