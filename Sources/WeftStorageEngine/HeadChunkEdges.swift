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
            let key = ServiceGraph.Key(bucket: ServiceGraph.bucket(of: start), parent: parent, child: child)
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
    let postings = Mutex<HeadChunkPostings?>(nil)
    /// Scan columns built from the chunk's rows (each for the rows the chunk had then), and the
    /// bytes they count in ``HeadChunk/columnCacheLimitBytes``.
    let columns = Mutex<(values: [ScanColumn: (rows: Int, values: ColumnValues)], bytes: Int)>(([:], 0))

    deinit {
        let bytes = self.columns.withLock { $0.bytes }
        if bytes > 0 { headColumnCacheBytes.subtract(bytes, ordering: .relaxed) }
    }
}

/// Bytes of scan columns kept by sealed head chunks, over every head of the process.
private let headColumnCacheBytes = Atomic<Int>(0)

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

/// The rows of a sealed head chunk per string span attribute (key, value), ascending: a selective
/// equality filter reads a few rows instead of every span's attributes. One flat row array with a
/// range per (key, value), so a value seen once costs a dictionary entry, not an array.
public struct HeadChunkPostings: Sendable {
    /// `key << 32 | value` (the chunk's string IDs) → where its rows start in `flat` and how many.
    let ranges: [UInt64: (start: Int32, count: Int32)]
    let flat: [Int32]
    /// Rows of the sealed chunk (an older copy of the chunk, taken while it grew, has fewer).
    let rows: Int
    /// Whether no span has a key twice among its attributes: then a row is in a key's list exactly
    /// when its value of the key (the first, as scans read it) is that list's value.
    public let keysAreUnique: Bool
    /// The string values of each key, and the keys that also have values of other types.
    let valuesOfKey: [UInt32: [UInt32]]
    let mixedKeys: Set<UInt32>

    init(_ batch: SpanBatch) {
        self.rows = batch.spanCount
        let string = ValueType.string.rawValue
        let keys = batch.attrs.keys, types = batch.attrs.types, values = batch.attrs.values
        // Pass 1: rows per (key, value); pass 2: rows into place.
        var ranges: [UInt64: (start: Int32, count: Int32)] = [:]
        var mixed = Set<UInt32>()
        var total = 0
        for i in 0..<batch.attrs.count {
            guard types[i] == string else {
                mixed.insert(keys[i])
                continue
            }
            ranges[UInt64(keys[i]) << 32 | (values[i] & 0xFFFF_FFFF), default: (0, 0)].count += 1
            total += 1
        }
        var valuesOfKey: [UInt32: [UInt32]] = [:]
        var next = 0
        for i in ranges.indices {
            ranges.values[i].start = Int32(next)
            next += Int(ranges.values[i].count)
            ranges.values[i].count = 0
            let pair = ranges.keys[i]
            valuesOfKey[UInt32(pair >> 32), default: []].append(UInt32(truncatingIfNeeded: pair))
        }
        self.valuesOfKey = valuesOfKey
        self.mixedKeys = mixed
        var flat = [Int32](repeating: 0, count: total)
        // The last row (+1) that had each key, by key ID: a key met twice in one row repeats.
        var lastRowOfKey = [Int32](repeating: 0, count: batch.strings.count)
        var unique = true
        for row in 0..<batch.spanCount {
            for i in batch.attrRange(row) {
                let key = Int(keys[i])
                if key < lastRowOfKey.count {
                    if lastRowOfKey[key] == Int32(row + 1) { unique = false }
                    lastRowOfKey[key] = Int32(row + 1)
                } else {
                    unique = false
                }
            }
            for i in batch.attrRange(row) where types[i] == string {
                let k = ranges.index(forKey: UInt64(keys[i]) << 32 | (values[i] & 0xFFFF_FFFF))!
                let (start, count) = ranges.values[k]
                // A span that repeats a (key, value) is listed once.
                if count > 0 && flat[Int(start + count - 1)] == Int32(row) { continue }
                flat[Int(start + count)] = Int32(row)
                ranges.values[k].count += 1
            }
        }
        self.ranges = ranges
        self.flat = flat
        self.keysAreUnique = unique
    }

    /// Every row's value of `key` (string IDs, ``ColumnValues/absentID`` where a row lacks the key),
    /// from the lists alone: the column a scan of the rows builds. Nil when some value of the key is
    /// not a string or a span has a key twice.
    public func stringColumn(key: UInt32) -> [UInt32]? {
        guard self.keysAreUnique, !self.mixedKeys.contains(key) else { return nil }
        var ids = [UInt32](repeating: ColumnValues.absentID, count: self.rows)
        ids.withUnsafeMutableBufferPointer { out in
            self.flat.withUnsafeBufferPointer { flat in
                for value in self.valuesOfKey[key] ?? [] {
                    let r = self.ranges[UInt64(key) << 32 | UInt64(value)]!
                    for i in Int(r.start)..<Int(r.start + r.count) { out[Int(flat[i])] = value }
                }
            }
        }
        return ids
    }

    /// Rows whose span attributes include `key` = `value` (string IDs of the chunk), ascending.
    public func rows(key: UInt32, value: UInt32) -> ArraySlice<Int32> {
        guard let r = self.ranges[UInt64(key) << 32 | UInt64(value)] else { return [] }
        return self.flat[Int(r.start)..<Int(r.start + r.count)]
    }
}

extension HeadChunk {
    /// The chunk's posting lists, once built by ``buildPostings()`` (when the chunk is sealed).
    public var postings: HeadChunkPostings? {
        self.derived.postings.withLock { $0 }.flatMap { $0.rows == self.spanCount ? $0 : nil }
    }

    /// Builds the posting lists of a chunk that takes no more rows.
    func buildPostings() {
        guard self.derived.postings.withLock({ $0 == nil }) else { return }
        let postings = HeadChunkPostings(self.batch)
        self.derived.postings.withLock { $0 = postings }
    }
}

extension HeadChunk {
    /// Most bytes of built scan columns that sealed chunks keep, over every head of the process.
    public static let columnCacheLimitBytes = 256 << 20

    /// Bytes of built scan columns sealed chunks keep now.
    public static var columnCacheBytes: Int { headColumnCacheBytes.load(ordering: .relaxed) }

    /// One column of the chunk in scan form. The columns a scan builds from every span's
    /// attributes or traces (span attributes, trace-level values) are kept by a sealed chunk, within
    /// ``columnCacheLimitBytes``, so a later query reads them as a block's cached columns are read.
    /// A chunk still taking rows keeps its span attribute columns too, and extends them by the rows
    /// added since, rather than reading every span's attributes again.
    public func scanColumn(_ column: ScanColumn) -> ColumnValues {
        guard Self.isBuilt(column) else { return self.batch.scanColumn(column) }
        if let kept = self.keptColumn(column) { return kept }
        guard let postings = self.postings else {
            guard case .attribute(let key) = column else { return self.batch.scanColumn(column) }
            return self.growingAttribute(key)
        }
        let values: ColumnValues
        if case .attribute(let key) = column, let ids = postings.stringColumn(key: key) {
            values = .stringAttribute(ids)
        } else {
            values = self.batch.scanColumn(column)
        }
        self.keep(column, values)
        return values
    }

    /// Attribute `key` of a chunk still taking rows: the column kept for fewer rows, extended.
    private func growingAttribute(_ key: UInt32) -> ColumnValues {
        let column = ScanColumn.attribute(key)
        let rows = self.spanCount
        let known = self.derived.columns.withLock { $0.values[column] }
        let values: ColumnValues
        if let known, known.rows >= rows {
            // A copy taken before the chunk grew further: its own rows only.
            return known.rows == rows ? known.values : known.values.attributePrefix(rows)
        } else if let known {
            values = known.values.appending(self.batch.attributeColumn(key, rows: known.rows..<rows))
        } else {
            values = self.batch.attributeColumn(key, rows: 0..<rows)
        }
        self.keep(column, values)
        return values
    }

    /// Keeps `values`, built from this chunk's rows, within ``columnCacheLimitBytes``, unless a
    /// column built from as many rows or more is kept already.
    private func keep(_ column: ScanColumn, _ values: ColumnValues) {
        let (rows, bytes) = (self.spanCount, values.bytes)
        guard headColumnCacheBytes.add(bytes, ordering: .relaxed).newValue <= Self.columnCacheLimitBytes else {
            headColumnCacheBytes.subtract(bytes, ordering: .relaxed)
            return
        }
        let freed = self.derived.columns.withLock { state -> Int in
            let replaced = state.values[column]
            if let replaced, replaced.rows >= rows { return bytes }
            state.values[column] = (rows, values)
            let old = replaced?.values.bytes ?? 0
            state.bytes += bytes - old
            return old
        }
        if freed > 0 { headColumnCacheBytes.subtract(freed, ordering: .relaxed) }
    }

    /// A column this chunk has kept for exactly its rows, without building it.
    public func keptColumn(_ column: ScanColumn) -> ColumnValues? {
        guard let kept = self.derived.columns.withLock({ $0.values[column] }), kept.rows == self.spanCount else { return nil }
        return kept.values
    }

    /// Whether a column is built from the rows (not one of the batch's own arrays).
    private static func isBuilt(_ column: ScanColumn) -> Bool {
        switch column {
        case .attribute, .traces, .traceTiming, .rootService, .rootName: return true
        default: return false
        }
    }
}
