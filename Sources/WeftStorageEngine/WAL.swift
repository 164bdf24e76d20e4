/// The write-ahead log: numbered segment files of framed records.
///
/// Segment layout: an 8-byte header `WEFTWAL1`, then records of
/// `[length: UInt32 LE][crc32c(payload): UInt32 LE][payload]`. Replay reads segments in order and stops
/// at the first record that is torn or fails its checksum; that tail is cut off so new records follow
/// the last good one. The log is not thread-safe: one owner (the group-commit loop) drives it.
public final class WAL {
    public static let header: [UInt8] = Array("WEFTWAL1".utf8)
    public static let frameOverhead = 8
    /// Largest payload accepted (a bigger length field means a corrupt frame).
    public static let maxRecordSize = 1 << 30

    public struct Configuration: Sendable {
        /// Start a new segment once the current one is this large.
        public var segmentSize: Int
        public init(segmentSize: Int = 128 << 20) { self.segmentSize = segmentSize }
    }

    /// What replay found.
    public struct ReplayReport: Sendable, Equatable {
        public var segments = 0
        public var records = 0
        public var bytes = 0
        /// Set when a torn or corrupt tail was cut off: the segment and the offset of the bad record.
        public var truncatedTail: (segment: String, offset: Int, droppedBytes: Int)? = nil

        public static func == (a: ReplayReport, b: ReplayReport) -> Bool {
            a.segments == b.segments && a.records == b.records && a.bytes == b.bytes
                && a.truncatedTail?.segment == b.truncatedTail?.segment
                && a.truncatedTail?.offset == b.truncatedTail?.offset
                && a.truncatedTail?.droppedBytes == b.truncatedTail?.droppedBytes
        }
    }

    public let disk: any Disk
    public let directory: String
    public let configuration: Configuration
    private var currentSegment: Int = 0
    private var currentSize: Int = 0
    private var replayed = false
    /// Segments up to this number may be named by blocks; new records never go there.
    private var floor: Int = 0

    public init(disk: any Disk, directory: String, configuration: Configuration = Configuration()) {
        self.disk = disk
        self.directory = directory
        self.configuration = configuration
    }

    /// Segment numbers present, ascending.
    public func segments() throws -> [Int] {
        guard self.disk.exists(self.directory) else { return [] }
        return try self.disk.list(self.directory).compactMap { name in
            guard name.hasSuffix(".wal") else { return nil }
            return Int(name.dropLast(4))
        }.sorted()
    }

    func path(_ segment: Int) -> String {
        let digits = String(segment)
        return self.directory + "/" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits + ".wal"
    }

    /// Reads every record in order and calls `body` with its payload; cuts off a torn tail.
    /// Must be called once before the first append.
    @discardableResult
    public func replay(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> ReplayReport {
        try self.replay { _, payload in try body(payload) }
    }

    /// Like ``replay(_:)``, also passing each record's segment number.
    @discardableResult
    public func replay(_ body: (Int, UnsafeRawBufferPointer) throws -> Void) throws -> ReplayReport {
        try self.disk.makeDirectory(self.directory)
        var report = ReplayReport()
        let segments = try self.segments()
        var stop = false
        for segment in segments {
            let path = self.path(segment)
            if stop {
                // Everything after a corrupt record is unreachable history; drop it.
                try self.disk.remove(path)
                continue
            }
            let bytes = try self.disk.read(path)
            report.segments += 1
            var good = 0
            try bytes.withUnsafeBytes { raw in
                if raw.count < WAL.header.count || !WAL.header.elementsEqual(raw[0..<WAL.header.count]) {
                    good = 0
                    return
                }
                var pos = WAL.header.count
                good = pos
                while pos + WAL.frameOverhead <= raw.count {
                    let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: pos, as: UInt32.self)))
                    let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: pos + 4, as: UInt32.self))
                    let start = pos + WAL.frameOverhead
                    guard length <= WAL.maxRecordSize, start + length <= raw.count else { break }
                    let payload = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    guard CRC32C.checksum(payload) == crc else { break }
                    try body(segment, payload)
                    report.records += 1
                    report.bytes += length
                    pos = start + length
                    good = pos
                }
            }
            if good < bytes.count {
                report.truncatedTail = (segment: path, offset: good, droppedBytes: bytes.count - good)
                if good == 0 {
                    try self.disk.remove(path)
                    try self.disk.syncDirectory(self.directory)
                } else {
                    try self.disk.truncate(path, to: good)
                    try self.disk.sync(path)
                }
                stop = true
            }
            if good > 0 {
                self.currentSegment = segment
                self.currentSize = good
            }
        }
        if stop { try self.disk.syncDirectory(self.directory) }
        self.replayed = true
        return report
    }

    /// Frames a payload: `[length][crc32c][payload]`. Callers may frame on their own threads so the
    /// log's single writer only writes.
    public static func frame(_ payload: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: payload.count + frameOverhead) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.storeBytes(of: UInt32(payload.count).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: CRC32C.checksum(payload).littleEndian, toByteOffset: 4, as: UInt32.self)
            if let base = payload.baseAddress, payload.count > 0 {
                (raw.baseAddress! + frameOverhead).copyMemory(from: base, byteCount: payload.count)
            }
            count = payload.count + frameOverhead
        }
    }

    /// Appends payload records; not durable until ``sync()``.
    public func append(_ records: some Sequence<[UInt8]>) throws {
        try self.append(framed: records.map { r in r.withUnsafeBytes { WAL.frame($0) } })
    }

    /// The segment new records go to (0 before the first append).
    public var current: Int { self.currentSegment }

    /// Whether the current segment holds any record.
    public var currentHasRecords: Bool { self.currentSegment != 0 && self.currentSize > WAL.header.count }

    /// Makes sure new records go to segments numbered above `segment` (segments that blocks name as
    /// their source are never reused, even if the log's files were lost).
    public func reserveThrough(_ segment: Int) {
        self.floor = max(self.floor, segment)
    }

    /// Appends records already framed with ``frame(_:)``, in one `writev`; not durable until ``sync()``.
    /// Returns the segment they went to.
    @discardableResult
    public func append(framed records: [[UInt8]]) throws -> Int {
        precondition(self.replayed, "WAL.replay must run before appending")
        if self.currentSegment == 0 || self.currentSegment <= self.floor || self.currentSize >= self.configuration.segmentSize {
            try self.rollSegment()
        }
        let path = self.path(self.currentSegment)
        do {
            try self.disk.append(path, contentsOf: records)
        } catch {
            // Cut off whatever part of the records reached the file, so later records follow good ones.
            try? self.disk.truncate(path, to: self.currentSize)
            throw error
        }
        self.currentSize += records.reduce(0) { $0 + $1.count }
        return self.currentSegment
    }

    /// Closes the current segment (if it holds records) so the next append starts a new one; the closed
    /// segment can then be flushed to blocks and removed.
    public func roll() throws {
        precondition(self.replayed, "WAL.replay must run before rolling")
        guard self.currentHasRecords else { return }
        try self.rollSegment()
    }

    /// Removes a closed segment whose records are all in durable blocks.
    public func remove(segment: Int) throws {
        precondition(segment != self.currentSegment, "the current WAL segment cannot be removed")
        let path = self.path(segment)
        guard self.disk.exists(path) else { return }
        try self.disk.remove(path)
        try self.disk.syncDirectory(self.directory)
    }

    /// Makes all appended records durable.
    public func sync() throws {
        guard self.currentSegment != 0 else { return }
        try self.disk.sync(self.path(self.currentSegment))
    }

    private func rollSegment() throws {
        if self.currentSegment != 0 { try self.disk.sync(self.path(self.currentSegment)) }
        self.currentSegment = max(self.currentSegment, self.floor) + 1
        let path = self.path(self.currentSegment)
        try WAL.header.withUnsafeBytes { try self.disk.append(path, $0) }
        try self.disk.sync(path)
        try self.disk.syncDirectory(self.directory)
        self.currentSize = WAL.header.count
    }
}
