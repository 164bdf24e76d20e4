// Robustness of the OTLP decoders: every truncation of the SDK fixtures, seeded random mutations,
// invalid IDs (per-span rejection), wrong wire types, malformed and deeply nested JSON, and the
// response encoders checked against bodies serialized by the Python protobuf library.

import Foundation
import Testing
import WeftModel
import WeftOTLP

// MARK: - Deterministic randomness

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, and the same on every platform.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform enough in 0..<n (n > 0).
    mutating func below(_ n: Int) -> Int { Int(self.next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: self.next()) }
    mutating func pick<T>(_ items: [T]) -> T { items[self.below(items.count)] }
}

enum Mutator {
    static let interestingBytes: [UInt8] = [0x00, 0x01, 0x02, 0x07, 0x08, 0x0A, 0x12, 0x7F, 0x80, 0x81, 0xFF]
    static let lengthVarints: [[UInt8]] = [
        [0x00], [0x01], [0x7F], [0x80, 0x01], [0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
    ]
    static let jsonTokens: [String] = [
        "{", "}", "[", "]", "\"", ":", ",", "\\", "\\u", "\\ud800", "\\u0000", "null", "true", "-", "1e999", "-0",
        "99999999999999999999999", "\"NaN\"", "{\"a\":[", "]]]]", "\u{FEFF}", "\u{00}", "\u{1F}", "é", "\"traceId\":\"00\"",
    ]

    /// 1–4 random edits. The same seed always gives the same output.
    static func mutate(_ input: [UInt8], seed: UInt64, json: Bool) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var b = input
        for _ in 0...rng.below(4) {
            let pos = b.isEmpty ? 0 : rng.below(b.count)
            switch rng.below(json ? 9 : 10) {
            case 0 where !b.isEmpty:  // bit flip
                b[pos] ^= 1 << UInt8(rng.below(8))
            case 1 where !b.isEmpty:  // random or interesting byte
                b[pos] = rng.below(2) == 0 ? rng.byte() : rng.pick(interestingBytes)
            case 2:  // insert random bytes
                let n = 1 + rng.below(8)
                b.insert(contentsOf: (0..<n).map { _ in rng.byte() }, at: pos)
            case 3 where !b.isEmpty:  // delete a range
                let n = min(1 + rng.below(16), b.count - pos)
                b.removeSubrange(pos..<(pos + n))
            case 4 where !b.isEmpty:  // duplicate a range elsewhere
                let n = min(1 + rng.below(64), b.count - pos)
                let chunk = Array(b[pos..<(pos + n)])
                b.insert(contentsOf: chunk, at: rng.below(b.count + 1))
            case 5 where !b.isEmpty:  // truncate
                b.removeSubrange(pos...)
            case 6 where b.count > 2:  // swap two bytes
                let other = rng.below(b.count)
                b.swapAt(pos, other)
            case 7 where !json:  // corrupt a length prefix: after a byte that looks like a LEN tag
                let candidates = b.indices.filter { $0 + 1 < b.count && b[$0] & 7 == 2 }
                guard !candidates.isEmpty else { break }
                let at = rng.pick(candidates) + 1
                var end = at
                while end < b.count && b[end] & 0x80 != 0 { end += 1 }
                end = min(end + 1, b.count)
                let replacement: [UInt8] = rng.below(3) == 0 ? [b[at] &+ (rng.below(2) == 0 ? 1 : 0xFF)] : rng.pick(lengthVarints)
                b.replaceSubrange(at..<end, with: replacement)
            case 8 where !json:  // overwrite a tag-looking byte with a random tag (other wire type / field)
                b[pos] = UInt8(rng.below(16) << 3) | UInt8(rng.below(8))
            case 9 where !json:  // replace a byte with an interesting one
                if !b.isEmpty { b[pos] = rng.pick(interestingBytes) }
            case 7, 8:  // JSON: insert a token or replace a digit run
                if rng.below(2) == 0 {
                    b.insert(contentsOf: Array(rng.pick(jsonTokens).utf8), at: pos)
                } else if let digit = b[pos...].firstIndex(where: { $0 >= 0x30 && $0 <= 0x39 }) {
                    var end = digit
                    while end < b.count && b[end] >= 0x30 && b[end] <= 0x39 { end += 1 }
                    b.replaceSubrange(digit..<end, with: Array(rng.pick(["0", "-1", "18446744073709551616", "1.5", "1e3", "9223372036854775808"]).utf8))
                }
            default:
                break
            }
        }
        return b
    }
}

// MARK: - Request builders

enum Build {
    static func traceID(_ n: UInt8) -> [UInt8] { (0..<16).map { n &+ UInt8($0) } }
    static func spanID(_ n: UInt8) -> [UInt8] { (0..<8).map { n &+ UInt8($0) &+ 1 } }

    static func anyString(_ s: String) -> [UInt8] {
        var w = ProtoWriter()
        w.stringField(1, s)
        return w.bytes
    }

    static func anyInt(_ v: Int64) -> [UInt8] {
        var w = ProtoWriter()
        w.varintField(3, UInt64(bitPattern: v))
        return w.bytes
    }

    static func anyArray(_ items: [[UInt8]]) -> [UInt8] {
        var inner = ProtoWriter()
        for item in items { inner.bytesField(1, item) }
        var w = ProtoWriter()
        w.bytesField(5, inner.bytes)
        return w.bytes
    }

    static func anyKVList(_ items: [[UInt8]]) -> [UInt8] {
        var inner = ProtoWriter()
        for item in items { inner.bytesField(1, item) }
        var w = ProtoWriter()
        w.bytesField(6, inner.bytes)
        return w.bytes
    }

    static func kv(_ key: String, _ value: [UInt8]) -> [UInt8] {
        var w = ProtoWriter()
        w.stringField(1, key)
        w.bytesField(2, value)
        return w.bytes
    }

    static func event(_ name: String, attrs: [[UInt8]] = [], extra: [UInt8] = []) -> [UInt8] {
        var w = ProtoWriter()
        w.fixed64Field(1, 1_700_000_000_000_000_001)
        w.stringField(2, name)
        for a in attrs { w.bytesField(3, a) }
        w.bytes += extra
        return w.bytes
    }

    static func link(_ trace: [UInt8], _ span: [UInt8], attrs: [[UInt8]] = [], extra: [UInt8] = []) -> [UInt8] {
        var w = ProtoWriter()
        w.bytesField(1, trace)
        w.bytesField(2, span)
        for a in attrs { w.bytesField(4, a) }
        w.fixed32Field(6, 0x301)
        w.bytes += extra
        return w.bytes
    }

    /// A span with attributes, an event and a link, each carrying attributes (to check rollback).
    static func span(
        trace: [UInt8]?, span: [UInt8]?, parent: [UInt8]? = nil, name: String,
        attrs: [[UInt8]]? = nil, events: [[UInt8]]? = nil, links: [[UInt8]]? = nil, status: [UInt8]? = nil, extra: [UInt8] = []
    ) -> [UInt8] {
        var w = ProtoWriter()
        if let trace { w.bytesField(1, trace) }
        if let span { w.bytesField(2, span) }
        w.stringField(3, "ts=\(name)")
        if let parent { w.bytesField(4, parent) }
        w.stringField(5, name)
        w.varintField(6, 2)
        w.fixed64Field(7, 1_700_000_000_000_000_000)
        w.fixed64Field(8, 1_700_000_000_500_000_000)
        for a in attrs ?? [kv("attr.of.\(name)", anyString(name)), kv("gen_ai.usage.input_tokens", anyInt(7))] { w.bytesField(9, a) }
        for e in events ?? [event("event.of.\(name)", attrs: [kv("e.\(name)", anyInt(1))])] { w.bytesField(11, e) }
        for l in links ?? [link(traceID(90), spanID(91), attrs: [kv("l.\(name)", anyString("x"))])] { w.bytesField(13, l) }
        if let status { w.bytesField(15, status) }
        w.fixed32Field(16, 0x100)
        w.bytes += extra
        return w.bytes
    }

    static func resource(extra: [UInt8] = []) -> [UInt8] {
        var w = ProtoWriter()
        w.bytesField(1, kv("service.name", anyString("builder")))
        w.bytes += extra
        return w.bytes
    }

    static func scope(extra: [UInt8] = []) -> [UInt8] {
        var w = ProtoWriter()
        w.stringField(1, "builder.scope")
        w.stringField(2, "1.0")
        w.bytes += extra
        return w.bytes
    }

    static func request(
        _ spans: [[UInt8]], resource: [UInt8] = resource(), scope: [UInt8] = scope(),
        scopeSpansExtra: [UInt8] = [], resourceSpansExtra: [UInt8] = [], requestExtra: [UInt8] = []
    ) -> [UInt8] {
        var ss = ProtoWriter()
        ss.bytesField(1, scope)
        for s in spans { ss.bytesField(2, s) }
        ss.bytes += scopeSpansExtra
        var rs = ProtoWriter()
        rs.bytesField(1, resource)
        rs.bytesField(2, ss.bytes)
        rs.bytes += resourceSpansExtra
        var req = ProtoWriter()
        req.bytesField(1, rs.bytes)
        req.bytes += requestExtra
        return req.bytes
    }

    /// One raw field with the given (possibly wrong) wire type and a plausible payload.
    static func raw(_ field: UInt32, _ wire: WireType) -> [UInt8] {
        var w = ProtoWriter()
        w.tag(field, wire)
        switch wire {
        case .varint: w.varint(5)
        case .i64: w.bytes += [1, 2, 3, 4, 5, 6, 7, 8]
        case .len: w.bytes += [2, 0x08, 0x01]
        case .i32: w.bytes += [1, 2, 3, 4]
        case .startGroup, .endGroup: break
        }
        return w.bytes
    }

    static let goodA = span(trace: traceID(1), span: spanID(1), name: "A")
    static let goodC = span(trace: traceID(3), span: spanID(3), parent: spanID(1), name: "C")

    // JSON.
    static func jsonSpan(trace: String?, span: String?, parent: String? = nil, name: String) -> String {
        var fields: [String] = []
        if let trace { fields.append("\"traceId\":\"\(trace)\"") }
        if let span { fields.append("\"spanId\":\"\(span)\"") }
        if let parent { fields.append("\"parentSpanId\":\"\(parent)\"") }
        fields.append("\"name\":\"\(name)\",\"kind\":2,\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":\"1700000000500000000\"")
        fields.append("\"attributes\":[{\"key\":\"attr.of.\(name)\",\"value\":{\"stringValue\":\"\(name)\"}},{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"7\"}}]")
        fields.append("\"events\":[{\"timeUnixNano\":\"1700000000000000001\",\"name\":\"event.of.\(name)\",\"attributes\":[{\"key\":\"e.\(name)\",\"value\":{\"intValue\":\"1\"}}]}]")
        fields.append("\"links\":[{\"traceId\":\"5a5b5c5d5e5f60616263646566676869\",\"spanId\":\"5c5d5e5f60616263\",\"attributes\":[{\"key\":\"l.\(name)\",\"value\":{\"stringValue\":\"x\"}}],\"flags\":769}]")
        return "{" + fields.joined(separator: ",") + "}"
    }

    static func jsonRequest(_ spans: [String]) -> [UInt8] {
        let body = """
            {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"builder"}}]},\
            "scopeSpans":[{"scope":{"name":"builder.scope","version":"1.0"},"spans":[\(spans.joined(separator: ","))]}]}]}
            """
        return Array(body.utf8)
    }

    static let jsonGoodA = jsonSpan(trace: "0102030405060708090a0b0c0d0e0f10", span: "0203040506070809", name: "A")
    static let jsonGoodC = jsonSpan(trace: "030405060708090A0B0C0D0E0F101112", span: "0405060708090A0B", parent: "0203040506070809", name: "C")
}

// MARK: - Cases

struct InvalidSpanCase: Sendable, CustomTestStringConvertible {
    var name: String
    var trace: [UInt8]?
    var span: [UInt8]?
    var parent: [UInt8]?
    var fragment: String
    var testDescription: String { self.name }

    static let protobuf: [InvalidSpanCase] = [
        InvalidSpanCase(name: "15-byte trace_id", trace: Array(Build.traceID(2).prefix(15)), span: Build.spanID(2), fragment: "trace_id of 15 bytes"),
        InvalidSpanCase(name: "17-byte trace_id", trace: Build.traceID(2) + [1], span: Build.spanID(2), fragment: "trace_id of 17 bytes"),
        InvalidSpanCase(name: "missing trace_id", trace: nil, span: Build.spanID(2), fragment: "trace_id of 0 bytes"),
        InvalidSpanCase(name: "empty trace_id", trace: [], span: Build.spanID(2), fragment: "trace_id of 0 bytes"),
        InvalidSpanCase(name: "all-zero trace_id", trace: [UInt8](repeating: 0, count: 16), span: Build.spanID(2), fragment: "all-zero trace_id"),
        InvalidSpanCase(name: "all-zero span_id", trace: Build.traceID(2), span: [UInt8](repeating: 0, count: 8), fragment: "all-zero span_id"),
        InvalidSpanCase(name: "7-byte span_id", trace: Build.traceID(2), span: Array(Build.spanID(2).prefix(7)), fragment: "span_id of 7 bytes"),
        InvalidSpanCase(name: "missing span_id", trace: Build.traceID(2), span: nil, fragment: "span_id of 0 bytes"),
        InvalidSpanCase(name: "7-byte parent_span_id", trace: Build.traceID(2), span: Build.spanID(2), parent: Array(Build.spanID(1).prefix(7)), fragment: "parent_span_id of 7 bytes"),
        InvalidSpanCase(name: "16-byte parent_span_id", trace: Build.traceID(2), span: Build.spanID(2), parent: Build.traceID(1), fragment: "parent_span_id of 16 bytes"),
    ]
}

struct InvalidJSONSpanCase: Sendable, CustomTestStringConvertible {
    var name: String
    var trace: String?
    var span: String?
    var parent: String?
    var fragment: String
    var testDescription: String { self.name }

    static let good = (trace: "0202030405060708090a0b0c0d0e0f11", span: "0303040506070809")
    static let all: [InvalidJSONSpanCase] = [
        InvalidJSONSpanCase(name: "30-digit traceId", trace: String(good.trace.prefix(30)), span: good.span, fragment: "traceId"),
        InvalidJSONSpanCase(name: "non-hex traceId", trace: "zz" + good.trace.dropFirst(2), span: good.span, fragment: "traceId"),
        InvalidJSONSpanCase(name: "base64 traceId (Tempo style)", trace: "AgIDBAUGBwgJCgsMDQ4PEQ==", span: good.span, fragment: "traceId"),
        InvalidJSONSpanCase(name: "missing traceId", trace: nil, span: good.span, fragment: "traceId"),
        InvalidJSONSpanCase(name: "empty traceId", trace: "", span: good.span, fragment: "traceId"),
        InvalidJSONSpanCase(name: "all-zero traceId", trace: String(repeating: "0", count: 32), span: good.span, fragment: "all-zero traceId"),
        InvalidJSONSpanCase(name: "15-digit spanId", trace: good.trace, span: String(good.span.prefix(15)), fragment: "spanId"),
        InvalidJSONSpanCase(name: "non-hex spanId", trace: good.trace, span: "g" + good.span.dropFirst(), fragment: "spanId"),
        InvalidJSONSpanCase(name: "all-zero spanId", trace: good.trace, span: String(repeating: "0", count: 16), fragment: "all-zero spanId"),
        InvalidJSONSpanCase(name: "missing spanId", trace: good.trace, span: nil, fragment: "spanId"),
        InvalidJSONSpanCase(name: "14-digit parentSpanId", trace: good.trace, span: good.span, parent: "02030405060708", fragment: "parentSpanId"),
        InvalidJSONSpanCase(name: "non-hex parentSpanId", trace: good.trace, span: good.span, parent: "020304050607080x", fragment: "parentSpanId"),
    ]
}

struct WrongWireCase: Sendable, CustomTestStringConvertible {
    var name: String
    var request: [UInt8]
    var fragment: String
    var testDescription: String { self.name }

    static let all: [WrongWireCase] = {
        typealias B = Build
        let t = B.traceID(5)
        let s = B.spanID(5)
        func span(extra: [UInt8] = [], attrs: [[UInt8]]? = nil, events: [[UInt8]]? = nil, links: [[UInt8]]? = nil, status: [UInt8]? = nil) -> [UInt8] {
            B.request([B.span(trace: t, span: s, name: "W", attrs: attrs, events: events, links: links, status: status, extra: extra)])
        }
        func anyValue(_ raw: [UInt8]) -> [UInt8] { span(attrs: [B.kv("k", raw)]) }
        return [
            WrongWireCase(name: "Span.start_time_unix_nano as varint", request: span(extra: B.raw(7, .varint)), fragment: "Span field 7 has wire type 0, expected 1"),
            WrongWireCase(name: "Span.flags as fixed64", request: span(extra: B.raw(16, .i64)), fragment: "Span field 16 has wire type 1, expected 5"),
            WrongWireCase(name: "Span.trace_id as varint", request: span(extra: B.raw(1, .varint)), fragment: "Span field 1 has wire type 0"),
            WrongWireCase(name: "Span.kind as LEN", request: span(extra: B.raw(6, .len)), fragment: "Span field 6 has wire type 2"),
            WrongWireCase(name: "Span.attributes as varint", request: span(extra: B.raw(9, .varint)), fragment: "Span field 9 has wire type 0"),
            WrongWireCase(name: "Span.status as fixed32", request: span(extra: B.raw(15, .i32)), fragment: "Span field 15 has wire type 5"),
            WrongWireCase(name: "KeyValue.key as varint", request: span(attrs: [B.raw(1, .varint)]), fragment: "KeyValue field 1 has wire type 0"),
            WrongWireCase(name: "KeyValue.value as fixed64", request: span(attrs: [B.raw(2, .i64)]), fragment: "KeyValue field 2 has wire type 1"),
            WrongWireCase(name: "AnyValue.string_value as fixed32", request: anyValue(B.raw(1, .i32)), fragment: "AnyValue field 1 has wire type 5"),
            WrongWireCase(name: "AnyValue.bool_value as LEN", request: anyValue(B.raw(2, .len)), fragment: "AnyValue field 2 has wire type 2"),
            WrongWireCase(name: "AnyValue.int_value as fixed64", request: anyValue(B.raw(3, .i64)), fragment: "AnyValue field 3 has wire type 1"),
            WrongWireCase(name: "AnyValue.double_value as varint", request: anyValue(B.raw(4, .varint)), fragment: "AnyValue field 4 has wire type 0"),
            WrongWireCase(name: "AnyValue.array_value as varint", request: anyValue(B.raw(5, .varint)), fragment: "AnyValue field 5 has wire type 0"),
            WrongWireCase(name: "AnyValue.bytes_value as varint", request: anyValue(B.raw(7, .varint)), fragment: "AnyValue field 7 has wire type 0"),
            WrongWireCase(name: "ArrayValue.values as varint", request: anyValue([0x2A, 0x02] + B.raw(1, .varint)), fragment: "ArrayValue field 1 has wire type 0"),
            WrongWireCase(name: "KeyValueList.values as fixed32", request: anyValue([0x32, 0x05] + B.raw(1, .i32)), fragment: "KeyValueList field 1 has wire type 5"),
            WrongWireCase(name: "nested AnyValue.double_value as varint", request: anyValue(B.anyArray([B.raw(4, .varint)])), fragment: "AnyValue field 4 has wire type 0"),
            WrongWireCase(name: "nested KeyValue.key as varint", request: anyValue(B.anyKVList([B.raw(1, .varint)])), fragment: "KeyValue field 1 has wire type 0"),
            WrongWireCase(name: "Span.Event.time_unix_nano as varint", request: span(events: [B.raw(1, .varint)]), fragment: "Span.Event field 1 has wire type 0"),
            WrongWireCase(name: "Span.Event.name as fixed32", request: span(events: [B.raw(2, .i32)]), fragment: "Span.Event field 2 has wire type 5"),
            WrongWireCase(name: "Span.Link.flags as varint", request: span(links: [B.raw(6, .varint)]), fragment: "Span.Link field 6 has wire type 0"),
            WrongWireCase(name: "Span.Link.trace_id as fixed64", request: span(links: [B.raw(1, .i64)]), fragment: "Span.Link field 1 has wire type 1"),
            WrongWireCase(name: "Status.code as LEN", request: span(status: B.raw(3, .len)), fragment: "Status field 3 has wire type 2"),
            WrongWireCase(name: "Status.message as varint", request: span(status: B.raw(2, .varint)), fragment: "Status field 2 has wire type 0"),
            WrongWireCase(name: "Resource.dropped_attributes_count as LEN", request: B.request([B.goodA], resource: B.resource(extra: B.raw(2, .len))), fragment: "Resource field 2 has wire type 2"),
            WrongWireCase(name: "Resource.attributes as varint", request: B.request([B.goodA], resource: B.raw(1, .varint)), fragment: "Resource field 1 has wire type 0"),
            WrongWireCase(name: "InstrumentationScope.name as varint", request: B.request([B.goodA], scope: B.raw(1, .varint)), fragment: "InstrumentationScope field 1 has wire type 0"),
            WrongWireCase(name: "InstrumentationScope.dropped_attributes_count as fixed64", request: B.request([B.goodA], scope: B.scope(extra: B.raw(4, .i64))), fragment: "InstrumentationScope field 4 has wire type 1"),
            WrongWireCase(name: "ScopeSpans.spans as varint", request: B.request([B.goodA], scopeSpansExtra: B.raw(2, .varint)), fragment: "ScopeSpans field 2 has wire type 0"),
            WrongWireCase(name: "ResourceSpans.resource as fixed32", request: B.request([B.goodA], resourceSpansExtra: B.raw(1, .i32)), fragment: "ResourceSpans field 1 has wire type 5"),
            WrongWireCase(name: "ResourceSpans.schema_url as varint", request: B.request([B.goodA], resourceSpansExtra: B.raw(3, .varint)), fragment: "ResourceSpans field 3 has wire type 0"),
            WrongWireCase(name: "ExportTraceServiceRequest.resource_spans as varint", request: B.request([B.goodA], requestExtra: B.raw(1, .varint)), fragment: "ExportTraceServiceRequest field 1 has wire type 0"),
        ]
    }()
}

/// Structurally malformed protobuf bodies (not wire-type mismatches).
struct BrokenProtobufCase: Sendable, CustomTestStringConvertible {
    var name: String
    var request: [UInt8]
    var fragment: String
    var testDescription: String { self.name }

    static let all: [BrokenProtobufCase] = {
        typealias B = Build
        let good = B.request([B.goodA])
        return [
            BrokenProtobufCase(name: "start-group wire type", request: good + [0x63], fragment: "wire type 3"),
            BrokenProtobufCase(name: "end-group wire type", request: good + [0x64], fragment: "wire type 4"),
            BrokenProtobufCase(name: "wire type 6", request: good + [0x66, 0x00], fragment: "wire type 6"),
            BrokenProtobufCase(name: "field number 0", request: good + [0x00, 0x00], fragment: "field number 0"),
            BrokenProtobufCase(name: "length past the end", request: [0x0A, 0x10, 0x0A, 0x00], fragment: "runs past the end"),
            BrokenProtobufCase(name: "huge length", request: [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], fragment: "runs past the end"),
            BrokenProtobufCase(name: "11-byte varint", request: [0x10] + [UInt8](repeating: 0xFF, count: 10) + [0x01], fragment: "varint overflows"),
            BrokenProtobufCase(name: "truncated varint", request: [0x10, 0x80], fragment: "truncated varint"),
            BrokenProtobufCase(name: "truncated fixed64 on an unknown field", request: good + [0x49, 1, 2, 3], fragment: "truncated fixed64"),
            BrokenProtobufCase(name: "truncated fixed32 on an unknown field", request: good + [0x4D, 1, 2], fragment: "truncated fixed32"),
        ]
    }()
}

// MARK: - Tests

@Suite("Malformed input", .timeLimit(.minutes(5)))
struct MalformedInputTests {
    // (a) Truncations.

    @Test("every truncation of a protobuf fixture throws or decodes a prefix of its spans", arguments: ["sdk_request.pb", "extra_request.pb"])
    func everyProtobufTruncation(_ name: String) throws {
        let full = try Fixture.bytes(name)
        let reference = try BatchView(batch: Decode.ok(full, .protobuf).batch).spans()
        var successes = 0
        var failures = 0
        for n in 0..<full.count {
            switch Decode.protobuf(Array(full[0..<n])) {
            case .failure(let e):
                #expect(!e.message.isEmpty, "\(name) prefix \(n): empty error message")
                failures += 1
            case .success(let d):
                successes += 1
                let problems = batchInvariantViolations(d.batch)
                #expect(problems == [], "\(name) prefix \(n)")
                guard problems.isEmpty else { continue }
                #expect(d.outcome.acceptedSpans == d.batch.spanCount && d.outcome.rejectedSpans == 0, "\(name) prefix \(n)")
                let spans = try BatchView(batch: d.batch).spans()
                #expect(spans.count <= reference.count, "\(name) prefix \(n)")
                for (i, s) in spans.enumerated() where i >= reference.count || s != reference[i] {
                    Issue.record("\(name) prefix \(n): span \(i) (\(s.name)) is not span \(i) of the full decode")
                    break
                }
            }
        }
        // A prefix can only be valid at a top-level field boundary; the empty prefix is one.
        #expect(successes >= 1 && failures > full.count / 2, "\(name): \(successes) prefixes decoded, \(failures) failed")
    }

    /// Every prefix of the smallest JSON fixture; every 7th prefix (and the last 256) of the larger ones.
    @Test(
        "every truncation of a JSON fixture short of its closing brace throws",
        arguments: [("extra_request_snake.json", 1), ("extra_request.json", 7), ("sdk_request_snake.json", 7)]
    )
    func everyJSONTruncation(_ name: String, _ stride: Int) throws {
        let full = try Fixture.bytes(name)
        let closing = try #require(full.lastIndex(of: UInt8(ascii: "}")))
        var decoder = OTLPJSONDecoder()
        for n in 0..<full.count where n % stride == 0 || n >= full.count - 256 {
            let result = Decode.json(Array(full[0..<n]), with: &decoder)
            if n <= closing {
                guard case .failure(let e) = result else {
                    Issue.record("\(name) prefix \(n) of \(full.count) decoded without error")
                    continue
                }
                #expect(!e.message.isEmpty)
            } else {
                #expect((try? result.get()) != nil, "\(name) prefix \(n): complete object plus whitespace must decode")
            }
        }
        // The decoder instance is still usable after thousands of errors.
        let again = try Decode.json(full, with: &decoder).get()
        expectIdenticalColumns(again.batch, try Decode.ok(full, .json).batch, "reused JSON decoder")
    }

    // (b) Seeded random mutations.

    struct MutationCase: Sendable, CustomTestStringConvertible {
        var fixture: String
        var format: WireFormat
        var seed: UInt64
        var iterations: Int
        var testDescription: String { "\(fixture) seed 0x\(String(seed, radix: 16)) ×\(iterations)" }
    }

    static let mutationCases: [MutationCase] = [
        MutationCase(fixture: "sdk_request.pb", format: .protobuf, seed: 0x5EED_0001, iterations: 3000),
        MutationCase(fixture: "extra_request.pb", format: .protobuf, seed: 0x5EED_0002, iterations: 3000),
        MutationCase(fixture: "sdk_request.json", format: .json, seed: 0x5EED_0003, iterations: 1000),
        MutationCase(fixture: "extra_request.json", format: .json, seed: 0x5EED_0004, iterations: 1500),
        MutationCase(fixture: "sdk_request_snake.json", format: .json, seed: 0x5EED_0005, iterations: 1500),
    ]

    @Test("random mutations throw OTLPDecodeError or decode to a consistent batch", arguments: mutationCases)
    func randomMutations(_ c: MutationCase) throws {
        let original = try Fixture.bytes(c.fixture)
        var pbDecoder = OTLPProtobufDecoder()
        var jsonDecoder = OTLPJSONDecoder()
        var decoded = 0
        var issues = 0
        for i in 0..<c.iterations {
            let seed = c.seed &* 0x1_0000 &+ UInt64(i)
            let input = Mutator.mutate(original, seed: seed, json: c.format == .json)
            let result = c.format == .protobuf ? Decode.protobuf(input, with: &pbDecoder) : Decode.json(input, with: &jsonDecoder)
            switch result {
            case .failure(let e):
                if e.message.isEmpty {
                    Issue.record("\(c.fixture) mutation seed 0x\(String(seed, radix: 16)): empty error message")
                    issues += 1
                }
            case .success(let d):
                decoded += 1
                var problems = batchInvariantViolations(d.batch)
                if d.outcome.acceptedSpans != d.batch.spanCount { problems.append("acceptedSpans \(d.outcome.acceptedSpans) != \(d.batch.spanCount) rows") }
                if !problems.isEmpty {
                    Issue.record("\(c.fixture) mutation seed 0x\(String(seed, radix: 16)): \(problems.prefix(5))")
                    issues += 1
                }
            }
            if issues >= 10 { break }
        }
        // The reused decoders carry no state over from the failed inputs.
        let fresh = try Decode.ok(original, c.format)
        let reused = c.format == .protobuf ? Decode.protobuf(original, with: &pbDecoder) : Decode.json(original, with: &jsonDecoder)
        expectIdenticalColumns(try reused.get().batch, fresh.batch, "decoder reused after mutations")
        print("\(c.testDescription): \(decoded) of \(c.iterations) mutated inputs decoded, the rest threw")
    }

    // (c) Specific cases: invalid IDs are rejected per span.

    @Test("protobuf: a span with an invalid ID is rejected; the others are accepted intact", arguments: InvalidSpanCase.protobuf)
    func protobufInvalidIDRejectsOneSpan(_ c: InvalidSpanCase) throws {
        let bad = Build.span(trace: c.trace, span: c.span, parent: c.parent, name: "B")
        let mixed = try Decode.protobuf(Build.request([Build.goodA, bad, Build.goodC])).get()
        #expect(mixed.outcome.acceptedSpans == 2)
        #expect(mixed.outcome.rejectedSpans == 1)
        #expect(mixed.outcome.rejectionMessage.contains(c.fragment), "message: \(mixed.outcome.rejectionMessage)")
        #expect(batchInvariantViolations(mixed.batch) == [])
        // Nothing of the rejected span (attributes, events, links, GenAI values) is left behind.
        let clean = try Decode.protobuf(Build.request([Build.goodA, Build.goodC])).get()
        expectIdenticalColumns(mixed.batch, clean.batch, "with vs without the rejected span")
    }

    @Test("protobuf: several rejected spans are counted; the message is the first reason")
    func protobufSeveralRejections() throws {
        let zeroTrace = Build.span(trace: [UInt8](repeating: 0, count: 16), span: Build.spanID(7), name: "Z")
        let shortSpan = Build.span(trace: Build.traceID(8), span: [1, 2, 3], name: "S")
        let longParent = Build.span(trace: Build.traceID(9), span: Build.spanID(9), parent: [1, 2, 3, 4, 5, 6, 7, 8, 9], name: "P")
        let d = try Decode.protobuf(Build.request([zeroTrace, Build.goodA, shortSpan, longParent, Build.goodC])).get()
        #expect(d.outcome.acceptedSpans == 2)
        #expect(d.outcome.rejectedSpans == 3)
        #expect(d.outcome.rejectionMessage == "span has an all-zero trace_id")
        #expect(try BatchView(batch: d.batch).spans().map(\.name) == ["A", "C"])
    }

    @Test("JSON: a span with an invalid ID is rejected; the others are accepted intact", arguments: InvalidJSONSpanCase.all)
    func jsonInvalidIDRejectsOneSpan(_ c: InvalidJSONSpanCase) throws {
        let bad = Build.jsonSpan(trace: c.trace, span: c.span, parent: c.parent, name: "B")
        let mixed = try Decode.json(Build.jsonRequest([Build.jsonGoodA, bad, Build.jsonGoodC])).get()
        #expect(mixed.outcome.acceptedSpans == 2)
        #expect(mixed.outcome.rejectedSpans == 1)
        #expect(mixed.outcome.rejectionMessage.contains(c.fragment), "message: \(mixed.outcome.rejectionMessage)")
        #expect(batchInvariantViolations(mixed.batch) == [])
        let clean = try Decode.json(Build.jsonRequest([Build.jsonGoodA, Build.jsonGoodC])).get()
        expectIdenticalColumns(mixed.batch, clean.batch, "with vs without the rejected span")
    }

    @Test("JSON and protobuf builders describe the same spans")
    func buildersAgree() throws {
        let pb = try Decode.protobuf(Build.request([Build.goodA, Build.goodC])).get()
        let json = try Decode.json(Build.jsonRequest([Build.jsonGoodA, Build.jsonGoodC])).get()
        let p = try BatchView(batch: pb.batch).spans()
        let j = try BatchView(batch: json.batch).spans()
        try #require(p.count == 2 && j.count == 2)
        #expect(p.map(\.traceID) == ["0102030405060708090a0b0c0d0e0f10", "030405060708090a0b0c0d0e0f101112"])
        #expect(p.map(\.traceID) == j.map(\.traceID))
        #expect(p.map(\.spanID) == j.map(\.spanID))
        #expect(p.map(\.parentSpanID) == j.map(\.parentSpanID))
        #expect(p[1].parentSpanID == p[0].spanID)
        #expect(p.map(\.genAI.inputTokens) == [7, 7])
    }

    // (c) Wrong wire types and broken framing.

    @Test("protobuf: a known field with the wrong wire type throws, naming the message and field", arguments: WrongWireCase.all)
    func wrongWireType(_ c: WrongWireCase) {
        switch Decode.protobuf(c.request) {
        case .success(let d):
            Issue.record("decoded \(d.batch.spanCount) spans instead of failing")
        case .failure(let e):
            #expect(e.message.contains(c.fragment), "message: \(e.message)")
        }
    }

    @Test("protobuf: broken framing throws a descriptive error", arguments: BrokenProtobufCase.all)
    func brokenFraming(_ c: BrokenProtobufCase) {
        switch Decode.protobuf(c.request) {
        case .success(let d):
            Issue.record("decoded \(d.batch.spanCount) spans instead of failing")
        case .failure(let e):
            #expect(e.message.contains(c.fragment), "message: \(e.message)")
        }
    }

    @Test("protobuf: unknown fields of every wire type are skipped at every level")
    func unknownFieldsSkipped() throws {
        let unknown: [UInt8] = Build.raw(100, .varint) + Build.raw(101, .i64) + Build.raw(102, .len) + Build.raw(103, .i32)
            + [0xF8, 0xFF, 0xFF, 0xFF, 0x0F, 0x01]  // field 536870911 (the largest), varint
        let s = Build.span(
            trace: Build.traceID(1), span: Build.spanID(1), name: "A",
            attrs: [Build.kv("k", Build.anyString("v") + unknown) + unknown],
            events: [Build.event("e", extra: unknown)],
            links: [Build.link(Build.traceID(2), Build.spanID(2), extra: unknown)],
            status: [0x18, 0x02] + unknown,
            extra: unknown)
        let d = try Decode.protobuf(Build.request(
            [s], resource: Build.resource(extra: unknown), scope: Build.scope(extra: unknown),
            scopeSpansExtra: unknown, resourceSpansExtra: unknown, requestExtra: unknown)).get()
        let spans = try BatchView(batch: d.batch).spans()
        try #require(spans.count == 1)
        #expect(spans[0].attributes == [KV(key: "k", value: .string("v"))])
        #expect(spans[0].statusCode == 2)
        #expect(spans[0].events.map(\.name) == ["e"])
        #expect(spans[0].links.map(\.spanID) == [Hex.encode(Build.spanID(2))])
        #expect(spans[0].serviceName == "builder")
        #expect(spans[0].scopeName == "builder.scope")
    }

    @Test("protobuf: empty body decodes to nothing without error")
    func emptyProtobuf() throws {
        let d = try Decode.protobuf([]).get()
        #expect(d.outcome == DecodeOutcome())
        #expect(d.batch.spanCount == 0 && d.batch.resourceCount == 0)
        // An empty ResourceSpans and an empty ScopeSpans are fine too.
        let e = try Decode.protobuf([0x0A, 0x02, 0x12, 0x00]).get()
        #expect(e.outcome.acceptedSpans == 0 && e.batch.resourceCount == 1 && e.batch.scopeCount == 1)
    }

    @Test("protobuf: value nesting is limited to maxValueDepth; 10 000 levels fail cleanly")
    func protobufNestingDepth() throws {
        func nested(_ depth: Int, kvlist: Bool) -> [UInt8] {
            var value = Build.anyInt(1)
            for _ in 0..<depth { value = kvlist ? Build.anyKVList([Build.kv("k", value)]) : Build.anyArray([value]) }
            return Build.request([Build.span(trace: Build.traceID(1), span: Build.spanID(1), name: "N", attrs: [Build.kv("deep", value)])])
        }
        for kvlist in [false, true] {
            let ok = try Decode.protobuf(nested(32, kvlist: kvlist)).get()
            #expect(ok.outcome.acceptedSpans == 1)
            #expect(batchInvariantViolations(ok.batch) == [])
            for depth in [33, 10_000] {
                guard case .failure(let e) = Decode.protobuf(nested(depth, kvlist: kvlist)) else {
                    Issue.record("depth \(depth) kvlist=\(kvlist) decoded")
                    continue
                }
                #expect(e.message.contains("nested deeper than 32"), "\(e.message)")
            }
        }
    }

    @Test("JSON: value nesting is limited like protobuf; 10 000 levels fail cleanly")
    func jsonNestingDepth() throws {
        func nested(_ depth: Int, kvlist: Bool) -> [UInt8] {
            var value = "{\"intValue\":\"1\"}"
            for _ in 0..<depth {
                value = kvlist ? "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":\(value)}]}}" : "{\"arrayValue\":{\"values\":[\(value)]}}"
            }
            let span = "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0203040506070809\",\"name\":\"N\",\"attributes\":[{\"key\":\"deep\",\"value\":\(value)}]}"
            return Build.jsonRequest([span])
        }
        let ok = try Decode.json(nested(32, kvlist: false)).get()
        #expect(ok.outcome.acceptedSpans == 1)
        for kvlist in [false, true] {
            for depth in [33, 10_000] {
                guard case .failure(let e) = Decode.json(nested(depth, kvlist: kvlist)) else {
                    Issue.record("depth \(depth) kvlist=\(kvlist) decoded")
                    continue
                }
                #expect(!e.message.isEmpty)
            }
        }
        // Same limit as protobuf for kvlists: 32 levels are accepted there.
        let deepKV = try Decode.json(nested(32, kvlist: true)).get()
        #expect(deepKV.outcome.acceptedSpans == 1)
    }

    @Test("JSON: lenient spellings decode exactly like canonical OTLP/JSON")
    func lenientJSON() throws {
        let canonical = """
            {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}],"droppedAttributesCount":1},
            "scopeSpans":[{"scope":{"name":"s","version":"1"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c",
            "spanId":"b7ad6b7169203331","parentSpanId":"00f067aa0ba902b7","traceState":"a=b","name":"n","kind":3,"flags":769,
            "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000000000001",
            "attributes":[{"key":"i","value":{"intValue":"-9223372036854775808"}},{"key":"d","value":{"doubleValue":"NaN"}},
            {"key":"e","value":{"doubleValue":1.5}},{"key":"x","value":{"bytesValue":"AQL/"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"12"}}],
            "events":[{"timeUnixNano":"5","name":"ev","droppedAttributesCount":2}],"droppedEventsCount":3,
            "links":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","traceState":"c=d","flags":256}],
            "status":{"code":2,"message":"m"}}]}]}]}
            """
        let lenient = """
            {"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"svc"}}],"dropped_attributes_count":"1"},
            "scope_spans":[{"scope":{"name":"s","version":"1","unknown":[1,{"a":null}]},"spans":[{"trace_id":"0AF7651916CD43DD8448EB211C80319C",
            "span_id":"B7AD6B7169203331","parent_span_id":"00F067AA0BA902B7","trace_state":"a=b","name":"n","kind":"SPAN_KIND_CLIENT","flags":"769",
            "start_time_unix_nano":1700000000000000000,"end_time_unix_nano":1.700000000000000001e18,
            "attributes":[{"key":"i","value":{"int_value":-9223372036854775808}},{"key":"d","value":{"double_value":"NaN"}},
            {"key":"e","value":{"double_value":"1.5"}},{"key":"x","value":{"bytes_value":"AQL_"}},{"key":"gen_ai.usage.input_tokens","value":{"int_value":12.0}}],
            "events":[{"time_unix_nano":5,"name":"ev","dropped_attributes_count":2}],"dropped_events_count":3,
            "links":[{"trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","span_id":"00F067AA0BA902B7","trace_state":"c=d","flags":256}],
            "status":{"code":"STATUS_CODE_ERROR","message":"m"},"unknown_field":{"deep":[[[]]]}}]}]}]}
            """
        let c = try Decode.json(Array(canonical.utf8)).get()
        let l = try Decode.json(Array(lenient.utf8)).get()
        #expect(c.outcome.acceptedSpans == 1)
        // 1.700000000000000001e18 is not exactly representable as a double: only the end time may differ.
        var lb = l.batch
        #expect(lb.endTime == [1_700_000_000_000_000_000])
        lb.endTime = c.batch.endTime
        expectIdenticalColumns(lb, c.batch, "lenient vs canonical JSON")
    }

    // (c) Malformed JSON.

    static let garbageJSON: [String] = [
        "", " ", "hello", "\u{00}\u{01}\u{FF}", "[]", "[1,2]", "null", "\"str\"", "42", "true",
        "{", "{\"resourceSpans\":", "{\"resourceSpans\":[", "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"",
        "{}}", "{} {}", "{\"a\":1,}", "{'a':1}", "{\"a\" 1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}", "{\"a\":tru}", "{\"a\":nul}",
        "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"line\nbreak\"}", "{\"a\":\"unterminated}",
        "\u{FEFF}{}",
        "{\"resourceSpans\":{}}",
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"1.5\"}}]}}]}",
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"9223372036854775808\"}}]}}]}",
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"!!!\"}}]}}]}",
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{\"boolValue\":\"true\"}}]}}]}",
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0203040506070809\",\"kind\":\"SPAN_KIND_NOPE\"}]}]}]}",
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0203040506070809\",\"startTimeUnixNano\":\"-1\"}]}]}]}",
    ]

    @Test("JSON: garbage, truncated and invalid documents throw a clean error")
    func garbageJSONThrows() {
        for text in Self.garbageJSON {
            switch Decode.json(Array(text.utf8)) {
            case .success(let d):
                Issue.record("\(text.debugDescription) decoded (\(d.batch.spanCount) spans) instead of failing")
            case .failure(let e):
                #expect(!e.message.isEmpty, "\(text.debugDescription)")
            }
        }
    }

    @Test("JSON: 10 000 levels of nesting anywhere fail cleanly (no stack overflow)")
    func deeplyNestedJSON() {
        let n = 10_000
        let open = String(repeating: "[", count: n)
        let close = String(repeating: "]", count: n)
        let objects = String(repeating: "{\"x\":", count: n) + "1" + String(repeating: "}", count: n)
        let span = "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0203040506070809\",\"unknown\":"
        let documents: [String] = [
            open + close,
            "{\"resourceSpans\":" + open + close + "}",
            "{\"unknown\":" + open + close + ",\"resourceSpans\":[]}",
            "{\"unknown\":" + objects + "}",
            "{\"resourceSpans\":[{\"resource\":{\"unknown\":" + objects + "}}]}",
            "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[" + span + open + close + "}]}]}]}",
            "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[" + span + objects + "}]}]}]}",
            open,
        ]
        for doc in documents {
            guard case .failure(let e) = Decode.json(Array(doc.utf8)) else {
                Issue.record("a \(doc.count)-byte nested document decoded")
                continue
            }
            #expect(!e.message.isEmpty)
        }
    }

    @Test("JSON: empty and null containers decode to nothing; unknown keys are ignored")
    func emptyJSON() throws {
        let documents: [(String, resources: Int, scopes: Int)] = [
            ("{}", 0, 0),
            (" \n{ }\n ", 0, 0),
            ("{\"resourceSpans\":[]}", 0, 0),
            ("{\"resourceSpans\":null}", 0, 0),
            ("{\"resource_spans\":[{}]}", 1, 0),
            ("{\"resourceSpans\":[{\"scopeSpans\":[{}]}]}", 1, 1),
            ("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[]}]}]}", 1, 1),
            ("{\"unknown\":{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\"},\"resourceSpans\":[],\"more\":-1.5e3}", 0, 0),
        ]
        for (text, resources, scopes) in documents {
            let d = try Decode.json(Array(text.utf8)).get()
            #expect(d.outcome == DecodeOutcome(), "\(text)")
            #expect(d.batch.spanCount == 0, "\(text)")
            #expect(d.batch.resourceCount == resources, "\(text)")
            #expect(d.batch.scopeCount == scopes, "\(text)")
        }
    }

    // Decoder deviations from protobuf semantics (documented as known issues).

    @Test("protobuf: string_value_strindex (field 8) with a non-varint wire type is not misread")
    func strindexWireType() throws {
        // AnyValue { field 8, wire LEN, 2 bytes: 10 01 }. A conforming parser skips or rejects the
        // field; the value must not turn into bool_value=true.
        let anyValue: [UInt8] = [0x42, 0x02, 0x10, 0x01]
        let request = Build.request([Build.span(trace: Build.traceID(1), span: Build.spanID(1), name: "S", attrs: [Build.kv("k", anyValue)])])
        let result = Decode.protobuf(request)
        switch result {
        case .success(let d):
            let spans = try BatchView(batch: d.batch).spans()
            #expect(spans.first?.attributes.first?.value == .empty)
        case .failure(let e):
            #expect(e.message.contains("AnyValue field 8"), "message: \(e.message)")
        }
    }

    @Test("protobuf: a repeated embedded Resource message is merged, as protobuf parsers do")
    func duplicateResourceMerged() throws {
        var rs = ProtoWriter()
        rs.bytesField(1, Build.resource())
        var second = ProtoWriter()
        second.bytesField(1, Build.kv("deployment.environment.name", Build.anyString("prod")))
        rs.bytesField(1, second.bytes)
        var ss = ProtoWriter()
        ss.bytesField(2, Build.goodA)
        rs.bytesField(2, ss.bytes)
        var req = ProtoWriter()
        req.bytesField(1, rs.bytes)
        let d = try Decode.protobuf(req.bytes).get()
        let resource = try BatchView(batch: d.batch).resource(0)
        #expect(resource.serviceName == "builder")
        #expect(resource.attributes.count == 2)
    }

    @Test("protobuf and JSON: a link with a wrong-length ID rejects its span only; an empty link ID means absent")
    func invalidLinkIDsRejectTheSpan() throws {
        let B = Build.self
        let bad = B.request([
            B.span(trace: B.traceID(1), span: B.spanID(1), name: "L", links: [B.link(Array(B.traceID(1).prefix(10)), B.spanID(2))]),
            B.span(trace: B.traceID(2), span: B.spanID(3), name: "L2", links: [B.link(B.traceID(1), B.spanID(2) + [0])]),
            B.span(trace: B.traceID(3), span: B.spanID(4), name: "ok", links: [B.link([], [])]),
        ])
        let d = try Decode.protobuf(bad).get()
        #expect(d.outcome.acceptedSpans == 1)
        #expect(d.outcome.rejectedSpans == 2)
        #expect(d.outcome.rejectionMessage.contains("link trace_id has 10 bytes"))
        #expect(d.batch.linkSpanID == [0])
        let json = #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0203040506070809","links":[{"traceId":"xyz"}]},{"traceId":"0102030405060708090a0b0c0d0e0f11","spanId":"0203040506070809","links":[{"traceId":"","spanId":""}]}]}]}]}"#
        let j = try Decode.json(Array(json.utf8)).get()
        #expect(j.outcome.acceptedSpans == 1)
        #expect(j.outcome.rejectedSpans == 1)
        #expect(j.outcome.rejectionMessage.contains("link traceId"))
    }

    // (d) Response encoders, checked against Python protobuf output.

    @Test("response encoders match bodies serialized by the Python protobuf library")
    func responsesMatchPythonProtobuf() throws {
        let golden = try Fixture.json("responses_golden.json")
        func hexBytes(_ s: String) -> [UInt8] {
            var out: [UInt8] = []
            var it = s.utf8.makeIterator()
            while let a = it.next(), let b = it.next() { out.append(UInt8(Hex.value(a)! << 4 | Hex.value(b)!)) }
            return out
        }
        func json(_ bytes: [UInt8]) throws -> [String: Any] {
            try TestJSON.object(JSONSerialization.jsonObject(with: Data(bytes)), "response JSON")
        }

        for item in try TestJSON.array(golden["export"], "export") {
            let c = try TestJSON.object(item, "export case")
            let rejected = try TestJSON.int(c["rejected"], "rejected")
            let message = try TestJSON.string(c["message"], "message")
            let python = hexBytes(try TestJSON.string(c["protobuf_hex"], "hex"))
            let weft = OTLPResponse.export(rejected: rejected, message: message, encoding: .protobuf)
            #expect(weft == python, "export(\(rejected), \(message.debugDescription)) protobuf: \(Hex.encode(weft)) vs Python \(Hex.encode(python))")
            // Field by field: ExportTraceServiceResponse { partial_success(1) { rejected_spans(1) int64, error_message(2) } }.
            var gotRejected: UInt64 = 0
            var gotMessage: [UInt8] = []
            for (n, f) in try parseProtoFields(weft) {
                guard n == 1, case .len(let inner) = f else { Issue.record("unexpected field \(n)"); continue }
                for (m, g) in try parseProtoFields(inner) {
                    switch (m, g) {
                    case (1, .varint(let v)): gotRejected = v
                    case (2, .len(let s)): gotMessage = s
                    default: Issue.record("unexpected partial_success field \(m)")
                    }
                }
            }
            #expect(gotRejected == UInt64(rejected) && gotMessage == Array(message.utf8))

            // JSON: same meaning as Python's MessageToDict (int64 as a string; defaults may be omitted).
            let weftJSON = try json(OTLPResponse.export(rejected: rejected, message: message, encoding: .json))
            let pythonJSON = try TestJSON.object(c["json"], "json")
            let w = weftJSON["partialSuccess"] as? [String: Any]
            let p = pythonJSON["partialSuccess"] as? [String: Any]
            #expect((w == nil) == (p == nil), "partialSuccess presence for export(\(rejected), \(message.debugDescription))")
            if let w {
                #expect(w["rejectedSpans"] is String, "rejectedSpans must be a decimal string")
                #expect((w["rejectedSpans"] as? String ?? "0") == (p?["rejectedSpans"] as? String ?? "0"))
                #expect((w["errorMessage"] as? String ?? "") == (p?["errorMessage"] as? String ?? ""))
            }
            #expect(Set(weftJSON.keys).isSubset(of: ["partialSuccess"]))
        }

        for item in try TestJSON.array(golden["status"], "status") {
            let c = try TestJSON.object(item, "status case")
            let code = try TestJSON.int(c["code"], "code")
            let message = try TestJSON.string(c["message"], "message")
            let python = hexBytes(try TestJSON.string(c["protobuf_hex"], "hex"))
            let weft = OTLPResponse.status(code: code, message: message, encoding: .protobuf)
            // Weft always writes both fields; compare decoded values (proto3 defaults applied).
            func decodeStatus(_ bytes: [UInt8]) throws -> (UInt64, [UInt8]) {
                var out: (UInt64, [UInt8]) = (0, [])
                for (n, f) in try parseProtoFields(bytes) {
                    switch (n, f) {
                    case (1, .varint(let v)): out.0 = v
                    case (2, .len(let s)): out.1 = s
                    default: Issue.record("unexpected google.rpc.Status field \(n)")
                    }
                }
                return out
            }
            let (wc, wm) = try decodeStatus(weft)
            let (pc, pm) = try decodeStatus(python)
            #expect(wc == pc && wm == pm, "status(\(code), \(message.debugDescription))")
            if code != 0 && !message.isEmpty { #expect(weft == python, "status(\(code)) bytes") }

            let weftJSON = try json(OTLPResponse.status(code: code, message: message, encoding: .json))
            let pythonJSON = try TestJSON.object(c["json"], "json")
            #expect((weftJSON["code"] as? Int ?? 0) == (pythonJSON["code"] as? Int ?? 0))
            #expect((weftJSON["message"] as? String ?? "") == (pythonJSON["message"] as? String ?? ""))
        }
    }

    @Test("JSON responses escape every special character")
    func responseJSONEscaping() throws {
        let message = "q\" b\\ n\n r\r t\t nul\u{0} ctl\u{1F} del\u{7F} é ✓ 😀 \u{2028}"
        let body = OTLPResponse.export(rejected: 2, message: message, encoding: .json)
        let parsed = try TestJSON.object(JSONSerialization.jsonObject(with: Data(body)), "response")
        let p = try TestJSON.object(parsed["partialSuccess"], "partialSuccess")
        #expect(p["errorMessage"] as? String == message)
        #expect(p["rejectedSpans"] as? String == "2")
        let status = try TestJSON.object(JSONSerialization.jsonObject(with: Data(OTLPResponse.status(code: 3, message: message, encoding: .json))), "status")
        #expect(status["message"] as? String == message)
        #expect(status["code"] as? Int == 3)
    }
}
