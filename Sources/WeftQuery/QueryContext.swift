/// Runs a query's scan workers. The query core decides what each worker does; an implementation
/// decides where they run (one after another, or on threads in a server).
public protocol ScanWorkers: Sendable {
    /// Runs `body(0)` … `body(count − 1)` and returns when all have returned.
    func run(count: Int, _ body: @Sendable (Int) -> Void)
}

/// Runs workers one after another on the calling thread.
public struct SerialScanWorkers: ScanWorkers {
    public init() {}

    public func run(count: Int, _ body: @Sendable (Int) -> Void) {
        for worker in 0..<count { body(worker) }
    }
}

/// What a query reads from its environment: a monotonic clock (deadlines are on its scale) and the
/// workers it scans with. Injected, so the query core reads no clock and starts no thread.
public struct QueryContext: Sendable {
    /// Monotonic nanoseconds.
    public var now: @Sendable () -> UInt64
    public var workers: any ScanWorkers

    public init(now: @escaping @Sendable () -> UInt64, workers: any ScanWorkers) {
        self.now = now
        self.workers = workers
    }

    /// A clock that stands still at 0 (deadlines in the future never pass) and serial workers.
    public static let serial = QueryContext(now: { 0 }, workers: SerialScanWorkers())
}
