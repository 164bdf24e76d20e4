import WeftModel

/// What anti-entropy reads from a storage engine: the partitions it holds, their digests, the span
/// keys of some buckets, and the spans for a set of keys. Each call reads a snapshot of the
/// partition's head chunks and blocks, so it runs off the I/O threads. Digests and keys read only
/// the key columns of blocks (trace ID, span ID, start), and a block's digest is computed once.
extension StorageEngine {
    /// Every (org, placement) with data in the head or in blocks, sorted.
    public func heldPartitions() -> [PartitionKey] {
        var keys = Set(self.head.partitions())
        for meta in self.blocks { keys.insert(PartitionKey(org: meta.org, placement: meta.placement)) }
        return keys.sorted()
    }

    /// Calls `body` with the key columns of each block row group of `blocks`; a block that fails to
    /// read is quarantined and skipped (what it gave before failing stays given).
    private func forEachKeyGroup(_ blocks: [BlockMeta], _ body: (BlockMeta, Int, ReplicaKeyColumns) -> Void) {
        for meta in blocks {
            do {
                let reader = try self.store.reader(meta)
                for g in 0..<reader.groups.count { body(meta, g, try reader.replicaKeys(group: g)) }
            } catch {
                self.store.quarantine(meta, error)
            }
        }
    }

    /// The partition's bucket digests.
    public func digest(_ partition: PartitionKey) -> [UInt64: BucketDigest] {
        let snapshot = self.snapshot(org: partition.org, placements: [partition.placement])
        var digests: [UInt64: BucketDigest] = [:]
        for chunk in snapshot.chunks { SpanDigest.add(ReplicaKeyColumns(chunk.batch), into: &digests) }
        let cached = self.blockDigests.withLock { c in snapshot.blocks.map { c[$0.id] } }
        var computed: [UInt64: [UInt64: BucketDigest]] = [:]
        for (meta, known) in zip(snapshot.blocks, cached) {
            if let known {
                SpanDigest.merge(known, into: &digests)
                continue
            }
            var one: [UInt64: BucketDigest] = [:]
            var complete = true
            do {
                let reader = try self.store.reader(meta)
                for g in 0..<reader.groups.count { SpanDigest.add(try reader.replicaKeys(group: g), into: &one) }
            } catch {
                self.store.quarantine(meta, error)
                complete = false
            }
            guard complete else { continue }
            SpanDigest.merge(one, into: &digests)
            computed[meta.id] = one
        }
        if !computed.isEmpty {
            let live = Set(self.blocks.map(\.id))
            self.blockDigests.withLock { c in
                c.merge(computed) { a, _ in a }
                if c.count > live.count { c = c.filter { live.contains($0.key) } }
            }
        }
        return digests
    }

    /// The keys of the partition's spans in `bucket`, sorted.
    public func spanKeys(_ partition: PartitionKey, bucket: UInt64) -> [ReplicaSpanKey] {
        self.spanKeys(partition, buckets: [bucket])
    }

    /// The keys of the partition's spans in any of `buckets`, sorted (one pass over the partition).
    public func spanKeys(_ partition: PartitionKey, buckets: Set<UInt64>) -> [ReplicaSpanKey] {
        guard !buckets.isEmpty else { return [] }
        let snapshot = self.snapshot(org: partition.org, placements: [partition.placement])
        var keys: [ReplicaSpanKey] = []
        func add(_ c: ReplicaKeyColumns) {
            for row in 0..<c.count where buckets.contains(SpanDigest.bucket(traceHigh: c.traceHigh[row], traceLow: c.traceLow[row], startNanos: c.start[row])) {
                keys.append(c.key(row))
            }
        }
        for chunk in snapshot.chunks { add(ReplicaKeyColumns(chunk.batch)) }
        self.forEachKeyGroup(snapshot.blocks) { _, _, columns in add(columns) }
        return keys.sorted()
    }

    /// The partition's spans whose keys are in `keys`, as self-contained batches of at most
    /// `maxSpans` spans each. Only block row groups holding a wanted key are decoded.
    public func spans(_ partition: PartitionKey, keys: Set<ReplicaSpanKey>, maxSpans: Int) -> [SpanBatch] {
        var out: [SpanBatch] = []
        var current = SpanBatch()
        func take(_ batch: SpanBatch, rows: [Int]) {
            var start = 0
            while start < rows.count {
                let room = max(1, maxSpans - current.spanCount)
                let end = min(rows.count, start + room)
                current.append(batch.subset(rows: Array(rows[start..<end])))
                start = end
                if current.spanCount >= maxSpans {
                    out.append(current)
                    current = SpanBatch()
                }
            }
        }
        func wanted(_ c: ReplicaKeyColumns) -> [Int] {
            (0..<c.count).filter { keys.contains(c.key($0)) }
        }
        let snapshot = self.snapshot(org: partition.org, placements: [partition.placement])
        for chunk in snapshot.chunks { take(chunk.batch, rows: wanted(ReplicaKeyColumns(chunk.batch))) }
        self.forEachKeyGroup(snapshot.blocks) { meta, g, columns in
            let rows = wanted(columns)
            guard !rows.isEmpty else { return }
            do {
                // The group decodes in the same row order as its key columns.
                take(try self.store.reader(meta).decodedGroup(g), rows: rows)
            } catch {
                self.store.quarantine(meta, error)
            }
        }
        if current.spanCount > 0 { out.append(current) }
        return out
    }
}

/// The columns replicas compare spans by, for the rows of one batch or block row group.
public struct ReplicaKeyColumns: Sendable {
    public var traceHigh: [UInt64]
    public var traceLow: [UInt64]
    public var spanID: [UInt64]
    public var start: [UInt64]

    public var count: Int { self.spanID.count }

    /// The key of row `row`.
    public func key(_ row: Int) -> ReplicaSpanKey {
        ReplicaSpanKey(traceHigh: self.traceHigh[row], traceLow: self.traceLow[row], spanID: self.spanID[row])
    }

    public init(traceHigh: [UInt64], traceLow: [UInt64], spanID: [UInt64], start: [UInt64]) {
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.spanID = spanID
        self.start = start
    }

    public init(_ batch: SpanBatch) {
        self.init(traceHigh: batch.traceHigh, traceLow: batch.traceLow, spanID: batch.spanID, start: batch.startTime)
    }
}

extension BlockReader {
    /// The key columns of row group `g`, in the group's row order, without decoding the rest.
    public func replicaKeys(group g: Int) throws -> ReplicaKeyColumns {
        let range = 0..<Int(self.groups.spans[g])
        let layout = try self.traceLayout(g, range)
        var high: [UInt64] = []
        var low: [UInt64] = []
        high.reserveCapacity(range.count)
        low.reserveCapacity(range.count)
        try self.appendTraceIDs(g, layout, high: &high, low: &low)
        let (local, _) = try self.parentLinks(g, range, layout)
        let (start, _) = try self.timing(g, range, layout, local)
        return ReplicaKeyColumns(traceHigh: high, traceLow: low, spanID: try self.spanIDs(g, range), start: start)
    }
}
