/// A small streaming JSON writer into bytes, for API responses (no Foundation on the hot path).
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8]
    private var needsComma = false

    public init(capacity: Int = 1024) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    private mutating func separator() {
        if self.needsComma { self.bytes.append(UInt8(ascii: ",")) }
    }

    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        self.separator()
        self.bytes.append(UInt8(ascii: "{"))
        self.needsComma = false
        body(&self)
        self.bytes.append(UInt8(ascii: "}"))
        self.needsComma = true
    }

    public mutating func array(_ body: (inout JSONWriter) -> Void) {
        self.separator()
        self.bytes.append(UInt8(ascii: "["))
        self.needsComma = false
        body(&self)
        self.bytes.append(UInt8(ascii: "]"))
        self.needsComma = true
    }

    /// Writes an object key; the next value call writes its value.
    public mutating func key(_ k: String) {
        self.separator()
        self.appendQuoted(k)
        self.bytes.append(UInt8(ascii: ":"))
        self.needsComma = false
    }

    public mutating func string(_ s: String) {
        self.separator()
        self.appendQuoted(s)
        self.needsComma = true
    }

    /// A string from raw UTF-8 bytes (invalid sequences are repaired).
    public mutating func string(bytes raw: UnsafeRawBufferPointer) {
        self.string(String(decoding: raw, as: UTF8.self))
    }

    public mutating func number(_ v: Int) {
        self.separator()
        self.bytes.append(contentsOf: String(v).utf8)
        self.needsComma = true
    }

    public mutating func number(_ v: Int64) { self.number(Int(v)) }

    public mutating func number(_ v: UInt64) {
        self.separator()
        self.bytes.append(contentsOf: String(v).utf8)
        self.needsComma = true
    }

    /// A double; non-finite values are written as the proto3 JSON strings.
    public mutating func number(_ v: Double) {
        self.separator()
        if v.isNaN {
            self.appendQuoted("NaN")
        } else if v.isInfinite {
            self.appendQuoted(v > 0 ? "Infinity" : "-Infinity")
        } else if v == v.rounded(), abs(v) < 1e15 {
            self.bytes.append(contentsOf: String(Int64(v)).utf8)
        } else {
            self.bytes.append(contentsOf: "\(v)".utf8)
        }
        self.needsComma = true
    }

    public mutating func bool(_ v: Bool) {
        self.separator()
        self.bytes.append(contentsOf: (v ? "true" : "false").utf8)
        self.needsComma = true
    }

    public mutating func null() {
        self.separator()
        self.bytes.append(contentsOf: "null".utf8)
        self.needsComma = true
    }

    /// Appends pre-encoded JSON as one value.
    public mutating func raw(_ json: [UInt8]) {
        self.separator()
        self.bytes.append(contentsOf: json)
        self.needsComma = true
    }

    private mutating func appendQuoted(_ s: String) {
        self.bytes.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): self.bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): self.bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: self.bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: self.bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: self.bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                self.bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
            default: self.bytes.append(c)
            }
        }
        self.bytes.append(UInt8(ascii: "\""))
    }
}
