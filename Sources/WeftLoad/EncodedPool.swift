import WeftOTLP

/// A range of pre-encoded protobuf bytes in a ``TrafficTables`` pool.
@usableFromInline
struct Chunk: Sendable, Equatable {
    @usableFromInline var offset: UInt32
    @usableFromInline var count: UInt32

    @inlinable init(offset: UInt32, count: UInt32) {
        self.offset = offset
        self.count = count
    }
}

/// Builds the pool of pre-encoded fragments (attributes, names, statuses, resources, scopes) once.
struct PoolBuilder {
    var bytes: [UInt8] = []
    private var scratch = ProtoWriter(capacity: 1024)

    init() { self.bytes.reserveCapacity(1 << 22) }

    /// Appends whatever `body` encodes and returns its chunk.
    mutating func add(_ body: (inout ProtoWriter) -> Void) -> Chunk {
        self.scratch.removeAll()
        body(&self.scratch)
        let chunk = Chunk(offset: UInt32(self.bytes.count), count: UInt32(self.scratch.bytes.count))
        self.bytes.append(contentsOf: self.scratch.bytes)
        return chunk
    }

    /// A span attribute (field 9) with a string value.
    mutating func stringAttr(_ key: String, _ value: String) -> Chunk {
        self.add { $0.stringKV(9, key, value) }
    }

    /// Several string attributes in one chunk.
    mutating func stringAttrs(_ pairs: [(String, String)]) -> Chunk {
        self.add { w in for (k, v) in pairs { w.stringKV(9, k, v) } }
    }

    /// A span attribute (field 9) with an int value.
    mutating func intAttr(_ key: String, _ value: Int64) -> Chunk {
        self.add { $0.intKV(9, key, value) }
    }

    /// A span attribute (field 9) with a bool value.
    mutating func boolAttr(_ key: String, _ value: Bool) -> Chunk {
        self.add { w in
            w.message(9) { kv in
                kv.stringField(1, key)
                kv.message(2) { $0.varintField(2, value ? 1 : 0) }
            }
        }
    }

    /// The `key` field of a KeyValue (tag, length, bytes), for attributes whose value is written per span.
    mutating func keyField(_ key: String) -> Chunk {
        self.add { $0.stringField(1, key) }
    }
}

extension ProtoWriter {
    mutating func stringKV(_ field: UInt32, _ key: String, _ value: String) {
        self.message(field) { kv in
            kv.stringField(1, key)
            kv.message(2) { $0.stringField(1, value) }
        }
    }

    mutating func intKV(_ field: UInt32, _ key: String, _ value: Int64) {
        self.message(field) { kv in
            kv.stringField(1, key)
            kv.message(2) { $0.varintField(3, UInt64(bitPattern: value)) }
        }
    }
}

/// Writes protobuf fragments at a raw cursor: pool chunks plus the few fields written per span.
///
/// There are no bounds checks: the owner reserves enough room first (``GeneratorStorage/maxSpanBytes``
/// per span) and checks the bound after the span is written.
@usableFromInline
struct FragmentWriter {
    @usableFromInline var cursor: UnsafeMutablePointer<UInt8>
    @usableFromInline let pool: UnsafePointer<UInt8>

    @inlinable init(cursor: UnsafeMutablePointer<UInt8>, pool: UnsafePointer<UInt8>) {
        self.cursor = cursor
        self.pool = pool
    }

    @inlinable @inline(__always)
    mutating func chunk(_ c: Chunk) {
        let n = Int(c.count)
        let src = UnsafeRawPointer(self.pool + Int(c.offset))
        let dst = UnsafeMutableRawPointer(self.cursor)
        if n >= 8 && n <= 64 {
            // Short fragments (most attributes): 8-byte words, the last one overlapping, instead of memmove.
            var i = 0
            while i + 8 < n {
                dst.storeBytes(of: src.loadUnaligned(fromByteOffset: i, as: UInt64.self), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            dst.storeBytes(of: src.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self), toByteOffset: n - 8, as: UInt64.self)
        } else {
            dst.copyMemory(from: src, byteCount: n)
        }
        self.cursor += n
    }

    @inlinable @inline(__always)
    mutating func byte(_ b: UInt8) {
        self.cursor.pointee = b
        self.cursor += 1
    }

    @inlinable @inline(__always)
    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            self.byte(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.byte(UInt8(truncatingIfNeeded: v))
    }

    /// Eight bytes of `v` in memory order (pass `.littleEndian` or `.bigEndian`).
    @inlinable @inline(__always)
    mutating func raw64(_ v: UInt64) {
        UnsafeMutableRawPointer(self.cursor).storeBytes(of: v, as: UInt64.self)
        self.cursor += 8
    }

    /// A fixed64 field (wire type 1).
    @inlinable @inline(__always)
    mutating func fixed64(tag: UInt8, _ v: UInt64) {
        self.byte(tag)
        self.raw64(v.littleEndian)
    }

    /// trace_id (field 1, 16 bytes big-endian).
    @inlinable @inline(__always)
    mutating func traceID(high: UInt64, low: UInt64) {
        self.byte(0x0A)
        self.byte(16)
        self.raw64(high.bigEndian)
        self.raw64(low.bigEndian)
    }

    /// An 8-byte ID field (span_id = 0x12, parent_span_id = 0x22).
    @inlinable @inline(__always)
    mutating func id64(tag: UInt8, _ v: UInt64) {
        self.byte(tag)
        self.byte(8)
        self.raw64(v.bigEndian)
    }

    /// An int attribute (span field 9) whose key field is pre-encoded.
    @inlinable @inline(__always)
    mutating func intAttr(key: Chunk, _ value: Int) {
        let v = UInt64(bitPattern: Int64(value))
        let anyLen = 1 + varintSize(v)
        self.byte(0x4A)
        self.varint(UInt64(Int(key.count) + 2 + anyLen))
        self.chunk(key)
        self.byte(0x12)
        self.byte(UInt8(anyLen))
        self.byte(0x18)
        self.varint(v)
    }

    /// A double attribute (span field 9) whose key field is pre-encoded.
    @inlinable @inline(__always)
    mutating func doubleAttr(key: Chunk, _ value: Double) {
        self.byte(0x4A)
        self.varint(UInt64(Int(key.count) + 2 + 9))
        self.chunk(key)
        self.byte(0x12)
        self.byte(9)
        self.byte(0x21)
        self.raw64(value.bitPattern.littleEndian)
    }
}

@inlinable @inline(__always)
func varintSize(_ v: UInt64) -> Int {
    // 1 byte per 7 significant bits, at least one.
    let bits = 64 - (v | 1).leadingZeroBitCount
    return (bits + 6) / 7
}

/// A growable byte buffer with manual memory management, owned by ``GeneratorStorage``.
@usableFromInline
struct RawBuffer {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var count: Int
    @usableFromInline var capacity: Int

    init(capacity: Int) {
        self.base = .allocate(capacity: capacity)
        self.count = 0
        self.capacity = capacity
    }

    /// Makes room for `extra` more bytes.
    @inlinable mutating func reserve(_ extra: Int) {
        if self.count + extra > self.capacity { self.grow(self.count + extra) }
    }

    @usableFromInline mutating func grow(_ needed: Int) {
        var capacity = max(self.capacity * 2, 4096)
        while capacity < needed { capacity *= 2 }
        let base = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        base.update(from: self.base, count: self.count)
        self.base.deallocate()
        self.base = base
        self.capacity = capacity
    }

    func free() { self.base.deallocate() }
}

/// The generator's scratch buffers: one per (resource, scope slot). Contents never outlive a request,
/// so a copied ``TrafficGenerator`` simply allocates fresh storage (see `TrafficGenerator.request`).
final class GeneratorStorage: @unchecked Sendable {
    // @unchecked: only ever mutated through a uniquely referenced generator (checked per request).
    /// Upper bound of one encoded span plus its length prefix (asserted after each span).
    static let maxSpanBytes = 4096

    let buckets: UnsafeMutablePointer<RawBuffer>
    let bucketCount: Int

    init(bucketCount: Int) {
        self.bucketCount = bucketCount
        self.buckets = .allocate(capacity: bucketCount)
        for i in 0..<bucketCount { (self.buckets + i).initialize(to: RawBuffer(capacity: 1024)) }
    }

    deinit {
        for i in 0..<self.bucketCount { self.buckets[i].free() }
        self.buckets.deinitialize(count: self.bucketCount)
        self.buckets.deallocate()
    }
}
