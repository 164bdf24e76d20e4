import WeftModel

/// A span's identity within one (org, placement), as replicas compare them.
public struct ReplicaSpanKey: Hashable, Sendable, Comparable {
    public var traceHigh: UInt64
    public var traceLow: UInt64
    public var spanID: UInt64

    public init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64) {
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.spanID = spanID
    }

    public init(_ batch: SpanBatch, row: Int) {
        self.init(traceHigh: batch.traceHigh[row], traceLow: batch.traceLow[row], spanID: batch.spanID[row])
    }

    public static func < (a: ReplicaSpanKey, b: ReplicaSpanKey) -> Bool {
        (a.traceHigh, a.traceLow, a.spanID) < (b.traceHigh, b.traceLow, b.spanID)
    }
}

/// The summary of one digest bucket: how many spans it holds and an order-independent hash of
/// their keys (a wrapping sum of per-span hashes), so equal sets give equal digests.
public struct BucketDigest: Hashable, Sendable {
    public var spans: UInt64
    public var hash: UInt64

    public init(spans: UInt64 = 0, hash: UInt64 = 0) {
        self.spans = spans
        self.hash = hash
    }
}

/// Digests of a placement's spans for anti-entropy: spans fall into buckets by (hour of their start,
/// one of 64 trace-ID buckets), each bucket summarised by a ``BucketDigest``. Replicas compare
/// digests and exchange span keys only for buckets that differ. Pure; byte forms versioned.
public enum SpanDigest {
    public static let version: UInt8 = 1
    /// Width of a time bucket.
    public static let bucketNanos: UInt64 = 3_600 * 1_000_000_000
    /// Trace-ID buckets per time bucket.
    public static let traceBuckets: UInt64 = 64

    /// The bucket of a span: `hour << 8 | trace bucket`.
    @inline(__always) public static func bucket(traceHigh: UInt64, traceLow: UInt64, startNanos: UInt64) -> UInt64 {
        (startNanos / Self.bucketNanos) << 8 | (Self.mix(traceHigh ^ traceLow) % Self.traceBuckets)
    }

    /// The per-span hash summed into a bucket's digest.
    @inline(__always) public static func spanHash(_ key: ReplicaSpanKey) -> UInt64 {
        Self.mix(Self.mix(key.traceHigh ^ 0x5745_4654) ^ key.traceLow &+ Self.mix(key.spanID))
    }

    /// SplitMix64's finaliser.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Adds every span of `batch` to `digests`.
    public static func add(_ batch: SpanBatch, into digests: inout [UInt64: BucketDigest]) {
        Self.add(ReplicaKeyColumns(batch), into: &digests)
    }

    /// Adds every row of `columns` to `digests`.
    public static func add(_ columns: ReplicaKeyColumns, into digests: inout [UInt64: BucketDigest]) {
        for row in 0..<columns.count {
            let key = columns.key(row)
            let bucket = Self.bucket(traceHigh: key.traceHigh, traceLow: key.traceLow, startNanos: columns.start[row])
            digests[bucket, default: BucketDigest()].spans &+= 1
            digests[bucket, default: BucketDigest()].hash &+= Self.spanHash(key)
        }
    }

    /// Adds the digests of another set of spans (a sum: the spans of both sets together).
    public static func merge(_ other: [UInt64: BucketDigest], into digests: inout [UInt64: BucketDigest]) {
        for (bucket, d) in other {
            digests[bucket, default: BucketDigest()].spans &+= d.spans
            digests[bucket, default: BucketDigest()].hash &+= d.hash
        }
    }

    /// Buckets whose digests differ (present on one side only included), ascending.
    public static func differing(_ a: [UInt64: BucketDigest], _ b: [UInt64: BucketDigest]) -> [UInt64] {
        var out: [UInt64] = []
        for (bucket, digest) in a where b[bucket] != digest { out.append(bucket) }
        for bucket in b.keys where a[bucket] == nil { out.append(bucket) }
        return out.sorted()
    }

    /// Keys in `mine` that `theirs` lacks, sorted.
    public static func missing(_ mine: [ReplicaSpanKey], from theirs: [ReplicaSpanKey]) -> [ReplicaSpanKey] {
        let held = Set(theirs)
        return Set(mine).filter { !held.contains($0) }.sorted()
    }

    // MARK: Byte forms

    /// `[version][count: UInt32]` then per bucket `[bucket][spans][hash]` as UInt64s, buckets ascending.
    public static func encode(_ digests: [UInt64: BucketDigest]) -> [UInt8] {
        var out: [UInt8] = [Self.version]
        out.reserveCapacity(5 + digests.count * 24)
        Self.put32(UInt32(digests.count), &out)
        for bucket in digests.keys.sorted() {
            let d = digests[bucket]!
            Self.put64(bucket, &out)
            Self.put64(d.spans, &out)
            Self.put64(d.hash, &out)
        }
        return out
    }

    public static func decodeDigests(_ bytes: [UInt8]) throws(DigestFormatError) -> [UInt64: BucketDigest] {
        var r = Reader(bytes: bytes)
        try r.header()
        let n = try r.u32()
        guard Int(n) * 24 == bytes.count - 5 else { throw DigestFormatError("digest count \(n) disagrees with \(bytes.count) bytes") }
        var out: [UInt64: BucketDigest] = [:]
        for _ in 0..<n {
            let bucket = try r.u64()
            out[bucket] = BucketDigest(spans: try r.u64(), hash: try r.u64())
        }
        return out
    }

    /// `[version][count: UInt32]` then per key `[trace high][trace low][span ID]` as UInt64s.
    public static func encode(keys: [ReplicaSpanKey]) -> [UInt8] {
        var out: [UInt8] = [Self.version]
        out.reserveCapacity(5 + keys.count * 24)
        Self.put32(UInt32(keys.count), &out)
        for k in keys {
            Self.put64(k.traceHigh, &out)
            Self.put64(k.traceLow, &out)
            Self.put64(k.spanID, &out)
        }
        return out
    }

    public static func decodeKeys(_ bytes: [UInt8]) throws(DigestFormatError) -> [ReplicaSpanKey] {
        var r = Reader(bytes: bytes)
        try r.header()
        let n = try r.u32()
        guard Int(n) * 24 == bytes.count - 5 else { throw DigestFormatError("key count \(n) disagrees with \(bytes.count) bytes") }
        var out: [ReplicaSpanKey] = []
        out.reserveCapacity(Int(n))
        for _ in 0..<n { out.append(ReplicaSpanKey(traceHigh: try r.u64(), traceLow: try r.u64(), spanID: try r.u64())) }
        return out
    }

    private static func put32(_ v: UInt32, _ out: inout [UInt8]) {
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }

    private static func put64(_ v: UInt64, _ out: inout [UInt8]) {
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0

        mutating func header() throws(DigestFormatError) {
            guard self.bytes.count >= 5 else { throw DigestFormatError("digest payload of \(self.bytes.count) bytes is too short") }
            guard self.bytes[0] == SpanDigest.version else { throw DigestFormatError("unknown digest version \(self.bytes[0])") }
            self.at = 1
        }

        mutating func u32() throws(DigestFormatError) -> UInt32 {
            guard self.at + 4 <= self.bytes.count else { throw DigestFormatError("truncated") }
            var v: UInt32 = 0
            for i in 0..<4 { v |= UInt32(self.bytes[self.at + i]) << (8 * UInt32(i)) }
            self.at += 4
            return v
        }

        mutating func u64() throws(DigestFormatError) -> UInt64 {
            guard self.at + 8 <= self.bytes.count else { throw DigestFormatError("truncated") }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(self.bytes[self.at + i]) << (8 * UInt64(i)) }
            self.at += 8
            return v
        }
    }
}

/// A digest or key list that does not decode.
public struct DigestFormatError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
