/// A bad query parameter; the message names the parameter and says why (400 responses).
public struct QueryError: Error, Equatable, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}

/// One `key=value` condition of a tag search.
public struct TagCondition: Equatable, Sendable {
    public enum Scope: Sendable, Equatable {
        /// Span or resource attribute, or an intrinsic.
        case any
        case span
        case resource
    }

    public var scope: Scope
    public var key: String
    public var value: String

    public init(scope: Scope = .any, key: String, value: String) {
        self.scope = scope
        self.key = key
        self.value = value
    }
}

/// `GET /api/search` parameters (Tempo's tag search).
public struct SearchRequest: Equatable, Sendable {
    public static let defaultLimit = 20
    public static let maxLimit = 10_000

    public var conditions: [TagCondition] = []
    public var minDurationNanos: UInt64? = nil
    public var maxDurationNanos: UInt64? = nil
    /// Inclusive bounds on span start, in ns since the epoch.
    public var startNanos: UInt64? = nil
    public var endNanos: UInt64? = nil
    public var limit = SearchRequest.defaultLimit
    /// Matched spans returned per trace.
    public var spansPerSpanSet = 3
    /// A TraceQL span filter (`q`), ANDed with `tags`.
    public var traceQL: TraceQLFilter? = nil
    /// Attribute fields of `| select(…)`, shown on matching spans.
    public var select: [TraceQLField] = []

    public init() {}
}
