import Synchronization
import WeftModel

/// A columnar chunk of recent spans of one org, with its own string dictionary and a trace-ID index.
///
/// Chunks are values: a query takes a snapshot and scans it without holding the head's lock.
public struct HeadChunk: Sendable {
    public let org: String
    /// The WAL segment whose records the chunk holds (it is flushed to blocks with that segment).
    public let segment: Int
    public private(set) var batch = SpanBatch()
    /// The last row of each trace in this chunk; earlier rows are reached through ``previousInTrace``.
    public private(set) var lastRowOfTrace: [TraceID: UInt32] = [:]
    /// For each row, the previous row of the same trace (`UInt32.max` if none).
    public private(set) var previousInTrace: [UInt32] = []
    public private(set) var minStart: UInt64 = .max
    public private(set) var maxStart: UInt64 = 0

    public init(org: String, segment: Int = 0) {
        self.org = org
        self.segment = segment
    }

    /// A chunk over an existing batch (e.g. rows decoded from a block), with its trace index built.
    public init(org: String, batch: SpanBatch) {
        self.org = org
        self.segment = -1
        self.append(batch, sharingStrings: true)
    }

    public var spanCount: Int { self.batch.spanCount }

    /// Reserves room for `spans` spans shaped like `sample` (attributes, events and links per span).
    mutating func reserve(spans: Int, like sample: SpanBatch) {
        let n = max(1, sample.spanCount)
        self.batch.reserve(spans: spans, attributes: spans * sample.attrs.count / n + 16)
        self.previousInTrace.reserveCapacity(spans)
        self.lastRowOfTrace.reserveCapacity(spans / 2)
    }

    mutating func append(_ other: SpanBatch, sharingStrings: Bool = false) {
        let first = self.batch.spanCount
        if sharingStrings && first == 0 { self.batch = other } else { self.batch.append(other) }
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
///
/// The head is split into stripes, each with its own lock, active chunks and sealed chunks, so writers
/// on different threads (one stripe per event loop) do not contend. A trace may span stripes and
/// chunks; lookups scan them all.
public final class Head: Sendable {
    public struct Configuration: Sendable {
        /// Spans per chunk before it is sealed (bounds the copy a concurrent query can cause).
        public var chunkSpans: Int
        /// Independent write stripes (use at least the number of writer threads).
        public var stripes: Int
        public init(chunkSpans: Int = 65_536, stripes: Int = 4) {
            self.chunkSpans = chunkSpans
            self.stripes = max(1, stripes)
        }
    }

    /// Totals for metrics and readiness.
    public struct Stats: Sendable, Equatable {
        public var spans = 0
        public var chunks = 0
        public var bytes = 0
    }

    private struct Key: Hashable {
        var org: String
        var segment: Int
    }

    private struct Stripe {
        var sealed: [Key: [HeadChunk]] = [:]
        var active: [Key: HeadChunk] = [:]
        var spans = 0
        var chunks = 0
        var sealedBytes = 0
    }

    private final class LockedStripe: Sendable {
        let state = Mutex(Stripe())
    }

    public let configuration: Configuration
    private let stripes: [LockedStripe]
    /// Spans held (kept apart from the stripes so admission checks take no lock).
    private let heldSpans = Atomic<Int>(0)

    /// Spans held in the head, all segments.
    public var spanCount: Int { self.heldSpans.load(ordering: .relaxed) }
    /// Appends announced per segment (see ``expectAppends(segment:count:)``) that have not happened yet.
    private let pending = Mutex<[Int: Int]>([:])

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.stripes = (0..<configuration.stripes).map { _ in LockedStripe() }
    }

    /// Adds a decoded batch of one org, logged in WAL `segment`. `stripe` spreads writers: pass a
    /// per-thread value.
    public func append(_ batch: SpanBatch, org: String, stripe: Int = 0, segment: Int = 0) {
        guard batch.spanCount > 0 else { return }
        let limit = self.configuration.chunkSpans
        let index = Int(UInt(bitPattern: stripe) % UInt(self.stripes.count))
        let key = Key(org: org, segment: segment)
        self.stripes[index].state.withLock { s in
            if s.active[key] == nil {
                // Sized by what arrived, not by the chunk limit: an org that sends one span costs
                // about one span, and a span with huge attribute lists never multiplies them.
                var chunk = HeadChunk(org: org, segment: segment)
                chunk.reserve(spans: min(limit, 2 * batch.spanCount), like: batch)
                s.active[key] = chunk
                s.chunks += 1
            }
            s.active[key]!.append(batch)
            s.spans += batch.spanCount
            self.heldSpans.add(batch.spanCount, ordering: .relaxed)
            if s.active[key]!.spanCount >= limit {
                var chunk = s.active.removeValue(forKey: key)!
                chunk.shrinkToFit()
                s.sealedBytes += chunk.memoryFootprint
                s.sealed[key, default: []].append(chunk)
            }
        }
    }

    /// Announces `count` appends for `segment` that will follow (records committed to the WAL whose
    /// spans are on their way to the head), so a flush of that segment waits for them.
    public func expectAppends(segment: Int, count: Int) {
        self.pending.withLock { $0[segment, default: 0] += count }
    }

    /// Appends one batch announced with ``expectAppends(segment:count:)``.
    public func appendExpected(_ batch: SpanBatch, org: String, stripe: Int, segment: Int) {
        self.append(batch, org: org, stripe: stripe, segment: segment)
        self.pending.withLock { p in
            p[segment, default: 0] -= 1
            if p[segment] == 0 { p.removeValue(forKey: segment) }
        }
    }

    /// Announced appends of `segment` still outstanding.
    public func pendingAppends(segment: Int) -> Int { self.pending.withLock { $0[segment] ?? 0 } }

    /// All chunks of an org (sealed and active), every segment.
    public func snapshot(org: String) -> [HeadChunk] {
        var chunks: [HeadChunk] = []
        for stripe in self.stripes {
            stripe.state.withLock { s in
                for (key, sealed) in s.sealed where key.org == org { chunks += sealed }
                for (key, active) in s.active where key.org == org { chunks.append(active) }
            }
        }
        return chunks
    }

    /// Chunks of one segment, by org.
    public func chunks(segment: Int) -> [String: [HeadChunk]] {
        var out: [String: [HeadChunk]] = [:]
        for stripe in self.stripes {
            stripe.state.withLock { s in
                for (key, sealed) in s.sealed where key.segment == segment { out[key.org, default: []] += sealed }
                for (key, active) in s.active where key.segment == segment { out[key.org, default: []].append(active) }
            }
        }
        return out
    }

    /// Segments with data in the head, ascending.
    public func segments() -> [Int] {
        var all = Set<Int>()
        for stripe in self.stripes {
            stripe.state.withLock { s in
                for key in s.sealed.keys { all.insert(key.segment) }
                for key in s.active.keys { all.insert(key.segment) }
            }
        }
        return all.sorted()
    }

    /// Forgets a segment's chunks, of one org or all (once they are in durable blocks).
    public func drop(segment: Int, org: String? = nil) {
        for stripe in self.stripes {
            stripe.state.withLock { s in
                for key in Array(s.sealed.keys) where key.segment == segment && (org == nil || key.org == org) {
                    for chunk in s.sealed.removeValue(forKey: key)! {
                        s.spans -= chunk.spanCount
                        self.heldSpans.subtract(chunk.spanCount, ordering: .relaxed)
                        s.chunks -= 1
                        s.sealedBytes -= chunk.memoryFootprint
                    }
                }
                for key in Array(s.active.keys) where key.segment == segment && (org == nil || key.org == org) {
                    let chunk = s.active.removeValue(forKey: key)!
                    s.spans -= chunk.spanCount
                    self.heldSpans.subtract(chunk.spanCount, ordering: .relaxed)
                    s.chunks -= 1
                }
            }
        }
    }

    /// Orgs with data.
    public func orgs() -> [String] {
        var orgs = Set<String>()
        for stripe in self.stripes {
            stripe.state.withLock { s in orgs.formUnion(s.sealed.keys.map(\.org) + s.active.keys.map(\.org)) }
        }
        return orgs.sorted()
    }

    public var stats: Stats {
        var total = Stats()
        for stripe in self.stripes {
            stripe.state.withLock { s in
                total.spans += s.spans
                total.chunks += s.chunks
                total.bytes += s.sealedBytes + s.active.values.reduce(0) { $0 + $1.memoryFootprint }
            }
        }
        return total
    }
}
