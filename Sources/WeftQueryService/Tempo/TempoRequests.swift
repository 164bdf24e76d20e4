import WeftRuntime
import WeftQuery

/// Tempo's gRPC query requests (`tempopb` `SearchRequest`, `QueryRangeRequest`, `QueryInstantRequest`),
/// decoded into the parameters of the matching HTTP endpoints so both paths validate alike.
package enum TempoRequests {
    /// `SearchRequest`: Tags = 1 (map), MinDurationMs = 2, MaxDurationMs = 3, Limit = 4, start = 5,
    /// end = 6 (unix seconds), Query = 8, SpansPerSpanSet = 9. Gives `/api/search` parameters.
    package static func search(_ bytes: [UInt8]) throws(QueryError) -> [String: String] {
        var p: [String: String] = [:]
        var tags: [String] = []
        var r = ProtoFields(bytes)
        while let field = try r.next() {
            switch (field.number, field.value) {
            case (1, .bytes(let entry)):
                var e = ProtoFields(entry)
                var key = "", value = ""
                while let f = try e.next() {
                    if case .bytes(let b) = f.value {
                        if f.number == 1 { key = String(decoding: b, as: UTF8.self) } else if f.number == 2 { value = String(decoding: b, as: UTF8.self) }
                    }
                }
                tags.append("\(key)=\"\(value.replacingQuotes)\"")
            case (2, .varint(let v)) where v > 0: p["minDuration"] = "\(v)ms"
            case (3, .varint(let v)) where v > 0: p["maxDuration"] = "\(v)ms"
            case (4, .varint(let v)) where v > 0: p["limit"] = String(v)
            case (5, .varint(let v)) where v > 0: p["start"] = String(v)
            case (6, .varint(let v)) where v > 0: p["end"] = String(v)
            case (8, .bytes(let b)): p["q"] = String(decoding: b, as: UTF8.self)
            case (9, .varint(let v)) where v > 0: p["spss"] = String(v)
            default: break
            }
        }
        if !tags.isEmpty { p["tags"] = tags.joined(separator: " ") }
        return p
    }

    /// `QueryRangeRequest` (query = 1, start = 2, end = 3, step = 4, all nanoseconds) or
    /// `QueryInstantRequest` (query = 1, start = 2, end = 3). Gives `/api/metrics/…` parameters.
    package static func metrics(_ bytes: [UInt8]) throws(QueryError) -> [String: String] {
        var p: [String: String] = [:]
        var r = ProtoFields(bytes)
        while let field = try r.next() {
            switch (field.number, field.value) {
            case (1, .bytes(let b)): p["q"] = String(decoding: b, as: UTF8.self)
            case (2, .varint(let v)) where v > 0: p["start"] = String(v)
            case (3, .varint(let v)) where v > 0: p["end"] = String(v)
            case (4, .varint(let v)) where v > 0: p["step"] = "\(v)ns"
            default: break
            }
        }
        return p
    }
}

/// Reads the fields of one protobuf message (wire types varint, 64-bit, length-delimited, 32-bit).
package struct ProtoFields {
    package enum Value {
        case varint(UInt64)
        case fixed(UInt64)
        case bytes(ArraySlice<UInt8>)
    }

    private let bytes: ArraySlice<UInt8>
    private var position: Int

    package init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    package init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.position = bytes.startIndex
    }

    /// The next field, nil at the end; throws on malformed input.
    package mutating func next() throws(QueryError) -> (number: UInt64, value: Value)? {
        guard self.position < self.bytes.endIndex else { return nil }
        let tag = try self.varint()
        guard tag >> 3 > 0 else { throw QueryError("malformed request message: field number 0") }
        switch tag & 7 {
        case 0: return (tag >> 3, .varint(try self.varint()))
        case 1: return (tag >> 3, .fixed(try self.fixed(8)))
        case 5: return (tag >> 3, .fixed(try self.fixed(4)))
        case 2:
            let length = try self.varint()
            guard length <= UInt64(self.bytes.endIndex - self.position) else { throw QueryError("malformed request message: truncated field") }
            let start = self.position
            self.position += Int(length)
            return (tag >> 3, .bytes(self.bytes[start..<self.position]))
        default: throw QueryError("malformed request message: wire type \(tag & 7)")
        }
    }

    private mutating func varint() throws(QueryError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while self.position < self.bytes.endIndex, shift < 64 {
            let b = self.bytes[self.position]
            self.position += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        throw QueryError("malformed request message: truncated varint")
    }

    private mutating func fixed(_ n: Int) throws(QueryError) -> UInt64 {
        guard self.bytes.endIndex - self.position >= n else { throw QueryError("malformed request message: truncated field") }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(self.bytes[self.position + i]) << (8 * UInt64(i)) }
        self.position += n
        return v
    }
}

extension String {
    /// Backslash-escaped for a quoted logfmt value.
    fileprivate var replacingQuotes: String {
        var out = ""
        for c in self {
            if c == "\"" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}
