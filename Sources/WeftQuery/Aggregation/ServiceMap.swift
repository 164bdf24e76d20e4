import WeftModel
import WeftStorageEngine

/// The service map: edges stored with each block (computed when it was written) summed over the
/// blocks in range, plus the edges among spans still in the head, joined there (the head is small),
/// plus the calls whose parent and child spans lie apart (the orphans of blocks and head, joined by
/// trace). Blocks contribute whole edge buckets (``ServiceGraph/bucketNanos``) whose start is in range.
public enum ServiceMapExecutor {
    public static func edges(
        startNanos: UInt64, endNanos: UInt64, snapshot: StorageEngine.Snapshot, store: BlockStore
    ) throws -> (edges: [ServiceMapEdge], stats: ScanStats) {
        let partial = self.partial(startNanos: startNanos, endNanos: endNanos, snapshot: snapshot, store: store)
        return (partial.sorted, partial.stats)
    }

    /// The edges summed per (parent, child), mergeable with those of other data. A call whose parent
    /// and child spans lie apart (in two blocks, or a block and the head) is joined here: each block
    /// keeps its orphans (spans whose parent it does not hold), and so does the head's join; their
    /// parents are looked up by trace in the head and the blocks (Bloom filters first). The orphans
    /// whose parent is nowhere in `snapshot` stay in the partial's ``ServiceMapPartial/orphans``.
    public static func partial(startNanos: UInt64, endNanos: UInt64, snapshot: StorageEngine.Snapshot, store: BlockStore) -> ServiceMapPartial {
        var sums = ServiceMapPartial()
        func inRange(_ bucketStart: UInt64) -> Bool { bucketStart + ServiceGraph.bucketNanos > startNanos && bucketStart <= endNanos }
        func add(_ e: ServiceEdge) {
            guard inRange(e.bucketStart) else { return }
            sums.add(e)
        }
        var orphans: [ServiceOrphan] = []
        for meta in snapshot.blocks where !store.isQuarantined(meta.id) {
            if meta.minStart > endNanos || meta.maxStart + ServiceGraph.bucketNanos < startNanos { continue }
            do {
                let reader = try store.reader(meta)
                if inRange(ServiceGraph.bucket(of: meta.minStart)) && inRange(ServiceGraph.bucket(of: meta.maxStart)) {
                    // Every bucket of the block is in range (its edges and orphans are dated by span starts).
                    sums.merge(try reader.serviceEdgeTotals())
                    orphans += try reader.serviceOrphans()
                } else {
                    for e in try reader.serviceEdges() { add(e) }
                    orphans += try reader.serviceOrphans().filter { inRange(ServiceGraph.bucket(of: $0.start)) }
                }
                sums.stats.blocks += 1
            } catch {
                store.quarantine(meta, error)
            }
        }
        let head = self.headEdges(snapshot.chunks)
        for e in head.edges { add(e) }
        orphans += head.orphans.filter { inRange(ServiceGraph.bucket(of: $0.start)) }
        let joined = self.joined(orphans, snapshot: snapshot, store: store)
        for e in joined.edges { add(e) }
        sums.orphans = joined.unjoined
        sums.stats.chunks = snapshot.chunks.count
        sums.stats.inspectedSpans = snapshot.chunks.reduce(0) { $0 + $1.spanCount }
        return sums
    }

    /// The calls of `orphans` whose parent span the head or a block of `snapshot` holds, as edges,
    /// and the orphans whose parent neither holds.
    static func joined(_ orphans: [ServiceOrphan], snapshot: StorageEngine.Snapshot, store: BlockStore) -> (edges: [ServiceEdge], unjoined: [ServiceOrphan]) {
        guard !orphans.isEmpty else { return ([], []) }
        // A block that fails to read is quarantined by the walk and left out, as in a trace lookup.
        let services = (try? self.services(ofTraces: orphans.map(\.trace), snapshot: snapshot, store: store, limits: AggregationLimits())) ?? [:]
        return self.join(orphans, services: services)
    }

    /// The service of each of `spans` that `snapshot` holds.
    public static func services(
        of spans: [SpanKey], snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits
    ) throws -> [SpanKey: String] {
        let wanted = Set(spans)
        return try self.services(ofTraces: spans.map(\.trace), snapshot: snapshot, store: store, limits: limits).filter { wanted.contains($0.key) }
    }

    /// The service of every span of `traces`, wherever in the head or blocks it lies (Bloom filters
    /// first). A block that fails to read is quarantined and left out, as in a trace lookup.
    static func services(ofTraces traces: [TraceID], snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits) throws -> [SpanKey: String] {
        guard !traces.isEmpty else { return [:] }
        let wanted = WantedTraces(traces)
        var serviceOf: [SpanKey: String] = [:]
        for chunk in snapshot.chunks {
            let b = chunk.batch
            for row in chunk.rows(of: wanted) {
                serviceOf[SpanKey(trace: b.traceID(row), span: b.spanID[row])] = b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])])
            }
        }
        try BlockGroupColumns.forEach(holding: wanted, snapshot: snapshot, store: store, limits: limits) { rows, group in
            let spanIDs = try group.chunk.words(.spanID), resource = try group.chunk.ids(.resource)
            let names = group.resources.resourceServiceName
            var service: [UInt32: String] = [:]
            for (t, r) in rows {
                let row = Int(r), index = Int(resource[row])
                guard index < names.count else { throw BlockFormatError("span resource \(index) outside the resource table") }
                let name = try service[names[index]] ?? group.strings.string(names[index])
                service[names[index]] = name
                serviceOf[SpanKey(trace: wanted.ids[Int(t)], span: spanIDs[row])] = name
            }
        }
        return serviceOf
    }

    /// A span of a trace.
    public struct SpanKey: Hashable, Sendable {
        public var trace: TraceID
        public var span: UInt64

        public init(trace: TraceID, span: UInt64) {
            self.trace = trace
            self.span = span
        }
    }

    /// The calls of `orphans` whose parent span has a service in `services`, as edges per bucket
    /// (a call within one service is no edge), and the orphans whose parent it lacks.
    public static func join(_ orphans: [ServiceOrphan], services: [SpanKey: String]) -> (edges: [ServiceEdge], unjoined: [ServiceOrphan]) {
        struct Key: Hashable {
            var bucket: UInt64
            var parent: String
            var child: String
        }
        var edges: [Key: ServiceEdge] = [:]
        var unjoined: [ServiceOrphan] = []
        for o in orphans {
            guard let parent = services[SpanKey(trace: o.trace, span: o.parentSpanID)] else {
                unjoined.append(o)
                continue
            }
            guard parent != o.child else { continue }
            let key = Key(bucket: ServiceGraph.bucket(of: o.start), parent: parent, child: o.child)
            edges[key, default: ServiceEdge(bucketStart: key.bucket, parent: parent, child: o.child)].calls += 1
            if o.isError { edges[key]!.errors += 1 }
            edges[key]!.latency.add(o.duration)
        }
        return (Array(edges.values), unjoined)
    }

    /// Edges among head spans: a span's parent may be in any head chunk. Each chunk keeps the edges
    /// among its own spans (``HeadChunk/serviceEdges()``); only its orphans (spans whose parent it does
    /// not hold) are joined here, against the spans of their traces in every chunk. Services are
    /// numbered once (strings are compared and hashed per distinct service, not per span).
    static func headEdges(_ chunks: [HeadChunk]) -> (edges: [ServiceEdge], orphans: [ServiceOrphan]) {
        var out: [ServiceEdge] = []
        var known: [HeadChunkEdges] = []
        known.reserveCapacity(chunks.count)
        var orphanTraces = Set<TraceID>()
        for chunk in chunks {
            let edges = chunk.serviceEdges()
            out += edges.named(chunk.batch.strings)
            for row in edges.orphans { orphanTraces.insert(chunk.batch.traceID(Int(row))) }
            known.append(edges)
        }
        guard !orphanTraces.isEmpty else { return (out, []) }
        var numbers: [String: Int32] = [:]
        var names: [String] = []
        // Per chunk, its services' numbers by resource (resolved on first use).
        var services: [[Int32]] = []
        func number(_ chunk: Int) -> [Int32] {
            let b = chunks[chunk].batch
            return b.resourceServiceName.map { id -> Int32 in
                let name = b.strings.string(id)
                if let n = numbers[name] { return n }
                let n = Int32(names.count)
                numbers[name] = n
                names.append(name)
                return n
            }
        }
        // The service of every span of a trace with an orphan, whichever chunk holds it.
        var serviceOf: [SpanKey: Int32] = [:]
        for (c, chunk) in chunks.enumerated() {
            services.append(number(c))
            let b = chunk.batch
            func note(_ trace: TraceID) {
                for row in chunk.rows(of: trace) { serviceOf[SpanKey(trace: trace, span: b.spanID[row])] = services[c][Int(b.resourceIndex[row])] }
            }
            if orphanTraces.count <= chunk.lastRowOfTrace.count {
                for trace in orphanTraces where chunk.lastRowOfTrace[trace] != nil { note(trace) }
            } else {
                for trace in chunk.lastRowOfTrace.keys where orphanTraces.contains(trace) { note(trace) }
            }
        }
        struct Key: Hashable {
            var bucket: UInt64
            var parent: Int32
            var child: Int32
        }
        var edges: [Key: ServiceEdge] = [:]
        var unjoined: [ServiceOrphan] = []
        for (c, chunk) in chunks.enumerated() {
            let b = chunk.batch
            for orphan in known[c].orphans {
                let row = Int(orphan)
                guard let parent = serviceOf[SpanKey(trace: b.traceID(row), span: b.parentSpanID[row])] else {
                    unjoined.append(ServiceOrphan(b, row: row))
                    continue
                }
                let child = services[c][Int(b.resourceIndex[row])]
                guard parent != child else { continue }
                let start = b.startTime[row], end = b.endTime[row]
                let key = Key(bucket: ServiceGraph.bucket(of: start), parent: parent, child: child)
                let i = edges.index(forKey: key) ?? {
                    edges[key] = ServiceEdge(bucketStart: key.bucket, parent: names[Int(parent)], child: names[Int(child)])
                    return edges.index(forKey: key)!
                }()
                edges.values[i].calls += 1
                if b.statusCode[row] == 2 { edges.values[i].errors += 1 }
                edges.values[i].latency.add(end > start ? end - start : 0)
            }
        }
        return (out + edges.values, unjoined)
    }
}
