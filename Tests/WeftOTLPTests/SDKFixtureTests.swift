// Decodes requests captured from the real Python OpenTelemetry SDK exporter (and one request built
// with the opentelemetry-proto classes) and compares every decoded column with a description that
// Python computed from the parsed protobuf message. Fixtures: Tests/WeftOTLPTests/Fixtures, made by
// `python3 Tests/Fixtures/generate_fixtures.py`.

import Foundation
import Testing
import WeftModel
import WeftOTLP

// MARK: - Fixture loading

enum Fixture {
    struct Missing: Error, CustomStringConvertible {
        var name: String
        var description: String { "fixture \(name) not found" }
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        if let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"),
            let data = try? Data(contentsOf: url)
        {
            return [UInt8](data)
        }
        // Fallback: next to this source file.
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name)
        guard let data = try? Data(contentsOf: url) else { throw Missing(name: name) }
        return [UInt8](data)
    }

    static func json(_ name: String) throws -> [String: Any] {
        try TestJSON.object(JSONSerialization.jsonObject(with: Data(bytes(name))), name)
    }
}

// MARK: - Decoding

struct Decoded {
    var batch: SpanBatch
    var outcome: DecodeOutcome
}

enum WireFormat: String, Sendable {
    case protobuf
    case json
}

enum Decode {
    static func protobuf(_ bytes: [UInt8], options: DecodeOptions = DecodeOptions()) -> Result<Decoded, OTLPDecodeError> {
        var decoder = OTLPProtobufDecoder(options: options)
        return self.protobuf(bytes, with: &decoder)
    }

    static func protobuf(_ bytes: [UInt8], with decoder: inout OTLPProtobufDecoder, into batch: SpanBatch = SpanBatch()) -> Result<Decoded, OTLPDecodeError> {
        self.run(bytes, with: &decoder, into: batch)
    }

    static func json(_ bytes: [UInt8], options: DecodeOptions = DecodeOptions()) -> Result<Decoded, OTLPDecodeError> {
        var decoder = OTLPJSONDecoder(options: options)
        return self.json(bytes, with: &decoder)
    }

    static func json(_ bytes: [UInt8], with decoder: inout OTLPJSONDecoder, into batch: SpanBatch = SpanBatch()) -> Result<Decoded, OTLPDecodeError> {
        self.run(bytes, with: &decoder, into: batch)
    }

    /// Decodes with any decoder; a thrown error other than `OTLPDecodeError` is recorded as a failure.
    static func run<D: OTLPBatchDecoder>(_ bytes: [UInt8], with decoder: inout D, into batch: SpanBatch) -> Result<Decoded, OTLPDecodeError> {
        var batch = batch
        do {
            let outcome = try bytes.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            return .success(Decoded(batch: batch, outcome: outcome))
        } catch let error as OTLPDecodeError {
            return .failure(error)
        } catch {
            Issue.record("\(D.self) threw a non-OTLPDecodeError: \(error)")
            return .failure(OTLPDecodeError("\(error)"))
        }
    }

    static func any(_ bytes: [UInt8], _ format: WireFormat) -> Result<Decoded, OTLPDecodeError> {
        format == .protobuf ? self.protobuf(bytes) : self.json(bytes)
    }

    /// Decodes and requires success.
    static func ok(_ bytes: [UInt8], _ format: WireFormat, sourceLocation: SourceLocation = #_sourceLocation) throws -> Decoded {
        switch self.any(bytes, format) {
        case .success(let d): return d
        case .failure(let e):
            Issue.record("decode failed: \(e.message)", sourceLocation: sourceLocation)
            throw e
        }
    }
}

// MARK: - Exact byte strings

/// Bytes compared exactly (Swift `String` equality would treat canonically equivalent text as equal).
struct Text: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    var bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(_ string: String) { self.bytes = Array(string.utf8) }
    init(stringLiteral value: String) { self.init(value) }
    var string: String { String(decoding: self.bytes, as: UTF8.self) }
    var description: String {
        let s = self.string
        return Array(s.utf8) == self.bytes ? s.debugDescription : "hex:" + Hex.encode(self.bytes)
    }
}

// MARK: - A decoder-independent protobuf reader (test side)

enum PBField: Equatable {
    case varint(UInt64)
    case i64(UInt64)
    case i32(UInt32)
    case len([UInt8])
}

struct PBError: Error, CustomStringConvertible {
    var description: String
}

/// Parses one protobuf message into its fields (in wire order). Groups are rejected.
func parseProtoFields(_ bytes: [UInt8]) throws -> [(UInt64, PBField)] {
    var out: [(UInt64, PBField)] = []
    var i = 0
    func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard i < bytes.count else { throw PBError(description: "truncated varint") }
            guard shift < 64 else { throw PBError(description: "varint too long") }
            let b = bytes[i]
            i += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
    }
    func take(_ n: Int) throws -> [UInt8] {
        guard n >= 0, n <= bytes.count - i else { throw PBError(description: "truncated field") }
        defer { i += n }
        return Array(bytes[i..<(i + n)])
    }
    while i < bytes.count {
        let tag = try varint()
        let number = tag >> 3
        guard number != 0 else { throw PBError(description: "field number 0") }
        switch tag & 7 {
        case 0: out.append((number, .varint(try varint())))
        case 1:
            let b = try take(8)
            out.append((number, .i64(b.reversed().reduce(0) { $0 << 8 | UInt64($1) })))
        case 2:
            let n = try varint()
            guard n <= UInt64(Int.max) else { throw PBError(description: "bad length") }
            out.append((number, .len(try take(Int(n)))))
        case 5:
            let b = try take(4)
            out.append((number, .i32(b.reversed().reduce(0) { $0 << 8 | UInt32($1) })))
        default: throw PBError(description: "wire type \(tag & 7)")
        }
    }
    return out
}

// MARK: - Attribute values in a canonical form

indirect enum Val: Equatable, CustomStringConvertible {
    case empty
    case string(Text)
    case bool(Bool)
    case int(Int64)
    /// The bit pattern.
    case double(UInt64)
    case bytes([UInt8])
    case array([Val])
    case kvlist([KV])

    var description: String {
        switch self {
        case .empty: return "empty"
        case .string(let t): return t.description
        case .bool(let b): return "\(b)"
        case .int(let i): return "int(\(i))"
        case .double(let bits): return "double(\(Double(bitPattern: bits)) bits=\(String(bits, radix: 16)))"
        case .bytes(let b): return "bytes(\(Hex.encode(b)))"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .kvlist(let kv): return "{" + kv.map(\.description).joined(separator: ", ") + "}"
        }
    }

    /// Reads a protobuf `AnyValue` (the last `oneof` member wins; unknown fields are skipped).
    static func fromAnyValue(_ bytes: [UInt8]) throws -> Val {
        var v = Val.empty
        for (number, field) in try parseProtoFields(bytes) {
            switch (number, field) {
            case (1, .len(let b)): v = .string(Text(b))
            case (2, .varint(let x)): v = .bool(x != 0)
            case (3, .varint(let x)): v = .int(Int64(bitPattern: x))
            case (4, .i64(let x)): v = .double(x)
            case (5, .len(let b)): v = .array(try fromArrayValue(b))
            case (6, .len(let b)): v = .kvlist(try fromKeyValueList(b))
            case (7, .len(let b)): v = .bytes(b)
            case (1...7, _): throw PBError(description: "AnyValue field \(number) with a wrong wire type")
            default: break
            }
        }
        return v
    }

    static func fromArrayValue(_ bytes: [UInt8]) throws -> [Val] {
        try parseProtoFields(bytes).compactMap { number, field in
            guard number == 1 else { return nil }
            guard case .len(let b) = field else { throw PBError(description: "ArrayValue.values wire type") }
            return try fromAnyValue(b)
        }
    }

    static func fromKeyValueList(_ bytes: [UInt8]) throws -> [KV] {
        try parseProtoFields(bytes).compactMap { number, field in
            guard number == 1 else { return nil }
            guard case .len(let b) = field else { throw PBError(description: "KeyValueList.values wire type") }
            var key = Text([])
            var value = Val.empty
            for (n, f) in try parseProtoFields(b) {
                switch (n, f) {
                case (1, .len(let k)): key = Text(k)
                case (2, .len(let v)): value = try fromAnyValue(v)
                case (1, _), (2, _): throw PBError(description: "KeyValue wire type")
                default: break
                }
            }
            return KV(key: key, value: value)
        }
    }

    /// A value of the description in `*_expected.json`.
    static func fromExpected(_ d: [String: Any]) throws -> Val {
        let type = try TestJSON.string(d["type"], "type")
        switch type {
        case "empty": return .empty
        case "string": return .string(Text(try TestJSON.string(d["value"], "string value")))
        case "bool": return .bool(try TestJSON.bool(d["value"], "bool value"))
        case "int":
            guard let v = Int64(try TestJSON.string(d["value"], "int value")) else { throw PBError(description: "bad int") }
            return .int(v)
        case "double":
            guard let bits = UInt64(try TestJSON.string(d["bits"], "double bits"), radix: 16) else {
                throw PBError(description: "bad double bits")
            }
            return .double(bits)
        case "bytes":
            guard let data = Data(base64Encoded: try TestJSON.string(d["value"], "bytes value")) else {
                throw PBError(description: "bad base64")
            }
            return .bytes([UInt8](data))
        case "array":
            return .array(try TestJSON.array(d["value"], "array value").map { try fromExpected(TestJSON.object($0, "array item")) })
        case "kvlist":
            return .kvlist(try KV.list(fromExpected: d["value"]))
        default:
            throw PBError(description: "unknown type \(type)")
        }
    }

    /// A value as stored in the attribute columns of a batch.
    static func fromColumns(type: UInt8, value: UInt64, strings: StringTable) throws -> Val {
        guard let t = ValueType(rawValue: type) else { throw PBError(description: "bad ValueType \(type)") }
        let id = UInt32(truncatingIfNeeded: value)
        switch t {
        case .empty: return .empty
        case .string: return .string(Text(strings.data(id)))
        case .bool: return .bool(value != 0)
        case .int: return .int(Int64(bitPattern: value))
        case .double: return .double(value)
        case .bytes: return .bytes(strings.data(id))
        case .array: return .array(try fromArrayValue(strings.data(id)))
        case .kvlist: return .kvlist(try fromKeyValueList(strings.data(id)))
        }
    }

    var typeName: String {
        switch self {
        case .empty: return "empty"
        case .string: return "string"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "double"
        case .bytes: return "bytes"
        case .array: return "array"
        case .kvlist: return "kvlist"
        }
    }
}

struct KV: Equatable, CustomStringConvertible {
    var key: Text
    var value: Val
    var description: String { "\(key)=\(value)" }

    static func list(fromExpected any: Any?) throws -> [KV] {
        try TestJSON.array(any, "attributes").map { item in
            let d = try TestJSON.object(item, "attribute")
            return KV(key: Text(try TestJSON.string(d["key"], "key")), value: try Val.fromExpected(d))
        }
    }

    static func list(_ columns: AttributeColumns, _ range: Range<Int>, _ strings: StringTable) throws -> [KV] {
        try range.map { i in
            KV(
                key: Text(strings.data(columns.keys[i])),
                value: try Val.fromColumns(type: columns.types[i], value: columns.values[i], strings: strings)
            )
        }
    }
}

// MARK: - JSON helpers (Foundation JSONSerialization output)

enum TestJSON {
    static func fail(_ what: String, _ v: Any?) -> PBError { PBError(description: "expected \(what), got \(String(describing: v))") }

    static func object(_ v: Any?, _ what: String) throws -> [String: Any] {
        guard let d = v as? [String: Any] else { throw fail("object for \(what)", v) }
        return d
    }

    static func array(_ v: Any?, _ what: String) throws -> [Any] {
        guard let a = v as? [Any] else { throw fail("array for \(what)", v) }
        return a
    }

    static func string(_ v: Any?, _ what: String) throws -> String {
        guard let s = v as? String else { throw fail("string for \(what)", v) }
        return s
    }

    static func optionalString(_ v: Any?, _ what: String) throws -> String? {
        if v == nil || v is NSNull { return nil }
        return try string(v, what)
    }

    static func bool(_ v: Any?, _ what: String) throws -> Bool {
        guard let b = v as? Bool else { throw fail("bool for \(what)", v) }
        return b
    }

    static func int(_ v: Any?, _ what: String) throws -> Int {
        guard let n = v as? NSNumber else { throw fail("number for \(what)", v) }
        return n.intValue
    }

    static func uint64(_ v: Any?, _ what: String) throws -> UInt64 {
        guard let n = UInt64(try string(v, what)) else { throw fail("decimal string for \(what)", v) }
        return n
    }
}

// MARK: - Decoder-independent records

struct GenAIRecord: Equatable, CustomStringConvertible {
    var provider: Text?
    var requestModel: Text?
    var responseModel: Text?
    var inputTokens: Int64?
    var outputTokens: Int64?
    /// Bit pattern of the cost.
    var cost: UInt64?

    var description: String {
        let c = self.cost.map { "\(Double(bitPattern: $0))" } ?? "nil"
        return "provider=\(provider?.description ?? "nil") request=\(requestModel?.description ?? "nil") response=\(responseModel?.description ?? "nil") in=\(inputTokens.map(String.init) ?? "nil") out=\(outputTokens.map(String.init) ?? "nil") cost=\(c)"
    }
}

struct EventRecord: Equatable {
    var time: UInt64
    var name: Text
    var attributes: [KV]
    var droppedAttributes: UInt32
}

struct LinkRecord: Equatable {
    var traceID: String
    var spanID: String
    var traceState: Text
    var flags: UInt32
    var attributes: [KV]
    var droppedAttributes: UInt32
}

struct ResourceRecord: Equatable {
    var serviceName: Text?
    var attributes: [KV]
    var droppedAttributes: UInt32
    var schemaURL: Text
}

struct ScopeRecord: Equatable {
    var name: Text
    var version: Text
    var attributes: [KV]
    var droppedAttributes: UInt32
    var schemaURL: Text
}

struct SpanRecord: Equatable {
    var traceID: String
    var spanID: String
    var parentSpanID: String
    var name: Text
    var kind: Int
    var start: UInt64
    var end: UInt64
    var flags: UInt32
    var traceState: Text
    var statusCode: Int
    var statusMessage: Text
    var resourceIndex: Int
    var scopeIndex: Int
    var serviceName: Text?
    var scopeName: Text
    var scopeVersion: Text
    var attributes: [KV]
    var droppedAttributes: UInt32
    var events: [EventRecord]
    var droppedEvents: UInt32
    var links: [LinkRecord]
    var droppedLinks: UInt32
    var genAI: GenAIRecord
}

struct ExpectedRequest {
    var resources: [ResourceRecord]
    var scopes: [ScopeRecord]
    var spans: [SpanRecord]

    init(fixture name: String) throws {
        let root = try Fixture.json(name)
        self.resources = try TestJSON.array(root["resources"], "resources").map { item in
            let d = try TestJSON.object(item, "resource")
            return ResourceRecord(
                serviceName: try TestJSON.optionalString(d["service_name"], "service_name").map { Text($0) },
                attributes: try KV.list(fromExpected: d["attributes"]),
                droppedAttributes: UInt32(try TestJSON.int(d["dropped_attributes_count"], "dropped")),
                schemaURL: Text(try TestJSON.string(d["schema_url"], "schema_url"))
            )
        }
        self.scopes = try TestJSON.array(root["scopes"], "scopes").map { item in
            let d = try TestJSON.object(item, "scope")
            return ScopeRecord(
                name: Text(try TestJSON.string(d["name"], "name")),
                version: Text(try TestJSON.string(d["version"], "version")),
                attributes: try KV.list(fromExpected: d["attributes"]),
                droppedAttributes: UInt32(try TestJSON.int(d["dropped_attributes_count"], "dropped")),
                schemaURL: Text(try TestJSON.string(d["schema_url"], "schema_url"))
            )
        }
        self.spans = try TestJSON.array(root["spans"], "spans").map { try Self.span(TestJSON.object($0, "span")) }
    }

    static func span(_ d: [String: Any]) throws -> SpanRecord {
        let g = try TestJSON.object(d["gen_ai"], "gen_ai")
        func tokens(_ key: String) throws -> Int64? {
            guard let s = try TestJSON.optionalString(g[key], key) else { return nil }
            guard let v = Int64(s) else { throw TestJSON.fail("int64 string", s) }
            return v
        }
        var cost: UInt64? = nil
        if let c = g["cost"], !(c is NSNull) {
            cost = UInt64(try TestJSON.string(try TestJSON.object(c, "cost")["bits"], "cost bits"), radix: 16)
        }
        func text(_ key: String) throws -> Text? {
            guard let s = try TestJSON.optionalString(g[key], key) else { return nil }
            return Text(s)
        }
        var genAI = GenAIRecord()
        genAI.provider = try text("provider")
        genAI.requestModel = try text("request_model")
        genAI.responseModel = try text("response_model")
        genAI.inputTokens = try tokens("input_tokens")
        genAI.outputTokens = try tokens("output_tokens")
        genAI.cost = cost
        return SpanRecord(
            traceID: try TestJSON.string(d["trace_id"], "trace_id"),
            spanID: try TestJSON.string(d["span_id"], "span_id"),
            parentSpanID: try TestJSON.string(d["parent_span_id"], "parent_span_id"),
            name: Text(try TestJSON.string(d["name"], "name")),
            kind: try TestJSON.int(d["kind"], "kind"),
            start: try TestJSON.uint64(d["start_time_unix_nano"], "start"),
            end: try TestJSON.uint64(d["end_time_unix_nano"], "end"),
            flags: UInt32(try TestJSON.int(d["flags"], "flags")),
            traceState: Text(try TestJSON.string(d["trace_state"], "trace_state")),
            statusCode: try TestJSON.int(d["status_code"], "status_code"),
            statusMessage: Text(try TestJSON.string(d["status_message"], "status_message")),
            resourceIndex: try TestJSON.int(d["resource_index"], "resource_index"),
            scopeIndex: try TestJSON.int(d["scope_index"], "scope_index"),
            serviceName: try TestJSON.optionalString(d["service_name"], "service_name").map { Text($0) },
            scopeName: Text(try TestJSON.string(d["scope_name"], "scope_name")),
            scopeVersion: Text(try TestJSON.string(d["scope_version"], "scope_version")),
            attributes: try KV.list(fromExpected: d["attributes"]),
            droppedAttributes: UInt32(try TestJSON.int(d["dropped_attributes_count"], "dropped attrs")),
            events: try TestJSON.array(d["events"], "events").map { item in
                let e = try TestJSON.object(item, "event")
                return EventRecord(
                    time: try TestJSON.uint64(e["time_unix_nano"], "event time"),
                    name: Text(try TestJSON.string(e["name"], "event name")),
                    attributes: try KV.list(fromExpected: e["attributes"]),
                    droppedAttributes: UInt32(try TestJSON.int(e["dropped_attributes_count"], "event dropped"))
                )
            },
            droppedEvents: UInt32(try TestJSON.int(d["dropped_events_count"], "dropped events")),
            links: try TestJSON.array(d["links"], "links").map { item in
                let l = try TestJSON.object(item, "link")
                return LinkRecord(
                    traceID: try TestJSON.string(l["trace_id"], "link trace_id"),
                    spanID: try TestJSON.string(l["span_id"], "link span_id"),
                    traceState: Text(try TestJSON.string(l["trace_state"], "link trace_state")),
                    flags: UInt32(try TestJSON.int(l["flags"], "link flags")),
                    attributes: try KV.list(fromExpected: l["attributes"]),
                    droppedAttributes: UInt32(try TestJSON.int(l["dropped_attributes_count"], "link dropped"))
                )
            },
            droppedLinks: UInt32(try TestJSON.int(d["dropped_links_count"], "dropped links")),
            genAI: genAI
        )
    }
}

/// Reads records back out of a decoded batch.
struct BatchView {
    var batch: SpanBatch

    func text(_ id: UInt32) -> Text { Text(self.batch.strings.data(id)) }
    func optionalText(_ id: UInt32) -> Text? { id == 0 ? nil : self.text(id) }

    func resource(_ i: Int) throws -> ResourceRecord {
        let b = self.batch
        return ResourceRecord(
            serviceName: self.optionalText(b.resourceServiceName[i]),
            attributes: try KV.list(b.resourceAttrs, b.resourceAttrRange(i), b.strings),
            droppedAttributes: b.resourceDroppedAttrs[i],
            schemaURL: self.text(b.resourceSchemaURL[i])
        )
    }

    func scope(_ i: Int) throws -> ScopeRecord {
        let b = self.batch
        return ScopeRecord(
            name: self.text(b.scopeName[i]),
            version: self.text(b.scopeVersion[i]),
            attributes: try KV.list(b.scopeAttrs, Int(b.scopeAttrOffsets[i])..<Int(b.scopeAttrOffsets[i + 1]), b.strings),
            droppedAttributes: b.scopeDroppedAttrs[i],
            schemaURL: self.text(b.scopeSchemaURL[i])
        )
    }

    func span(_ i: Int) throws -> SpanRecord {
        let b = self.batch
        let resource = Int(b.resourceIndex[i])
        let scope = Int(b.scopeIndex[i])
        let events = try (Int(b.eventOffsets[i])..<Int(b.eventOffsets[i + 1])).map { e in
            EventRecord(
                time: b.eventTime[e],
                name: self.text(b.eventName[e]),
                attributes: try KV.list(b.eventAttrs, Int(b.eventAttrOffsets[e])..<Int(b.eventAttrOffsets[e + 1]), b.strings),
                droppedAttributes: b.eventDroppedAttrs[e]
            )
        }
        let links = try (Int(b.linkOffsets[i])..<Int(b.linkOffsets[i + 1])).map { l in
            LinkRecord(
                traceID: Hex.encode(b.linkTraceHigh[l]) + Hex.encode(b.linkTraceLow[l]),
                spanID: Hex.encode(b.linkSpanID[l]),
                traceState: self.text(b.linkTraceState[l]),
                flags: b.linkFlags[l],
                attributes: try KV.list(b.linkAttrs, Int(b.linkAttrOffsets[l])..<Int(b.linkAttrOffsets[l + 1]), b.strings),
                droppedAttributes: b.linkDroppedAttrs[l]
            )
        }
        let genAI = GenAIRecord(
            provider: self.optionalText(b.genAIProvider[i]),
            requestModel: self.optionalText(b.genAIRequestModel[i]),
            responseModel: self.optionalText(b.genAIResponseModel[i]),
            inputTokens: b.inputTokens[i] == SpanBatch.noTokens ? nil : b.inputTokens[i],
            outputTokens: b.outputTokens[i] == SpanBatch.noTokens ? nil : b.outputTokens[i],
            cost: b.cost[i].isNaN ? nil : b.cost[i].bitPattern
        )
        return SpanRecord(
            traceID: b.traceID(i).description,
            spanID: Hex.encode(b.spanID[i]),
            parentSpanID: b.parentSpanID[i] == 0 ? "" : Hex.encode(b.parentSpanID[i]),
            name: self.text(b.name[i]),
            kind: Int(b.kind[i]),
            start: b.startTime[i],
            end: b.endTime[i],
            flags: b.flags[i],
            traceState: self.text(b.traceState[i]),
            statusCode: Int(b.statusCode[i]),
            statusMessage: self.text(b.statusMessage[i]),
            resourceIndex: resource,
            scopeIndex: scope,
            serviceName: self.optionalText(b.resourceServiceName[resource]),
            scopeName: self.text(b.scopeName[scope]),
            scopeVersion: self.text(b.scopeVersion[scope]),
            attributes: try KV.list(b.attrs, b.attrRange(i), b.strings),
            droppedAttributes: b.droppedAttrs[i],
            events: events,
            droppedEvents: b.droppedEvents[i],
            links: links,
            droppedLinks: b.droppedLinks[i],
            genAI: genAI
        )
    }

    func spans() throws -> [SpanRecord] { try (0..<self.batch.spanCount).map(self.span) }
}

// MARK: - Comparisons with readable failures

func expectList<T: Equatable>(_ actual: [T], _ expected: [T], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what): count", sourceLocation: sourceLocation)
    for (i, (a, e)) in zip(actual, expected).enumerated() where a != e {
        Issue.record("\(what)[\(i)]: got \(a), expected \(e)", sourceLocation: sourceLocation)
    }
}

func expectSpan(_ a: SpanRecord, _ e: SpanRecord, _ ctx: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let c = "\(ctx) span \(e.name)"
    #expect(a.traceID == e.traceID, "\(c): trace id", sourceLocation: sourceLocation)
    #expect(a.spanID == e.spanID, "\(c): span id", sourceLocation: sourceLocation)
    #expect(a.parentSpanID == e.parentSpanID, "\(c): parent span id", sourceLocation: sourceLocation)
    #expect(a.name == e.name, "\(c): name", sourceLocation: sourceLocation)
    #expect(a.kind == e.kind, "\(c): kind", sourceLocation: sourceLocation)
    #expect(a.start == e.start, "\(c): start time", sourceLocation: sourceLocation)
    #expect(a.end == e.end, "\(c): end time", sourceLocation: sourceLocation)
    #expect(a.flags == e.flags, "\(c): flags", sourceLocation: sourceLocation)
    #expect(a.traceState == e.traceState, "\(c): trace state", sourceLocation: sourceLocation)
    #expect(a.statusCode == e.statusCode, "\(c): status code", sourceLocation: sourceLocation)
    #expect(a.statusMessage == e.statusMessage, "\(c): status message", sourceLocation: sourceLocation)
    #expect(a.resourceIndex == e.resourceIndex, "\(c): resource index", sourceLocation: sourceLocation)
    #expect(a.scopeIndex == e.scopeIndex, "\(c): scope index", sourceLocation: sourceLocation)
    #expect(a.serviceName == e.serviceName, "\(c): service name", sourceLocation: sourceLocation)
    #expect(a.scopeName == e.scopeName, "\(c): scope name", sourceLocation: sourceLocation)
    #expect(a.scopeVersion == e.scopeVersion, "\(c): scope version", sourceLocation: sourceLocation)
    expectList(a.attributes, e.attributes, "\(c): attributes", sourceLocation: sourceLocation)
    #expect(a.droppedAttributes == e.droppedAttributes, "\(c): dropped attributes", sourceLocation: sourceLocation)
    #expect(a.events.count == e.events.count, "\(c): event count", sourceLocation: sourceLocation)
    for (i, (ae, ee)) in zip(a.events, e.events).enumerated() {
        #expect(ae.time == ee.time, "\(c): event \(i) time", sourceLocation: sourceLocation)
        #expect(ae.name == ee.name, "\(c): event \(i) name", sourceLocation: sourceLocation)
        expectList(ae.attributes, ee.attributes, "\(c): event \(i) attributes", sourceLocation: sourceLocation)
        #expect(ae.droppedAttributes == ee.droppedAttributes, "\(c): event \(i) dropped attributes", sourceLocation: sourceLocation)
    }
    #expect(a.droppedEvents == e.droppedEvents, "\(c): dropped events", sourceLocation: sourceLocation)
    #expect(a.links.count == e.links.count, "\(c): link count", sourceLocation: sourceLocation)
    for (i, (al, el)) in zip(a.links, e.links).enumerated() {
        #expect(al.traceID == el.traceID, "\(c): link \(i) trace id", sourceLocation: sourceLocation)
        #expect(al.spanID == el.spanID, "\(c): link \(i) span id", sourceLocation: sourceLocation)
        #expect(al.traceState == el.traceState, "\(c): link \(i) trace state", sourceLocation: sourceLocation)
        #expect(al.flags == el.flags, "\(c): link \(i) flags", sourceLocation: sourceLocation)
        expectList(al.attributes, el.attributes, "\(c): link \(i) attributes", sourceLocation: sourceLocation)
        #expect(al.droppedAttributes == el.droppedAttributes, "\(c): link \(i) dropped attributes", sourceLocation: sourceLocation)
    }
    #expect(a.droppedLinks == e.droppedLinks, "\(c): dropped links", sourceLocation: sourceLocation)
    #expect(a.genAI.provider == e.genAI.provider, "\(c): gen_ai provider", sourceLocation: sourceLocation)
    #expect(a.genAI.requestModel == e.genAI.requestModel, "\(c): gen_ai request model", sourceLocation: sourceLocation)
    #expect(a.genAI.responseModel == e.genAI.responseModel, "\(c): gen_ai response model", sourceLocation: sourceLocation)
    #expect(a.genAI.inputTokens == e.genAI.inputTokens, "\(c): input tokens", sourceLocation: sourceLocation)
    #expect(a.genAI.outputTokens == e.genAI.outputTokens, "\(c): output tokens", sourceLocation: sourceLocation)
    #expect(a.genAI.cost == e.genAI.cost, "\(c): cost (bits) \(a.genAI) vs \(e.genAI)", sourceLocation: sourceLocation)
}

// MARK: - Structural invariants of a decoded batch

/// Every column has the right length, offsets are monotonic and end at their table sizes, and every
/// string ID, index and nested value is valid. Returns the problems found.
func batchInvariantViolations(_ b: SpanBatch) -> [String] {
    var problems: [String] = []
    func check(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { problems.append(what()) } }
    let strings = b.strings.count
    func ids(_ column: [UInt32], _ name: String) {
        if let bad = column.first(where: { Int($0) >= strings }) { problems.append("\(name): string ID \(bad) out of range") }
    }
    func offsets(_ o: [UInt32], owners: Int, total: Int, _ name: String) {
        check(o.count == owners + 1, "\(name): \(o.count) offsets for \(owners) owners")
        check(o.first == 0, "\(name): does not start at 0")
        check(zip(o, o.dropFirst()).allSatisfy { $0 <= $1 }, "\(name): not monotonic")
        check(o.last.map(Int.init) == total, "\(name): ends at \(o.last.map(String.init) ?? "-") not \(total)")
    }
    func attrs(_ c: AttributeColumns, _ name: String) {
        check(c.keys.count == c.types.count && c.types.count == c.values.count, "\(name): column lengths differ")
        ids(c.keys, "\(name).keys")
        for i in 0..<min(c.types.count, c.values.count) {
            guard let t = ValueType(rawValue: c.types[i]) else {
                problems.append("\(name)[\(i)]: bad type \(c.types[i])")
                continue
            }
            if t.isInterned {
                guard c.values[i] < UInt64(strings) else {
                    problems.append("\(name)[\(i)]: value ID out of range")
                    continue
                }
                let data = b.strings.data(UInt32(c.values[i]))
                do {
                    if t == .array { _ = try Val.fromArrayValue(data) }
                    if t == .kvlist { _ = try Val.fromKeyValueList(data) }
                } catch {
                    problems.append("\(name)[\(i)]: stored \(t) bytes do not parse: \(error)")
                }
            } else if t == .bool {
                check(c.values[i] <= 1, "\(name)[\(i)]: bool value \(c.values[i])")
            } else if t == .empty {
                check(c.values[i] == 0, "\(name)[\(i)]: empty value \(c.values[i])")
            }
        }
    }

    let r = b.resourceServiceName.count
    check(b.resourceDroppedAttrs.count == r && b.resourceSchemaURL.count == r, "resource columns differ in length")
    offsets(b.resourceAttrOffsets, owners: r, total: b.resourceAttrs.count, "resourceAttrOffsets")
    attrs(b.resourceAttrs, "resourceAttrs")
    ids(b.resourceServiceName, "resourceServiceName")
    ids(b.resourceSchemaURL, "resourceSchemaURL")

    let s = b.scopeName.count
    check(b.scopeVersion.count == s && b.scopeDroppedAttrs.count == s && b.scopeSchemaURL.count == s, "scope columns differ in length")
    offsets(b.scopeAttrOffsets, owners: s, total: b.scopeAttrs.count, "scopeAttrOffsets")
    attrs(b.scopeAttrs, "scopeAttrs")
    ids(b.scopeName, "scopeName")
    ids(b.scopeVersion, "scopeVersion")
    ids(b.scopeSchemaURL, "scopeSchemaURL")

    let n = b.spanID.count
    let lengths: [(String, Int)] = [
        ("traceHigh", b.traceHigh.count), ("traceLow", b.traceLow.count), ("parentSpanID", b.parentSpanID.count),
        ("traceState", b.traceState.count), ("name", b.name.count), ("kind", b.kind.count),
        ("startTime", b.startTime.count), ("endTime", b.endTime.count), ("flags", b.flags.count),
        ("statusCode", b.statusCode.count), ("statusMessage", b.statusMessage.count),
        ("resourceIndex", b.resourceIndex.count), ("scopeIndex", b.scopeIndex.count),
        ("droppedAttrs", b.droppedAttrs.count), ("droppedEvents", b.droppedEvents.count), ("droppedLinks", b.droppedLinks.count),
        ("genAIProvider", b.genAIProvider.count), ("genAIRequestModel", b.genAIRequestModel.count),
        ("genAIResponseModel", b.genAIResponseModel.count), ("inputTokens", b.inputTokens.count),
        ("outputTokens", b.outputTokens.count), ("cost", b.cost.count),
    ]
    for (name, count) in lengths where count != n { problems.append("\(name): \(count) rows, expected \(n)") }
    guard problems.isEmpty else { return problems }
    offsets(b.attrOffsets, owners: n, total: b.attrs.count, "attrOffsets")
    offsets(b.eventOffsets, owners: n, total: b.eventTime.count, "eventOffsets")
    offsets(b.linkOffsets, owners: n, total: b.linkSpanID.count, "linkOffsets")
    attrs(b.attrs, "attrs")
    for column in [("traceState", b.traceState), ("name", b.name), ("statusMessage", b.statusMessage),
        ("genAIProvider", b.genAIProvider), ("genAIRequestModel", b.genAIRequestModel), ("genAIResponseModel", b.genAIResponseModel)]
    {
        ids(column.1, column.0)
    }
    check(b.resourceIndex.allSatisfy { Int($0) < r }, "resourceIndex out of range")
    check(b.scopeIndex.allSatisfy { Int($0) < s }, "scopeIndex out of range")
    for i in 0..<n {
        check(b.traceHigh[i] != 0 || b.traceLow[i] != 0, "span \(i): all-zero trace id accepted")
        check(b.spanID[i] != 0, "span \(i): all-zero span id accepted")
    }

    let e = b.eventTime.count
    check(b.eventName.count == e && b.eventDroppedAttrs.count == e, "event columns differ in length")
    offsets(b.eventAttrOffsets, owners: e, total: b.eventAttrs.count, "eventAttrOffsets")
    attrs(b.eventAttrs, "eventAttrs")
    ids(b.eventName, "eventName")

    let l = b.linkSpanID.count
    check(
        b.linkTraceHigh.count == l && b.linkTraceLow.count == l && b.linkTraceState.count == l && b.linkFlags.count == l
            && b.linkDroppedAttrs.count == l,
        "link columns differ in length")
    offsets(b.linkAttrOffsets, owners: l, total: b.linkAttrs.count, "linkAttrOffsets")
    attrs(b.linkAttrs, "linkAttrs")
    ids(b.linkTraceState, "linkTraceState")
    return problems
}

// MARK: - Column dump (every column, strings by value)

/// Every column of a batch, with string IDs replaced by their bytes, for comparing two decodes.
func columnDump(_ b: SpanBatch) -> [(String, [Text])] {
    func s(_ id: UInt32) -> Text { Text(b.strings.data(id)) }
    func n<T: BinaryInteger>(_ v: T) -> Text { Text(String(v)) }
    func strs(_ c: [UInt32]) -> [Text] { c.map(s) }
    func nums<T: BinaryInteger>(_ c: [T]) -> [Text] { c.map(n) }
    func attrs(_ c: AttributeColumns) -> [Text] {
        (0..<c.count).map { i in
            let interned = ValueType(rawValue: c.types[i])?.isInterned ?? false
            let value = interned ? Array("0x".utf8) + Array(Hex.encode(b.strings.data(UInt32(truncatingIfNeeded: c.values[i]))).utf8) : Array(String(c.values[i]).utf8)
            return Text(b.strings.data(c.keys[i]) + Array(" t\(c.types[i]) ".utf8) + value)
        }
    }
    return [
        ("resourceAttrOffsets", nums(b.resourceAttrOffsets)), ("resourceAttrs", attrs(b.resourceAttrs)),
        ("resourceDroppedAttrs", nums(b.resourceDroppedAttrs)), ("resourceSchemaURL", strs(b.resourceSchemaURL)),
        ("resourceServiceName", strs(b.resourceServiceName)),
        ("scopeName", strs(b.scopeName)), ("scopeVersion", strs(b.scopeVersion)),
        ("scopeAttrOffsets", nums(b.scopeAttrOffsets)), ("scopeAttrs", attrs(b.scopeAttrs)),
        ("scopeDroppedAttrs", nums(b.scopeDroppedAttrs)), ("scopeSchemaURL", strs(b.scopeSchemaURL)),
        ("traceHigh", nums(b.traceHigh)), ("traceLow", nums(b.traceLow)), ("spanID", nums(b.spanID)),
        ("parentSpanID", nums(b.parentSpanID)), ("traceState", strs(b.traceState)), ("name", strs(b.name)),
        ("kind", nums(b.kind)), ("startTime", nums(b.startTime)), ("endTime", nums(b.endTime)), ("flags", nums(b.flags)),
        ("statusCode", nums(b.statusCode)), ("statusMessage", strs(b.statusMessage)),
        ("resourceIndex", nums(b.resourceIndex)), ("scopeIndex", nums(b.scopeIndex)),
        ("attrOffsets", nums(b.attrOffsets)), ("attrs", attrs(b.attrs)),
        ("droppedAttrs", nums(b.droppedAttrs)), ("droppedEvents", nums(b.droppedEvents)), ("droppedLinks", nums(b.droppedLinks)),
        ("eventOffsets", nums(b.eventOffsets)), ("linkOffsets", nums(b.linkOffsets)),
        ("genAIProvider", strs(b.genAIProvider)), ("genAIRequestModel", strs(b.genAIRequestModel)),
        ("genAIResponseModel", strs(b.genAIResponseModel)), ("inputTokens", nums(b.inputTokens)),
        ("outputTokens", nums(b.outputTokens)), ("cost", b.cost.map { Text(String($0.bitPattern, radix: 16)) }),
        ("eventTime", nums(b.eventTime)), ("eventName", strs(b.eventName)),
        ("eventAttrOffsets", nums(b.eventAttrOffsets)), ("eventAttrs", attrs(b.eventAttrs)),
        ("eventDroppedAttrs", nums(b.eventDroppedAttrs)),
        ("linkTraceHigh", nums(b.linkTraceHigh)), ("linkTraceLow", nums(b.linkTraceLow)), ("linkSpanID", nums(b.linkSpanID)),
        ("linkTraceState", strs(b.linkTraceState)), ("linkFlags", nums(b.linkFlags)),
        ("linkAttrOffsets", nums(b.linkAttrOffsets)), ("linkAttrs", attrs(b.linkAttrs)),
        ("linkDroppedAttrs", nums(b.linkDroppedAttrs)),
    ]
}

func expectIdenticalColumns(_ a: SpanBatch, _ b: SpanBatch, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let da = columnDump(a)
    let db = columnDump(b)
    #expect(da.count == db.count)
    for ((name, ca), (_, cb)) in zip(da, db) {
        expectList(ca, cb, "\(what): column \(name)", sourceLocation: sourceLocation)
    }
}

// MARK: - Tests

struct FixtureCase: Sendable, CustomTestStringConvertible {
    var request: String
    var format: WireFormat
    var expected: String
    var testDescription: String { self.request }

    static let all: [FixtureCase] = [
        FixtureCase(request: "sdk_request.pb", format: .protobuf, expected: "sdk_expected.json"),
        FixtureCase(request: "sdk_request.json", format: .json, expected: "sdk_expected.json"),
        FixtureCase(request: "sdk_request_snake.json", format: .json, expected: "sdk_expected.json"),
        FixtureCase(request: "extra_request.pb", format: .protobuf, expected: "extra_expected.json"),
        FixtureCase(request: "extra_request.json", format: .json, expected: "extra_expected.json"),
        FixtureCase(request: "extra_request_snake.json", format: .json, expected: "extra_expected.json"),
    ]
}

@Suite("SDK fixtures")
struct SDKFixtureTests {
    @Test("decoded columns match the Python description field by field", arguments: FixtureCase.all)
    func matchesExpectedDescription(_ c: FixtureCase) throws {
        let expected = try ExpectedRequest(fixture: c.expected)
        let decoded = try Decode.ok(try Fixture.bytes(c.request), c.format)
        let b = decoded.batch
        #expect(decoded.outcome.acceptedSpans == expected.spans.count)
        #expect(decoded.outcome.rejectedSpans == 0)
        #expect(decoded.outcome.rejectionMessage == "")
        #expect(batchInvariantViolations(b) == [])
        let view = BatchView(batch: b)

        try #require(b.resourceCount == expected.resources.count, "resource count")
        for (i, e) in expected.resources.enumerated() {
            let a = try view.resource(i)
            #expect(a.serviceName == e.serviceName, "resource \(i): service name")
            expectList(a.attributes, e.attributes, "resource \(i): attributes")
            #expect(a.droppedAttributes == e.droppedAttributes, "resource \(i): dropped attributes")
            #expect(a.schemaURL == e.schemaURL, "resource \(i): schema URL")
        }
        try #require(b.scopeCount == expected.scopes.count, "scope count")
        for (i, e) in expected.scopes.enumerated() {
            let a = try view.scope(i)
            #expect(a.name == e.name, "scope \(i): name")
            #expect(a.version == e.version, "scope \(i): version")
            expectList(a.attributes, e.attributes, "scope \(i): attributes")
            #expect(a.droppedAttributes == e.droppedAttributes, "scope \(i): dropped attributes")
            #expect(a.schemaURL == e.schemaURL, "scope \(i): schema URL")
        }
        try #require(b.spanCount == expected.spans.count, "span count")
        for (i, e) in expected.spans.enumerated() {
            expectSpan(try view.span(i), e, "\(c.request) #\(i)")
        }
    }

    @Test("protobuf, camelCase JSON and snake_case JSON decode to identical columns", arguments: ["sdk", "extra"])
    func protobufAndJSONAgree(_ prefix: String) throws {
        let pb = try Decode.ok(try Fixture.bytes("\(prefix)_request.pb"), .protobuf)
        let camel = try Decode.ok(try Fixture.bytes("\(prefix)_request.json"), .json)
        let snake = try Decode.ok(try Fixture.bytes("\(prefix)_request_snake.json"), .json)
        #expect(pb.outcome == camel.outcome)
        #expect(pb.outcome == snake.outcome)
        // Array and kvlist values are compared as raw protobuf bytes here: the JSON decoder must
        // re-encode them exactly as the Python protobuf runtime did.
        expectIdenticalColumns(camel.batch, pb.batch, "camelCase JSON vs protobuf")
        expectIdenticalColumns(snake.batch, pb.batch, "snake_case JSON vs protobuf")
    }

    @Test("the fixtures cover what they are meant to cover")
    func fixtureCoverage() throws {
        let sdk = try ExpectedRequest(fixture: "sdk_expected.json")
        let extra = try ExpectedRequest(fixture: "extra_expected.json")
        func types(_ attrs: [KV]) -> Set<String> {
            var out = Set<String>()
            for kv in attrs {
                out.insert(kv.value.typeName)
                if case .array(let items) = kv.value { out.formUnion(types(items.map { KV(key: "", value: $0) })) }
                if case .kvlist(let inner) = kv.value { out.formUnion(types(inner)) }
            }
            return out
        }
        let all: Set<String> = ["empty", "string", "bool", "int", "double", "bytes", "array", "kvlist"]
        #expect(types(sdk.spans.flatMap(\.attributes)) == all)
        #expect(types(extra.spans.flatMap(\.attributes)) == all)
        #expect(Set(sdk.spans.map(\.kind)) == [1, 2, 3, 4, 5])
        #expect(Set(extra.spans.map(\.kind)) == [0, 1, 2, 3, 4, 5])
        #expect(Set(sdk.spans.map(\.statusCode)) == [0, 1, 2])
        #expect(sdk.spans.contains { $0.statusCode == 2 && !$0.statusMessage.bytes.isEmpty })
        #expect(sdk.spans.contains { !$0.events.isEmpty && $0.events.contains { !$0.attributes.isEmpty } })
        #expect(sdk.spans.contains { !$0.links.isEmpty && $0.links.contains { !$0.attributes.isEmpty } })
        #expect(extra.spans.contains { $0.links.contains { !$0.traceState.bytes.isEmpty && $0.flags != 0 } })
        #expect(sdk.spans.contains { !$0.traceState.bytes.isEmpty })
        #expect(sdk.spans.contains { !$0.parentSpanID.isEmpty } && sdk.spans.contains { $0.parentSpanID.isEmpty })
        // The Python exporter sets only the is-remote bits (0x100, 0x200); the extra request adds W3C flag bits.
        #expect(Set(sdk.spans.map(\.flags)).isSuperset(of: [0x100, 0x300]))
        #expect(Set(extra.spans.map(\.flags)).isSuperset(of: [0x301, 0x8000_0101]))
        #expect(sdk.resources.count >= 3 && sdk.resources.contains { $0.serviceName == nil })
        #expect(sdk.scopes.count >= 3 && sdk.scopes.contains { !$0.version.bytes.isEmpty && !$0.attributes.isEmpty })
        #expect(sdk.spans.contains { $0.droppedAttributes > 0 && $0.droppedEvents > 0 && $0.droppedLinks > 0 })
        #expect(sdk.spans.contains { $0.events.contains { $0.droppedAttributes > 0 } })
        #expect(sdk.spans.contains { $0.links.contains { $0.droppedAttributes > 0 } })
        let genAI = sdk.spans.map(\.genAI)
        #expect(genAI.contains { $0.provider != nil && $0.requestModel != nil && $0.responseModel != nil })
        #expect(genAI.contains { $0.inputTokens != nil && $0.outputTokens != nil && $0.cost != nil })
        // Deprecated-name fallbacks and the llm.cost.total alias are exercised.
        #expect(sdk.spans.contains { s in
            s.genAI.provider == "anthropic" && s.genAI.inputTokens == 100 && s.genAI.outputTokens == 50
                && s.genAI.cost == (0.5 as Double).bitPattern
        })
    }

    /// Compares span `i` of `actual` with span `j` of `expected`, including the resource and scope
    /// it points at; the resource/scope indexes themselves may differ (batches may share identical ones).
    static func expectSameSpan(_ actual: BatchView, _ i: Int, _ expected: BatchView, _ j: Int, _ ctx: String) throws {
        var a = try actual.span(i)
        let e = try expected.span(j)
        #expect(try actual.resource(a.resourceIndex) == expected.resource(e.resourceIndex), "\(ctx): resource")
        #expect(try actual.scope(a.scopeIndex) == expected.scope(e.scopeIndex), "\(ctx): scope")
        a.resourceIndex = e.resourceIndex
        a.scopeIndex = e.scopeIndex
        expectSpan(a, e, ctx)
    }

    @Test("one decoder appends several requests to one batch; records are unchanged")
    func decodersAppendAndAreReusable() throws {
        let sdkPB = try Fixture.bytes("sdk_request.pb")
        let extraPB = try Fixture.bytes("extra_request.pb")
        let sdk = BatchView(batch: try Decode.ok(sdkPB, .protobuf).batch)
        let extra = BatchView(batch: try Decode.ok(extraPB, .protobuf).batch)

        var pbDecoder = OTLPProtobufDecoder()
        var batch = try Decode.protobuf(extraPB, with: &pbDecoder).get().batch
        batch = try Decode.protobuf(sdkPB, with: &pbDecoder, into: batch).get().batch
        var jsonDecoder = OTLPJSONDecoder()
        batch = try Decode.json(try Fixture.bytes("sdk_request.json"), with: &jsonDecoder, into: batch).get().batch
        #expect(batchInvariantViolations(batch) == [])
        let all = BatchView(batch: batch)
        let n = extra.batch.spanCount
        let m = sdk.batch.spanCount
        try #require(batch.spanCount == n + 2 * m)
        for j in 0..<n { try Self.expectSameSpan(all, j, extra, j, "appended extra #\(j)") }
        for j in 0..<m {
            try Self.expectSameSpan(all, n + j, sdk, j, "appended sdk (protobuf) #\(j)")
            try Self.expectSameSpan(all, n + m + j, sdk, j, "appended sdk (JSON) #\(j)")
        }
    }

    @Test("SpanBatch.append re-interns a decoded batch without changing any record")
    func batchAppendPreservesRecords() throws {
        let sdk = try Decode.ok(try Fixture.bytes("sdk_request.pb"), .protobuf).batch
        let extra = try Decode.ok(try Fixture.bytes("extra_request.json"), .json).batch
        var merged = sdk
        merged.append(extra)
        merged.append(sdk)
        #expect(batchInvariantViolations(merged) == [])
        let all = BatchView(batch: merged)
        try #require(merged.spanCount == 2 * sdk.spanCount + extra.spanCount)
        for j in 0..<sdk.spanCount { try Self.expectSameSpan(all, j, BatchView(batch: sdk), j, "merged sdk #\(j)") }
        for j in 0..<extra.spanCount {
            try Self.expectSameSpan(all, sdk.spanCount + j, BatchView(batch: extra), j, "merged extra #\(j)")
        }
        for j in 0..<sdk.spanCount {
            try Self.expectSameSpan(all, sdk.spanCount + extra.spanCount + j, BatchView(batch: sdk), j, "merged sdk again #\(j)")
        }
    }
}
