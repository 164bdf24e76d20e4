import WeftRuntime
import Dispatch
import WeftQuery

/// Scan workers on Dispatch's thread pool: all of them at once, each on its own thread.
public struct DispatchScanWorkers: ScanWorkers {
    public init() {}

    public func run(count: Int, _ body: @Sendable (Int) -> Void) {
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }
}

extension QueryContext {
    /// The server's context: the monotonic uptime clock and Dispatch's threads.
    public static let live = QueryContext(now: { DispatchTime.now().uptimeNanoseconds }, workers: DispatchScanWorkers())
}
