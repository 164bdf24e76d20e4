import Synchronization
import WeftModel

/// The service-map edges among a head chunk's spans: calls whose parent span is in the same chunk,
/// summed per (time bucket, parent service, child service), and the rows whose parent the chunk does
/// not hold (their parent may be in another chunk; a query joins only those).
///
/// Computed once when a chunk is sealed; for the chunk still being written, extended at query time
/// from the rows it already covers. Chunks are append-only until rebuilt (which starts afresh), so
/// the edges of a row prefix stay valid.
public struct HeadChunkEdges: Sendable {
    /// The rows covered: `0..<rows`.
    public let rows: Int
    /// Edges whose parent is among the covered rows, keyed by the chunk's string IDs.
    let edges: [ServiceGraph.Key: ServiceGraph.Stats]
    /// Covered rows with a parent span ID that no covered row of their trace has, ascending.
    public let orphans: [Int32]

    static let empty = HeadChunkEdges(rows: 0, edges: [:], orphans: [])

    /// The edges with service names resolved through `strings`.
    public func named(_ strings: StringTable) -> [ServiceEdge] {
        self.edges.map { key, stats in
            ServiceEdge(
                bucketStart: key.bucket, parent: strings.string(key.parent), child: strings.string(key.child),
                calls: stats.calls, errors: stats.errors, latency: stats.latency
            )
        }
    }

    /// These edges extended to every row of `chunk` (which must start with the covered rows): the new
    /// rows are joined within the chunk, and earlier orphans whose parent has since arrived are
    /// joined too.
    func extended(to chunk: HeadChunk) -> HeadChunkEdges {
        let b = chunk.batch
        let n = b.spanCount
        guard n > self.rows else { return self }
        var edges = self.edges
        var orphans: [Int32] = []
        // Large traces get a span-ID map (built once per trace per extension); small ones are searched.
        var maps: [TraceID: [UInt64: Int]] = [:]
        func parentRow(_ row: Int) -> Int? {
            let id = b.traceID(row)
            let wanted = b.parentSpanID[row]
            if let map = maps[id] { return map[wanted] }
            var r = chunk.lastRowOfTrace[id] ?? .max
            var steps = 0
            while r != .max {
                if b.spanID[Int(r)] == wanted { return Int(r) }
                r = chunk.previousInTrace[Int(r)]
                steps += 1
                if steps == 32 {
                    var map: [UInt64: Int] = [:]
                    for x in chunk.rows(of: id) { map[b.spanID[x]] = x }
                    maps[id] = map
                    return map[wanted]
                }
            }
            return nil
        }
        func join(_ row: Int) {
            guard let p = parentRow(row) else {
                orphans.append(Int32(row))
                return
            }
            let parent = b.resourceServiceName[Int(b.resourceIndex[p])]
            let child = b.resourceServiceName[Int(b.resourceIndex[row])]
            guard parent != child else { return }
            let start = b.startTime[row], end = b.endTime[row]
            let key = ServiceGraph.Key(bucket: start / ServiceGraph.bucketNanos * ServiceGraph.bucketNanos, parent: parent, child: child)
            let i = edges.index(forKey: key) ?? {
                edges[key] = ServiceGraph.Stats()
                return edges.index(forKey: key)!
            }()
            edges.values[i].calls += 1
            if b.statusCode[row] == 2 { edges.values[i].errors += 1 }
            edges.values[i].latency.add(end > start ? end - start : 0)
        }
        for row in self.orphans { join(Int(row)) }
        for row in self.rows..<n where b.parentSpanID[row] != 0 { join(row) }
        return HeadChunkEdges(rows: n, edges: edges, orphans: orphans)
    }
}

/// What a chunk derives from its rows and keeps across copies of itself (chunks are values; the
/// box is shared by every copy, and a rebuilt chunk gets a new one).
final class HeadChunkDerived: Sendable {
    let edges = Mutex<HeadChunkEdges>(.empty)
}

extension HeadChunk {
    /// The service-map edges among this chunk's spans (see ``HeadChunkEdges``): computed once,
    /// extended when the chunk has grown since.
    public func serviceEdges() -> HeadChunkEdges {
        let known = self.derived.edges.withLock { $0 }
        if known.rows == self.spanCount { return known }
        // An older copy of a chunk that has grown since: its own rows only.
        if known.rows > self.spanCount { return HeadChunkEdges.empty.extended(to: self) }
        // Computed outside the lock: a concurrent caller may do the same work; the longer result stays.
        let edges = known.extended(to: self)
        self.derived.edges.withLock { if $0.rows < edges.rows { $0 = edges } }
        return edges
    }
}
