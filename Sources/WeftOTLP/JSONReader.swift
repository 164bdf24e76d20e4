/// A bounds-checked pull reader of JSON over borrowed bytes. Strings without escapes are returned
/// as views into the input; escaped strings are decoded into a scratch buffer.
struct JSONReader {
    let base: UnsafeRawPointer
    var pos: Int
    let end: Int
    /// Deepest nesting ``skipValue()`` accepts.
    let maxDepth: Int
    /// Holds unescaped strings; owned by the reader (and its sub-readers), so views into it stay valid
    /// until the next string read.
    let scratch: ScratchBuffer

    init(base: UnsafeRawPointer, range: Range<Int>, maxDepth: Int = 160, scratch: ScratchBuffer = ScratchBuffer()) {
        self.base = base
        self.pos = range.lowerBound
        self.end = range.upperBound
        self.maxDepth = maxDepth
        self.scratch = scratch
    }

    func byte(_ i: Int) -> UInt8 { self.base.load(fromByteOffset: i, as: UInt8.self) }

    func error(_ what: String) -> OTLPDecodeError { OTLPDecodeError("invalid JSON at byte \(self.pos): \(what)") }

    mutating func skipWhitespace() {
        while self.pos < self.end {
            switch self.byte(self.pos) {
            case 0x20, 0x09, 0x0A, 0x0D: self.pos += 1
            default: return
            }
        }
    }

    /// The next non-whitespace byte, not consumed.
    mutating func peek() throws(OTLPDecodeError) -> UInt8 {
        self.skipWhitespace()
        guard self.pos < self.end else { throw self.error("unexpected end of input") }
        return self.byte(self.pos)
    }

    mutating func expect(_ c: UInt8) throws(OTLPDecodeError) {
        guard try self.peek() == c else { throw self.error("expected '\(Character(Unicode.Scalar(c)))'") }
        self.pos += 1
    }

    mutating func atEnd() -> Bool {
        self.skipWhitespace()
        return self.pos >= self.end
    }

    // MARK: Objects and arrays

    /// Starts an object; then call ``nextKey()`` until it returns nil.
    mutating func beginObject() throws(OTLPDecodeError) { try self.expect(UInt8(ascii: "{")) }

    /// Returns the next key's bytes (valid until the next read), or nil at the closing brace.
    mutating func nextKey(first: inout Bool) throws(OTLPDecodeError) -> UnsafeRawBufferPointer? {
        var c = try self.peek()
        if c == UInt8(ascii: "}") {
            self.pos += 1
            return nil
        }
        if !first {
            guard c == UInt8(ascii: ",") else { throw self.error("expected ',' or '}'") }
            self.pos += 1
            c = try self.peek()
        }
        first = false
        guard c == UInt8(ascii: "\"") else { throw self.error("expected a key") }
        let key = try self.readString()
        try self.expect(UInt8(ascii: ":"))
        return key
    }

    mutating func beginArray() throws(OTLPDecodeError) { try self.expect(UInt8(ascii: "[")) }

    /// True when another element follows (positioned at it), false at the closing bracket.
    mutating func nextElement(first: inout Bool) throws(OTLPDecodeError) -> Bool {
        let c = try self.peek()
        if c == UInt8(ascii: "]") {
            self.pos += 1
            return false
        }
        if !first {
            guard c == UInt8(ascii: ",") else { throw self.error("expected ',' or ']'") }
            self.pos += 1
        }
        first = false
        return true
    }

    /// True (and consumed) if the next value is `null`.
    mutating func skipNull() throws(OTLPDecodeError) -> Bool {
        guard try self.peek() == UInt8(ascii: "n") else { return false }
        try self.literal("null")
        return true
    }

    mutating func literal(_ word: StaticString) throws(OTLPDecodeError) {
        let n = word.utf8CodeUnitCount
        guard self.end - self.pos >= n else { throw self.error("unexpected end of input") }
        for i in 0..<n where self.byte(self.pos + i) != word.utf8Start[i] {
            throw self.error("unexpected token")
        }
        self.pos += n
    }

    // MARK: Scalars

    /// Reads a string; the returned bytes are valid until the next string read.
    mutating func readString() throws(OTLPDecodeError) -> UnsafeRawBufferPointer {
        try self.expect(UInt8(ascii: "\""))
        let start = self.pos
        while self.pos < self.end {
            let c = self.byte(self.pos)
            if c == UInt8(ascii: "\"") {
                self.pos += 1
                return UnsafeRawBufferPointer(start: self.base + start, count: self.pos - 1 - start)
            }
            if c == UInt8(ascii: "\\") { return try self.readEscapedString(from: start) }
            if c < 0x20 { throw self.error("control character in string") }
            self.pos += 1
        }
        throw self.error("unterminated string")
    }

    private mutating func readEscapedString(from start: Int) throws(OTLPDecodeError) -> UnsafeRawBufferPointer {
        self.scratch.removeAll()
        self.scratch.append(UnsafeRawBufferPointer(start: self.base + start, count: self.pos - start))
        while self.pos < self.end {
            let c = self.byte(self.pos)
            self.pos += 1
            switch c {
            case UInt8(ascii: "\""):
                return self.scratch.bytes
            case UInt8(ascii: "\\"):
                guard self.pos < self.end else { throw self.error("unterminated escape") }
                let e = self.byte(self.pos)
                self.pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): self.scratch.append(e)
                case UInt8(ascii: "b"): self.scratch.append(0x08)
                case UInt8(ascii: "f"): self.scratch.append(0x0C)
                case UInt8(ascii: "n"): self.scratch.append(0x0A)
                case UInt8(ascii: "r"): self.scratch.append(0x0D)
                case UInt8(ascii: "t"): self.scratch.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try self.readHex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A surrogate pair.
                        guard self.end - self.pos >= 6, self.byte(self.pos) == UInt8(ascii: "\\"),
                            self.byte(self.pos + 1) == UInt8(ascii: "u")
                        else { throw self.error("unpaired surrogate") }
                        self.pos += 2
                        let low = try self.readHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw self.error("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw self.error("unpaired surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw self.error("invalid \\u escape") }
                    for b in UTF8.encode(u)! { self.scratch.append(b) }
                default:
                    throw self.error("invalid escape")
                }
            default:
                if c < 0x20 { throw self.error("control character in string") }
                self.scratch.append(c)
            }
        }
        throw self.error("unterminated string")
    }

    private mutating func readHex4() throws(OTLPDecodeError) -> UInt32 {
        guard self.end - self.pos >= 4 else { throw self.error("truncated \\u escape") }
        var v: UInt32 = 0
        for i in 0..<4 {
            let c = self.byte(self.pos + i)
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw self.error("invalid \\u escape")
            }
            v = v << 4 | d
        }
        self.pos += 4
        return v
    }

    /// Reads the raw text of a number token.
    mutating func readNumberToken() throws(OTLPDecodeError) -> UnsafeRawBufferPointer {
        _ = try self.peek()
        let start = self.pos
        while self.pos < self.end {
            switch self.byte(self.pos) {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
                UInt8(ascii: "e"), UInt8(ascii: "E"):
                self.pos += 1
            default:
                guard self.pos > start else { throw self.error("expected a number") }
                return UnsafeRawBufferPointer(start: self.base + start, count: self.pos - start)
            }
        }
        guard self.pos > start else { throw self.error("expected a number") }
        return UnsafeRawBufferPointer(start: self.base + start, count: self.pos - start)
    }

    /// An integer written as a JSON number or a decimal string (proto3 JSON 64-bit rule).
    mutating func readInt64() throws(OTLPDecodeError) -> Int64 {
        let token = try self.peek() == UInt8(ascii: "\"") ? try self.readString() : try self.readNumberToken()
        if let v = parseInteger(token) { return v }
        // Also accept integral numbers in exponent or fraction form, e.g. 1e3 or 5.0.
        if let d = parseDouble(token), d.rounded() == d, abs(d) < 9.2e18 { return Int64(d) }
        throw self.error("expected an integer")
    }

    /// An unsigned 64-bit integer as number or string.
    mutating func readUInt64() throws(OTLPDecodeError) -> UInt64 {
        let token = try self.peek() == UInt8(ascii: "\"") ? try self.readString() : try self.readNumberToken()
        if let v = parseUnsigned(token) { return v }
        if let d = parseDouble(token), d.rounded() == d, d >= 0, d < 1.8e19 { return UInt64(d) }
        throw self.error("expected an unsigned integer")
    }

    /// A double as number, or the strings "NaN", "Infinity", "-Infinity" (or a numeric string).
    mutating func readDouble() throws(OTLPDecodeError) -> Double {
        if try self.peek() == UInt8(ascii: "\"") {
            let s = try self.readString()
            switch String(decoding: s, as: UTF8.self) {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default:
                guard let d = parseDouble(s) else { throw self.error("expected a number") }
                return d
            }
        }
        let token = try self.readNumberToken()
        guard let d = parseDouble(token) else { throw self.error("expected a number") }
        return d
    }

    mutating func readBool() throws(OTLPDecodeError) -> Bool {
        switch try self.peek() {
        case UInt8(ascii: "t"):
            try self.literal("true")
            return true
        case UInt8(ascii: "f"):
            try self.literal("false")
            return false
        default: throw self.error("expected true or false")
        }
    }

    /// Skips any value, with a nesting limit.
    mutating func skipValue(depth: Int = 0) throws(OTLPDecodeError) {
        guard depth < self.maxDepth else { throw self.error("nesting deeper than \(self.maxDepth) levels") }
        switch try self.peek() {
        case UInt8(ascii: "{"):
            try self.beginObject()
            var first = true
            while try self.nextKey(first: &first) != nil { try self.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            try self.beginArray()
            var first = true
            while try self.nextElement(first: &first) { try self.skipValue(depth: depth + 1) }
        case UInt8(ascii: "\""): _ = try self.readString()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try self.readBool()
        case UInt8(ascii: "n"): try self.literal("null")
        default:
            let token = try self.readNumberToken()
            guard parseDouble(token) != nil else { throw self.error("invalid number") }
        }
    }

    /// Skips a value and returns its byte range, for a second pass.
    mutating func captureValue() throws(OTLPDecodeError) -> Range<Int> {
        _ = try self.peek()
        let start = self.pos
        try self.skipValue()
        return start..<self.pos
    }

    func sub(_ range: Range<Int>) -> JSONReader {
        JSONReader(base: self.base, range: range, maxDepth: self.maxDepth, scratch: self.scratch)
    }
}

/// Parses a decimal integer (optional leading minus).
func parseInteger(_ s: UnsafeRawBufferPointer) -> Int64? {
    guard !s.isEmpty else { return nil }
    var i = 0
    var negative = false
    if s[0] == UInt8(ascii: "-") {
        negative = true
        i = 1
    }
    guard i < s.count else { return nil }
    var v: Int64 = 0
    while i < s.count {
        let c = s[i]
        guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (a, o2) = negative ? m.subtractingReportingOverflow(Int64(c - 48)) : m.addingReportingOverflow(Int64(c - 48))
        if o1 || o2 { return nil }
        v = a
        i += 1
    }
    return v
}

/// Parses a decimal unsigned integer.
func parseUnsigned(_ s: UnsafeRawBufferPointer) -> UInt64? {
    guard !s.isEmpty else { return nil }
    var v: UInt64 = 0
    for c in s {
        guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(UInt64(c - 48))
        if o1 || o2 { return nil }
        v = a
    }
    return v
}

/// Parses a JSON number (strict grammar) into a double.
func parseDouble(_ s: UnsafeRawBufferPointer) -> Double? {
    guard !s.isEmpty, s.count < 400 else { return nil }
    // Validate JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
    var i = 0
    func digit(_ j: Int) -> Bool { j < s.count && s[j] >= 48 && s[j] <= 57 }
    if s[i] == UInt8(ascii: "-") { i += 1 }
    guard digit(i) else { return nil }
    if s[i] == 48 { i += 1 } else { while digit(i) { i += 1 } }
    if i < s.count && s[i] == UInt8(ascii: ".") {
        i += 1
        guard digit(i) else { return nil }
        while digit(i) { i += 1 }
    }
    if i < s.count && (s[i] == UInt8(ascii: "e") || s[i] == UInt8(ascii: "E")) {
        i += 1
        if i < s.count && (s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-")) { i += 1 }
        guard digit(i) else { return nil }
        while digit(i) { i += 1 }
    }
    guard i == s.count else { return nil }
    return Double(String(decoding: s, as: UTF8.self))
}

/// Compares JSON key bytes with one or two spellings.
func keyIs(_ key: UnsafeRawBufferPointer, _ a: StaticString, _ b: StaticString? = nil) -> Bool {
    func eq(_ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard key.count == n else { return false }
        let p = s.utf8Start
        for i in 0..<n where key[i] != p[i] { return false }
        return true
    }
    return eq(a) || (b.map(eq) ?? false)
}

/// A growable byte buffer with a stable address between mutations, for unescaped JSON strings.
final class ScratchBuffer {
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 256) {
        self.capacity = capacity
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
    }

    deinit { self.storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: self.storage, count: self.count) }

    func removeAll() { self.count = 0 }

    private func reserve(_ extra: Int) {
        guard self.count + extra > self.capacity else { return }
        var newCapacity = self.capacity * 2
        while newCapacity < self.count + extra { newCapacity *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 8)
        grown.copyMemory(from: self.storage, byteCount: self.count)
        self.storage.deallocate()
        self.storage = grown
        self.capacity = newCapacity
    }

    func append(_ b: UInt8) {
        self.reserve(1)
        self.storage.storeBytes(of: b, toByteOffset: self.count, as: UInt8.self)
        self.count += 1
    }

    func append(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        self.reserve(raw.count)
        (self.storage + self.count).copyMemory(from: base, byteCount: raw.count)
        self.count += raw.count
    }
}
