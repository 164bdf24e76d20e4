import Glibc
import Synchronization
import WeftModel

/// The in-memory head: every acknowledged span, queryable at once, in chunks per org and placement.
///
/// The head is split into stripes, each with its own lock, active chunks and sealed chunks, so writers
/// on different threads (one stripe per event loop) do not contend. A trace may span stripes and
/// chunks; lookups scan them all. A ``SpanRegistry`` across stripes makes writes idempotent and tracks
/// when each trace was last written, so whole idle traces can be cut to blocks (see ``take(_:_:)``
/// and ``remove(_:)``). Rows remember their WAL segment: a segment can go once no row of it remains.
public final class Head: Sendable {
    public struct Configuration: Sendable {
        /// Spans per chunk before it is sealed (bounds the copy a concurrent query can cause).
        public var chunkSpans: Int
        /// Independent write stripes (use at least the number of writer threads).
        public var stripes: Int
        /// The placement of writes that name none (the one value of a single node).
        public var placement: String
        public init(chunkSpans: Int = 65_536, stripes: Int = 4, placement: String = "local") {
            self.chunkSpans = chunkSpans
            self.stripes = max(1, stripes)
            self.placement = placement
        }
    }

    /// Totals for metrics and readiness.
    public struct Stats: Sendable, Equatable {
        public var spans = 0
        public var chunks = 0
        public var bytes = 0
    }

    /// Rows taken from the head for a block (see ``take(_:_:)``); still in the head until
    /// ``remove(_:)``.
    public struct Taken: Sendable {
        public let partition: PartitionKey
        /// The rows, gathered into one batch.
        public let batch: SpanBatch
        /// WAL segments of the rows, ascending.
        public let segments: [Int]
        /// Rows taken per chunk ID.
        let rows: [UInt64: ChunkRows]
        let segmentRows: [Int: Int]
    }

    /// Rows taken from one chunk: the first `count` rows, or the listed rows (ascending).
    struct ChunkRows: Sendable {
        var count: Int
        var listed: [Int]?
        var taken: Int { self.listed?.count ?? self.count }
    }

    /// How rows are picked for a cut.
    public enum Selection: Sendable {
        /// Every row of these traces.
        case traces(Set<TraceID>)
        /// Every row logged in this WAL segment.
        case segment(Int)
        /// Every row.
        case all
    }

    private struct Partition {
        var sealed: [HeadChunk] = []
        var active: HeadChunk?
    }

    private struct Stripe {
        var partitions: [PartitionKey: Partition] = [:]
        var spans = 0
        var chunks = 0
        var sealedBytes = 0
    }

    private final class LockedStripe: Sendable {
        let state = Mutex(Stripe())
    }

    /// Per WAL segment: appends announced and not yet landed, and rows held.
    private struct SegmentState {
        var pending = 0
        var rows = 0
    }

    public let configuration: Configuration
    private let stripes: [LockedStripe]
    private let registry = SpanRegistry()
    private let clock: @Sendable () -> UInt64
    private let nextChunkID = Atomic<UInt64>(1)
    /// Spans held (kept apart from the stripes so admission checks take no lock).
    private let heldSpans = Atomic<Int>(0)
    private let segmentStates = Mutex<[Int: SegmentState]>([:])
    /// The check sits in a struct: a closure held directly in a `Mutex` is re-wrapped in reabstraction
    /// thunks on every `withLock` in unoptimised builds, so every append would deepen the next call.
    private struct HeldCheck: Sendable { let check: StoredCheck }
    private let storedCheck = Mutex<HeldCheck?>(nil)

    /// Given a partition, a batch and rows of it whose traces are new to the head, answers the rows
    /// that are stored already elsewhere (in blocks), which the head then drops, and the traces
    /// found there (their later rows are checked too).
    public typealias StoredCheck = @Sendable (_ partition: PartitionKey, _ batch: SpanBatch, _ rows: [Int32]) -> (stored: [Int32], traces: [TraceID])

    /// Installs the check for spans stored outside the head (the engine's blocks).
    public func setStoredCheck(_ check: StoredCheck?) { self.storedCheck.withLock { $0 = check.map(HeldCheck.init) } }

    /// Spans held in the head, all segments.
    public var spanCount: Int { self.heldSpans.load(ordering: .relaxed) }

    /// `clock` gives the nanoseconds that trace idleness is measured in (monotonic by default).
    public init(configuration: Configuration = Configuration(), clock: @escaping @Sendable () -> UInt64 = Head.monotonicNanos) {
        self.configuration = configuration
        self.clock = clock
        self.stripes = (0..<configuration.stripes).map { _ in LockedStripe() }
    }

    /// Nanoseconds of the monotonic clock.
    public static func monotonicNanos() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// The head clock now.
    public var now: UInt64 { self.clock() }

    // MARK: Writing

    /// Adds a decoded batch of one org, logged in WAL `segment`, to `placement` (the configured one
    /// when nil). Spans the head already holds (same org, placement, trace ID and span ID) are
    /// dropped. `stripe` spreads writers: pass a per-thread value. Returns the spans added.
    @discardableResult
    public func append(_ batch: SpanBatch, org: String, placement: String? = nil, stripe: Int = 0, segment: Int = 0) -> Int {
        // Counted before the rows are visible, so a concurrent cut never sees the segment empty
        // while rows of it are still only here.
        self.segmentStates.withLock { $0[segment, default: SegmentState()].rows += batch.spanCount }
        let added = self.appendRows(batch, org: org, placement: placement, stripe: stripe, segment: segment)
        if added < batch.spanCount { self.segmentStates.withLock { $0[segment]!.rows -= batch.spanCount - added } }
        return added
    }

    private func appendRows(_ batch: SpanBatch, org: String, placement: String?, stripe: Int, segment: Int) -> Int {
        guard batch.spanCount > 0 else { return 0 }
        let key = PartitionKey(org: org, placement: placement ?? self.configuration.placement)
        var batch = batch
        let registration = self.registry.register(batch, in: key, now: self.clock())
        var duplicate = registration.duplicate
        if !registration.fresh.isEmpty, let check = self.storedCheck.withLock({ $0 })?.check {
            // Traces new to the head may have been cut to blocks already (a resent batch): the
            // check drops rows the blocks hold. Run after registering, so a trace cut concurrently
            // is either still registered (dropped above) or already in the blocks.
            let (stored, inBlocks) = check(key, batch, registration.fresh)
            if !stored.isEmpty {
                if duplicate == nil { duplicate = [Bool](repeating: false, count: batch.spanCount) }
                for row in stored { duplicate![Int(row)] = true }
                var released = SpanBatch()
                released.strings = batch.strings
                released.appendRows(stored.map { Int($0) }.sorted(), of: batch)
                self.registry.release(released, in: key)
            }
            if !inBlocks.isEmpty { self.registry.markInBlocks(inBlocks, in: key) }
        }
        if let duplicate {
            let keep = batch.spanCount
            var rows: [Int] = []
            rows.reserveCapacity(keep)
            for row in 0..<keep where !duplicate[row] { rows.append(row) }
            guard !rows.isEmpty else { return 0 }
            var kept = SpanBatch()
            kept.strings = batch.strings
            kept.appendRows(rows, of: batch)
            batch = kept
        }
        let limit = self.configuration.chunkSpans
        let index = Int(UInt(bitPattern: stripe) % UInt(self.stripes.count))
        var sealedNow: HeadChunk? = nil
        self.stripes[index].state.withLock { s in
            var partition = s.partitions.removeValue(forKey: key) ?? Partition()
            if partition.active == nil {
                // Sized by what arrived, not by the chunk limit: an org that sends one span costs
                // about one span, and a span with huge attribute lists never multiplies them.
                var chunk = HeadChunk(org: key.org, placement: key.placement, id: self.nextChunkID.wrappingAdd(1, ordering: .relaxed).oldValue)
                chunk.reserve(spans: min(limit, 2 * batch.spanCount), like: batch)
                partition.active = chunk
                s.chunks += 1
            }
            partition.active!.append(batch, segment: segment)
            s.spans += batch.spanCount
            self.heldSpans.add(batch.spanCount, ordering: .relaxed)
            if partition.active!.spanCount >= limit {
                var chunk = partition.active.take()!
                chunk.shrinkToFit()
                s.sealedBytes += chunk.memoryFootprint
                partition.sealed.append(chunk)
                sealedNow = chunk
            }
            s.partitions[key] = partition
        }
        // A sealed chunk's derived facts are computed once, outside the stripe's lock.
        if let sealedNow {
            _ = sealedNow.serviceEdges()
            sealedNow.buildPostings()
        }
        return batch.spanCount
    }

    /// Announces `count` appends for `segment` that will follow (records committed to the WAL whose
    /// spans are on their way to the head), so the segment is kept until they have landed.
    public func expectAppends(segment: Int, count: Int) {
        self.segmentStates.withLock { $0[segment, default: SegmentState()].pending += count }
    }

    /// Appends one batch announced with ``expectAppends(segment:count:)``.
    public func appendExpected(_ batch: SpanBatch, org: String, placement: String? = nil, stripe: Int, segment: Int) {
        self.segmentStates.withLock { $0[segment, default: SegmentState()].rows += batch.spanCount }
        let added = self.appendRows(batch, org: org, placement: placement, stripe: stripe, segment: segment)
        self.segmentStates.withLock { states in
            states[segment]!.pending -= 1
            states[segment]!.rows -= batch.spanCount - added
        }
    }

    /// Announced appends of `segment` still outstanding.
    public func pendingAppends(segment: Int) -> Int { self.segmentStates.withLock { $0[segment]?.pending ?? 0 } }

    /// Whether any segment below `current` still has announced appends outstanding.
    public func hasPendingAppends(below current: Int) -> Bool {
        self.segmentStates.withLock { $0.contains { $0.key < current && $0.value.pending > 0 } }
    }

    // MARK: Reading

    /// Chunks (sealed and active) of an org in the given placements (nil: all).
    public func snapshot(org: String, placements: Set<String>? = nil) -> [HeadChunk] {
        var chunks: [HeadChunk] = []
        for stripe in self.stripes {
            stripe.state.withLock { s in
                for (key, partition) in s.partitions where key.org == org && placements?.contains(key.placement) ?? true {
                    chunks += partition.sealed
                    if let active = partition.active { chunks.append(active) }
                }
            }
        }
        return chunks
    }

    /// Segments with rows in the head, ascending.
    public func segments() -> [Int] {
        self.segmentStates.withLock { $0.filter { $0.value.rows > 0 }.keys.sorted() }
    }

    /// Segments below `current` that the head no longer needs: every announced append has landed
    /// and none of their rows remain. Ascending.
    public func releasableSegments(below current: Int) -> [Int] {
        self.segmentStates.withLock { $0.filter { $0.key < current && $0.value.pending <= 0 && $0.value.rows <= 0 }.keys.sorted() }
    }

    /// Forgets a segment once the WAL has removed it.
    public func forget(segment: Int) {
        self.segmentStates.withLock { _ = $0.removeValue(forKey: segment) }
    }

    /// Partitions with data.
    public func partitions() -> [PartitionKey] {
        var keys = Set<PartitionKey>()
        for stripe in self.stripes {
            stripe.state.withLock { s in keys.formUnion(s.partitions.keys) }
        }
        return keys.sorted()
    }

    /// Orgs with data.
    public func orgs() -> [String] { Array(Set(self.partitions().map(\.org))).sorted() }

    /// Traces of each partition whose last write is older than `idleBefore` or whose first write is
    /// older than `startedBefore` (head clock), and the spans they hold.
    public func traces(idleBefore: UInt64, startedBefore: UInt64) -> (traces: [PartitionKey: Set<TraceID>], spans: Int) {
        self.registry.traces(idleBefore: idleBefore, startedBefore: startedBefore)
    }

    // MARK: Cutting rows to blocks

    /// Gathers the rows of `partition` that `selection` picks into one batch, oldest chunks first,
    /// stopping after the chunk that brings it to `maxSpans`. The rows stay in the head (queries
    /// still see them) until ``remove(_:)``; rows appended meanwhile are never part of it. Nil when
    /// nothing is picked.
    public func take(_ partition: PartitionKey, _ selection: Selection, maxSpans: Int = .max) -> Taken? {
        var chunks: [HeadChunk] = []
        for stripe in self.stripes {
            stripe.state.withLock { s in
                if let p = s.partitions[partition] {
                    chunks += p.sealed
                    if let active = p.active { chunks.append(active) }
                }
            }
        }
        chunks.sort { $0.id < $1.id }
        var batch = SpanBatch()
        var rowsByChunk: [UInt64: ChunkRows] = [:]
        var segmentRows: [Int: Int] = [:]
        for chunk in chunks where batch.spanCount < maxSpans {
            let picked = Self.pick(selection, in: chunk)
            guard picked.taken > 0 else { continue }
            rowsByChunk[chunk.id] = picked
            let part: SpanBatch
            if let rows = picked.listed {
                for row in rows { segmentRows[Int(chunk.rowSegments[row]), default: 0] += 1 }
                part = chunk.gather(rows)
            } else {
                for segment in chunk.rowSegments { segmentRows[Int(segment), default: 0] += 1 }
                part = chunk.batch
            }
            if batch.spanCount == 0 { batch = part } else { batch.append(part) }
        }
        guard batch.spanCount > 0 else { return nil }
        return Taken(partition: partition, batch: batch, segments: segmentRows.keys.sorted(), rows: rowsByChunk, segmentRows: segmentRows)
    }

    /// The rows of `chunk` that `selection` picks; a whole chunk is recognised from its trace index
    /// without visiting rows.
    private static func pick(_ selection: Selection, in chunk: HeadChunk) -> ChunkRows {
        let n = chunk.spanCount
        switch selection {
        case .all:
            return ChunkRows(count: n)
        case .segment(let segment):
            let mark = UInt32(truncatingIfNeeded: segment)
            let rows = (0..<n).filter { chunk.rowSegments[$0] == mark }
            return rows.count == n ? ChunkRows(count: n) : ChunkRows(count: n, listed: rows)
        case .traces(let chosen):
            var all = true
            var any = false
            for trace in chunk.lastRowOfTrace.keys {
                if chosen.contains(trace) { any = true } else { all = false }
                if any && !all { break }
            }
            if all { return ChunkRows(count: n) }
            if !any { return ChunkRows(count: n, listed: []) }
            var rows: [Int] = []
            for (trace, _) in chunk.lastRowOfTrace where chosen.contains(trace) { rows += chunk.rows(of: trace) }
            rows.sort()
            return ChunkRows(count: n, listed: rows)
        }
    }

    /// Drops rows taken with ``take(_:_:)`` (now durable elsewhere); their spans and segments are
    /// released. Chunks left with rows are rebuilt without them.
    public func remove(_ taken: Taken) {
        var rebuiltSealed: [HeadChunk] = []
        for stripe in self.stripes {
            stripe.state.withLock { s in
                guard var partition = s.partitions.removeValue(forKey: taken.partition) else { return }
                var sealed: [HeadChunk] = []
                for chunk in partition.sealed {
                    guard let rows = taken.rows[chunk.id] else {
                        sealed.append(chunk)
                        continue
                    }
                    s.sealedBytes -= chunk.memoryFootprint
                    if let rebuilt = self.without(rows, chunk, &s) {
                        s.sealedBytes += rebuilt.memoryFootprint
                        sealed.append(rebuilt)
                        rebuiltSealed.append(rebuilt)
                    }
                }
                partition.sealed = sealed
                if let active = partition.active, let rows = taken.rows[active.id] {
                    partition.active = self.without(rows, active, &s)
                }
                if !partition.sealed.isEmpty || partition.active != nil { s.partitions[taken.partition] = partition }
            }
        }
        self.registry.release(taken.batch, in: taken.partition)
        self.segmentStates.withLock { states in
            for (segment, rows) in taken.segmentRows { states[segment, default: SegmentState()].rows -= rows }
        }
        // A rebuilt sealed chunk derives its facts again now, not on the next query.
        for chunk in rebuiltSealed {
            _ = chunk.serviceEdges()
            chunk.buildPostings()
        }
    }

    /// `chunk` without the taken rows, or nil if nothing is left; updates the stripe's totals.
    private func without(_ taken: ChunkRows, _ chunk: HeadChunk, _ s: inout Stripe) -> HeadChunk? {
        s.spans -= taken.taken
        self.heldSpans.subtract(taken.taken, ordering: .relaxed)
        var keep: [Int] = []
        if let rows = taken.listed {
            keep.reserveCapacity(chunk.spanCount - rows.count)
            var next = 0
            for row in 0..<chunk.spanCount {
                if next < rows.count && rows[next] == row {
                    next += 1
                } else {
                    keep.append(row)
                }
            }
        } else {
            keep = Array(taken.count..<chunk.spanCount)
        }
        guard !keep.isEmpty else {
            s.chunks -= 1
            return nil
        }
        return HeadChunk(rebuilding: chunk, batch: chunk.gather(keep), rowSegments: keep.map { chunk.rowSegments[$0] })
    }

    public var stats: Stats {
        var total = Stats()
        for stripe in self.stripes {
            stripe.state.withLock { s in
                total.spans += s.spans
                total.chunks += s.chunks
                total.bytes += s.sealedBytes + s.partitions.values.reduce(0) { $0 + ($1.active?.memoryFootprint ?? 0) }
            }
        }
        return total
    }
}
