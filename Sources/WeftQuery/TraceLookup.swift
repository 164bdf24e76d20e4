import WeftModel
import WeftStorageEngine

/// A trace's spans in a snapshot: the head's and the blocks', each span once. The same span may be
/// in the head and in a block (while the head is written out) or arrive twice; the first copy seen
/// (head before blocks, older before newer) is kept.
public enum TraceLookup {
    /// The sources holding trace `id`, as chunks whose ``HeadChunk/rows(of:)`` yield its spans without
    /// repeating a span ID; empty when the trace is not in the snapshot. A block that fails to read
    /// is quarantined and skipped.
    public static func chunks(_ id: TraceID, snapshot: StorageEngine.Snapshot, store: BlockStore) throws -> [HeadChunk] {
        self.deduplicated(id, snapshot.chunks + (try self.blockChunks(id, snapshot: snapshot, store: store)))
    }

    /// The trace's spans in the snapshot's blocks, one chunk per block holding any (repeats kept).
    public static func blockChunks(_ id: TraceID, snapshot: StorageEngine.Snapshot, store: BlockStore) throws -> [HeadChunk] {
        try store.findTrace(id, in: snapshot.blocks).map { HeadChunk(org: "", batch: $0) }
    }

    /// `chunks` with every span of trace `id` kept once (by span ID); a chunk that repeats none is kept
    /// as it is, and one that does is replaced by a copy of the rows it adds.
    public static func deduplicated(_ id: TraceID, _ chunks: [HeadChunk]) -> [HeadChunk] {
        var seen = Set<UInt64>()
        var result: [HeadChunk] = []
        for chunk in chunks {
            let rows = chunk.rows(of: id)
            if rows.isEmpty { continue }
            let batch = chunk.batch
            var fresh: [Int] = []
            fresh.reserveCapacity(rows.count)
            for row in rows where seen.insert(batch.spanID[row]).inserted { fresh.append(row) }
            if fresh.count == rows.count {
                result.append(chunk)
            } else if !fresh.isEmpty {
                var part = SpanBatch()
                part.strings = batch.strings
                part.appendRows(fresh, of: batch)
                result.append(HeadChunk(org: chunk.org, batch: part))
            }
        }
        return result
    }
}
