import WeftModel

/// Random access to one block: the section directory is parsed up front, sections are checked and
/// decompressed only when a query needs them, and a trace is found by binary search over the sorted
/// trace IDs, decoding only its rows.
public final class BlockReader {
    private let bytes: [UInt8]
    private var directory: [String: BlockCodec.SectionEntry] = [:]
    private var cache: [String: [UInt8]] = [:]

    /// Parses the section directory of a block (no section is decompressed yet).
    public init(bytes: [UInt8]) throws {
        self.bytes = bytes
        for e in try bytes.withUnsafeBytes({ try BlockCodec.directory($0) }) { self.directory[e.name] = e }
    }

    /// A section's bytes, checked and decompressed once.
    public func section(_ name: String) throws -> [UInt8] {
        if let cached = self.cache[name] { return cached }
        guard let e = self.directory[name] else { throw BlockFormatError("block lacks section '\(name)'") }
        let data = try self.bytes.withUnsafeBytes { try BlockCodec.payload($0, e) }
        self.cache[name] = data
        return data
    }

    /// Row range of a trace, or nil if the block does not hold it (binary search over sorted IDs).
    public func rows(of trace: TraceID) throws -> Range<Int>? {
        let ids = try self.section("trace.id")
        let spans = try self.section("trace.spans")
        return try ids.withUnsafeBytes { raw throws -> Range<Int>? in
            var r = ByteReader(raw)
            let count = try r.count()
            let base = r.position
            guard raw.count - base >= count * 16 else { throw BlockFormatError("trace.id is truncated") }
            func id(_ i: Int) -> TraceID {
                TraceID(high: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + i * 16, as: UInt64.self)),
                        low: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + i * 16 + 8, as: UInt64.self)))
            }
            var lo = 0
            var hi = count
            while lo < hi {
                let mid = (lo + hi) / 2
                if id(mid) < trace { lo = mid + 1 } else { hi = mid }
            }
            guard lo < count, id(lo) == trace else { return nil }
            let perTrace = try spans.withUnsafeBytes { s throws -> [UInt64] in
                var sr = ByteReader(s)
                return try sr.packed()
            }
            guard perTrace.count == count else { throw BlockFormatError("trace.spans disagrees with trace.id") }
            let start = Int(perTrace[0..<lo].reduce(0, +))
            return start..<(start + Int(perTrace[lo]))
        }
    }

    /// Decodes the whole block (all sections).
    public func decodeAll() throws -> SpanBatch {
        try self.bytes.withUnsafeBytes { try BlockCodec.decode($0) }
    }

    /// The spans of one trace as a batch, or nil if absent.
    public func trace(_ id: TraceID) throws -> SpanBatch? {
        guard let range = try self.rows(of: id) else { return nil }
        let all = try self.decodeAll()
        var out = SpanBatch()
        out.strings = all.strings
        out.appendRows(range, of: all)
        return out
    }
}

/// A Bloom filter over trace IDs (k probes taken from the ID's own random bits), kept in block meta so
/// a trace lookup opens only blocks that may hold it.
public struct TraceBloom: Sendable, Equatable {
    public private(set) var bits: [UInt64]
    public static let probes = 7

    /// About `bitsPerTrace` bits per trace (10 gives about 1% false positives).
    public init(capacity: Int, bitsPerTrace: Int = 10) {
        let words = max(1, (capacity * bitsPerTrace + 63) / 64)
        self.bits = [UInt64](repeating: 0, count: words)
    }

    public init(words: [UInt64]) { self.bits = words.isEmpty ? [0] : words }

    private func positions(_ id: TraceID) -> [Int] {
        let m = UInt64(self.bits.count * 64)
        var h1 = id.high ^ (id.low &* 0x9E37_79B9_7F4A_7C15)
        let h2 = (id.low ^ (id.high >> 17)) | 1
        return (0..<Self.probes).map { _ in
            defer { h1 = h1 &+ h2 }
            return Int(h1 % m)
        }
    }

    public mutating func insert(_ id: TraceID) {
        for p in self.positions(id) { self.bits[p >> 6] |= 1 << UInt64(p & 63) }
    }

    public func mayContain(_ id: TraceID) -> Bool {
        self.positions(id).allSatisfy { self.bits[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 }
    }
}
