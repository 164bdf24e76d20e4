import WeftRuntime
import WeftModel
import WeftQuery
import WeftStorageEngine

/// Renders stored spans as OTLP-shaped JSON the way Tempo's API does: base64 IDs, enum names,
/// 64-bit integers as strings.
public enum TraceRenderer {
    public enum Shape: Sendable {
        /// `/api/traces/<id>`: `{"batches":[ResourceSpans…]}`
        case v1
        /// `/api/v2/traces/<id>`: `{"trace":{"resourceSpans":[…]},"status":"COMPLETE"}`
        case v2
    }

    /// The trace as JSON, or nil if no span of it is stored.
    public static func json(_ id: TraceID, in chunks: [HeadChunk], shape: Shape) -> [UInt8]? {
        var found: [(HeadChunk, [Int])] = []
        for chunk in chunks {
            let rows = chunk.rows(of: id)
            if !rows.isEmpty { found.append((chunk, rows)) }
        }
        guard !found.isEmpty else { return nil }
        var w = JSONWriter(capacity: 4096)
        w.object { o in
            switch shape {
            case .v1:
                o.key("batches")
                writeResourceSpans(&o, found)
            case .v2:
                o.key("trace")
                o.object { t in
                    t.key("resourceSpans")
                    writeResourceSpans(&t, found)
                }
                o.key("status")
                o.string("COMPLETE")
            }
        }
        return w.bytes
    }

    /// Number of spans stored for a trace.
    public static func spanCount(_ id: TraceID, in chunks: [HeadChunk]) -> Int {
        chunks.reduce(0) { $0 + $1.rows(of: id).count }
    }

    private static func writeResourceSpans(_ w: inout JSONWriter, _ found: [(HeadChunk, [Int])]) {
        w.array { a in
            for (chunk, rows) in found {
                let b = chunk.batch
                // Group rows by resource, then by scope, keeping first-seen order.
                var resources: [UInt32] = []
                var byResource: [UInt32: [Int]] = [:]
                for row in rows {
                    let r = b.resourceIndex[row]
                    if byResource[r] == nil { resources.append(r) }
                    byResource[r, default: []].append(row)
                }
                for r in resources {
                    a.object { rs in
                        rs.key("resource")
                        rs.object { res in
                            res.key("attributes")
                            writeAttributes(&res, b.resourceAttrs, b.resourceAttrRange(Int(r)), b.strings)
                            if b.resourceDroppedAttrs[Int(r)] > 0 {
                                res.key("droppedAttributesCount")
                                res.number(Int(b.resourceDroppedAttrs[Int(r)]))
                            }
                        }
                        if b.resourceSchemaURL[Int(r)] != 0 {
                            rs.key("schemaUrl")
                            rs.string(b.strings.string(b.resourceSchemaURL[Int(r)]))
                        }
                        var scopes: [UInt32] = []
                        var byScope: [UInt32: [Int]] = [:]
                        for row in byResource[r]! {
                            let s = b.scopeIndex[row]
                            if byScope[s] == nil { scopes.append(s) }
                            byScope[s, default: []].append(row)
                        }
                        rs.key("scopeSpans")
                        rs.array { sa in
                            for s in scopes {
                                sa.object { ss in
                                    writeScope(&ss, b, Int(s))
                                    ss.key("spans")
                                    ss.array { spans in
                                        for row in byScope[s]! { writeSpan(&spans, b, row) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private static func writeScope(_ w: inout JSONWriter, _ b: SpanBatch, _ s: Int) {
        w.key("scope")
        w.object { sc in
            sc.key("name")
            sc.string(b.strings.string(b.scopeName[s]))
            if b.scopeVersion[s] != 0 {
                sc.key("version")
                sc.string(b.strings.string(b.scopeVersion[s]))
            }
            let range = Int(b.scopeAttrOffsets[s])..<Int(b.scopeAttrOffsets[s + 1])
            if !range.isEmpty {
                sc.key("attributes")
                writeAttributes(&sc, b.scopeAttrs, range, b.strings)
            }
            if b.scopeDroppedAttrs[s] > 0 {
                sc.key("droppedAttributesCount")
                sc.number(Int(b.scopeDroppedAttrs[s]))
            }
        }
        if b.scopeSchemaURL[s] != 0 {
            w.key("schemaUrl")
            w.string(b.strings.string(b.scopeSchemaURL[s]))
        }
    }

    package static let kindNames = [
        "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
    ]
    package static let statusNames = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]

    private static func writeSpan(_ w: inout JSONWriter, _ b: SpanBatch, _ row: Int) {
        w.object { s in
            s.key("traceId")
            s.string(Base64.encode(b.traceID(row).bytes))
            s.key("spanId")
            s.string(Base64.encode(Hex.bytes(b.spanID[row])))
            if b.parentSpanID[row] != 0 {
                s.key("parentSpanId")
                s.string(Base64.encode(Hex.bytes(b.parentSpanID[row])))
            }
            if b.traceState[row] != 0 {
                s.key("traceState")
                s.string(b.strings.string(b.traceState[row]))
            }
            s.key("name")
            s.string(b.strings.string(b.name[row]))
            s.key("kind")
            let kind = Int(b.kind[row])
            if kind < kindNames.count { s.string(kindNames[kind]) } else { s.number(kind) }
            s.key("startTimeUnixNano")
            s.string(decimal: b.startTime[row])
            s.key("endTimeUnixNano")
            s.string(decimal: b.endTime[row])
            if b.flags[row] != 0 {
                s.key("flags")
                s.number(Int(b.flags[row]))
            }
            s.key("attributes")
            writeAttributes(&s, b.attrs, b.attrRange(row), b.strings)
            if b.droppedAttrs[row] > 0 {
                s.key("droppedAttributesCount")
                s.number(Int(b.droppedAttrs[row]))
            }
            let events = Int(b.eventOffsets[row])..<Int(b.eventOffsets[row + 1])
            if !events.isEmpty {
                s.key("events")
                s.array { ea in
                    for e in events {
                        ea.object { eo in
                            eo.key("timeUnixNano")
                            eo.string(decimal: b.eventTime[e])
                            eo.key("name")
                            eo.string(b.strings.string(b.eventName[e]))
                            eo.key("attributes")
                            writeAttributes(&eo, b.eventAttrs, Int(b.eventAttrOffsets[e])..<Int(b.eventAttrOffsets[e + 1]), b.strings)
                            if b.eventDroppedAttrs[e] > 0 {
                                eo.key("droppedAttributesCount")
                                eo.number(Int(b.eventDroppedAttrs[e]))
                            }
                        }
                    }
                }
            }
            if b.droppedEvents[row] > 0 {
                s.key("droppedEventsCount")
                s.number(Int(b.droppedEvents[row]))
            }
            let links = Int(b.linkOffsets[row])..<Int(b.linkOffsets[row + 1])
            if !links.isEmpty {
                s.key("links")
                s.array { la in
                    for l in links {
                        la.object { lo in
                            lo.key("traceId")
                            lo.string(Base64.encode(TraceID(high: b.linkTraceHigh[l], low: b.linkTraceLow[l]).bytes))
                            lo.key("spanId")
                            lo.string(Base64.encode(Hex.bytes(b.linkSpanID[l])))
                            if b.linkTraceState[l] != 0 {
                                lo.key("traceState")
                                lo.string(b.strings.string(b.linkTraceState[l]))
                            }
                            lo.key("attributes")
                            writeAttributes(&lo, b.linkAttrs, Int(b.linkAttrOffsets[l])..<Int(b.linkAttrOffsets[l + 1]), b.strings)
                            if b.linkDroppedAttrs[l] > 0 {
                                lo.key("droppedAttributesCount")
                                lo.number(Int(b.linkDroppedAttrs[l]))
                            }
                            if b.linkFlags[l] != 0 {
                                lo.key("flags")
                                lo.number(Int(b.linkFlags[l]))
                            }
                        }
                    }
                }
            }
            if b.droppedLinks[row] > 0 {
                s.key("droppedLinksCount")
                s.number(Int(b.droppedLinks[row]))
            }
            s.key("status")
            s.object { st in
                if b.statusMessage[row] != 0 {
                    st.key("message")
                    st.string(b.strings.string(b.statusMessage[row]))
                }
                let code = Int(b.statusCode[row])
                if code != 0 {
                    st.key("code")
                    if code < statusNames.count { st.string(statusNames[code]) } else { st.number(code) }
                }
            }
        }
    }

    /// Writes `[{"key":…,"value":{…}}…]`.
    public static func writeAttributes(_ w: inout JSONWriter, _ attrs: AttributeColumns, _ range: Range<Int>, _ strings: StringTable) {
        w.array { a in
            for i in range {
                a.object { kv in
                    kv.key("key")
                    kv.string(strings.string(attrs.keys[i]))
                    kv.key("value")
                    writeValue(&kv, ValueType(rawValue: attrs.types[i]) ?? .empty, attrs.values[i], strings)
                }
            }
        }
    }

    package static func writeValue(_ w: inout JSONWriter, _ type: ValueType, _ value: UInt64, _ strings: StringTable) {
        switch type {
        case .array, .kvlist:
            strings.withBytes(UInt32(value)) { raw in
                var inner = JSONWriter()
                if type == .array {
                    AnyValueJSON.writeArray(&inner, raw)
                } else {
                    AnyValueJSON.writeKVList(&inner, raw)
                }
                w.raw(inner.bytes)
            }
        default:
            w.object { v in
                switch type {
                case .empty: break
                case .string:
                    v.key("stringValue")
                    v.string(strings.string(UInt32(value)))
                case .bool:
                    v.key("boolValue")
                    v.bool(value != 0)
                case .int:
                    v.key("intValue")
                    v.string(String(Int64(bitPattern: value)))
                case .double:
                    v.key("doubleValue")
                    v.number(Double(bitPattern: value))
                case .bytes:
                    v.key("bytesValue")
                    v.string(Base64.encode(strings.data(UInt32(value))))
                case .array, .kvlist: break
                }
            }
        }
    }
}

/// Renders stored protobuf `ArrayValue` / `KeyValueList` bytes (validated at ingest) as OTLP JSON.
package enum AnyValueJSON {
    private struct Reader {
        let raw: UnsafeRawBufferPointer
        var pos: Int
        let end: Int
        var atEnd: Bool { self.pos >= self.end }
        mutating func varint() -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while self.pos < self.end {
                let b = self.raw[self.pos]
                self.pos += 1
                if shift < 64 { v |= UInt64(b & 0x7F) << shift }
                if b < 0x80 { break }
                shift += 7
            }
            return v
        }
        mutating func length() -> Range<Int> {
            let n = Int(min(self.varint(), UInt64(self.end - self.pos)))
            defer { self.pos += n }
            return self.pos..<(self.pos + n)
        }
        mutating func fixed64() -> UInt64 {
            guard self.end - self.pos >= 8 else {
                self.pos = self.end
                return 0
            }
            defer { self.pos += 8 }
            return UInt64(littleEndian: self.raw.loadUnaligned(fromByteOffset: self.pos, as: UInt64.self))
        }
        mutating func skip(_ wire: UInt64) {
            switch wire {
            case 0: _ = self.varint()
            case 1: self.pos = min(self.end, self.pos + 8)
            case 2: _ = self.length()
            case 5: self.pos = min(self.end, self.pos + 4)
            default: self.pos = self.end
            }
        }
    }

    package static func writeArray(_ w: inout JSONWriter, _ raw: UnsafeRawBufferPointer) {
        w.object { o in
            o.key("arrayValue")
            o.object { av in
                av.key("values")
                av.array { values in
                    var r = Reader(raw: raw, pos: 0, end: raw.count)
                    while !r.atEnd {
                        let tag = r.varint()
                        if tag >> 3 == 1 && tag & 7 == 2 {
                            let range = r.length()
                            writeAnyValue(&values, UnsafeRawBufferPointer(rebasing: raw[range]))
                        } else {
                            r.skip(tag & 7)
                        }
                    }
                }
            }
        }
    }

    package static func writeKVList(_ w: inout JSONWriter, _ raw: UnsafeRawBufferPointer) {
        w.object { o in
            o.key("kvlistValue")
            o.object { kvl in
                kvl.key("values")
                kvl.array { values in
                    var r = Reader(raw: raw, pos: 0, end: raw.count)
                    while !r.atEnd {
                        let tag = r.varint()
                        guard tag >> 3 == 1 && tag & 7 == 2 else {
                            r.skip(tag & 7)
                            continue
                        }
                        let item = r.length()
                        var ir = Reader(raw: raw, pos: item.lowerBound, end: item.upperBound)
                        var key = ""
                        var value: Range<Int>? = nil
                        while !ir.atEnd {
                            let t = ir.varint()
                            if t >> 3 == 1 && t & 7 == 2 {
                                key = String(decoding: UnsafeRawBufferPointer(rebasing: raw[ir.length()]), as: UTF8.self)
                            } else if t >> 3 == 2 && t & 7 == 2 {
                                value = ir.length()
                            } else {
                                ir.skip(t & 7)
                            }
                        }
                        values.object { kv in
                            kv.key("key")
                            kv.string(key)
                            kv.key("value")
                            if let value {
                                writeAnyValue(&kv, UnsafeRawBufferPointer(rebasing: raw[value]))
                            } else {
                                kv.object { _ in }
                            }
                        }
                    }
                }
            }
        }
    }

    package static func writeAnyValue(_ w: inout JSONWriter, _ raw: UnsafeRawBufferPointer) {
        var r = Reader(raw: raw, pos: 0, end: raw.count)
        var last: (UInt64, Range<Int>, UInt64)? = nil
        while !r.atEnd {
            let tag = r.varint()
            let field = tag >> 3
            switch (field, tag & 7) {
            case (1, 2), (5, 2), (6, 2), (7, 2): last = (field, r.length(), 0)
            case (2, 0), (3, 0): last = (field, 0..<0, r.varint())
            case (4, 1): last = (field, 0..<0, r.fixed64())
            default: r.skip(tag & 7)
            }
        }
        guard let (field, range, scalar) = last else {
            w.object { _ in }
            return
        }
        let bytes = UnsafeRawBufferPointer(rebasing: raw[range])
        switch field {
        case 5: writeArray(&w, bytes)
        case 6: writeKVList(&w, bytes)
        default:
            w.object { v in
                switch field {
                case 1:
                    v.key("stringValue")
                    v.string(bytes: bytes)
                case 2:
                    v.key("boolValue")
                    v.bool(scalar != 0)
                case 3:
                    v.key("intValue")
                    v.string(String(Int64(bitPattern: scalar)))
                case 4:
                    v.key("doubleValue")
                    v.number(Double(bitPattern: scalar))
                default:
                    v.key("bytesValue")
                    v.string(Base64.encode(Array(bytes)))
                }
            }
        }
    }
}
