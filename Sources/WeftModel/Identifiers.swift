/// A 16-byte trace ID, held as two big-endian halves so that ordering and hex form follow the bytes.
public struct TraceID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// All-zero IDs are invalid in OTLP.
    @inlinable public var isValid: Bool { self.high != 0 || self.low != 0 }

    @inlinable public static func < (a: TraceID, b: TraceID) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }

    /// 32 lowercase hex digits.
    public var description: String { Hex.encode(self.high) + Hex.encode(self.low) }

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] { Hex.bytes(self.high) + Hex.bytes(self.low) }

    /// Parses up to 32 hex digits; shorter IDs are left-padded with zeros (Tempo's rule).
    public init?(hex: some StringProtocol) {
        let digits = Array(hex.utf8)
        guard !digits.isEmpty, digits.count <= 32 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for d in digits {
            guard let v = Hex.value(d) else { return nil }
            high = (high << 4) | (low >> 60)
            low = (low << 4) | UInt64(v)
        }
        self.init(high: high, low: low)
    }
}

/// Hexadecimal helpers for IDs.
public enum Hex {
    @inlinable public static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }

    static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// 16 lowercase hex digits of a 64-bit value.
    public static func encode(_ v: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buf in
            for i in 0..<16 {
                buf[i] = digits[Int((v >> UInt64(60 - 4 * i)) & 0xF)]
            }
            return 16
        }
    }

    /// Hex of arbitrary bytes.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Big-endian bytes of a 64-bit value.
    public static func bytes(_ v: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: v >> UInt64(56 - 8 * $0)) }
    }

    /// Parses exactly 16 hex digits into a 64-bit value.
    public static func parse64(_ s: some StringProtocol) -> UInt64? {
        let u = Array(s.utf8)
        guard u.count == 16 else { return nil }
        var v: UInt64 = 0
        for c in u {
            guard let d = value(c) else { return nil }
            v = (v << 4) | UInt64(d)
        }
        return v
    }
}
