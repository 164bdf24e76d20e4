import WeftModel

/// What anti-entropy reads from a storage engine: the partitions it holds, their digests, the span
/// keys of one bucket, and the spans for a set of keys. Each call scans the partition's head chunks
/// and blocks (a snapshot), so it runs off the I/O threads.
extension StorageEngine {
    /// Every (org, placement) with data in the head or in blocks, sorted.
    public func heldPartitions() -> [PartitionKey] {
        var keys = Set(self.head.partitions())
        for meta in self.blocks { keys.insert(PartitionKey(org: meta.org, placement: meta.placement)) }
        return keys.sorted()
    }

    /// Calls `body` with each batch of the partition's snapshot (head chunks, then blocks).
    /// A block that fails to read is quarantined and skipped.
    func forEachBatch(_ partition: PartitionKey, _ body: (SpanBatch) -> Void) {
        let snapshot = self.snapshot(org: partition.org, placements: [partition.placement])
        for chunk in snapshot.chunks { body(chunk.batch) }
        for meta in snapshot.blocks {
            do {
                body(try self.store.read(meta))
            } catch {
                self.store.quarantine(meta, error)
            }
        }
    }

    /// The partition's bucket digests.
    public func digest(_ partition: PartitionKey) -> [UInt64: BucketDigest] {
        var digests: [UInt64: BucketDigest] = [:]
        self.forEachBatch(partition) { SpanDigest.add($0, into: &digests) }
        return digests
    }

    /// The keys of the partition's spans in `bucket`, sorted.
    public func spanKeys(_ partition: PartitionKey, bucket: UInt64) -> [ReplicaSpanKey] {
        var keys: [ReplicaSpanKey] = []
        self.forEachBatch(partition) { batch in
            for row in 0..<batch.spanCount
            where SpanDigest.bucket(traceHigh: batch.traceHigh[row], traceLow: batch.traceLow[row], startNanos: batch.startTime[row]) == bucket {
                keys.append(ReplicaSpanKey(batch, row: row))
            }
        }
        return keys.sorted()
    }

    /// The partition's spans whose keys are in `keys`, as self-contained batches of at most
    /// `maxSpans` spans each.
    public func spans(_ partition: PartitionKey, keys: Set<ReplicaSpanKey>, maxSpans: Int) -> [SpanBatch] {
        var out: [SpanBatch] = []
        var current = SpanBatch()
        self.forEachBatch(partition) { batch in
            let rows = (0..<batch.spanCount).filter { keys.contains(ReplicaSpanKey(batch, row: $0)) }
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
        if current.spanCount > 0 { out.append(current) }
        return out
    }
}
