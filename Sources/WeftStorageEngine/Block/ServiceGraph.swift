import Synchronization
import WeftModel

/// Calls from one service to another (a span whose parent span belongs to a different service), per
/// time bucket: how many, how many failed, and a sketch of their latency. Edges are computed when a
/// block is written (the parent is looked up within the block), stored in the block's `servicemap`
/// section, and summed at query time, so a service map never needs a self-join; only the block's
/// orphans (`servicemap.orphans`: spans whose parent it does not hold) are joined at query time.
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

extension ServiceMapPartial {
    /// Adds the calls of `e`, whatever its bucket.
    public mutating func add(_ e: ServiceEdge) {
        self.add(ServiceMapEdge(parent: e.parent, child: e.child, calls: e.calls, errors: e.errors, latency: e.latency))
    }
}

public enum ServiceGraph {
    /// Width of an edge's time bucket.
    public static let bucketNanos: UInt64 = 300_000_000_000

    /// Start of the bucket holding `nanos`.
    @inline(__always) public static func bucket(of nanos: UInt64) -> UInt64 { nanos / self.bucketNanos * self.bucketNanos }

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
        var orphans: [Int] = []
        return self.edges(batch, order: order, bounds: bounds, orphans: &orphans)
    }

    /// ``edges(_:order:bounds:)``, adding to `orphans` the rows whose parent is not in their trace's rows.
    static func edges(_ batch: SpanBatch, order: [Int], bounds: [Int], orphans: inout [Int]) -> [Key: Stats] {
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
                guard let p = large ? positionOf[parentID] : rows.first(where: { batch.spanID[$0] == parentID }) else {
                    orphans.append(row)
                    continue
                }
                let parent = batch.resourceServiceName[Int(batch.resourceIndex[p])]
                let child = batch.resourceServiceName[Int(batch.resourceIndex[row])]
                guard parent != child else { continue }
                let start = batch.startTime[row], end = batch.endTime[row]
                let key = Key(bucket: self.bucket(of: start), parent: parent, child: child)
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

    /// The `servicemap.orphans` section: count, then per orphan its trace ID (high, low), parent span
    /// ID and start (fixed 64-bit), service (block string ID), duration, and 1 when it failed.
    static func writeOrphans(_ s: inout ByteWriter, _ batch: SpanBatch, _ rows: [Int], _ remap: [UInt32]) {
        s.varint(UInt64(rows.count))
        for row in rows.sorted() {
            let trace = batch.traceID(row)
            s.fixed64(trace.high)
            s.fixed64(trace.low)
            s.fixed64(batch.parentSpanID[row])
            s.fixed64(batch.startTime[row])
            s.varint(UInt64(remap[Int(batch.resourceServiceName[Int(batch.resourceIndex[row])])]))
            let start = batch.startTime[row], end = batch.endTime[row]
            s.varint(end > start ? end - start : 0)
            s.varint(batch.statusCode[row] == 2 ? 1 : 0)
        }
    }

    static func readOrphans(_ bytes: [UInt8], _ dictionary: BlockDictionary) throws -> [ServiceOrphan] {
        var raw: [(TraceID, UInt64, UInt64, UInt32, UInt64, Bool)] = []
        try bytes.withUnsafeBytes { buffer throws in
            var r = ByteReader(buffer)
            let n = try r.count(max: 1 << 26)
            raw.reserveCapacity(n)
            for _ in 0..<n {
                let trace = TraceID(high: try r.fixed64(), low: try r.fixed64())
                let parent = try r.fixed64(), start = try r.fixed64()
                let service = try r.varint()
                guard service < UInt64(dictionary.count) else { throw BlockFormatError("service map orphan names outside the dictionary") }
                let duration = try r.varint(), failed = try r.varint()
                guard failed <= 1, parent != 0 else { throw BlockFormatError("bad service map orphan") }
                raw.append((trace, parent, start, UInt32(service), duration, failed == 1))
            }
            guard r.isAtEnd else { throw BlockFormatError("trailing bytes after the service map orphans") }
        }
        var names: [UInt32: String] = [:]
        return try raw.map { o in
            let child = try names[o.3] ?? dictionary.string(o.3)
            names[o.3] = child
            return ServiceOrphan(trace: o.0, parentSpanID: o.1, child: child, start: o.2, duration: o.4, isError: o.5)
        }
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
    /// The block's service-map orphans: spans whose parent it does not hold (read once, then kept
    /// with the reader). Blocks written before the section existed list none (their calls to or from
    /// other blocks stay uncounted until compaction rewrites them): decoding every such block on the
    /// first service map after an upgrade would stall it.
    public func serviceOrphans() throws -> [ServiceOrphan] {
        if let orphans = self.serviceOrphanCache.withLock({ $0 }) { return orphans }
        let orphans: [ServiceOrphan]
        if self.hasSection("servicemap.orphans") {
            orphans = try ServiceGraph.readOrphans(try self.section("servicemap.orphans"), self.dictionary)
        } else {
            orphans = []
        }
        self.serviceOrphanCache.withLock { $0 = orphans }
        return orphans
    }

    /// The block's edges summed over all its buckets per (parent, child): what a service map whose
    /// range holds every bucket of the block adds (summed once, then kept with the reader, so such a
    /// map merges a sketch per pair, not per bucket).
    public func serviceEdgeTotals() throws -> ServiceMapPartial {
        if let totals = self.serviceEdgeTotalCache.withLock({ $0 }) { return totals }
        var totals = ServiceMapPartial()
        for e in try self.serviceEdges() { totals.add(e) }
        self.serviceEdgeTotalCache.withLock { $0 = totals }
        return totals
    }

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
