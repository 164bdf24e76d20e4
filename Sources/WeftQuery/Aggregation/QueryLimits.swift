import WeftModel

/// Limits every aggregation request is checked against (400/422 when exceeded).
public struct QueryLimits: Sendable, Equatable {
    /// Longest time range a query may cover.
    public var maxRangeNanos: UInt64
    /// Most series a metrics answer may hold.
    public var maxSeries: Int
    /// Most groups an aggregation table may count before its limit is applied (memory bound).
    public var maxGroups: Int
    public var timeoutSeconds: Double
    /// Most time steps per series.
    public var maxSteps: Int
    /// Most bytes one query's aggregate state may take (422 beyond).
    public var maxMemoryBytes: Int

    public static let defaultMaxMemoryBytes = 1 << 30

    public init(
        maxRangeNanos: UInt64 = 31 * 86_400_000_000_000, maxSeries: Int = 10_000, maxGroups: Int = 2_000_000, timeoutSeconds: Double = 30,
        maxSteps: Int = 11_000, maxMemoryBytes: Int = QueryLimits.defaultMaxMemoryBytes
    ) {
        self.maxRangeNanos = maxRangeNanos
        self.maxSeries = maxSeries
        self.maxGroups = maxGroups
        self.timeoutSeconds = timeoutSeconds
        self.maxSteps = maxSteps
        self.maxMemoryBytes = maxMemoryBytes
    }
}
