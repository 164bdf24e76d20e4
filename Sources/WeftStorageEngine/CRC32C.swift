/// CRC-32C (Castagnoli), slicing-by-8, as used to frame WAL records.
public enum CRC32C {
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()
    static let flat: [UInt32] = tables.flatMap { $0 }

    /// The CRC-32C of `bytes`, continuing from `crc` (0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        var c = ~crc
        let n = bytes.count
        guard let p = bytes.baseAddress else { return crc }
        return flat.withUnsafeBufferPointer { t in
            var i = 0
            while i + 8 <= n {
                let w = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ UInt64(c)
                c = t[7 * 256 + Int(w & 0xFF)] ^ t[6 * 256 + Int((w >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((w >> 16) & 0xFF)] ^ t[4 * 256 + Int((w >> 24) & 0xFF)]
                    ^ t[3 * 256 + Int((w >> 32) & 0xFF)] ^ t[2 * 256 + Int((w >> 40) & 0xFF)]
                    ^ t[1 * 256 + Int((w >> 48) & 0xFF)] ^ t[Int(w >> 56)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(p.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                i += 1
            }
            return ~c
        }
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
