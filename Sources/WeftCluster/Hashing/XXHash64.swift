import WeftModel

/// xxHash64 (Yann Collet), implemented over bytes with a fixed seed.
///
/// Placement must be identical on every node, every run and every platform, so it never uses Swift's
/// `Hasher` (randomly seeded per process). Lanes are read little-endian, as the reference does.
public enum XXHash64 {
    @usableFromInline static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    /// The hash of `bytes` under `seed`.
    public static func hash(_ bytes: some Sequence<UInt8>, seed: UInt64 = 0) -> UInt64 {
        let array = Array(bytes)
        return array.withUnsafeBytes { Self.hash(raw: $0, seed: seed) }
    }

    /// The hash of the bytes in `raw` under `seed`.
    public static func hash(raw: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let length = raw.count
        var offset = 0
        var h: UInt64
        if length >= 32 {
            var v1 = seed &+ p1 &+ p2
            var v2 = seed &+ p2
            var v3 = seed
            var v4 = seed &- p1
            while offset + 32 <= length {
                v1 = round(v1, lane(raw, offset))
                v2 = round(v2, lane(raw, offset + 8))
                v3 = round(v3, lane(raw, offset + 16))
                v4 = round(v4, lane(raw, offset + 24))
                offset += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = mergeRound(h, v1)
            h = mergeRound(h, v2)
            h = mergeRound(h, v3)
            h = mergeRound(h, v4)
        } else {
            h = seed &+ p5
        }
        h &+= UInt64(length)
        while offset + 8 <= length {
            h ^= round(0, lane(raw, offset))
            h = rotl(h, 27) &* p1 &+ p4
            offset += 8
        }
        if offset + 4 <= length {
            h ^= UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            offset += 4
        }
        while offset < length {
            h ^= UInt64(raw[offset]) &* p5
            h = rotl(h, 11) &* p1
            offset += 1
        }
        return avalanche(h)
    }

    /// The hash of a trace ID's 16 bytes (big-endian, as on the wire), seed 0, without touching memory:
    /// the same value as `hash(traceID.bytes)`.
    @inlinable public static func hash(_ traceID: TraceID) -> UInt64 {
        var h = p5 &+ 16
        h ^= round(0, traceID.high.byteSwapped)
        h = rotl(h, 27) &* p1 &+ p4
        h ^= round(0, traceID.low.byteSwapped)
        h = rotl(h, 27) &* p1 &+ p4
        return avalanche(h)
    }

    @inlinable static func lane(_ raw: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inlinable static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inlinable static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inlinable static func mergeRound(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        (acc ^ round(0, value)) &* p1 &+ p4
    }

    @inlinable static func avalanche(_ hash: UInt64) -> UInt64 {
        var h = hash
        h ^= h >> 33
        h &*= p2
        h ^= h >> 29
        h &*= p3
        h ^= h >> 32
        return h
    }
}
