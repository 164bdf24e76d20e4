import Synchronization
import WeftModel

/// Calls from one service to another (a span whose parent span belongs to a different service), per
/// time bucket: how many, how many failed, and a sketch of their latency. Edges are computed when a
/// block is written (the parent is looked up within the block), stored in the block's `servicemap`
/// section, and summed at query time, so a service map never needs a self-join.
public struct ServiceEdge: Sendable, Equatable {
    /// Start of the bucket (by the child span's start), in ns.
    public var bucketStart: UInt64
    public var parent: String
    public var child: String
    public var calls: UInt64
    public var errors: UInt64
    /// Durations of the child spans, in ns.
    public var latency: QuantileSketch

    public init(bucketStart: UInt64, parent: String, child: String, calls: UInt64 = 0, errors: UInt64 = 0, latency: QuantileSketch = QuantileSketch()) {
        self.bucketStart = bucketStart
        self.parent = parent
        self.child = child
        self.calls = calls
        self.errors = errors
        self.latency = latency
    }
}

public enum ServiceGraph {
    /// Width of an edge's time bucket.
    public static let bucketNanos: UInt64 = 300_000_000_000

    struct Key: Hashable {
        var bucket: UInt64
        var parent: UInt32
        var child: UInt32
    }

    struct Stats {
        var calls: UInt64 = 0
        var errors: UInt64 = 0
        var latency = QuantileSketch()
    }

    /// The edges among the spans of `batch` (IDs in the batch's string table). `order` lists rows with
    /// each trace's rows adjacent, `bounds` where each trace starts (and the end); parents are found
    /// within the trace, so spans whose parent is elsewhere add no edge.
    static func edges(_ batch: SpanBatch, order: [Int], bounds: [Int]) -> [Key: Stats] {
        var edges: [Key: Stats] = [:]
        var positionOf: [UInt64: Int] = [:]
        for t in 0..<(bounds.count - 1) {
            let rows = order[bounds[t]..<bounds[t + 1]]
            // Small traces: a linear search beats hashing.
            let large = rows.count > 32
            if large {
                positionOf.removeAll(keepingCapacity: true)
                for row in rows { positionOf[batch.spanID[row]] = row }
            }
            for row in rows where batch.parentSpanID[row] != 0 {
                let parentID = batch.parentSpanID[row]
                guard let p = large ? positionOf[parentID] : rows.first(where: { batch.spanID[$0] == parentID }) else { continue }
                let parent = batch.resourceServiceName[Int(batch.resourceIndex[p])]
                let child = batch.resourceServiceName[Int(batch.resourceIndex[row])]
                guard parent != child else { continue }
                let start = batch.startTime[row], end = batch.endTime[row]
                let key = Key(bucket: start / self.bucketNanos * self.bucketNanos, parent: parent, child: child)
                edges[key, default: Stats()].calls += 1
                if batch.statusCode[row] == 2 { edges[key, default: Stats()].errors += 1 }
                edges[key, default: Stats()].latency.add(end > start ? end - start : 0)
            }
        }
        return edges
    }

    static func edges(_ batch: SpanBatch) -> [Key: Stats] {
        let (order, bounds) = batch.traceOrder()
        return self.edges(batch, order: order, bounds: bounds)
    }

    /// The edges of `batch` with names resolved (for spans not yet in blocks).
    public static func edges(of batch: SpanBatch) -> [ServiceEdge] {
        self.edges(batch).map { key, stats in
            ServiceEdge(
                bucketStart: key.bucket, parent: batch.strings.string(key.parent), child: batch.strings.string(key.child),
                calls: stats.calls, errors: stats.errors, latency: stats.latency
            )
        }.sorted { ($0.bucketStart, $0.parent, $0.child) < ($1.bucketStart, $1.parent, $1.child) }
    }

    /// The `servicemap` section: edge count, then per edge bucket, parent and child (block string IDs),
    /// calls, errors and the latency sketch.
    static func write(_ s: inout ByteWriter, _ edges: [Key: Stats], _ remap: [UInt32]) {
        let sorted = edges.sorted { ($0.key.bucket, $0.key.parent, $0.key.child) < ($1.key.bucket, $1.key.parent, $1.key.child) }
        s.varint(UInt64(sorted.count))
        for (key, stats) in sorted {
            s.varint(key.bucket / self.bucketNanos)
            s.varint(UInt64(remap[Int(key.parent)]))
            s.varint(UInt64(remap[Int(key.child)]))
            s.varint(stats.calls)
            s.varint(stats.errors)
            stats.latency.encode(into: &s)
        }
    }

    static func read(_ bytes: [UInt8], _ dictionary: BlockDictionary) throws -> [ServiceEdge] {
        var raw: [(UInt64, UInt32, UInt32, UInt64, UInt64, QuantileSketch)] = []
        try bytes.withUnsafeBytes { buffer throws in
            var r = ByteReader(buffer)
            let n = try r.count(max: 1 << 24)
            raw.reserveCapacity(n)
            for _ in 0..<n {
                let bucket = try r.varint()
                let parent = try r.varint(), child = try r.varint()
                guard parent < UInt64(dictionary.count), child < UInt64(dictionary.count) else { throw BlockFormatError("service map names outside the dictionary") }
                let calls = try r.varint(), errors = try r.varint()
                let latency = try QuantileSketch.decode(&r)
                guard errors <= calls, latency.count == calls else { throw BlockFormatError("service map edge counts disagree") }
                raw.append((bucket, UInt32(parent), UInt32(child), calls, errors, latency))
            }
        }
        return try raw.map { e in
            ServiceEdge(
                bucketStart: e.0 &* self.bucketNanos, parent: try dictionary.string(e.1), child: try dictionary.string(e.2), calls: e.3, errors: e.4,
                latency: e.5
            )
        }
    }
}

extension BlockReader {
    /// The block's service-map edges (read once, then kept with the reader). Blocks written before the
    /// section existed are decoded and joined once instead.
    public func serviceEdges() throws -> [ServiceEdge] {
        if let edges = self.serviceEdgeCache.withLock({ $0 }) { return edges }
        let edges: [ServiceEdge]
        if self.hasSection("servicemap") {
            edges = try ServiceGraph.read(try self.section("servicemap"), self.dictionary)
        } else {
            edges = ServiceGraph.edges(of: try self.decodeAll())
        }
        self.serviceEdgeCache.withLock { $0 = edges }
        return edges
    }
}
