import Synchronization
import WeftModel
import WeftOTLP

/// The storage engine of one node: the head (recent spans, per WAL segment) and the immutable blocks,
/// with the steps that move data between them. Pure logic over ``Disk``: the node decides when each
/// step runs and on which thread.
///
/// Life of a span: logged in WAL segment S and appended to the head under S → when S is closed
/// (rolled by size or age) and all its appends have landed, ``flush(segment:)`` writes one block per
/// org holding exactly S's records of that org (the block names S as its source) and swaps the head's
/// S chunks for the blocks in one step → S is removed from the WAL → ``compact(_:)`` merges small
/// blocks of one org and placement → ``applyRetention(nowNanos:)`` deletes blocks past their org's
/// retention. After a crash at any point, ``open(wal:options:)`` skips WAL records of (segment, org)
/// pairs already in a block and removes compaction inputs whose output survived, so no acknowledged
/// span is lost or counted twice.
public final class StorageEngine: Sendable {
    public struct Configuration: Sendable {
        /// The replica set this node writes for (one value on a single node).
        public var placement: String
        public var blockOptions: BlockCodec.Options
        /// Options for compaction output (a higher zstd level: it runs in the background).
        public var compactedOptions: BlockCodec.Options
        /// Compaction merges blocks until the output would exceed this many spans.
        public var compactionMaxSpans: Int
        /// Blocks at least this large are not compaction inputs.
        public var compactionMinInputs: Int
        /// Default retention in nanoseconds, and per-org overrides.
        public var retentionNanos: UInt64
        public var orgRetentionNanos: [String: UInt64]

        public init(
            placement: String = "local",
            blockOptions: BlockCodec.Options = BlockCodec.Options(),
            compactedOptions: BlockCodec.Options = BlockCodec.Options(zstdLevel: 9),
            compactionMaxSpans: Int = 1_000_000,
            compactionMinInputs: Int = 2,
            retentionNanos: UInt64 = 14 * 86_400 * 1_000_000_000,
            orgRetentionNanos: [String: UInt64] = [:]
        ) {
            self.placement = placement
            self.blockOptions = blockOptions
            self.compactedOptions = compactedOptions
            self.compactionMaxSpans = compactionMaxSpans
            self.compactionMinInputs = max(2, compactionMinInputs)
            self.retentionNanos = retentionNanos
            self.orgRetentionNanos = orgRetentionNanos
        }

        public func retention(of org: String) -> UInt64 { self.orgRetentionNanos[org] ?? self.retentionNanos }
    }

    /// What ``open(wal:options:)`` found.
    public struct OpenReport: Sendable {
        public var blocks: BlockStore.OpenReport
        public var wal: WAL.ReplayReport
        /// Spans replayed into the head.
        public var spans = 0
        /// WAL records skipped because a block already holds them.
        public var skippedRecords = 0
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

    public init(head: Head, store: BlockStore, configuration: Configuration = Configuration()) {
        self.head = head
        self.store = store
        self.configuration = configuration
    }

    // MARK: Startup

    /// Opens the blocks by their metadata, then replays the WAL into the head, skipping records whose
    /// (segment, org) a block already holds. Each record's spans pass the same `limits` and retention
    /// (judged at `nowNanos`) as at ingest, so a span refused then is refused again; a record that no
    /// longer parses or decodes is copied to `quarantine/` beside the segments and skipped, so one bad
    /// record never stops a restart. Call once, before any other method.
    public func open(wal: WAL, options: DecodeOptions, limits: SpanLimits = SpanLimits(), nowNanos: UInt64 = 0) throws -> OpenReport {
        let blocks = try self.store.open()
        var covered: [Int: Set<String>] = [:]
        var highest = 0
        for meta in blocks.blocks {
            for s in meta.sources {
                covered[Int(s), default: []].insert(meta.org)
                highest = max(highest, Int(s))
            }
        }
        wal.reserveThrough(highest)
        var report = OpenReport(blocks: blocks, wal: WAL.ReplayReport())
        var decoder = OTLPRequestDecoder(options: options)
        var lastSegment = -1
        var index = 0
        report.wal = try wal.replay { (segment: Int, record: UnsafeRawBufferPointer) in
            if segment != lastSegment {
                lastSegment = segment
                index = 0
            }
            defer { index += 1 }
            let entry: (org: String, placement: String, batch: SpanBatch)
            do {
                entry = try WALEntry.decode(record, decoder: &decoder, legacyPlacement: self.configuration.placement)
            } catch {
                report.quarantined.append(Self.quarantine(record, segment: segment, index: index, reason: "\(error)", wal: wal))
                return
            }
            if covered[segment]?.contains(entry.org) == true {
                report.skippedRecords += 1
                return
            }
            var batch = entry.batch
            let retention = self.configuration.retention(of: entry.org)
            report.refusedSpans += limits.enforce(on: &batch, minStartNanos: nowNanos > retention ? nowNanos - retention : 0).rejectedSpans
            report.spans += batch.spanCount
            self.head.append(batch, org: entry.org, segment: segment)
        }
        self.catalog.withLock { $0 = blocks.blocks }
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

    /// Head chunks and blocks of `org`, taken atomically with respect to flushes and compactions.
    public func snapshot(org: String) -> Snapshot {
        self.catalog.withLock { blocks in
            Snapshot(chunks: self.head.snapshot(org: org), blocks: blocks.filter { $0.org == org && !self.store.isQuarantined($0.id) })
        }
    }

    /// Every live block.
    public var blocks: [BlockMeta] { self.catalog.withLock { $0 } }

    // MARK: Flush

    /// Head segments older than `current` whose announced appends have all landed, oldest first.
    public func flushableSegments(current: Int) -> [Int] {
        self.head.segments().filter { $0 < current && self.head.pendingAppends(segment: $0) == 0 }
    }

    /// Writes the head's chunks of `segment` as one block per org, then replaces the chunks with the
    /// blocks for queries. The caller removes the WAL segment afterwards.
    @discardableResult
    public func flush(segment: Int) throws -> [BlockMeta] {
        let byOrg = self.head.chunks(segment: segment)
        let already = Set(self.blocks.filter { $0.sources.contains(UInt64(segment)) }.map(\.org))
        var written: [BlockMeta] = []
        for org in byOrg.keys.sorted() where !already.contains(org) {
            let chunks = byOrg[org]!
            var batch = chunks[0].batch
            if chunks.count > 1 {
                batch.reserve(spans: chunks.reduce(0) { $0 + $1.spanCount }, attributes: chunks.reduce(0) { $0 + $1.batch.attrs.count })
                for chunk in chunks.dropFirst() { batch.append(chunk.batch) }
            }
            let meta = try self.store.write(
                batch, org: org, placement: self.configuration.placement, sources: [UInt64(segment)], options: self.configuration.blockOptions
            )
            written.append(meta)
            // The block replaces the org's chunks of this segment in one step, so a later failure
            // (and a retry) never writes the same records twice.
            self.catalog.withLock { blocks in
                blocks.append(meta)
                self.head.drop(segment: segment, org: org)
            }
        }
        self.catalog.withLock { _ in self.head.drop(segment: segment) }
        return written
    }

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

    /// Merges `inputs` (one org and placement) into one block, then removes them. Memory is bounded
    /// by the plan's span limit.
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
        let sources = Array(Set(inputs.flatMap(\.sources))).sorted()
        let output = try self.store.write(
            merged, org: inputs[0].org, placement: inputs[0].placement, sources: sources, replaces: inputs.map(\.id),
            level: (inputs.map(\.level).max() ?? 0) + 1, options: self.configuration.compactedOptions
        )
        let ids = Set(inputs.map(\.id))
        self.catalog.withLock { blocks in
            blocks.removeAll { ids.contains($0.id) }
            blocks.append(output)
        }
        self.retire(inputs)
        return output
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
