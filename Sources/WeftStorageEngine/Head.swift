import Synchronization
import WeftModel

/// A columnar chunk of recent spans of one org, with its own string dictionary and a trace-ID index.
///
/// Chunks are values: a query takes a snapshot and scans it without holding the head's lock.
public struct HeadChunk: Sendable {
    public let org: String
    public private(set) var batch = SpanBatch()
    /// The last row of each trace in this chunk; earlier rows are reached through ``previousInTrace``.
    public private(set) var lastRowOfTrace: [TraceID: UInt32] = [:]
    /// For each row, the previous row of the same trace (`UInt32.max` if none).
    public private(set) var previousInTrace: [UInt32] = []
    public private(set) var minStart: UInt64 = .max
    public private(set) var maxStart: UInt64 = 0

    public init(org: String) {
        self.org = org
    }

    public var spanCount: Int { self.batch.spanCount }

    mutating func append(_ other: SpanBatch) {
        let first = self.batch.spanCount
        self.batch.append(other)
        self.previousInTrace.reserveCapacity(self.batch.spanCount)
        for row in first..<self.batch.spanCount {
            let id = self.batch.traceID(row)
            let previous = self.lastRowOfTrace.updateValue(UInt32(row), forKey: id)
            self.previousInTrace.append(previous ?? .max)
            let start = self.batch.startTime[row]
            if start < self.minStart { self.minStart = start }
            if start > self.maxStart { self.maxStart = start }
        }
    }

    /// Drops spare capacity; called when the chunk is sealed.
    mutating func shrinkToFit() {
        self.batch.shrinkToFit()
        self.previousInTrace = self.previousInTrace.withUnsafeBufferPointer { Array($0) }
    }

    /// Rows of a trace in this chunk, in insertion order.
    public func rows(of trace: TraceID) -> [Int] {
        guard var row = self.lastRowOfTrace[trace] else { return [] }
        var rows: [Int] = []
        while row != .max {
            rows.append(Int(row))
            row = self.previousInTrace[Int(row)]
        }
        return rows.reversed()
    }

    /// Approximate heap bytes held.
    public var memoryFootprint: Int {
        self.batch.memoryFootprint + self.previousInTrace.capacity * 4 + self.lastRowOfTrace.capacity * 28
    }
}

/// The in-memory head: every acknowledged span, queryable at once, in chunks per org.
public final class Head: Sendable {
    public struct Configuration: Sendable {
        /// Spans per chunk before it is sealed (bounds the copy a concurrent query can cause).
        public var chunkSpans: Int
        public init(chunkSpans: Int = 65_536) { self.chunkSpans = chunkSpans }
    }

    /// Totals for metrics and readiness.
    public struct Stats: Sendable, Equatable {
        public var spans = 0
        public var chunks = 0
        public var bytes = 0
    }

    private struct State {
        var sealed: [String: [HeadChunk]] = [:]
        var active: [String: HeadChunk] = [:]
        var stats = Stats()
        var sealedBytes = 0
    }

    public let configuration: Configuration
    private let state = Mutex(State())

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Adds a decoded batch of one org.
    public func append(_ batch: SpanBatch, org: String) {
        guard batch.spanCount > 0 else { return }
        let limit = self.configuration.chunkSpans
        self.state.withLock { state in
            if state.active[org] == nil {
                state.active[org] = HeadChunk(org: org)
                state.stats.chunks += 1
            }
            state.active[org]!.append(batch)
            state.stats.spans += batch.spanCount
            if state.active[org]!.spanCount >= limit {
                var chunk = state.active.removeValue(forKey: org)!
                chunk.shrinkToFit()
                state.sealedBytes += chunk.memoryFootprint
                state.sealed[org, default: []].append(chunk)
            }
        }
    }

    /// All chunks of an org, oldest first (the active chunk last).
    public func snapshot(org: String) -> [HeadChunk] {
        self.state.withLock { state in
            var chunks = state.sealed[org] ?? []
            if let active = state.active[org] { chunks.append(active) }
            return chunks
        }
    }

    /// Orgs with data.
    public func orgs() -> [String] {
        self.state.withLock { state in Array(Set(state.sealed.keys).union(state.active.keys)).sorted() }
    }

    public var stats: Stats {
        self.state.withLock { state in
            var s = state.stats
            s.bytes = state.sealedBytes + state.active.values.reduce(0) { $0 + $1.memoryFootprint }
            return s
        }
    }
}
