/// A small streaming JSON writer into bytes, for API responses (no Foundation on the hot path).
public struct JSONWriter: Sendable {
    /// The JSON written so far.
    public var bytes: [UInt8] { self.storage }
    @usableFromInline var storage: [UInt8]
    @usableFromInline var needsComma = false

    @inlinable public init(capacity: Int = 1024) {
        self.storage = []
        self.storage.reserveCapacity(capacity)
    }

    @usableFromInline mutating func separator() {
        if self.needsComma { self.storage.append(UInt8(ascii: ",")) }
    }

    @inlinable public mutating func object(_ body: (inout JSONWriter) -> Void) {
        self.separator()
        self.storage.append(UInt8(ascii: "{"))
        self.needsComma = false
        body(&self)
        self.storage.append(UInt8(ascii: "}"))
        self.needsComma = true
    }

    @inlinable public mutating func array(_ body: (inout JSONWriter) -> Void) {
        self.separator()
        self.storage.append(UInt8(ascii: "["))
        self.needsComma = false
        body(&self)
        self.storage.append(UInt8(ascii: "]"))
        self.needsComma = true
    }

    /// Writes an object key; the next value call writes its value.
    @inlinable public mutating func key(_ k: String) {
        self.separator()
        self.appendQuoted(k)
        self.storage.append(UInt8(ascii: ":"))
        self.needsComma = false
    }

    /// Writes an object key known when compiling: plain ASCII that JSON does not escape (no quote,
    /// backslash or control character), copied as is.
    @inlinable public mutating func field(_ k: StaticString) {
        self.separator()
        self.storage.append(UInt8(ascii: "\""))
        k.withUTF8Buffer { self.storage.append(contentsOf: $0) }
        self.storage.append(UInt8(ascii: "\""))
        self.storage.append(UInt8(ascii: ":"))
        self.needsComma = false
    }

    @inlinable public mutating func string(_ s: String) {
        self.separator()
        self.appendQuoted(s)
        self.needsComma = true
    }

    /// A string from raw UTF-8 bytes (invalid sequences are repaired).
    @inlinable public mutating func string(bytes raw: UnsafeRawBufferPointer) {
        self.string(String(decoding: raw, as: UTF8.self))
    }

    @inlinable public mutating func number(_ v: Int) {
        self.separator()
        if v < 0 { self.storage.append(UInt8(ascii: "-")) }
        self.appendDecimal(UInt64(v.magnitude))
        self.needsComma = true
    }

    @inlinable public mutating func number(_ v: Int64) { self.number(Int(v)) }

    @inlinable public mutating func number(_ v: UInt64) {
        self.separator()
        self.appendDecimal(v)
        self.needsComma = true
    }

    /// A double; non-finite values are written as the proto3 JSON strings.
    @inlinable public mutating func number(_ v: Double) {
        self.separator()
        if v.isNaN {
            self.appendQuoted("NaN")
        } else if v.isInfinite {
            self.appendQuoted(v > 0 ? "Infinity" : "-Infinity")
        } else if v == v.rounded(), abs(v) < 1e15 {
            self.storage.append(contentsOf: String(Int64(v)).utf8)
        } else {
            self.storage.append(contentsOf: "\(v)".utf8)
        }
        self.needsComma = true
    }

    @inlinable public mutating func bool(_ v: Bool) {
        self.separator()
        self.storage.append(contentsOf: (v ? "true" : "false").utf8)
        self.needsComma = true
    }

    @inlinable public mutating func null() {
        self.separator()
        self.storage.append(contentsOf: "null".utf8)
        self.needsComma = true
    }

    /// Appends pre-encoded JSON as one value.
    @inlinable public mutating func raw(_ json: [UInt8]) {
        self.separator()
        self.storage.append(contentsOf: json)
        self.needsComma = true
    }

    /// A quoted decimal (`"1796582416968822862"`): how Tempo's JSON writes 64-bit integers.
    @inlinable public mutating func string(decimal v: UInt64) {
        self.separator()
        self.storage.append(UInt8(ascii: "\""))
        self.appendDecimal(v)
        self.storage.append(UInt8(ascii: "\""))
        self.needsComma = true
    }

    /// A quoted lowercase hex form of a 64-bit value: all 16 digits, or without leading zeros.
    @inlinable public mutating func string(hex v: UInt64, trimmed: Bool = false) {
        self.separator()
        self.storage.append(UInt8(ascii: "\""))
        self.appendHex(v, digits: trimmed ? Self.hexDigits(v) : 16)
        self.storage.append(UInt8(ascii: "\""))
        self.needsComma = true
    }

    /// A quoted lowercase hex form of a 128-bit value (`high` first) without leading zeros:
    /// how Tempo prints trace IDs in search results.
    @inlinable public mutating func string(trimmedHexHigh high: UInt64, low: UInt64) {
        guard high != 0 else { return self.string(hex: low, trimmed: true) }
        self.separator()
        self.storage.append(UInt8(ascii: "\""))
        self.appendHex(high, digits: Self.hexDigits(high))
        self.appendHex(low, digits: 16)
        self.storage.append(UInt8(ascii: "\""))
        self.needsComma = true
    }

    /// Hex digits of `v` without leading zeros (at least one).
    @usableFromInline static func hexDigits(_ v: UInt64) -> Int { max(1, (64 - v.leadingZeroBitCount + 3) / 4) }

    @usableFromInline mutating func appendDecimal(_ v: UInt64) {
        var digits = 1
        var rest = v / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        let end = self.storage.count + digits
        self.storage.append(contentsOf: repeatElement(0, count: digits))
        self.storage.withUnsafeMutableBufferPointer { b in
            var v = v
            var i = end - 1
            repeat {
                b[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
                v /= 10
                i -= 1
            } while v > 0
        }
    }

    @usableFromInline mutating func appendHex(_ v: UInt64, digits: Int) {
        let end = self.storage.count + digits
        self.storage.append(contentsOf: repeatElement(0, count: digits))
        self.storage.withUnsafeMutableBufferPointer { b in
            var v = v
            let table = Hex.digits
            for i in stride(from: end - 1, through: end - digits, by: -1) {
                b[i] = table[Int(v & 0xF)]
                v >>= 4
            }
        }
    }

    /// `s` quoted and escaped; runs that need no escape are copied whole.
    @usableFromInline mutating func appendQuoted(_ s: String) {
        self.storage.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { u in
            var start = 0
            for i in 0..<u.count {
                let c = u[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                if i > start { self.storage.append(contentsOf: UnsafeBufferPointer(rebasing: u[start..<i])) }
                self.appendEscape(c)
                start = i + 1
            }
            if start < u.count { self.storage.append(contentsOf: UnsafeBufferPointer(rebasing: u[start...])) }
        }
        self.storage.append(UInt8(ascii: "\""))
    }

    @usableFromInline mutating func appendEscape(_ c: UInt8) {
        switch c {
        case UInt8(ascii: "\""): self.storage.append(contentsOf: [0x5C, 0x22])
        case UInt8(ascii: "\\"): self.storage.append(contentsOf: [0x5C, 0x5C])
        case 0x0A: self.storage.append(contentsOf: [0x5C, UInt8(ascii: "n")])
        case 0x0D: self.storage.append(contentsOf: [0x5C, UInt8(ascii: "r")])
        case 0x09: self.storage.append(contentsOf: [0x5C, UInt8(ascii: "t")])
        default:
            self.storage.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, Hex.digits[Int(c >> 4)], Hex.digits[Int(c & 0xF)]])
        }
    }
}
