import WeftModel

/// What the store knows about a block without reading its data.
public struct BlockMeta: Sendable, Equatable {
    public var id: UInt64
    public var org: String
    /// The replica set the data was written to (one value on a single node).
    public var placement: String
    public var formatVersion: Int
    public var spans: Int
    public var minStart: UInt64
    public var maxStart: UInt64
    /// Size of the data file.
    public var bytes: Int
    /// The block's trace IDs, so lookups skip blocks that cannot hold a trace.
    public var traces: TraceBloom

    public init(
        id: UInt64, org: String, placement: String, formatVersion: Int, spans: Int, minStart: UInt64, maxStart: UInt64, bytes: Int,
        traces: TraceBloom = TraceBloom(capacity: 1)
    ) {
        self.traces = traces
        self.id = id
        self.org = org
        self.placement = placement
        self.formatVersion = formatVersion
        self.spans = spans
        self.minStart = minStart
        self.maxStart = maxStart
        self.bytes = bytes
    }

    static let magic: [UInt8] = Array("WEFTMETA".utf8)

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.raw(Self.magic)
        w.varint(self.id)
        w.varint(UInt64(self.org.utf8.count))
        w.raw(Array(self.org.utf8))
        w.varint(UInt64(self.placement.utf8.count))
        w.raw(Array(self.placement.utf8))
        w.varint(UInt64(self.formatVersion))
        w.varint(UInt64(self.spans))
        w.fixed64(self.minStart)
        w.fixed64(self.maxStart)
        w.varint(UInt64(self.bytes))
        w.varint(UInt64(self.traces.bits.count))
        for word in self.traces.bits { w.fixed64(word) }
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
            let org = String(decoding: try r.raw(try r.count(max: 1 << 16)), as: UTF8.self)
            let placement = String(decoding: try r.raw(try r.count(max: 1 << 16)), as: UTF8.self)
            let formatVersion = try r.count(max: 1000)
            let spans = try r.count()
            let minStart = try r.fixed64()
            let maxStart = try r.fixed64()
            let size = try r.count(max: 1 << 40)
            let words = try r.count(max: 1 << 24)
            var bloom: [UInt64] = []
            bloom.reserveCapacity(words)
            for _ in 0..<words { bloom.append(try r.fixed64()) }
            return BlockMeta(
                id: id, org: org, placement: placement, formatVersion: formatVersion, spans: spans,
                minStart: minStart, maxStart: maxStart, bytes: size, traces: TraceBloom(words: bloom)
            )
        }
    }
}

/// Immutable block files in one directory, written so that a crash at any point leaves either the
/// whole block or none of it visible.
///
/// Protocol: data to `<id>.block.tmp`, fsync, rename to `<id>.block`; meta to `<id>.meta.tmp`, fsync,
/// rename to `<id>.meta`; fsync the directory. A block is visible only through its meta file; on open,
/// temporary files and data files without a meta are deleted. Not thread-safe: one owner drives it.
public final class BlockStore {
    public let disk: any Disk
    public let directory: String
    private var nextID: UInt64 = 1

    public init(disk: any Disk, directory: String) {
        self.disk = disk
        self.directory = directory
    }

    /// What ``open()`` found.
    public struct OpenReport: Sendable, Equatable {
        public var blocks: [BlockMeta]
        /// Leftovers of interrupted writes or removals, deleted.
        public var removedFiles: [String]
        /// Blocks whose meta did not verify (kept on disk, not served).
        public var corrupt: [String]
    }

    private func path(_ id: UInt64, _ suffix: String) -> String {
        let digits = String(id)
        return self.directory + "/" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + suffix
    }

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
                self.nextID = max(self.nextID, meta.id + 1)
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
            if let id = UInt64(name.prefix { $0.isNumber }) { self.nextID = max(self.nextID, id + 1) }
        }
        if !removed.isEmpty { try self.disk.syncDirectory(self.directory) }
        return OpenReport(blocks: blocks.sorted { $0.id < $1.id }, removedFiles: removed.sorted(), corrupt: corrupt.sorted())
    }

    /// Encodes and writes a block atomically; returns its meta once it is durable and visible.
    public func write(_ batch: SpanBatch, org: String, placement: String, options: BlockCodec.Options = BlockCodec.Options()) throws -> BlockMeta {
        let id = self.nextID
        self.nextID += 1
        let (bytes, _) = BlockCodec.encode(batch, options: options)
        var bloom = TraceBloom(capacity: batch.spanCount)
        for row in 0..<batch.spanCount { bloom.insert(batch.traceID(row)) }
        let meta = BlockMeta(
            id: id, org: org, placement: placement, formatVersion: BlockCodec.version, spans: batch.spanCount,
            minStart: batch.startTime.min() ?? 0, maxStart: batch.startTime.max() ?? 0, bytes: bytes.count, traces: bloom
        )
        try self.writeFile(self.path(id, ".block"), bytes)
        try self.writeFile(self.path(id, ".meta"), meta.encoded())
        try self.disk.syncDirectory(self.directory)
        return meta
    }

    private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let temp = path + ".tmp"
        if self.disk.exists(temp) { try self.disk.remove(temp) }
        try bytes.withUnsafeBytes { try self.disk.append(temp, $0) }
        try self.disk.sync(temp)
        try self.disk.rename(temp, to: path)
    }

    /// Reads and decodes a block's data, verifying every checksum.
    public func read(_ meta: BlockMeta) throws -> SpanBatch {
        let bytes = try self.disk.read(self.path(meta.id, ".block"))
        return try bytes.withUnsafeBytes { try BlockCodec.decode($0) }
    }

    /// Raw bytes of a block's data file.
    public func data(_ meta: BlockMeta) throws -> [UInt8] { try self.disk.read(self.path(meta.id, ".block")) }

    /// The spans of a trace across `blocks`, opening only those whose Bloom filter may hold it.
    public func findTrace(_ id: TraceID, in blocks: [BlockMeta]) throws -> [SpanBatch] {
        var found: [SpanBatch] = []
        for meta in blocks where meta.traces.mayContain(id) {
            if let batch = try BlockReader(bytes: self.data(meta)).trace(id) { found.append(batch) }
        }
        return found
    }

    /// Removes a block: meta first (so it stops being visible), then data.
    public func remove(_ meta: BlockMeta) throws {
        try self.disk.remove(self.path(meta.id, ".meta"))
        try self.disk.syncDirectory(self.directory)
        try self.disk.remove(self.path(meta.id, ".block"))
        try self.disk.syncDirectory(self.directory)
    }
}
