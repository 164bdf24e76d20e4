import CZstd

/// zstd compression of block sections (libzstd).
public enum Zstd {
    /// Compresses `input` at `level`; nil if the library fails.
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 3) -> [UInt8]? {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { dst in
            ZSTD_compress(dst.baseAddress, bound, input.baseAddress, input.count, level)
        }
        guard ZSTD_isError(n) == 0 else { return nil }
        out.removeSubrange(n...)
        return out
    }

    /// Decompresses exactly `size` bytes; throws if the frame is corrupt or of another size.
    public static func decompress(_ input: UnsafeRawBufferPointer, size: Int) throws(BlockFormatError) -> [UInt8] {
        var result = 0
        let out = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            result = ZSTD_decompress(buffer.baseAddress, size, input.baseAddress, input.count)
            // Only fully written output is exposed.
            count = ZSTD_isError(result) == 0 && result == size ? size : 0
        }
        guard ZSTD_isError(result) == 0, result == size, out.count == size else { throw BlockFormatError("corrupt compressed section") }
        return out
    }
}
