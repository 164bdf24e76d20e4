import CZlib
import NIOCore
import WeftRuntime

/// The 8-byte trailer that ends a gzip member (RFC 1952 §2.3.1): CRC-32 of the uncompressed data,
/// then its length modulo 2³². Inflating stops at the end of the deflate data whether or not the
/// trailer follows, so a truncated upload would otherwise be accepted; checking it catches that.
package enum GzipTrailer {
    /// Nil when `compressed` (one gzip member) ends with the trailer that matches `decompressed`;
    /// otherwise why not.
    package static func problem(compressed: ByteBuffer, decompressed: ByteBuffer) -> String? {
        guard compressed.readableBytes >= 18 else { return "gzip data is shorter than a gzip header and trailer" }
        let at = compressed.readerIndex + compressed.readableBytes - 8
        guard let crc = compressed.getInteger(at: at, endianness: .little, as: UInt32.self),
              let size = compressed.getInteger(at: at + 4, endianness: .little, as: UInt32.self)
        else { return "gzip trailer is missing" }
        guard size == UInt32(truncatingIfNeeded: decompressed.readableBytes) else {
            return "gzip trailer is missing or wrong (its size does not match the data; truncated upload, or several gzip members)"
        }
        let actual = decompressed.withUnsafeReadableBytes { raw -> UInt32 in
            var c = crc32(0, nil, 0)
            var rest = raw
            // zlib's length parameter is 32 bits wide.
            while !rest.isEmpty {
                let n = min(rest.count, 1 << 30)
                c = crc32(c, rest.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(n))
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
            return UInt32(truncatingIfNeeded: c)
        }
        guard actual == crc else { return "gzip CRC-32 does not match the data" }
        return nil
    }
}
