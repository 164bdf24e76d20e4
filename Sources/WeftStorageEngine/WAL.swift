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
    private var frame: [UInt8] = []

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
                    try body(payload)
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

    /// Appends records (one write for all of them); not durable until ``sync()``.
    public func append(_ records: some Sequence<[UInt8]>) throws {
        precondition(self.replayed, "WAL.replay must run before appending")
        self.frame.removeAll(keepingCapacity: true)
        if self.currentSegment == 0 || self.currentSize >= self.configuration.segmentSize {
            try self.rollSegment()
        }
        for record in records {
            let length = UInt32(record.count)
            let crc = CRC32C.checksum(record)
            withUnsafeBytes(of: length.littleEndian) { self.frame.append(contentsOf: $0) }
            withUnsafeBytes(of: crc.littleEndian) { self.frame.append(contentsOf: $0) }
            self.frame.append(contentsOf: record)
        }
        let path = self.path(self.currentSegment)
        do {
            try self.frame.withUnsafeBytes { try self.disk.append(path, $0) }
        } catch {
            // Cut off whatever part of the frame reached the file, so later records follow good ones.
            try? self.disk.truncate(path, to: self.currentSize)
            throw error
        }
        self.currentSize += self.frame.count
    }

    /// Makes all appended records durable.
    public func sync() throws {
        guard self.currentSegment != 0 else { return }
        try self.disk.sync(self.path(self.currentSegment))
    }

    private func rollSegment() throws {
        if self.currentSegment != 0 { try self.disk.sync(self.path(self.currentSegment)) }
        self.currentSegment += 1
        let path = self.path(self.currentSegment)
        try WAL.header.withUnsafeBytes { try self.disk.append(path, $0) }
        try self.disk.sync(path)
        try self.disk.syncDirectory(self.directory)
        self.currentSize = WAL.header.count
    }
}
