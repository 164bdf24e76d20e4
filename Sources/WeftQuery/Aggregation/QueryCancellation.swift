import Synchronization

/// A flag set when a query's answer is no longer wanted (its client went away): scans check it
/// wherever they check their deadline and stop with ``AggregationError/cancelled``.
public final class QueryCancellation: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public func cancel() { self.flag.store(true, ordering: .relaxed) }

    public var isCancelled: Bool { self.flag.load(ordering: .relaxed) }
}
