import Synchronization
import WeftModel

/// Random-access bytes of one block file.
public protocol BlockSource: AnyObject, Sendable {
    var size: Int { get }
    func read(_ range: Range<Int>) throws -> [UInt8]
}

/// A block held in memory.
public final class MemoryBlockSource: BlockSource {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var size: Int { self.bytes.count }
    public func read(_ range: Range<Int>) throws -> [UInt8] {
        guard range.lowerBound >= 0, range.upperBound <= self.bytes.count else { throw BlockFormatError("read past the end of the block") }
        return Array(self.bytes[range])
    }
}

/// A block file read through ``Disk/read(_:range:)`` (which must be safe from several threads).
public final class DiskBlockSource: BlockSource, @unchecked Sendable {
    let disk: any Disk
    let path: String
    public let size: Int

    public init(disk: any Disk, path: String) throws {
        self.disk = disk
        self.path = path
        self.size = try disk.size(path)
    }

    public func read(_ range: Range<Int>) throws -> [UInt8] { try self.disk.read(self.path, range: range) }
}

extension BlockCodec {
    /// Where one section lies in a block, from the directory.
    public struct SectionEntry: Sendable {
        public var name: String
        public var codec: UInt8
        public var rawLength: Int
        public var crc: UInt32
        /// The stored bytes, as offsets into the block.
        public var range: Range<Int>
    }

    static let footerBytes = 12 + 8

    /// Reads and checks the footer and directory.
    static func directory(_ source: any BlockSource) throws -> [SectionEntry] {
        let size = source.size
        guard size >= magic.count + footerBytes else { throw BlockFormatError("not a Weft block (too short)") }
        let footer = try source.read((size - footerBytes)..<size)
        let head = try source.read(0..<magic.count)
        guard magic.elementsEqual(head), magic.elementsEqual(footer[12...]) else {
            throw BlockFormatError("not a Weft v\(version) block (bad magic or truncated)")
        }
        let (length, crc, count) = footer.withUnsafeBytes { f in
            (Int(UInt32(littleEndian: f.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
             UInt32(littleEndian: f.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
             Int(UInt32(littleEndian: f.loadUnaligned(fromByteOffset: 8, as: UInt32.self))))
        }
        let dirEnd = size - footerBytes
        guard length <= dirEnd - magic.count else { throw BlockFormatError("block directory length out of range") }
        let dir = try source.read((dirEnd - length)..<dirEnd)
        return try dir.withUnsafeBytes { raw throws -> [SectionEntry] in
            guard CRC32C.checksum(raw) == crc else { throw BlockFormatError("block directory checksum mismatch") }
            var r = ByteReader(raw)
            var entries: [SectionEntry] = []
            entries.reserveCapacity(count)
            while !r.isAtEnd {
                let name = String(decoding: try r.raw(try r.count(max: 256)), as: UTF8.self)
                let codec = try r.raw(1)[0]
                let rawLength = try r.count(max: 1 << 31)
                let offset = try r.count(max: dirEnd)
                let stored = try r.count(max: dirEnd)
                let crc = try r.fixed32()
                guard offset >= magic.count, offset + stored <= dirEnd - length else {
                    throw BlockFormatError("section '\(name)' lies outside the block")
                }
                entries.append(SectionEntry(name: name, codec: codec, rawLength: rawLength, crc: crc, range: offset..<(offset + stored)))
            }
            guard entries.count == count else { throw BlockFormatError("block has \(entries.count) sections, footer says \(count)") }
            return entries
        }
    }

    /// A section's payload, checksum verified and decompressed.
    static func payload(_ stored: [UInt8], _ e: SectionEntry) throws -> [UInt8] {
        try stored.withUnsafeBytes { raw throws -> [UInt8] in
            guard CRC32C.checksum(raw) == e.crc else { throw BlockFormatError("checksum mismatch in section '\(e.name)'") }
            switch e.codec {
            case 0:
                guard e.rawLength == raw.count else { throw BlockFormatError("section '\(e.name)' has inconsistent lengths") }
                return stored
            case 1:
                return try Zstd.decompress(raw, size: e.rawLength)
            default:
                throw BlockFormatError("section '\(e.name)' uses unknown codec \(e.codec)")
            }
        }
    }

    /// Each section's name, stored and raw size and codec, in file order (checksums not read).
    public static func layout(_ bytes: [UInt8]) throws -> [Section] {
        try directory(MemoryBlockSource(bytes)).map { Section(name: $0.name, bytes: $0.range.count, rawBytes: $0.rawLength, compressed: $0.codec == 1) }
    }

    /// Checks every checksum and that the block decodes; returns the section count and span count.
    public static func verify(_ bytes: [UInt8]) throws -> (sections: Int, spans: Int) {
        let reader = try BlockReader(source: MemoryBlockSource(bytes))
        for e in reader.entries.values { _ = try reader.section(e.name) }
        try reader.checkIndexes()
        return (reader.entries.count, try reader.decodeAll().spanCount)
    }

    /// Decodes a whole block back into a batch (rows in block order), checking its Bloom filters and
    /// service-map section too.
    public static func decode(_ bytes: [UInt8]) throws -> SpanBatch {
        let reader = try BlockReader(source: MemoryBlockSource(bytes))
        try reader.checkIndexes()
        return try reader.decodeAll()
    }
}

/// The sorted string dictionary of a block, read page by page: IDs below ``WellKnown`` count are the
/// well-known strings, the rest are in byte order, so a value is found by binary search.
public final class BlockDictionary: Sendable {
    struct Page: Sendable {
        var offsets: [UInt32]
        var bytes: [UInt8]
    }

    public let count: Int
    let pageCount: Int
    private let load: @Sendable (Int) throws -> [UInt8]
    private let pages: Mutex<[Int: Page]> = Mutex([:])

    init(count: Int, pages: Int, load: @escaping @Sendable (Int) throws -> [UInt8]) {
        self.count = count
        self.pageCount = pages
        self.load = load
    }

    private func page(_ p: Int) throws -> Page {
        if let cached = self.pages.withLock({ $0[p] }) { return cached }
        let bytes = try self.load(p)
        let page = try bytes.withUnsafeBytes { raw throws -> Page in
            var r = ByteReader(raw)
            let n = try r.count(max: BlockCodec.dictionaryPage)
            let lengths = try r.packed()
            guard lengths.count == n else { throw BlockFormatError("dictionary page lengths disagree") }
            var offsets: [UInt32] = [0]
            offsets.reserveCapacity(n + 1)
            for l in lengths { offsets.append(offsets.last! &+ UInt32(truncatingIfNeeded: l)) }
            let body = try r.raw(Int(offsets.last!))
            return Page(offsets: offsets, bytes: Array(body))
        }
        let expected = min(BlockCodec.dictionaryPage, self.count - p * BlockCodec.dictionaryPage)
        guard page.offsets.count - 1 == expected else { throw BlockFormatError("dictionary page \(p) has the wrong count") }
        self.pages.withLock { $0[p] = page }
        return page
    }

    /// The bytes of string `id`.
    public func withBytes<R>(_ id: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard Int(id) < self.count else { throw BlockFormatError("string ID \(id) outside the dictionary") }
        let page = try self.page(Int(id) / BlockCodec.dictionaryPage)
        let i = Int(id) % BlockCodec.dictionaryPage
        return try page.bytes.withUnsafeBytes { all in
            try body(UnsafeRawBufferPointer(rebasing: all[Int(page.offsets[i])..<Int(page.offsets[i + 1])]))
        }
    }

    public func string(_ id: UInt32) throws -> String { try self.withBytes(id) { String(decoding: $0, as: UTF8.self) } }

    /// Calls `body` with each of `ids` (ascending) and its bytes, reading each page once.
    public func forEachBytes(_ ids: UnsafeBufferPointer<UInt32>, _ body: (UInt32, UnsafeRawBufferPointer) throws -> Void) throws {
        var i = 0
        while i < ids.count {
            guard Int(ids[i]) < self.count else { throw BlockFormatError("string ID \(ids[i]) outside the dictionary") }
            let p = Int(ids[i]) / BlockCodec.dictionaryPage
            let page = try self.page(p)
            try page.bytes.withUnsafeBytes { all in
                try page.offsets.withUnsafeBufferPointer { offsets in
                    while i < ids.count, Int(ids[i]) / BlockCodec.dictionaryPage == p {
                        let k = Int(ids[i]) % BlockCodec.dictionaryPage
                        try body(ids[i], UnsafeRawBufferPointer(rebasing: all[Int(offsets[k])..<Int(offsets[k + 1])]))
                        i += 1
                    }
                }
            }
        }
    }

    private static let wellKnown = StringTable()

    /// The ID of `value`, or nil if the block never mentions it.
    public func lookup(_ value: String) throws -> UInt32? {
        if let id = Self.wellKnown.lookup(value) { return Int(id) < self.count ? id : nil }
        var v = value
        return try v.withUTF8 { target throws -> UInt32? in
            let t = UnsafeRawBufferPointer(target)
            var lo = min(WellKnown.all.count, self.count)
            var hi = self.count
            while lo < hi {
                let mid = (lo + hi) / 2
                let c = try self.withBytes(UInt32(mid)) { compareBytes($0, t) }
                if c == 0 { return UInt32(mid) }
                if c < 0 { lo = mid + 1 } else { hi = mid }
            }
            return nil
        }
    }

    /// Interns every string in ID order into a table whose IDs equal the block's.
    func table() throws -> StringTable {
        var table = StringTable()
        for p in 0..<self.pageCount {
            let page = try self.page(p)
            try page.bytes.withUnsafeBytes { all in
                for i in 0..<(page.offsets.count - 1) {
                    let id = p * BlockCodec.dictionaryPage + i
                    let got = table.intern(UnsafeRawBufferPointer(rebasing: all[Int(page.offsets[i])..<Int(page.offsets[i + 1])]))
                    guard Int(got) == id else { throw BlockFormatError("dictionary has duplicate strings") }
                }
            }
        }
        return table
    }
}

/// Which parts of a row group to decode; the rest is filled with empty values (no attributes, events
/// or links; zero flags, dropped counts and scope), so the batch stays consistent.
public struct GroupParts: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Span attributes (inverted layout, plus those implied by typed columns).
    public static let attributes = GroupParts(rawValue: 1)
    public static let eventsAndLinks = GroupParts(rawValue: 2)
    /// Status message, trace state, flags, scope and dropped counts.
    public static let details = GroupParts(rawValue: 4)
    public static let all: GroupParts = [.attributes, .eventsAndLinks, .details]
}

/// Random access to one block: the directory, group summary and dictionary header are read up front;
/// sections are read (`pread`), checked and decompressed only when a query needs them. A trace is found
/// through the per-group Bloom filters and the group's trace IDs, decoding only that group.
/// Safe to share between threads.
public final class BlockReader: Sendable {
    public let source: any BlockSource
    let entries: [String: BlockCodec.SectionEntry]
    public let groups: GroupSummary
    public let dictionary: BlockDictionary
    private let cache = Mutex<(blooms: [TraceBloom]?, table: StringTable?, base: SpanBatch?)>((nil, nil, nil))
    let serviceEdgeCache = Mutex<[ServiceEdge]?>(nil)
    let serviceOrphanCache = Mutex<[ServiceOrphan]?>(nil)
    let serviceEdgeTotalCache = Mutex<ServiceMapPartial?>(nil)

    public init(source: any BlockSource) throws {
        self.source = source
        var entries: [String: BlockCodec.SectionEntry] = [:]
        for e in try BlockCodec.directory(source) { entries[e.name] = e }
        self.entries = entries
        func read(_ name: String) throws -> [UInt8] {
            guard let e = entries[name] else { throw BlockFormatError("block lacks section '\(name)'") }
            return try BlockCodec.payload(try source.read(e.range), e)
        }
        let summary = try read("groups")
        self.groups = try Self.parseGroups(summary)
        let header = try read("dictionary")
        let (count, pages) = try Self.parseDictionaryHeader(header)
        guard (count + BlockCodec.dictionaryPage - 1) / BlockCodec.dictionaryPage <= max(1, pages) else {
            throw BlockFormatError("dictionary header disagrees with its pages")
        }
        var pageEntries: [BlockCodec.SectionEntry] = []
        for p in 0..<pages {
            guard let e = entries["dict/\(p)"] else { throw BlockFormatError("block lacks dictionary page \(p)") }
            pageEntries.append(e)
        }
        let pageList = pageEntries
        self.dictionary = BlockDictionary(count: count, pages: pages) { p in
            try BlockCodec.payload(try source.read(pageList[p].range), pageList[p])
        }
    }

    private static func parseGroups(_ bytes: [UInt8]) throws -> GroupSummary {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            return try GroupSummary.read(&r)
        }
    }

    private static func parseDictionaryHeader(_ bytes: [UInt8]) throws -> (Int, Int) {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let count = try r.count()
            let pages = try r.count(max: 1 << 20)
            return (count, pages)
        }
    }

    /// Convenience for a block in memory.
    public convenience init(bytes: [UInt8]) throws { try self.init(source: MemoryBlockSource(bytes)) }

    /// A section's bytes, read, checked and decompressed (not cached).
    public func section(_ name: String) throws -> [UInt8] {
        guard let e = self.entries[name] else { throw BlockFormatError("block lacks section '\(name)'") }
        return try BlockCodec.payload(try self.source.read(e.range), e)
    }

    public func hasSection(_ name: String) -> Bool { self.entries[name] != nil }

    func groupSection(_ g: Int, _ name: String) throws -> [UInt8] { try self.section("\(g)/\(name)") }

    public var spanCount: Int { Int(self.groups.spans.reduce(0, +)) }

    // MARK: Traces

    /// Reads and checks the sections beside the rows: Bloom filters and service-map edges.
    func checkIndexes() throws {
        _ = try self.blooms()
        _ = try self.serviceEdges()
        _ = try self.serviceOrphans()
    }

    private func blooms() throws -> [TraceBloom] {
        if let b = self.cache.withLock({ $0.blooms }) { return b }
        let blooms = try self.section("bloom").withUnsafeBytes { raw throws -> [TraceBloom] in
            var r = ByteReader(raw)
            let n = try r.count(max: self.groups.count)
            guard n == self.groups.count else { throw BlockFormatError("bloom count disagrees with the groups") }
            var out: [TraceBloom] = []
            for _ in 0..<n {
                let words = try r.count(max: 1 << 26)
                var bits: [UInt64] = []
                bits.reserveCapacity(words)
                for _ in 0..<words { bits.append(try r.fixed64()) }
                out.append(TraceBloom(words: bits))
            }
            return out
        }
        self.cache.withLock { $0.blooms = blooms }
        return blooms
    }

    /// Whether any group's Bloom filter may hold `trace` (no allocation: the ingest hot path asks).
    public func mayHold(_ trace: TraceID) throws -> Bool {
        for bloom in try self.blooms() where bloom.mayContain(trace) { return true }
        return false
    }

    /// One filter over all the block's traces, built from the groups' trace IDs. For checking many
    /// traces against the same blocks (ingest's check for resent spans), where asking each group's
    /// Bloom filter costs a division per probe per group of every block. ``BlockStore/mayHold(_:in:_:)``
    /// keeps it apart from the reader, which the reader cache may drop.
    public func traceFilter() throws -> BlockTraceFilter {
        var filter = BlockTraceFilter(traces: Int(self.groups.traces.reduce(0, +)))
        for g in 0..<self.groups.count {
            let (high, low) = try self.traceIDs(inGroup: g)
            for t in high.indices { filter.insert(TraceID(high: high[t], low: low[t])) }
        }
        return filter
    }

    /// The IDs of group `g`'s traces, in the group's trace order, as two halves.
    func traceIDs(inGroup g: Int) throws -> (high: [UInt64], low: [UInt64]) {
        let bytes = try self.groupSection(g, "trace.id")
        let traces = Int(self.groups.traces[g])
        guard bytes.count == traces * 16 else { throw BlockFormatError("group \(g) trace.id has the wrong size") }
        var high = [UInt64](repeating: 0, count: traces), low = [UInt64](repeating: 0, count: traces)
        bytes.withUnsafeBytes { raw in
            for t in 0..<traces {
                high[t] = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: t * 16, as: UInt64.self))
                low[t] = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: t * 16 + 8, as: UInt64.self))
            }
        }
        return (high, low)
    }

    /// Groups whose Bloom filter may hold `trace`.
    public func candidateGroups(_ trace: TraceID) throws -> [Int] {
        let blooms = try self.blooms()
        return blooms.indices.filter { blooms[$0].mayContain(trace) }
    }

    /// Rows of `trace` within group `g` (binary search over the group's trace IDs; they are sorted by
    /// start, so the search is linear over at most a few thousand IDs).
    public func rows(of trace: TraceID, inGroup g: Int) throws -> Range<Int>? {
        let ids = try self.groupSection(g, "trace.id")
        let traces = Int(self.groups.traces[g])
        guard ids.count == traces * 16 else { throw BlockFormatError("group \(g) trace.id has the wrong size") }
        let index = ids.withUnsafeBytes { raw -> Int? in
            for i in 0..<traces {
                let high = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 16, as: UInt64.self))
                let low = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 16 + 8, as: UInt64.self))
                if high == trace.high && low == trace.low { return i }
            }
            return nil
        }
        guard let index else { return nil }
        let spans = try self.groupSection(g, "trace.spans").withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            return try r.packed()
        }
        guard spans.count == traces else { throw BlockFormatError("group \(g) trace.spans disagrees with trace.id") }
        let start = Int(spans[0..<index].reduce(0, +))
        return start..<(start + Int(spans[index]))
    }

    /// The spans of one trace as a compact batch (only the strings it uses), or nil if absent.
    public func trace(_ id: TraceID) throws -> SpanBatch? {
        var out: SpanBatch? = nil
        for g in try self.candidateGroups(id) {
            guard let range = try self.rows(of: id, inGroup: g) else { continue }
            // Decode the group with the block's raw string IDs, keep the trace's rows, then intern
            // only the strings they use.
            var rows = try self.blockLevelBatch(strings: StringTable())
            try self.decodeGroup(g, into: &rows, rows: range)
            var used = Set<UInt32>()
            rows.forEachStringID { if Int($0) >= WellKnown.all.count { used.insert($0) } }
            var table = StringTable()
            var map = [UInt32: UInt32]()
            for old in used.sorted() {
                map[old] = try self.dictionary.withBytes(old) { table.intern($0) }
            }
            rows.remapStrings(to: table) { old in Int(old) < WellKnown.all.count ? old : map[old] ?? 0 }
            if out == nil { out = rows } else { out!.append(rows) }
        }
        return out
    }

    // MARK: Decoding

    /// The block's full string table (IDs equal to the block's), built once.
    public func stringTable() throws -> StringTable {
        if let t = self.cache.withLock({ $0.table }) { return t }
        let table = try self.dictionary.table()
        self.cache.withLock { $0.table = table }
        return table
    }

    /// An empty batch holding the block's resources and scopes, and `strings` as its table.
    public func blockLevelBatch(strings: StringTable) throws -> SpanBatch {
        var batch: SpanBatch
        if let base = self.cache.withLock({ $0.base }) {
            batch = base
        } else {
            batch = SpanBatch()
            let count = self.dictionary.count
            func id(_ v: UInt64) throws(BlockFormatError) -> UInt32 {
                guard v < UInt64(count) else { throw BlockFormatError("string ID \(v) outside the dictionary") }
                return UInt32(v)
            }
            try self.section("resources").withUnsafeBytes { raw throws in
                var r = ByteReader(raw)
                batch.resourceAttrOffsets = try r.packed32()
                batch.resourceAttrs = try BlockCodec.readFlatAttributes(&r, count)
                batch.resourceDroppedAttrs = try r.packed32()
                batch.resourceSchemaURL = try r.packed().map(id)
                batch.resourceServiceName = try r.packed().map(id)
            }
            try self.section("scopes").withUnsafeBytes { raw throws in
                var r = ByteReader(raw)
                batch.scopeName = try r.packed().map(id)
                batch.scopeVersion = try r.packed().map(id)
                batch.scopeAttrOffsets = try r.packed32()
                batch.scopeAttrs = try BlockCodec.readFlatAttributes(&r, count)
                batch.scopeDroppedAttrs = try r.packed32()
                batch.scopeSchemaURL = try r.packed().map(id)
            }
            let resources = batch.resourceCount
            guard batch.resourceAttrOffsets.count == resources + 1, batch.resourceAttrOffsets.last.map({ Int($0) == batch.resourceAttrs.count }) ?? false,
                batch.resourceDroppedAttrs.count == resources, batch.resourceSchemaURL.count == resources,
                batch.scopeAttrOffsets.count == batch.scopeCount + 1, batch.scopeAttrOffsets.last.map({ Int($0) == batch.scopeAttrs.count }) ?? false,
                batch.scopeVersion.count == batch.scopeCount, batch.scopeDroppedAttrs.count == batch.scopeCount, batch.scopeSchemaURL.count == batch.scopeCount
            else { throw BlockFormatError("resource or scope tables disagree") }
            let base = batch
            self.cache.withLock { $0.base = base }
        }
        batch.strings = strings
        return batch
    }

    /// Group `g` decoded on its own, with the block's full string table.
    public func decodedGroup(_ g: Int, parts: GroupParts = .all) throws -> SpanBatch {
        var batch = try self.blockLevelBatch(strings: try self.stringTable())
        try self.decodeGroup(g, into: &batch, parts: parts)
        return batch
    }

    /// Decodes the whole block (all groups, rows in block order).
    public func decodeAll() throws -> SpanBatch {
        var batch = try self.blockLevelBatch(strings: try self.stringTable())
        batch.reserve(spans: self.spanCount, attributes: 0)
        for g in 0..<self.groups.count { try self.decodeGroup(g, into: &batch) }
        return batch
    }

    /// Decodes group `g` (or only `rows` of it, which must start and end at trace boundaries) and
    /// appends the rows to `batch`, which must come from ``blockLevelBatch(strings:)``. Packed columns
    /// are unpacked only over `rows`, so a trace lookup touches a few values per column.
    public func decodeGroup(_ g: Int, into batch: inout SpanBatch, rows: Range<Int>? = nil, parts: GroupParts = .all) throws {
        let stringCount = self.dictionary.count
        func id(_ v: UInt64) throws(BlockFormatError) -> UInt32 {
            guard v < UInt64(stringCount) else { throw BlockFormatError("string ID \(v) outside the dictionary") }
            return UInt32(v)
        }
        let n = Int(self.groups.spans[g])
        let range = rows ?? 0..<n
        guard range.lowerBound >= 0, range.upperBound <= n else { throw BlockFormatError("rows \(range) outside group \(g)") }
        let m = range.count
        func section(_ name: String) throws -> [UInt8] { try self.groupSection(g, name) }
        /// A packed column's values over `range`.
        func column(_ name: String) throws -> [UInt64] {
            try section(name).withUnsafeBytes { raw throws in
                var r = ByteReader(raw)
                let (count, values) = try r.packed(range: range)
                guard count == n else { throw BlockFormatError("column '\(g)/\(name)' has \(count) rows, expected \(n)") }
                return values
            }
        }

        /// A column of `.details`, or zeros when those are not wanted.
        func detail(_ name: String) throws -> [UInt64] {
            parts.contains(.details) ? try column(name) : [UInt64](repeating: 0, count: m)
        }

        // Traces.
        let layout = try self.traceLayout(g, range)
        let traceOf = layout.traceOf
        let firstRowOf = layout.firstRowOf
        try self.appendTraceIDs(g, layout, high: &batch.traceHigh, low: &batch.traceLow)

        // Identity and timing (indices below are positions in the range: p = row - range.lowerBound).
        let base = range.lowerBound
        let spanID = try self.spanIDs(g, range)
        let (local, unresolved) = try self.parentLinks(g, range, layout)
        var parent = [UInt64](repeating: 0, count: m)
        for p in 0..<m {
            let l = Int(local[p])
            if l > 0 { parent[p] = spanID[firstRowOf[traceOf[p]] - base + l - 1] }
        }
        for (row, id) in unresolved { parent[row - base] = id }
        let (start, end) = try self.timing(g, range, layout, local)
        batch.spanID += spanID
        batch.parentSpanID += parent
        batch.startTime += start
        batch.endTime += end

        let resources = UInt64(batch.resourceCount)
        let scopes = UInt64(batch.scopeCount)
        batch.name += try column("span.name").map(id)
        batch.kind += try column("span.kind").map { UInt8(truncatingIfNeeded: $0) }
        batch.statusCode += try column("span.status").map { UInt8(truncatingIfNeeded: $0) }
        batch.statusMessage += try detail("span.status_message").map(id)
        batch.traceState += try detail("span.trace_state").map(id)
        batch.flags += try detail("span.flags").map { UInt32(truncatingIfNeeded: $0) }
        batch.resourceIndex += try column("span.resource").map { v throws in
            guard v < resources else { throw BlockFormatError("span.resource outside the resource table") }
            return UInt32(v)
        }
        batch.scopeIndex += try detail("span.scope").map { v throws in
            guard v < scopes else { throw BlockFormatError("span.scope outside the scope table") }
            return UInt32(v)
        }
        batch.droppedAttrs += try detail("span.dropped_attributes").map { UInt32(truncatingIfNeeded: $0) }
        batch.droppedEvents += try detail("span.dropped_events").map { UInt32(truncatingIfNeeded: $0) }
        batch.droppedLinks += try detail("span.dropped_links").map { UInt32(truncatingIfNeeded: $0) }
        batch.genAIProvider += try column("genai.provider").map(id)
        batch.genAIRequestModel += try column("genai.request_model").map(id)
        batch.genAIResponseModel += try column("genai.response_model").map(id)
        batch.inputTokens += try column("genai.input_tokens").map(BlockCodec.untokens)
        batch.outputTokens += try column("genai.output_tokens").map(BlockCodec.untokens)
        batch.cost += try self.costs(g, range)

        // Span attributes, from the inverted layout back to rows, plus those implied by typed columns.
        if !parts.contains(.attributes) {
            batch.attrOffsets += repeatElement(UInt32(batch.attrs.count), count: m)
        } else {
            let masks = try column("genai.implied")
            var implied: [(row: Int, key: UInt32, type: UInt8, value: UInt64)] = []
            let groupStart = batch.spanCount - m
            for (p, mask) in masks.enumerated() where mask != 0 {
                let row = groupStart + p
                for bit in 0..<BlockCodec.impliedKeys.count where mask & (1 << UInt64(bit)) != 0 {
                    guard let value = BlockCodec.impliedValue(
                        bit, provider: batch.genAIProvider[row], request: batch.genAIRequestModel[row], response: batch.genAIResponseModel[row],
                        input: batch.inputTokens[row], output: batch.outputTokens[row], cost: batch.cost[row]
                    ) else { throw BlockFormatError("genai.implied names an absent typed value") }
                    implied.append((base + p, BlockCodec.impliedKeys[bit].key, BlockCodec.impliedKeys[bit].type.rawValue, value))
                }
            }
            if rows == nil {
                let attributes = try InvertedAttributes(try section("span.attributes"), rows: n, stringCount: stringCount)
                attributes.appendRows(range, to: &batch.attrs, offsets: &batch.attrOffsets, implied: implied)
            } else {
                try InvertedAttributes.appendRows(
                    range, of: try section("span.attributes"), groupRows: n, stringCount: stringCount, implied: implied,
                    to: &batch.attrs, offsets: &batch.attrOffsets
                )
            }
        }

        // Events and links.
        guard parts.contains(.eventsAndLinks) else {
            batch.eventOffsets += repeatElement(batch.eventOffsets.last!, count: m)
            batch.linkOffsets += repeatElement(batch.linkOffsets.last!, count: m)
            return
        }
        try section("events").withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            let counts = try r.packed()
            guard counts.count == n else { throw BlockFormatError("events has the wrong row count") }
            let times = try r.packed()
            let names = try r.packed().map(id)
            let dropped = try r.packed32()
            let (attrCounts, attrs) = try BlockCodec.readOwnedAttributes(&r, stringCount)
            let total = Int(counts.reduce(0, +))
            guard times.count == total, names.count == total, dropped.count == total, attrCounts.count == total else {
                throw BlockFormatError("events columns disagree")
            }
            let owned = Self.appendOwned(
                counts, range, attrCounts, attrs, offsets: &batch.eventOffsets, attrOffsets: &batch.eventAttrOffsets, attrs: &batch.eventAttrs
            )
            batch.eventTime += times[owned]
            batch.eventName += names[owned]
            batch.eventDroppedAttrs += dropped[owned]
        }
        try section("links").withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            let counts = try r.packed()
            guard counts.count == n else { throw BlockFormatError("links has the wrong row count") }
            let total = Int(counts.reduce(0, +))
            var traceHigh: [UInt64] = [], traceLow: [UInt64] = [], spans: [UInt64] = []
            for _ in 0..<total {
                traceHigh.append(try r.fixed64())
                traceLow.append(try r.fixed64())
                spans.append(try r.fixed64())
            }
            let states = try r.packed().map(id)
            let flags = try r.packed32()
            let dropped = try r.packed32()
            let (attrCounts, attrs) = try BlockCodec.readOwnedAttributes(&r, stringCount)
            guard states.count == total, flags.count == total, dropped.count == total, attrCounts.count == total else {
                throw BlockFormatError("links columns disagree")
            }
            let owned = Self.appendOwned(
                counts, range, attrCounts, attrs, offsets: &batch.linkOffsets, attrOffsets: &batch.linkAttrOffsets, attrs: &batch.linkAttrs
            )
            batch.linkTraceHigh += traceHigh[owned]
            batch.linkTraceLow += traceLow[owned]
            batch.linkSpanID += spans[owned]
            batch.linkTraceState += states[owned]
            batch.linkFlags += flags[owned]
            batch.linkDroppedAttrs += dropped[owned]
        }
    }

    /// Events or links of the spans at `range` (`counts`: owners per span, `attrCounts`: attributes per
    /// owner, `all`: the owners' attributes in order): appends their offsets, attribute offsets and
    /// attributes, and returns which owners they are.
    static func appendOwned(
        _ counts: [UInt64], _ range: Range<Int>, _ attrCounts: [UInt64], _ all: AttributeColumns,
        offsets: inout [UInt32], attrOffsets: inout [UInt32], attrs: inout AttributeColumns
    ) -> Range<Int> {
        let first = Int(counts[0..<range.lowerBound].reduce(0, +))
        let owned = first..<(first + Int(counts[range].reduce(0, +)))
        var at = offsets.last!
        for c in counts[range] {
            at += UInt32(c)
            offsets.append(at)
        }
        let firstAttr = Int(attrCounts[0..<first].reduce(0, +))
        var attrAt = UInt32(attrs.count)
        var attrEnd = firstAttr
        for c in attrCounts[owned] {
            attrAt += UInt32(c)
            attrEnd += Int(c)
            attrOffsets.append(attrAt)
        }
        attrs.keys += all.keys[firstAttr..<attrEnd]
        attrs.types += all.types[firstAttr..<attrEnd]
        attrs.values += all.values[firstAttr..<attrEnd]
        return owned
    }

    /// Rows of group `g` whose span attribute `key` has the string value `value` (both block string
    /// IDs), ascending: a posting list.
    public func postings(group g: Int, key: UInt32, value: UInt32) throws -> [Int] {
        try self.rows(group: g, matchingAll: [(key, value)])
    }

    /// Rows of group `g` that have every (key, value) string attribute: the intersection of their
    /// posting lists (the group's attribute section is read once).
    public func rows(group g: Int, matchingAll pairs: [(key: UInt32, value: UInt32)]) throws -> [Int] {
        let attributes = try InvertedAttributes(try self.groupSection(g, "span.attributes"), rows: Int(self.groups.spans[g]), stringCount: self.dictionary.count)
        var rows: [Int]? = nil
        for (key, value) in pairs {
            let list = attributes.postings(key: key, value: value)
            rows = rows.map { Self.intersect($0, list) } ?? list
            if rows!.isEmpty { break }
        }
        return rows ?? Array(0..<Int(self.groups.spans[g]))
    }

    /// Sorted intersection of two ascending row lists.
    static func intersect(_ a: [Int], _ b: [Int]) -> [Int] {
        var out: [Int] = []
        var i = 0, j = 0
        while i < a.count && j < b.count {
            if a[i] < b[j] { i += 1 } else if a[i] > b[j] { j += 1 } else {
                out.append(a[i])
                i += 1
                j += 1
            }
        }
        return out
    }
}

/// The inverted span-attribute layout of one group, parsed (see ``BlockCodec/writeInvertedAttributes``).
struct InvertedAttributes {
    var keys: [UInt64]
    var valuesPerKey: [UInt64]
    var values: [UInt64]
    var postingLengths: [UInt64]
    var postingRows: [UInt32]
    var othersPerKey: [UInt64]
    var otherRows: [UInt32]
    var otherTypes: [UInt8]
    var otherValues: [UInt64]
    let rows: Int

    init(_ bytes: [UInt8], rows n: Int, stringCount: Int) throws {
        self.rows = n
        var keys: [UInt64] = [], valuesPerKey: [UInt64] = [], valueDeltas: [UInt64] = [], postingLengths: [UInt64] = []
        var postingFirst: [UInt64] = [], postingDeltas: [UInt64] = [], othersPerKey: [UInt64] = [], otherDeltas: [UInt64] = []
        var values: (types: [UInt8], values: [UInt64]) = ([], [])
        try bytes.withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            keys = try r.packed()
            valuesPerKey = try r.packed()
            valueDeltas = try r.packed()
            postingLengths = try r.packed()
            postingFirst = try r.packed()
            postingDeltas = try r.packed()
            othersPerKey = try r.packed()
            otherDeltas = try r.packed()
            values = try BlockCodec.readValues(&r, count: otherDeltas.count)
        }
        guard valuesPerKey.count == keys.count, othersPerKey.count == keys.count,
            Int(valuesPerKey.reduce(0, +)) == valueDeltas.count, postingLengths.count == valueDeltas.count,
            postingFirst.count == postingLengths.count, postingLengths.allSatisfy({ $0 >= 1 }),
            Int(postingLengths.reduce(0, +)) == postingDeltas.count + postingFirst.count, Int(othersPerKey.reduce(0, +)) == otherDeltas.count,
            keys.allSatisfy({ $0 < UInt64(stringCount) })
        else { throw BlockFormatError("span.attributes columns disagree") }
        // Undo the deltas, checking rows and IDs.
        var absolute: [UInt64] = []
        absolute.reserveCapacity(valueDeltas.count)
        var rowsOut: [UInt32] = []
        rowsOut.reserveCapacity(postingDeltas.count + postingFirst.count)
        var v = 0, p = 0
        for k in 0..<keys.count {
            var value: UInt64 = 0
            for _ in 0..<Int(valuesPerKey[k]) {
                value &+= valueDeltas[v]
                guard value < UInt64(stringCount) else { throw BlockFormatError("attribute value outside the dictionary") }
                absolute.append(value)
                var row = Int(truncatingIfNeeded: postingFirst[v])
                for j in 0..<Int(postingLengths[v]) {
                    if j > 0 {
                        row += Int(truncatingIfNeeded: postingDeltas[p])
                        p += 1
                    }
                    guard row >= 0, row < n else { throw BlockFormatError("posting list row outside the group") }
                    rowsOut.append(UInt32(row))
                }
                v += 1
            }
        }
        var others: [UInt32] = []
        others.reserveCapacity(otherDeltas.count)
        var o = 0
        for k in 0..<keys.count {
            var row = 0
            for _ in 0..<Int(othersPerKey[k]) {
                row += Int(truncatingIfNeeded: otherDeltas[o])
                guard row >= 0, row < n else { throw BlockFormatError("attribute row outside the group") }
                others.append(UInt32(row))
                _ = try BlockCodec.checkedValue(values.types[o], values.values[o], stringCount)
                o += 1
            }
        }
        self.keys = keys
        self.valuesPerKey = valuesPerKey
        self.values = absolute
        self.postingLengths = postingLengths
        self.postingRows = rowsOut
        self.othersPerKey = othersPerKey
        self.otherRows = others
        self.otherTypes = values.types
        self.otherValues = values.values
    }

    /// Appends the attributes of `range` only, reading the section in place: one pass over its entries,
    /// no per-entry arrays (the trace-lookup path). Same result as the full parse.
    static func appendRows(
        _ range: Range<Int>, of bytes: [UInt8], groupRows n: Int, stringCount: Int,
        implied: [(row: Int, key: UInt32, type: UInt8, value: UInt64)], to attrs: inout AttributeColumns, offsets: inout [UInt32]
    ) throws {
        var found: [(row: Int, key: UInt32, type: UInt8, value: UInt64)] = []
        try self.visit(bytes, groupRows: n, stringCount: stringCount, key: nil, rowsBelow: range.upperBound) { row, key, type, value in
            if range.contains(row) { found.append((row, key, type, value)) }
        }
        // Rows in order; within a row, strings then others (as found), then implied ones.
        let lo = range.lowerBound
        var perRow = [[(key: UInt32, type: UInt8, value: UInt64)]](repeating: [], count: range.count)
        for e in found { perRow[e.row - lo].append((e.key, e.type, e.value)) }
        for e in implied where range.contains(e.row) { perRow[e.row - lo].append((e.key, e.type, e.value)) }
        for row in perRow {
            for e in row {
                attrs.keys.append(e.key)
                attrs.types.append(e.type)
                attrs.values.append(e.value)
            }
            offsets.append(UInt32(attrs.count))
        }
    }

    /// Reads a group's attribute section in place and reports every entry as (row, key, type, payload):
    /// the posting lists (strings) first, then the other values, each key in order. With `key`, only
    /// that key's entries are reported, and other keys' posting lists are skipped unread. With
    /// `rowsBelow`, a posting list is left at its first row at or past it (rows below may be reported
    /// as usual). Every row and ID read is checked.
    static func visit(
        _ bytes: [UInt8], groupRows n: Int, stringCount: Int, key wanted: UInt32?, rowsBelow below: Int = .max,
        _ body: (Int, UInt32, UInt8, UInt64) -> Void
    ) throws {
        try bytes.withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            let keys = try PackedView(&r)
            let valuesPerKey = try PackedView(&r)
            let valueDeltas = try PackedView(&r)
            let postingLengths = try PackedView(&r)
            let postingFirst = try PackedView(&r)
            let postingDeltas = try PackedView(&r)
            let othersPerKey = try PackedView(&r)
            let otherDeltas = try PackedView(&r)
            let types = try PackedView(&r)
            let ids = try PackedView(&r)
            let ints = try PackedView(&r)
            let doubleCount = try r.count(max: types.count)
            let doubles = try r.raw(doubleCount * 8)
            let bools = try PackedView(&r)
            guard valuesPerKey.count == keys.count, othersPerKey.count == keys.count, postingLengths.count == valueDeltas.count,
                postingFirst.count == valueDeltas.count, types.count == otherDeltas.count
            else { throw BlockFormatError("span.attributes columns disagree") }
            var v = 0, p = 0
            for k in 0..<keys.count {
                let key = keys[k]
                guard key < UInt64(stringCount) else { throw BlockFormatError("attribute key outside the dictionary") }
                let reported = wanted.map { UInt64($0) == key } ?? true
                var value: UInt64 = 0
                for _ in 0..<Int(valuesPerKey[k]) {
                    guard v < valueDeltas.count else { throw BlockFormatError("span.attributes columns disagree") }
                    let length = Int(postingLengths[v])
                    guard length >= 1 else { throw BlockFormatError("empty posting list") }
                    if !reported {
                        p += length - 1
                        v += 1
                        continue
                    }
                    value &+= valueDeltas[v]
                    guard value < UInt64(stringCount) else { throw BlockFormatError("attribute value outside the dictionary") }
                    var row = Int(truncatingIfNeeded: postingFirst[v])
                    for j in 0..<length {
                        if j > 0 {
                            guard p < postingDeltas.count else { throw BlockFormatError("span.attributes columns disagree") }
                            row += Int(truncatingIfNeeded: postingDeltas[p])
                            p += 1
                        }
                        guard row >= 0, row < n else { throw BlockFormatError("posting list row outside the group") }
                        // A list's rows ascend: the rest of it lies past the rows wanted.
                        if row >= below {
                            p += length - 1 - j
                            break
                        }
                        body(row, UInt32(key), ValueType.string.rawValue, value)
                    }
                    v += 1
                }
            }
            guard v == valueDeltas.count, p == postingDeltas.count else { throw BlockFormatError("span.attributes columns disagree") }
            // Other values: the typed payload streams are shared by all keys, so walk them in order.
            var o = 0, i = 0, j = 0, d = 0, b = 0
            for k in 0..<keys.count {
                let reported = wanted.map { UInt64($0) == keys[k] } ?? true
                var row = 0
                for _ in 0..<Int(othersPerKey[k]) {
                    guard o < otherDeltas.count else { throw BlockFormatError("span.attributes columns disagree") }
                    row += Int(truncatingIfNeeded: otherDeltas[o])
                    guard row >= 0, row < n else { throw BlockFormatError("attribute row outside the group") }
                    let type = UInt8(truncatingIfNeeded: types[o])
                    let value: UInt64
                    switch ValueType(rawValue: type) ?? .empty {
                    case .string, .array, .kvlist, .bytes:
                        guard i < ids.count else { throw BlockFormatError("attribute ID values run short") }
                        value = ids[i]
                        i += 1
                        guard value < UInt64(stringCount) else { throw BlockFormatError("attribute value ID \(value) outside the dictionary") }
                    case .int:
                        guard j < ints.count else { throw BlockFormatError("attribute integer values run short") }
                        value = UInt64(bitPattern: unzigzag(ints[j]))
                        j += 1
                    case .double:
                        guard d < doubleCount else { throw BlockFormatError("attribute double values run short") }
                        value = UInt64(littleEndian: doubles.loadUnaligned(fromByteOffset: d * 8, as: UInt64.self))
                        d += 1
                    case .bool:
                        guard b < bools.count else { throw BlockFormatError("attribute bool values run short") }
                        value = bools[b]
                        b += 1
                    case .empty:
                        value = 0
                    }
                    if reported { body(row, UInt32(keys[k]), type, value) }
                    o += 1
                }
            }
            guard o == otherDeltas.count else { throw BlockFormatError("span.attributes columns disagree") }
        }
    }

    /// Rows with string attribute `key` = `value`: the key's posting list, or for ID-like keys a scan
    /// of its (row, value) entries.
    func postings(key: UInt32, value: UInt32) -> [Int] {
        var v = 0, p = 0, o = 0
        for k in 0..<self.keys.count {
            let count = Int(self.valuesPerKey[k])
            let others = Int(self.othersPerKey[k])
            if self.keys[k] == UInt64(key) {
                var rows: [Int] = []
                for i in v..<(v + count) {
                    let length = Int(self.postingLengths[i])
                    if self.values[i] == UInt64(value) { rows = self.postingRows[p..<(p + length)].map { Int($0) } }
                    p += length
                }
                for i in o..<(o + others) where self.otherTypes[i] == ValueType.string.rawValue && self.otherValues[i] == UInt64(value) {
                    rows.append(Int(self.otherRows[i]))
                }
                return rows.sorted()
            }
            for i in v..<(v + count) { p += Int(self.postingLengths[i]) }
            v += count
            o += others
        }
        return []
    }

    /// Appends every row's attributes (grouped by key, strings first, then the `implied` ones restored
    /// from typed columns) to `attrs`, closing `offsets` per row. `implied` is in row order.
    func appendRows(_ range: Range<Int>, to attrs: inout AttributeColumns, offsets: inout [UInt32], implied: [(row: Int, key: UInt32, type: UInt8, value: UInt64)]) {
        // Rows are indexed within the range; entries of other rows are skipped.
        let lo = range.lowerBound
        let n = range.count
        var perRow = [UInt32](repeating: 0, count: n + 1)
        for r in self.postingRows where range.contains(Int(r)) { perRow[Int(r) - lo + 1] += 1 }
        for r in self.otherRows where range.contains(Int(r)) { perRow[Int(r) - lo + 1] += 1 }
        for e in implied where range.contains(e.row) { perRow[e.row - lo + 1] += 1 }
        for i in 0..<n { perRow[i + 1] += perRow[i] }
        let total = Int(perRow[n])
        let base = attrs.count
        var keys = [UInt32](repeating: 0, count: total)
        var types = [UInt8](repeating: 0, count: total)
        var values = [UInt64](repeating: 0, count: total)
        var cursor = perRow
        var v = 0, p = 0, o = 0
        for k in 0..<self.keys.count {
            let key = UInt32(self.keys[k])
            for _ in 0..<Int(self.valuesPerKey[k]) {
                for _ in 0..<Int(self.postingLengths[v]) {
                    let row = Int(self.postingRows[p]) - lo
                    p += 1
                    guard row >= 0 && row < n else { continue }
                    let at = Int(cursor[row])
                    keys[at] = key
                    types[at] = ValueType.string.rawValue
                    values[at] = self.values[v]
                    cursor[row] += 1
                }
                v += 1
            }
        }
        // Other values come after each row's string values (entries per key keep their order).
        for k in 0..<self.keys.count {
            let key = UInt32(self.keys[k])
            for _ in 0..<Int(self.othersPerKey[k]) {
                let row = Int(self.otherRows[o]) - lo
                o += 1
                guard row >= 0 && row < n else { continue }
                let at = Int(cursor[row])
                keys[at] = key
                types[at] = self.otherTypes[o - 1]
                values[at] = self.otherValues[o - 1]
                cursor[row] += 1
            }
        }
        for e in implied where range.contains(e.row) {
            let row = e.row - lo
            let at = Int(cursor[row])
            keys[at] = e.key
            types[at] = e.type
            values[at] = e.value
            cursor[row] += 1
        }
        attrs.keys += keys
        attrs.types += types
        attrs.values += values
        if n > 0 { for i in 1...n { offsets.append(UInt32(base) + perRow[i]) } }
    }
}

/// A Bloom filter over trace IDs (k probes taken from the ID's own random bits); each row group of a
/// block has one, so a trace lookup decodes only groups that may hold it.
public struct TraceBloom: Sendable, Equatable {
    public private(set) var bits: [UInt64]
    public static let probes = 7

    /// About `bitsPerTrace` bits per trace (10 gives about 1% false positives).
    public init(capacity: Int, bitsPerTrace: Int = 10) {
        let words = max(1, (capacity * bitsPerTrace + 63) / 64)
        self.bits = [UInt64](repeating: 0, count: words)
    }

    public init(words: [UInt64]) { self.bits = words.isEmpty ? [0] : words }

    @inline(__always) private func forEachPosition(_ id: TraceID, _ body: (Int) -> Bool) -> Bool {
        let m = UInt64(self.bits.count * 64)
        var h1 = id.high ^ (id.low &* 0x9E37_79B9_7F4A_7C15)
        let h2 = (id.low ^ (id.high >> 17)) | 1
        for _ in 0..<Self.probes {
            if !body(Int(h1 % m)) { return false }
            h1 = h1 &+ h2
        }
        return true
    }

    public mutating func insert(_ id: TraceID) {
        var positions: [Int] = []
        _ = self.forEachPosition(id) {
            positions.append($0)
            return true
        }
        for p in positions { self.bits[p >> 6] |= 1 << UInt64(p & 63) }
    }

    public func mayContain(_ id: TraceID) -> Bool {
        self.forEachPosition(id) { self.bits[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 }
    }
}

/// A Bloom filter over every trace of a block, kept in memory only. Cache-line blocked: a trace's
/// probes all fall in one 512-bit block, so a check costs one cache miss; a power-of-two number of
/// bits (10 to 20 per trace, about 1% false positives or fewer), so the block is found by a mask.
public struct BlockTraceFilter: Sendable {
    private var bits: [UInt64]
    /// Blocks − 1.
    private let mask: UInt64

    init(traces: Int) {
        var words = 8
        while words * 64 < max(1, traces) * 10 { words <<= 1 }
        self.bits = [UInt64](repeating: 0, count: words)
        self.mask = UInt64(words / 8 - 1)
    }

    /// Memory the filter takes.
    var bytes: Int { self.bits.count * 8 }

    /// The first word of the trace's block, and its probes' bit positions (9 bits each) in `h`.
    @inline(__always) private func place(_ id: TraceID) -> (base: Int, h: UInt64) {
        let h1 = id.high ^ (id.low &* 0x9E37_79B9_7F4A_7C15)
        // The positions within the block from h1 mixed, so they do not echo the bits that chose it.
        return (Int(h1 & self.mask) << 3, (h1 ^ (h1 >> 31)) &* 0xBF58_476D_1CE4_E5B9)
    }

    mutating func insert(_ id: TraceID) {
        var (base, h) = self.place(id)
        for _ in 0..<TraceBloom.probes {
            let p = Int(h & 511)
            self.bits[base + (p >> 6)] |= 1 << UInt64(p & 63)
            h >>= 9
        }
    }

    public func mayContain(_ id: TraceID) -> Bool {
        var (base, h) = self.place(id)
        for _ in 0..<TraceBloom.probes {
            let p = Int(h & 511)
            if self.bits[base + (p >> 6)] & (1 << UInt64(p & 63)) == 0 { return false }
            h >>= 9
        }
        return true
    }
}
