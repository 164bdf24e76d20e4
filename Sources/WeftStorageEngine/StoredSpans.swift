import WeftModel

/// For WAL replay: the spans that blocks naming a segment as a source already hold, so a replayed
/// row is applied only if no such block has it. Segments replay in order, so only the current
/// segment's spans are kept in memory, loaded when the segment's first record needs them.
struct StoredSpans {
    private let store: BlockStore
    private var blocksBySegment: [Int: [BlockMeta]] = [:]
    private var segment = -1
    private var spans: [PartitionKey: Set<SpanKey>] = [:]

    init(store: BlockStore, blocks: [BlockMeta]) {
        self.store = store
        for meta in blocks {
            for source in meta.sources { self.blocksBySegment[Int(source), default: []].append(meta) }
        }
    }

    /// Whether any block names `segment` as a source.
    func covers(_ segment: Int) -> Bool { self.blocksBySegment[segment] != nil }

    /// Drops from `batch` the rows a block of `partition` naming `segment` holds; returns how many.
    /// A block that cannot be read is quarantined and holds nothing (its rows are replayed).
    mutating func drop(from batch: inout SpanBatch, segment: Int, partition: PartitionKey) -> Int {
        guard let metas = self.blocksBySegment[segment], batch.spanCount > 0 else { return 0 }
        if segment != self.segment {
            self.segment = segment
            self.spans = [:]
        }
        if self.spans[partition] == nil {
            var held = Set<SpanKey>()
            for meta in metas where meta.org == partition.org && meta.placement == partition.placement {
                do {
                    let stored = try self.store.read(meta)
                    for row in 0..<stored.spanCount { held.insert(SpanKey(stored, row: row)) }
                } catch {
                    self.store.quarantine(meta, error)
                }
            }
            self.spans[partition] = held
        }
        let held = self.spans[partition]!
        guard !held.isEmpty else { return 0 }
        let keep = (0..<batch.spanCount).filter { !held.contains(SpanKey(batch, row: $0)) }
        let dropped = batch.spanCount - keep.count
        guard dropped > 0 else { return 0 }
        var kept = SpanBatch()
        kept.strings = batch.strings
        kept.appendRows(keep, of: batch)
        batch = kept
        return dropped
    }
}
