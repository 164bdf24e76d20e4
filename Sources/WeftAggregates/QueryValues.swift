import WeftModel

/// A group-by value: what a span holds for a field (or nothing).
public enum GroupValue: Sendable, Hashable, Comparable, CustomStringConvertible {
    case absent
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)

    public var description: String {
        switch self {
        case .absent: return "<none>"
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        }
    }

    @inlinable var rank: Int {
        switch self {
        case .absent: return 0
        case .bool: return 1
        case .int: return 2
        case .double: return 3
        case .string: return 4
        }
    }

    @inlinable public static func < (a: GroupValue, b: GroupValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x < y
        case (.int(let x), .int(let y)): return x < y
        case (.double(let x), .double(let y)): return x < y
        case (.bool(let x), .bool(let y)): return !x && y
        default: return a.rank < b.rank
        }
    }
}

/// What a query looked at.
public struct ScanStats: Sendable {
    /// Head chunks and block row groups looked at.
    public var chunks = 0
    /// Blocks opened, and row groups skipped without decoding (time range, dictionary, posting lists).
    public var blocks = 0
    public var skippedGroups = 0
    public var inspectedSpans = 0
    public var inspectedTraces = 0
    public var inspectedBytes = 0
    /// Wall time of the query, when known (set by the API before answering).
    public var elapsedNanos: UInt64 = 0

    public init() {}
}

extension ScanStats {
    public mutating func add(_ o: ScanStats) {
        self.chunks += o.chunks
        self.blocks += o.blocks
        self.skippedGroups += o.skippedGroups
        self.inspectedSpans += o.inspectedSpans
        self.inspectedTraces += o.inspectedTraces
        self.inspectedBytes += o.inspectedBytes
        self.elapsedNanos = Swift.max(self.elapsedNanos, o.elapsedNanos)
    }
}

/// A trace with spans matching a filter.
public struct TraceMatch: Sendable, Equatable {
    public var traceID: TraceID
    /// Start of its latest matching span.
    public var latestStart: UInt64
    public var matched: Int

    public init(traceID: TraceID, latestStart: UInt64, matched: Int) {
        self.traceID = traceID
        self.latestStart = latestStart
        self.matched = matched
    }
}

/// Calls between two services over a time range.
public struct ServiceMapEdge: Sendable, Equatable {
    public var parent: String
    public var child: String
    public var calls: UInt64
    public var errors: UInt64
    /// Child span durations, in ns.
    public var latency: QuantileSketch

    public init(parent: String, child: String, calls: UInt64, errors: UInt64, latency: QuantileSketch) {
        self.parent = parent
        self.child = child
        self.calls = calls
        self.errors = errors
        self.latency = latency
    }
}
