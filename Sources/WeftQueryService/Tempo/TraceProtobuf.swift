import WeftRuntime
import WeftModel
import WeftOTLP
import WeftStorageEngine

/// Tempo's protobuf trace answers, encoded straight from the span columns. Below `Trace` every message
/// is OTLP's (Tempo's `tempopb.trace.v1` copies its field numbers), so stored array and key-value-list
/// values, kept as protobuf bytes, are copied as they are.
package enum TraceProtobuf {
    /// `Trace{batches = 1}` (`/api/traces/<id>`), or nil if no span of the trace is stored.
    package static func trace(_ id: TraceID, in chunks: [HeadChunk]) -> [UInt8]? {
        let found = Self.rows(of: id, in: chunks)
        guard !found.isEmpty else { return nil }
        var w = ProtoWriter(capacity: 4096)
        Self.writeResourceSpans(&w, field: 1, found)
        return w.bytes
    }

    /// `TraceByIDResponse{trace = 1: Trace{resourceSpans = 1}, status = 3}` (`/api/v2/traces/<id>`);
    /// the status is COMPLETE, protobuf's default, so it takes no bytes.
    package static func traceByIDResponse(_ id: TraceID, in chunks: [HeadChunk]) -> [UInt8]? {
        let found = Self.rows(of: id, in: chunks)
        guard !found.isEmpty else { return nil }
        var w = ProtoWriter(capacity: 4096)
        w.message(1) { t in Self.writeResourceSpans(&t, field: 1, found) }
        return w.bytes
    }

    private static func rows(of id: TraceID, in chunks: [HeadChunk]) -> [(SpanBatch, [Int])] {
        chunks.compactMap { chunk in
            let rows = chunk.rows(of: id)
            return rows.isEmpty ? nil : (chunk.batch, rows)
        }
    }

    /// One `ResourceSpans` per resource of each chunk, its spans grouped by scope in first-seen order.
    private static func writeResourceSpans(_ w: inout ProtoWriter, field: UInt32, _ found: [(SpanBatch, [Int])]) {
        for (b, rows) in found {
            for (resource, resourceRows) in Self.grouped(rows, by: b.resourceIndex) {
                let r = Int(resource)
                w.message(field) { rs in
                    rs.message(1) { res in
                        Self.writeAttributes(&res, field: 1, b.resourceAttrs, b.resourceAttrRange(r), b.strings)
                        if b.resourceDroppedAttrs[r] > 0 { res.varintField(2, UInt64(b.resourceDroppedAttrs[r])) }
                    }
                    for (scope, scopeRows) in Self.grouped(resourceRows, by: b.scopeIndex) {
                        rs.message(2) { ss in
                            Self.writeScope(&ss, b, Int(scope))
                            for row in scopeRows { ss.message(2) { Self.writeSpan(&$0, b, row) } }
                            if b.scopeSchemaURL[Int(scope)] != 0 { ss.stringField(3, b.strings.string(b.scopeSchemaURL[Int(scope)])) }
                        }
                    }
                    if b.resourceSchemaURL[r] != 0 { rs.stringField(3, b.strings.string(b.resourceSchemaURL[r])) }
                }
            }
        }
    }

    /// `rows` split by `key[row]`, groups and rows in first-seen order.
    private static func grouped(_ rows: [Int], by key: [UInt32]) -> [(UInt32, [Int])] {
        var order: [UInt32] = []
        var groups: [UInt32: [Int]] = [:]
        for row in rows {
            let k = key[row]
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(row)
        }
        return order.map { ($0, groups[$0]!) }
    }

    /// `ScopeSpans.scope` (field 1): `InstrumentationScope{name, version, attributes, droppedAttributesCount}`.
    private static func writeScope(_ w: inout ProtoWriter, _ b: SpanBatch, _ s: Int) {
        w.message(1) { sc in
            if b.scopeName[s] != 0 { sc.stringField(1, b.strings.string(b.scopeName[s])) }
            if b.scopeVersion[s] != 0 { sc.stringField(2, b.strings.string(b.scopeVersion[s])) }
            Self.writeAttributes(&sc, field: 3, b.scopeAttrs, Int(b.scopeAttrOffsets[s])..<Int(b.scopeAttrOffsets[s + 1]), b.strings)
            if b.scopeDroppedAttrs[s] > 0 { sc.varintField(4, UInt64(b.scopeDroppedAttrs[s])) }
        }
    }

    private static func writeSpan(_ w: inout ProtoWriter, _ b: SpanBatch, _ row: Int) {
        w.traceIDField(1, b.traceID(row))
        w.id64Field(2, b.spanID[row])
        if b.traceState[row] != 0 { w.stringField(3, b.strings.string(b.traceState[row])) }
        if b.parentSpanID[row] != 0 { w.id64Field(4, b.parentSpanID[row]) }
        w.stringField(5, b.strings.string(b.name[row]))
        if b.kind[row] != 0 { w.varintField(6, UInt64(b.kind[row])) }
        w.fixed64Field(7, b.startTime[row])
        w.fixed64Field(8, b.endTime[row])
        Self.writeAttributes(&w, field: 9, b.attrs, b.attrRange(row), b.strings)
        if b.droppedAttrs[row] > 0 { w.varintField(10, UInt64(b.droppedAttrs[row])) }
        for e in Int(b.eventOffsets[row])..<Int(b.eventOffsets[row + 1]) {
            w.message(11) { ev in
                ev.fixed64Field(1, b.eventTime[e])
                ev.stringField(2, b.strings.string(b.eventName[e]))
                Self.writeAttributes(&ev, field: 3, b.eventAttrs, Int(b.eventAttrOffsets[e])..<Int(b.eventAttrOffsets[e + 1]), b.strings)
                if b.eventDroppedAttrs[e] > 0 { ev.varintField(4, UInt64(b.eventDroppedAttrs[e])) }
            }
        }
        if b.droppedEvents[row] > 0 { w.varintField(12, UInt64(b.droppedEvents[row])) }
        for l in Int(b.linkOffsets[row])..<Int(b.linkOffsets[row + 1]) {
            w.message(13) { link in
                link.traceIDField(1, TraceID(high: b.linkTraceHigh[l], low: b.linkTraceLow[l]))
                link.id64Field(2, b.linkSpanID[l])
                if b.linkTraceState[l] != 0 { link.stringField(3, b.strings.string(b.linkTraceState[l])) }
                Self.writeAttributes(&link, field: 4, b.linkAttrs, Int(b.linkAttrOffsets[l])..<Int(b.linkAttrOffsets[l + 1]), b.strings)
                if b.linkDroppedAttrs[l] > 0 { link.varintField(5, UInt64(b.linkDroppedAttrs[l])) }
                if b.linkFlags[l] != 0 { link.fixed32Field(6, b.linkFlags[l]) }
            }
        }
        if b.droppedLinks[row] > 0 { w.varintField(14, UInt64(b.droppedLinks[row])) }
        w.message(15) { st in
            if b.statusMessage[row] != 0 { st.stringField(2, b.strings.string(b.statusMessage[row])) }
            if b.statusCode[row] != 0 { st.varintField(3, UInt64(b.statusCode[row])) }
        }
        if b.flags[row] != 0 { w.fixed32Field(16, b.flags[row]) }
    }

    /// Repeated `KeyValue{key = 1, value = 2: AnyValue}` in `field`.
    package static func writeAttributes(_ w: inout ProtoWriter, field: UInt32, _ attrs: AttributeColumns, _ range: Range<Int>, _ strings: StringTable) {
        for i in range {
            w.message(field) { kv in
                kv.stringField(1, strings.string(attrs.keys[i]))
                kv.message(2) { Self.writeValue(&$0, ValueType(rawValue: attrs.types[i]) ?? .empty, attrs.values[i], strings) }
            }
        }
    }

    /// The fields of one `AnyValue`.
    package static func writeValue(_ w: inout ProtoWriter, _ type: ValueType, _ value: UInt64, _ strings: StringTable) {
        switch type {
        case .empty: break
        case .string: strings.withBytes(UInt32(value)) { w.bytesField(1, $0) }
        case .bool: w.varintField(2, value != 0 ? 1 : 0)
        case .int: w.varintField(3, value)
        case .double: w.doubleField(4, Double(bitPattern: value))
        case .array: strings.withBytes(UInt32(value)) { w.bytesField(5, $0) }
        case .kvlist: strings.withBytes(UInt32(value)) { w.bytesField(6, $0) }
        case .bytes: strings.withBytes(UInt32(value)) { w.bytesField(7, $0) }
        }
    }
}
