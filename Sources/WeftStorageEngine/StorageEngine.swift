import Synchronization
import WeftModel
import WeftOTLP

/// The storage engine of one node: the head (recent spans, per org and placement) and the immutable
/// blocks, with the steps that move data between them. Pure logic over ``Disk``: the node decides
/// when each step runs and on which thread.
///
/// Life of a span: logged in WAL segment S and appended to the head of its (org, placement), unless
/// the head already holds it → once its trace has been idle for a while (or is old, or the head is
/// full), ``cut(now:)`` writes the whole trace with the other cut traces of that (org, placement)
/// as one block naming the WAL segments of its rows as sources, and swaps the rows for the block in
/// one step → once no row of S remains in the head, S is removed from the WAL → ``compact(_:)``
/// merges small blocks of one org and placement, keeping each span once → ``applyRetention(nowNanos:)``
/// deletes blocks past their org's retention. After a crash at any point, ``open(wal:options:)``
/// replays each WAL row unless a block naming its segment holds that span (org, trace ID, span ID),
/// and removes compaction inputs whose output survived, so no acknowledged span is lost or counted twice.
public final class StorageEngine: Sendable {
    public struct Configuration: Sendable {
        /// The placement of replayed WAL records that name none (one value on a single node).
        public var placement: String
        public var blockOptions: BlockCodec.Options
        /// Options for compaction output (a higher zstd level: it runs in the background).
        public var compactedOptions: BlockCodec.Options
        /// Compaction merges blocks until the output would exceed this many spans.
        public var compactionMaxSpans: Int
        /// Blocks at least this large are not compaction inputs.
        public var compactionMinInputs: Int
        /// A plan of this many blocks runs even while every pass has traces to cut.
        public var compactionBacklogBlocks: Int
        /// Default retention in nanoseconds, and per-org overrides.
        public var retentionNanos: UInt64
        public var orgRetentionNanos: [String: UInt64]
        /// A trace stays in the head until nothing was written to it for this long (head clock)…
        public var traceIdleNanos: UInt64
        /// …or until its first write is this old, whichever comes first.
        public var traceMaxAgeNanos: UInt64
        /// While the head holds more spans than this, every trace is cut, idle or not.
        public var headCutSpans: Int
        /// A cut writes blocks of about this many spans (whole head chunks; a bigger cut is written
        /// as several blocks, which may part a trace at a chunk boundary).
        public var cutBlockSpans: Int

        public init(
            placement: String = "local",
            blockOptions: BlockCodec.Options = BlockCodec.Options(),
            compactedOptions: BlockCodec.Options = BlockCodec.Options(zstdLevel: 9),
            compactionMaxSpans: Int = 1_000_000,
            compactionMinInputs: Int = 2,
            compactionBacklogBlocks: Int = 8,
            retentionNanos: UInt64 = 14 * 86_400 * 1_000_000_000,
            orgRetentionNanos: [String: UInt64] = [:],
            traceIdleNanos: UInt64 = 5_000_000_000,
            traceMaxAgeNanos: UInt64 = 60_000_000_000,
            headCutSpans: Int = 4_000_000,
            cutBlockSpans: Int = 250_000
        ) {
            self.placement = placement
            self.blockOptions = blockOptions
            self.compactedOptions = compactedOptions
            self.compactionMaxSpans = compactionMaxSpans
            self.compactionMinInputs = max(2, compactionMinInputs)
            self.compactionBacklogBlocks = max(self.compactionMinInputs, compactionBacklogBlocks)
            self.retentionNanos = retentionNanos
            self.orgRetentionNanos = orgRetentionNanos
            self.traceIdleNanos = traceIdleNanos
            self.traceMaxAgeNanos = max(traceIdleNanos, traceMaxAgeNanos)
            self.headCutSpans = headCutSpans
            self.cutBlockSpans = max(1, cutBlockSpans)
        }

        public func retention(of org: String) -> UInt64 { self.orgRetentionNanos[org] ?? self.retentionNanos }
    }

    /// What ``open(wal:options:)`` found.
    public struct OpenReport: Sendable {
        public var blocks: BlockStore.OpenReport
        public var wal: WAL.ReplayReport
        /// Spans replayed into the head.
        public var spans = 0
        /// WAL records skipped because blocks naming their segment already hold all their spans.
        public var skippedRecords = 0
        /// Replayed spans dropped because a block naming their segment, or the head, already held them.
        public var duplicateSpans = 0
        /// Records that could not be applied (they no longer parse or decode), each copied to the WAL's
        /// `quarantine/` folder and skipped; everything else is replayed.
        public var quarantined: [QuarantinedRecord] = []
        /// Spans of replayed records refused by the span limits or the org's retention, as at ingest.
        public var refusedSpans = 0

        /// Records that no longer decode (the count of ``quarantined``).
        public var undecodable: Int { self.quarantined.count }
    }

    /// A WAL record set aside on replay.
    public struct QuarantinedRecord: Sendable, Equatable {
        public var segment: Int
        /// Position of the record in its segment (0-based).
        public var index: Int
        /// The copy's path, or nil if it could not be written.
        public var path: String?
        public var reason: String
    }

    /// A consistent view for a query: head chunks and blocks of one org, never overlapping.
    public struct Snapshot: Sendable {
        public var chunks: [HeadChunk]
        public var blocks: [BlockMeta]

        public init(chunks: [HeadChunk], blocks: [BlockMeta]) {
            self.chunks = chunks
            self.blocks = blocks
        }
    }

    public let configuration: Configuration
    public let head: Head
    public let store: BlockStore
    /// Live blocks. Guarded together with head drops so a query never sees a segment twice or not at all.
    private let catalog = Mutex<[BlockMeta]>([])
    /// Partitions whose copy here is surplus (``setSurplus(_:)``).
    private let surplus = Mutex<Set<PartitionKey>>([])
    /// The traces of the blocks written since start, per partition (ingest's check for resent spans).
    let cutTraces = CutTraceIndex()
    /// Each live block's replica digest, computed once (blocks never change).
    let blockDigests = Mutex<[UInt64: [UInt64: BucketDigest]]>([:])

    public init(head: Head, store: BlockStore, configuration: Configuration = Configuration()) {
        self.head = head
        self.store = store
        self.configuration = configuration
        head.setStoredCheck { [weak self] partition, batch, rows in
            self?.storedInBlocks(partition, batch, rows) ?? ([], [])
        }
    }

    // MARK: Startup

    /// Opens the blocks by their metadata, then replays the WAL into the head, skipping spans that a
    /// block naming the record's segment already holds (and spans the head already has). Each
    /// record's spans pass the same `limits` and retention (judged at `nowNanos`) as at ingest, so a span refused then is refused again; a record that no
    /// longer parses or decodes is copied to `quarantine/` beside the segments and skipped, so one bad
    /// record never stops a restart. Call once, before any other method.
    public func open(wal: WAL, options: DecodeOptions, limits: SpanLimits = SpanLimits(), nowNanos: UInt64 = 0) throws -> OpenReport {
        let blocks = try self.store.open()
        // Visible to the head's block check during replay, so a span resent after its trace was cut
        // (logged in a later segment than the block's sources) is dropped on replay too.
        self.catalog.withLock { $0 = blocks.blocks }
        wal.reserveThrough(Int(blocks.blocks.flatMap(\.sources).max() ?? 0))
        var stored = StoredSpans(store: self.store, blocks: blocks.blocks)
        var report = OpenReport(blocks: blocks, wal: WAL.ReplayReport())
        var decoder = OTLPRequestDecoder(options: options)
        var lastSegment = -1
        var index = 0
        report.wal = try wal.replay { (segment: Int, record: UnsafeRawBufferPointer) in
            if segment != lastSegment {
                lastSegment = segment
                index = 0
                // Known to the head from its first record, so it is removed once nothing of it is left.
                self.head.expectAppends(segment: segment, count: 0)
            }
            defer { index += 1 }
            let entry: (org: String, placement: String, batch: SpanBatch)
            do {
                entry = try WALEntry.decode(record, decoder: &decoder, legacyPlacement: self.configuration.placement)
            } catch {
                report.quarantined.append(Self.quarantine(record, segment: segment, index: index, reason: "\(error)", wal: wal))
                return
            }
            var batch = entry.batch
            let retention = self.configuration.retention(of: entry.org)
            report.refusedSpans += limits.enforce(on: &batch, minStartNanos: nowNanos > retention ? nowNanos - retention : 0).rejectedSpans
            let partition = PartitionKey(org: entry.org, placement: entry.placement)
            let decoded = batch.spanCount
            let inBlocks = stored.drop(from: &batch, segment: segment, partition: partition)
            if decoded > 0 && inBlocks == decoded { report.skippedRecords += 1 }
            let added = self.head.append(batch, org: partition.org, placement: partition.placement, segment: segment)
            report.spans += added
            report.duplicateSpans += decoded - added
        }
        return report
    }

    /// Copies a record that cannot be applied to the WAL's `quarantine/` folder (best effort: the
    /// replay goes on whether or not the copy could be written).
    private static func quarantine(_ record: UnsafeRawBufferPointer, segment: Int, index: Int, reason: String, wal: WAL) -> QuarantinedRecord {
        let directory = wal.directory + "/quarantine"
        let path = directory + "/segment-\(segment)-record-\(index).rec"
        do {
            try wal.disk.makeDirectory(directory)
            if wal.disk.exists(path) { try wal.disk.remove(path) }
            try wal.disk.append(path, record)
            try wal.disk.sync(path)
            try wal.disk.syncDirectory(directory)
            return QuarantinedRecord(segment: segment, index: index, path: path, reason: reason)
        } catch {
            return QuarantinedRecord(segment: segment, index: index, path: nil, reason: reason + " (the copy failed: \(error))")
        }
    }

    // MARK: Queries

    /// Head chunks and blocks of `org` in the given placements (nil: every placement but the surplus
    /// ones), taken atomically with respect to cuts, flushes and compactions.
    public func snapshot(org: String, placements: Set<String>? = nil) -> Snapshot {
        let hidden: Set<String> = placements == nil
            ? self.surplus.withLock { s in s.isEmpty ? [] : Set(s.lazy.filter { $0.org == org }.map(\.placement)) } : []
        let snapshot = self.catalog.withLock { blocks in
            Snapshot(
                chunks: self.head.snapshot(org: org, placements: placements),
                blocks: blocks.filter { $0.org == org && placements?.contains($0.placement) ?? true && !self.store.isQuarantined($0.id) }
            )
        }
        guard !hidden.isEmpty else { return snapshot }
        return Snapshot(chunks: snapshot.chunks.filter { !hidden.contains($0.placement) }, blocks: snapshot.blocks.filter { !hidden.contains($0.placement) })
    }

    /// Marks the partitions whose copy on this node is surplus: the node is not one of their desired
    /// holders and every desired holder holds each of their spans. Reads that name no placements (this
    /// node's own data, its catalog) leave them out, so each span counts RF copies again; their files
    /// stay (retention removes them), anti-entropy still reads them by name, and new spans written to
    /// them are kept as usual. Replaces the previous set.
    public func setSurplus(_ partitions: Set<PartitionKey>) {
        self.surplus.withLock { $0 = partitions }
    }

    /// The partitions ``setSurplus(_:)`` marked.
    public var surplusPartitions: Set<PartitionKey> { self.surplus.withLock { $0 } }

    /// Rows among `rows` of `batch` (traces new to the head) that blocks of `partition` already
    /// hold, and the traces found in blocks. Per trace: blocks whose start range (widened by
    /// ``Configuration/traceMaxAgeNanos``) covers its rows, then their Bloom filters and trace IDs; only on a Bloom hit is the trace read and its span IDs compared. A
    /// block that fails is quarantined.
    func storedInBlocks(_ partition: PartitionKey, _ batch: SpanBatch, _ rows: [Int32]) -> (stored: [Int32], traces: [TraceID]) {
        var low = UInt64.max
        var high: UInt64 = 0
        for row in rows {
            let start = batch.startTime[Int(row)]
            low = min(low, start)
            high = max(high, start)
        }
        // Widened by the longest a trace stays in the head: a late span of a trace cut to a block
        // starts after the block's spans, and the trace must still be known to be in blocks.
        let slack = self.configuration.traceMaxAgeNanos
        let candidates = self.catalog.withLock { blocks in
            blocks.filter { $0.maxStart &+ slack >= low && $0.minStart <= high &+ slack && $0.org == partition.org && $0.placement == partition.placement }
        }
        guard !candidates.isEmpty else { return ([], []) }
        // After the catalog: every candidate is covered by the view (its traces in the filter) or asked.
        let view = self.cutTraces.view(of: partition)
        // Candidates by the filters they are covered by, and those no filter covers (always asked).
        var uncovered: [Int] = []
        var byFilter: [Int: [Int]] = [:]
        for (c, meta) in candidates.enumerated() {
            if let named = view?.covered[meta.id] {
                for f in named { byFilter[f, default: []].append(c) }
            } else {
                uncovered.append(c)
            }
        }
        // A block's reader is looked up once per batch, and only for a block that is asked: a scan of
        // every recent block would cycle the store's reader cache once they outnumber it.
        var readers: [UInt64: BlockReader?] = [:]
        func reader(_ meta: BlockMeta) -> BlockReader? {
            if let known = readers[meta.id] { return known }
            var opened: BlockReader?
            if !self.store.isQuarantined(meta.id) {
                do {
                    opened = try self.store.reader(meta)
                } catch {
                    self.store.quarantine(meta, error)
                }
            }
            readers[meta.id] = opened
            return opened
        }
        var byTrace: [TraceID: [Int32]] = [:]
        for row in rows { byTrace[TraceID(high: batch.traceHigh[Int(row)], low: batch.traceLow[Int(row)]), default: []].append(row) }
        var stored: [Int32] = []
        var found: [TraceID] = []
        var asked: [Int] = []
        for (trace, traceRows) in byTrace {
            // Most new traces are in no filter: only the uncovered candidates are asked.
            asked.removeAll(keepingCapacity: true)
            asked.append(contentsOf: uncovered)
            let holding = view?.filters(mayHolding: trace) ?? []
            for f in holding { asked.append(contentsOf: byFilter[f] ?? []) }
            guard !asked.isEmpty else { continue }
            if holding.count > 1 || (!holding.isEmpty && !uncovered.isEmpty) {
                asked.sort()
                asked = asked.enumerated().filter { $0.offset == 0 || asked[$0.offset - 1] != $0.element }.map(\.element)
            }
            var first = UInt64.max
            var last: UInt64 = 0
            for row in traceRows {
                first = min(first, batch.startTime[Int(row)])
                last = max(last, batch.startTime[Int(row)])
            }
            var held = Set<UInt64>()
            var inBlocks = false
            for c in asked {
                let meta = candidates[c]
                guard meta.maxStart &+ slack >= first && meta.minStart <= last &+ slack else { continue }
                do {
                    // The block-wide filter first: it is kept without the reader, so most asks open none.
                    guard try self.store.mayHold(trace, in: meta, { reader(meta) }), let reader = reader(meta) else { continue }
                    if try self.spanIDs(of: trace, in: meta, reader, into: &held) { inBlocks = true }
                } catch {
                    self.store.quarantine(meta, error)
                }
            }
            guard inBlocks else { continue }
            found.append(trace)
            for row in traceRows where held.contains(batch.spanID[Int(row)]) { stored.append(row) }
        }
        return (stored, found)
    }

    /// Adds the span IDs `meta` holds of `trace` to `held`; false if it holds none. The groups' Bloom
    /// filters rule most groups out (the caller asked the block-wide filter first);
    /// the trace and span ID columns come from the store's column cache, so a resent batch of many
    /// traces decodes each row group once.
    private func spanIDs(of trace: TraceID, in meta: BlockMeta, _ reader: BlockReader, into held: inout Set<UInt64>) throws -> Bool {
        var found = false
        for g in try reader.candidateGroups(trace) {
            guard case .traces(let traceOf, let high, let low) = try self.store.column(meta, reader, group: g, .traces),
                let index = high.indices.first(where: { high[$0] == trace.high && low[$0] == trace.low })
            else { continue }
            guard case .words(let ids) = try self.store.column(meta, reader, group: g, .spanID), ids.count == traceOf.count else {
                throw BlockFormatError("group \(g) of block \(meta.id): span IDs disagree with the trace column")
            }
            for row in traceOf.indices where traceOf[row] == UInt32(index) { held.insert(ids[row]) }
            found = true
        }
        return found
    }

    /// Every live block.
    public var blocks: [BlockMeta] { self.catalog.withLock { $0 } }

    // MARK: Cutting the head to blocks

    /// Serialises cuts: a cut's rows are named by chunk and row until it removes them.
    private let cutting = Mutex<Void>(())

    /// Cuts whole traces to blocks: those idle for ``Configuration/traceIdleNanos`` and those first
    /// written more than ``Configuration/traceMaxAgeNanos`` ago (head clock), if they hold at least
    /// `minSpans` spans in all; while the head holds more than ``Configuration/headCutSpans`` spans,
    /// every trace. Blocks per (org, placement); returns them.
    @discardableResult
    public func cut(now: UInt64? = nil, minSpans: Int = 0) throws -> [BlockMeta] {
        let now = now ?? self.head.now
        let c = self.configuration
        let everything = self.head.spanCount > c.headCutSpans
        let due = self.head.traces(
            idleBefore: everything ? .max : (now > c.traceIdleNanos ? now - c.traceIdleNanos : 0),
            startedBefore: now > c.traceMaxAgeNanos ? now - c.traceMaxAgeNanos : 0
        )
        guard due.spans > 0 && (everything || due.spans >= minSpans) else { return [] }
        var written: [BlockMeta] = []
        for partition in due.traces.keys.sorted() {
            let chosen = due.traces[partition]!
            written += try self.cut(partition, .traces(chosen))
        }
        return written
    }

    /// Writes every row of the head logged in WAL `segment` to blocks (one per org and placement),
    /// whether or not its trace is idle, and drops the rows from the head.
    @discardableResult
    public func flush(segment: Int) throws -> [BlockMeta] {
        var written: [BlockMeta] = []
        for partition in self.head.partitions() {
            written += try self.cut(partition, .segment(segment))
        }
        return written
    }

    /// Writes everything in the head to blocks.
    @discardableResult
    public func flushAll() throws -> [BlockMeta] {
        var written: [BlockMeta] = []
        for partition in self.head.partitions() {
            written += try self.cut(partition, .all)
        }
        return written
    }

    /// Writes the picked rows of one partition as blocks (of about ``Configuration/cutBlockSpans``
    /// spans) naming their WAL segments as sources, each swapped for its rows in one step, so a
    /// query sees each span once and a failure (and retry) never writes the same rows twice.
    private func cut(_ partition: PartitionKey, _ selection: Head.Selection) throws -> [BlockMeta] {
        try self.cutting.withLock { _ in
            var written: [BlockMeta] = []
            let limit = self.configuration.cutBlockSpans
            while let taken = self.head.take(partition, selection, maxSpans: limit) {
                let meta = try self.store.write(
                    taken.batch, org: partition.org, placement: partition.placement, sources: taken.segments.map { UInt64($0) },
                    options: self.configuration.blockOptions
                )
                self.cutTraces.add(block: meta.id, of: partition, traces: Set((0..<taken.batch.spanCount).map { taken.batch.traceID($0) }))
                self.catalog.withLock { blocks in
                    blocks.append(meta)
                    self.head.remove(taken)
                }
                written.append(meta)
                // A smaller take held everything picked; later rows wait for the next cut.
                if taken.batch.spanCount < limit { break }
            }
            return written
        }
    }

    /// Head segments older than `current` whose announced appends have all landed, oldest first.
    public func flushableSegments(current: Int) -> [Int] {
        self.head.segments().filter { $0 < current && self.head.pendingAppends(segment: $0) == 0 }
    }

    /// WAL segments below `current` with no rows left in the head and no appends on the way: the
    /// node removes them from the WAL, then calls ``released(segment:)``.
    public func releasableSegments(current: Int) -> [Int] { self.head.releasableSegments(below: current) }

    /// Notes that a segment left the WAL.
    public func released(segment: Int) { self.head.forget(segment: segment) }

    // MARK: Compaction

    /// The next set of blocks worth merging: the oldest run of small blocks of one org and placement
    /// at the lowest level, up to ``Configuration/compactionMaxSpans`` spans in all; nil if none.
    public func compactionPlan() -> [BlockMeta]? {
        let limit = self.configuration.compactionMaxSpans
        let candidates = self.blocks.filter { $0.spans < limit / 2 && !self.store.isQuarantined($0.id) }
        var groups: [String: [BlockMeta]] = [:]
        for meta in candidates { groups[meta.org + "\u{0}" + meta.placement, default: []].append(meta) }
        for key in groups.keys.sorted() {
            let metas = groups[key]!.sorted { ($0.level, $0.minStart, $0.id) < ($1.level, $1.minStart, $1.id) }
            var plan: [BlockMeta] = []
            var spans = 0
            for meta in metas where spans + meta.spans <= limit {
                plan.append(meta)
                spans += meta.spans
            }
            if plan.count >= self.configuration.compactionMinInputs { return plan }
        }
        return nil
    }

    /// Whether `plan` should run even in a pass that also cut: under steady load every pass cuts, and
    /// a compaction that waited for an idle pass would never run, leaving small blocks to pile up
    /// (every query and every resend check pays per block). A plan runs alongside cuts once it would
    /// fill half an output, or once it merges ``Configuration/compactionBacklogBlocks`` blocks.
    public func compactionIsDue(_ plan: [BlockMeta]) -> Bool {
        plan.count >= self.configuration.compactionBacklogBlocks
            || plan.reduce(0) { $0 + $1.spans } >= self.configuration.compactionMaxSpans / 2
    }

    /// Merges `inputs` (one org and placement) into one block holding each span (trace ID, span ID)
    /// once, then removes them. Memory is bounded by the plan's span limit.
    @discardableResult
    public func compact(_ inputs: [BlockMeta]) throws -> BlockMeta {
        precondition(!inputs.isEmpty && Set(inputs.map { $0.org + "\u{0}" + $0.placement }).count == 1, "compaction inputs share org and placement")
        func read(_ meta: BlockMeta) throws -> SpanBatch {
            do {
                return try self.store.read(meta)
            } catch {
                self.store.quarantine(meta, error)
                throw error
            }
        }
        var merged = try read(inputs[0])
        for meta in inputs.dropFirst() { merged.append(try read(meta)) }
        Self.dropRepeatedSpans(&merged)
        let sources = Array(Set(inputs.flatMap(\.sources))).sorted()
        let output = try self.store.write(
            merged, org: inputs[0].org, placement: inputs[0].placement, sources: sources, replaces: inputs.map(\.id),
            level: (inputs.map(\.level).max() ?? 0) + 1, options: self.configuration.compactedOptions
        )
        let ids = Set(inputs.map(\.id))
        let partition = PartitionKey(org: output.org, placement: output.placement)
        self.cutTraces.addCompacted(block: output.id, of: partition, inputs: inputs.map(\.id))
        self.catalog.withLock { blocks in
            blocks.removeAll { ids.contains($0.id) }
            blocks.append(output)
        }
        self.cutTraces.remove(blocks: ids, of: partition)
        self.retire(inputs)
        return output
    }

    /// Keeps the first row of each span (trace ID, span ID).
    static func dropRepeatedSpans(_ batch: inout SpanBatch) {
        var seen = Set<SpanKey>(minimumCapacity: batch.spanCount)
        let keep = (0..<batch.spanCount).filter { seen.insert(SpanKey(batch, row: $0)).inserted }
        guard keep.count < batch.spanCount else { return }
        var kept = SpanBatch()
        kept.strings = batch.strings
        kept.appendRows(keep, of: batch)
        kept.dropUnusedStrings()
        batch = kept
    }

    // MARK: Retention

    /// Deletes blocks whose newest span is older than their org's retention; returns them.
    @discardableResult
    public func applyRetention(nowNanos: UInt64) throws -> [BlockMeta] {
        let expired = self.blocks.filter { meta in
            let keep = self.configuration.retention(of: meta.org)
            return nowNanos > keep && meta.maxStart < nowNanos - keep
        }
        guard !expired.isEmpty else { return [] }
        let ids = Set(expired.map(\.id))
        self.catalog.withLock { $0.removeAll { ids.contains($0.id) } }
        self.retire(expired)
        return expired
    }

    // MARK: Removing files

    /// Blocks no longer in the catalog whose files wait for queries that may still read them.
    private let retired = Mutex<[BlockMeta]>([])

    private func retire(_ metas: [BlockMeta]) { self.retired.withLock { $0 += metas } }

    /// Deletes the files of retired blocks. The node calls it one query timeout after retiring them,
    /// so a query that took its snapshot before never finds a file gone. (After a crash, ``open``
    /// deletes compaction inputs through their output's `replaces`; expired blocks are expired again.)
    public func purgeRetired(_ ids: Set<UInt64>? = nil) throws {
        let metas = self.retired.withLock { r -> [BlockMeta] in
            let chosen = r.filter { ids?.contains($0.id) ?? true }
            r.removeAll { ids?.contains($0.id) ?? true }
            return chosen
        }
        for (i, meta) in metas.enumerated() {
            do {
                try self.store.remove(meta)
            } catch {
                self.retired.withLock { $0 += metas[i...] }
                throw error
            }
        }
    }
}
