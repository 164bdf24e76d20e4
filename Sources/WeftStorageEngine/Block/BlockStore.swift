import Synchronization
import WeftModel

/// What the store knows about a block without reading its data.
public struct BlockMeta: Sendable, Equatable {
    public var id: UInt64
    public var org: String
    /// The replica set the data was written to (one value on a single node).
    public var placement: String
    public var formatVersion: Int
    public var spans: Int
    public var traces: Int
    public var minStart: UInt64
    public var maxStart: UInt64
    /// Size of the data file.
    public var bytes: Int
    /// 0 for a block flushed from the head; compaction output is one more than its highest input.
    public var level: Int
    /// WAL segments whose records of this org the block holds (so replay after a crash skips them).
    public var sources: [UInt64]
    /// Blocks this one replaces (compaction inputs); if both survive a crash, the inputs are deleted.
    public var replaces: [UInt64]

    public init(
        id: UInt64, org: String, placement: String, formatVersion: Int = BlockCodec.version, spans: Int, traces: Int = 0,
        minStart: UInt64, maxStart: UInt64, bytes: Int, level: Int = 0, sources: [UInt64] = [], replaces: [UInt64] = []
    ) {
        self.id = id
        self.org = org
        self.placement = placement
        self.formatVersion = formatVersion
        self.spans = spans
        self.traces = traces
        self.minStart = minStart
        self.maxStart = maxStart
        self.bytes = bytes
        self.level = level
        self.sources = sources
        self.replaces = replaces
    }

    static let magic: [UInt8] = Array("WEFTMET2".utf8)

    /// Largest org or placement a meta file can hold, and most sources or replaced blocks: the same
    /// bounds ``decode(_:)`` enforces, so every meta written can be read back.
    static let maxNameBytes = 1 << 16
    static let maxListCount = 1 << 20

    func encoded() throws -> [UInt8] {
        guard self.org.utf8.count <= Self.maxNameBytes, self.placement.utf8.count <= Self.maxNameBytes else {
            throw BlockFormatError("block meta: org or placement longer than \(Self.maxNameBytes) bytes")
        }
        guard self.sources.count <= Self.maxListCount, self.replaces.count <= Self.maxListCount else {
            throw BlockFormatError("block meta: more than \(Self.maxListCount) sources or replaced blocks")
        }
        var w = ByteWriter()
        w.raw(Self.magic)
        w.varint(self.id)
        w.varint(UInt64(self.org.utf8.count))
        w.raw(Array(self.org.utf8))
        w.varint(UInt64(self.placement.utf8.count))
        w.raw(Array(self.placement.utf8))
        w.varint(UInt64(self.formatVersion))
        w.varint(UInt64(self.spans))
        w.varint(UInt64(self.traces))
        w.fixed64(self.minStart)
        w.fixed64(self.maxStart)
        w.varint(UInt64(self.bytes))
        w.varint(UInt64(self.level))
        w.varint(UInt64(self.sources.count))
        for s in self.sources { w.varint(s) }
        w.varint(UInt64(self.replaces.count))
        for r in self.replaces { w.varint(r) }
        let crc = w.bytes.withUnsafeBytes { CRC32C.checksum($0) }
        w.fixed32(crc)
        return w.bytes
    }

    /// Parses and checks a meta file's bytes.
    public static func parse(_ bytes: [UInt8]) throws -> BlockMeta { try decode(bytes) }

    static func decode(_ bytes: [UInt8]) throws -> BlockMeta {
        guard bytes.count > magic.count + 4, magic.elementsEqual(bytes[0..<magic.count]) else {
            throw BlockFormatError("not a block meta file")
        }
        return try bytes.withUnsafeBytes { raw throws -> BlockMeta in
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
            let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self))
            guard CRC32C.checksum(body) == crc else { throw BlockFormatError("block meta checksum mismatch") }
            var r = ByteReader(body, at: magic.count)
            let id = try r.varint()
            let org = String(decoding: try r.raw(try r.count(max: maxNameBytes)), as: UTF8.self)
            let placement = String(decoding: try r.raw(try r.count(max: maxNameBytes)), as: UTF8.self)
            let formatVersion = try r.count(max: 1000)
            let spans = try r.count()
            let traces = try r.count()
            let minStart = try r.fixed64()
            let maxStart = try r.fixed64()
            let size = try r.count(max: 1 << 40)
            let level = try r.count(max: 64)
            var sources: [UInt64] = []
            for _ in 0..<(try r.count(max: maxListCount)) { sources.append(try r.varint()) }
            var replaces: [UInt64] = []
            for _ in 0..<(try r.count(max: maxListCount)) { replaces.append(try r.varint()) }
            return BlockMeta(
                id: id, org: org, placement: placement, formatVersion: formatVersion, spans: spans, traces: traces,
                minStart: minStart, maxStart: maxStart, bytes: size, level: level, sources: sources, replaces: replaces
            )
        }
    }
}

/// Immutable block files in one directory, written so that a crash at any point leaves either the
/// whole block or none of it visible.
///
/// Protocol: data to `<id>.block.tmp`, fsync, rename to `<id>.block`; meta to `<id>.meta.tmp`, fsync,
/// rename to `<id>.meta`; fsync the directory. A block is visible only through its meta file. On open,
/// temporary files and data files without a meta are deleted, and blocks replaced by a complete
/// compacted block are removed. Writes and removals need one owner; ``reader(_:)`` may be called
/// from any thread (readers are cached, at most ``readerCacheSize``).
public final class BlockStore: @unchecked Sendable {
    public let disk: any Disk
    public let directory: String
    private let nextID = Mutex<UInt64>(1)
    private let readers = Mutex<(entries: [UInt64: BlockReader], order: [UInt64])>(([:], []))
    /// Open readers kept (each holds a block's directory, group summary, Bloom filters and dictionary pages).
    public var readerCacheSize = 64
    private let quarantine = Mutex<[UInt64: String]>([:])

    /// Takes a block whose data failed to read or verify out of service (its files stay for inspection).
    public func quarantine(_ meta: BlockMeta, _ error: any Error) {
        self.quarantine.withLock { $0[meta.id] = "\(error)" }
        self.columnCache.remove(block: meta.id)
        self.forgetTraceFilter(meta.id)
        self.readers.withLock { c in
            c.entries.removeValue(forKey: meta.id)
            c.order.removeAll { $0 == meta.id }
        }
    }

    /// Blocks taken out of service, with the reason.
    public var quarantined: [UInt64: String] { self.quarantine.withLock { $0 } }

    public func isQuarantined(_ id: UInt64) -> Bool { self.quarantine.withLock { $0[id] != nil } }

    /// Decoded scan columns shared by queries.
    public let columnCache: ColumnCache

    /// Block-wide trace filters (see ``mayHold(_:in:_:)``), oldest first, and their total bytes.
    private let traceFilters = Mutex<(filters: [UInt64: BlockTraceFilter], order: [UInt64], bytes: Int)>(([:], [], 0))
    /// Memory the block-wide trace filters may take (about 2 bytes per trace).
    public var traceFilterBytes = 256 << 20

    /// Whether block `meta` may hold `trace`, by its block-wide filter, built on first use and kept
    /// (apart from the reader, which the reader cache may drop) until the block is removed or the
    /// filters outgrow ``traceFilterBytes``.
    /// `reader` is called only to build the filter; without a reader (nil) the block may hold it.
    public func mayHold(_ trace: TraceID, in meta: BlockMeta, _ reader: () throws -> BlockReader?) throws -> Bool {
        try self.traceFilter(meta, reader)?.mayContain(trace) ?? true
    }

    /// Block `meta`'s block-wide trace filter (see ``mayHold(_:in:_:)``), for asking it about many
    /// traces at once; nil without a reader.
    public func traceFilter(_ meta: BlockMeta, _ reader: () throws -> BlockReader?) throws -> BlockTraceFilter? {
        if let filter = self.traceFilters.withLock({ $0.filters[meta.id] }) { return filter }
        guard let filter = try reader()?.traceFilter() else { return nil }
        self.traceFilters.withLock { c in
            guard c.filters.updateValue(filter, forKey: meta.id) == nil else { return }
            c.order.append(meta.id)
            c.bytes += filter.bytes
            while c.bytes > self.traceFilterBytes, c.order.count > 1 {
                c.bytes -= c.filters.removeValue(forKey: c.order.removeFirst())?.bytes ?? 0
            }
        }
        return filter
    }

    private func forgetTraceFilter(_ id: UInt64) {
        self.traceFilters.withLock { c in
            guard let filter = c.filters.removeValue(forKey: id) else { return }
            c.order.removeAll { $0 == id }
            c.bytes -= filter.bytes
        }
    }

    public init(disk: any Disk, directory: String, columnCacheBytes: Int = ColumnCache.defaultCapacityBytes) {
        self.disk = disk
        self.directory = directory
        self.columnCache = ColumnCache(capacityBytes: columnCacheBytes)
    }

    /// One scan column of a block's row group, through the column cache.
    public func column(_ meta: BlockMeta, _ reader: BlockReader, group: Int, _ column: ScanColumn) throws -> ColumnValues {
        try self.columnCache.values(ColumnCache.Key(block: meta.id, group: group, column: column)) {
            try reader.scanColumn(group, column)
        }
    }

    /// What ``open()`` found.
    public struct OpenReport: Sendable, Equatable {
        public var blocks: [BlockMeta]
        /// Leftovers of interrupted writes, compactions or removals, deleted.
        public var removedFiles: [String]
        /// Blocks whose meta did not verify (kept on disk, not served).
        public var corrupt: [String]
    }

    func path(_ id: UInt64, _ suffix: String) -> String {
        let digits = String(id)
        return self.directory + "/" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + suffix
    }

    /// Path of a block's data file.
    public func dataPath(_ meta: BlockMeta) -> String { self.path(meta.id, ".block") }

    private func bumpNextID(_ id: UInt64) { self.nextID.withLock { $0 = max($0, id + 1) } }

    /// Lists complete blocks by their meta files only (no data is read) and cleans up leftovers.
    public func open() throws -> OpenReport {
        try self.disk.makeDirectory(self.directory)
        let names = try self.disk.list(self.directory)
        var blocks: [BlockMeta] = []
        var removed: [String] = []
        var corrupt: [String] = []
        var metaIDs = Set<String>()
        for name in names where name.hasSuffix(".meta") {
            let stem = String(name.dropLast(5))
            do {
                let meta = try BlockMeta.decode(try self.disk.read(self.directory + "/" + name))
                guard self.disk.exists(self.directory + "/" + stem + ".block") else {
                    corrupt.append(name)
                    continue
                }
                blocks.append(meta)
                metaIDs.insert(stem)
                self.bumpNextID(meta.id)
            } catch {
                corrupt.append(name)
                metaIDs.insert(stem)
            }
        }
        for name in names {
            let isTemp = name.hasSuffix(".tmp")
            let orphan = name.hasSuffix(".block") && !metaIDs.contains(String(name.dropLast(6)))
            if isTemp || orphan {
                try self.disk.remove(self.directory + "/" + name)
                removed.append(name)
            }
            if let id = UInt64(name.prefix { $0.isNumber }) { self.bumpNextID(id) }
        }
        if !removed.isEmpty { try self.disk.syncDirectory(self.directory) }
        // A compaction that crashed after its output became visible: finish removing its inputs.
        let replaced = Set(blocks.flatMap(\.replaces))
        for meta in blocks where replaced.contains(meta.id) {
            try self.remove(meta)
            removed.append(String(self.path(meta.id, ".meta").split(separator: "/").last!))
        }
        blocks.removeAll { replaced.contains($0.id) }
        return OpenReport(blocks: blocks.sorted { $0.id < $1.id }, removedFiles: removed.sorted(), corrupt: corrupt.sorted())
    }

    /// Encodes and writes a block atomically; returns its meta once it is durable and visible.
    public func write(
        _ batch: SpanBatch, org: String, placement: String, sources: [UInt64] = [], replaces: [UInt64] = [], level: Int = 0,
        options: BlockCodec.Options = BlockCodec.Options()
    ) throws -> BlockMeta {
        let id = self.nextID.withLock { id in
            defer { id += 1 }
            return id
        }
        let (bytes, summary) = BlockCodec.encodeWithSummary(batch, options: options)
        let meta = BlockMeta(
            id: id, org: org, placement: placement, formatVersion: BlockCodec.version, spans: summary.spans, traces: summary.traces,
            minStart: summary.minStart, maxStart: summary.maxStart, bytes: bytes.count, level: level, sources: sources, replaces: replaces
        )
        // Encoded first: a meta that could not be read back is refused before any file is written.
        let metaBytes = try meta.encoded()
        try self.writeFile(self.path(id, ".block"), bytes)
        try self.writeFile(self.path(id, ".meta"), metaBytes)
        try self.disk.syncDirectory(self.directory)
        return meta
    }

    private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let temp = path + ".tmp"
        if self.disk.exists(temp) { try self.disk.remove(temp) }
        do {
            try bytes.withUnsafeBytes { try self.disk.append(temp, $0) }
            try self.disk.sync(temp)
        } catch {
            // Do not leave a partial file behind (e.g. after ENOSPC); open() would remove it too.
            try? self.disk.remove(temp)
            throw error
        }
        try self.disk.rename(temp, to: path)
    }

    /// A cached random-access reader of a block.
    public func reader(_ meta: BlockMeta) throws -> BlockReader {
        if let r = self.readers.withLock({ c -> BlockReader? in
            guard let r = c.entries[meta.id] else { return nil }
            if let i = c.order.firstIndex(of: meta.id) { c.order.remove(at: i) }
            c.order.append(meta.id)
            return r
        }) { return r }
        let reader = try BlockReader(source: try DiskBlockSource(disk: self.disk, path: self.path(meta.id, ".block")))
        self.readers.withLock { c in
            if c.entries.updateValue(reader, forKey: meta.id) == nil { c.order.append(meta.id) }
            while c.order.count > self.readerCacheSize { c.entries.removeValue(forKey: c.order.removeFirst()) }
        }
        return reader
    }

    /// Reads and decodes a block's data, verifying every checksum it reads.
    public func read(_ meta: BlockMeta) throws -> SpanBatch {
        try BlockReader(source: try DiskBlockSource(disk: self.disk, path: self.path(meta.id, ".block"))).decodeAll()
    }

    /// The spans of a trace across `blocks` (each as a compact batch). A block that fails to read is
    /// quarantined and skipped.
    public func findTrace(_ id: TraceID, in blocks: [BlockMeta]) throws -> [SpanBatch] {
        var found: [SpanBatch] = []
        for meta in blocks where !self.isQuarantined(meta.id) {
            do {
                if let batch = try self.reader(meta).trace(id) { found.append(batch) }
            } catch {
                self.quarantine(meta, error)
            }
        }
        return found
    }

    /// Removes a block: meta first (so it stops being visible), then data.
    public func remove(_ meta: BlockMeta) throws {
        self.columnCache.remove(block: meta.id)
        self.forgetTraceFilter(meta.id)
        self.readers.withLock { c in
            c.entries.removeValue(forKey: meta.id)
            c.order.removeAll { $0 == meta.id }
        }
        try self.disk.remove(self.path(meta.id, ".meta"))
        try self.disk.syncDirectory(self.directory)
        try self.disk.remove(self.path(meta.id, ".block"))
        try self.disk.syncDirectory(self.directory)
    }
}
