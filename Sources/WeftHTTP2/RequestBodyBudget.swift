import Synchronization

/// The request-body bytes a node holds at once, shared by all of its connections and protocols. A
/// request reserves its body's bytes before keeping them (its declared length when known, or piece by
/// piece as they arrive) and releases them once it has been answered; a request that does not fit is
/// refused (503 with a retry hint) instead of being buffered.
public final class RequestBodyBudget: Sendable {
    /// The most bytes held at once.
    public let limit: Int
    private let held = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = limit
    }

    /// Bytes currently reserved.
    public var reserved: Int { self.held.load(ordering: .relaxed) }

    /// Reserves `bytes` if they fit under the limit; false (and nothing reserved) if not.
    public func reserve(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        var current = self.held.load(ordering: .relaxed)
        while true {
            guard bytes <= self.limit - current else { return false }
            let (exchanged, original) = self.held.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed
            )
            if exchanged { return true }
            current = original
        }
    }

    /// Gives back `bytes` reserved earlier.
    public func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        self.held.wrappingSubtract(bytes, ordering: .relaxed)
    }
}
