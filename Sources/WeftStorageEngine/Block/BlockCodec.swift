import WeftModel

/// The columnar block format, version 1: an immutable, self-checking encoding of a span batch.
///
/// Layout: `WEFTBLK1`, then sections `[name length: varint][name][codec: UInt8][raw length: varint]`
/// `[stored length: varint][crc32c of stored bytes: UInt32][stored bytes]` (codec 0 = raw, 1 = zstd),
/// and a footer `[section count: UInt32][WEFTBLK1]`. Rows are ordered by (trace ID, start time), so the spans
/// of a trace are adjacent and a trace is found by binary search over the sorted unique trace IDs.
/// Columns are frame-of-reference bit-packed; attributes are stored grouped by key (rows of each key
/// delta-coded), with values split by type. Every section is checksummed.
public enum BlockCodec {
    public static let magic: [UInt8] = Array("WEFTBLK1".utf8)
    public static let version = 1

    /// Bytes per section, for inspection and the per-column size breakdown.
    public struct Section: Sendable, Equatable {
        public var name: String
        /// Bytes on disk, header included.
        public var bytes: Int
        /// Bytes before compression.
        public var rawBytes: Int
        public var compressed: Bool
    }

    /// Options for writing blocks.
    public struct Options: Sendable {
        /// zstd level for sections (0 = no compression).
        public var zstdLevel: Int32
        public init(zstdLevel: Int32 = 3) { self.zstdLevel = zstdLevel }
    }

    // MARK: Encoding

    /// Encodes `batch` (any row order) as a block.
    public static func encode(_ batch: SpanBatch, options: Options = Options()) -> (bytes: [UInt8], sections: [Section]) {
        let n = batch.spanCount
        // Order rows by trace, then start time.
        let order = (0..<n).sorted { a, b in
            let ta = batch.traceID(a)
            let tb = batch.traceID(b)
            return ta != tb ? ta < tb : (batch.startTime[a], a) < (batch.startTime[b], b)
        }
        var out = ByteWriter()
        out.raw(magic)
        var sections: [Section] = []
        var count: UInt32 = 0
        func section(_ name: String, _ body: (inout ByteWriter) -> Void) {
            var w = ByteWriter(byteAligned: options.zstdLevel > 0)
            body(&w)
            // Compress when it saves at least an eighth.
            var stored = w.bytes
            var codec: UInt8 = 0
            if options.zstdLevel > 0, w.bytes.count >= 64,
                let z = w.bytes.withUnsafeBytes({ Zstd.compress($0, level: options.zstdLevel) }), z.count < w.bytes.count - w.bytes.count / 8
            {
                stored = z
                codec = 1
            }
            var header = ByteWriter()
            header.varint(UInt64(name.utf8.count))
            header.raw(Array(name.utf8))
            header.raw([codec])
            header.varint(UInt64(w.bytes.count))
            header.varint(UInt64(stored.count))
            header.fixed32(stored.withUnsafeBytes { CRC32C.checksum($0) })
            out.raw(header.bytes)
            out.raw(stored)
            sections.append(Section(name: name, bytes: header.bytes.count + stored.count, rawBytes: w.bytes.count, compressed: codec == 1))
            count += 1
        }

        // Dictionary.
        section("dictionary") { w in
            let strings = batch.strings
            w.varint(UInt64(strings.count))
            w.packed((0..<strings.count).lazy.map { UInt64(strings.length(UInt32($0))) })
            w.raw(strings.bytes)
        }

        // Traces: sorted unique IDs, span count and first start per trace.
        var traceIDs: [TraceID] = []
        var traceSpans: [UInt64] = []
        var traceStart: [UInt64] = []
        var traceOf = [Int](repeating: 0, count: n)
        for (position, row) in order.enumerated() {
            let id = batch.traceID(row)
            if traceIDs.last != id {
                traceIDs.append(id)
                traceSpans.append(0)
                traceStart.append(batch.startTime[row])
            }
            traceSpans[traceSpans.count - 1] += 1
            traceOf[position] = traceIDs.count - 1
        }
        section("trace.id") { w in
            w.varint(UInt64(traceIDs.count))
            for id in traceIDs {
                w.fixed64(id.high)
                w.fixed64(id.low)
            }
        }
        section("trace.spans") { w in w.packed(traceSpans) }
        section("trace.start") { w in w.packed(traceStart) }

        // Span identity and timing.
        section("span.id") { w in for row in order { w.fixed64(batch.spanID[row]) } }
        // Parent as (position within the trace + 1); 0 = root; unresolved parents listed separately.
        var local: [UInt64] = []
        local.reserveCapacity(n)
        section("span.parent") { w in
            var positionOf: [UInt64: Int] = [:]
            var unresolved: [(Int, UInt64)] = []
            var traceFirst = 0
            for (position, row) in order.enumerated() {
                if position == 0 || traceOf[position] != traceOf[position - 1] {
                    positionOf.removeAll(keepingCapacity: true)
                    traceFirst = position
                    var p = position
                    while p < n && traceOf[p] == traceOf[position] {
                        positionOf[batch.spanID[order[p]]] = p - traceFirst
                        p += 1
                    }
                }
                let parent = batch.parentSpanID[row]
                if parent == 0 {
                    local.append(0)
                } else if let p = positionOf[parent] {
                    local.append(UInt64(p + 1))
                } else {
                    local.append(0)
                    unresolved.append((position, parent))
                }
            }
            w.packed(local)
            w.varint(UInt64(unresolved.count))
            for (position, parent) in unresolved {
                w.varint(UInt64(position))
                w.fixed64(parent)
            }
        }
        // Timing relative to the parent when it comes earlier in the trace (nested LLM calls start and end
        // close to their parents), else relative to the trace's first start. The decoder applies the same rule.
        var traceFirst = 0
        var startDeltas: [UInt64] = []
        var durationDeltas: [UInt64] = []
        startDeltas.reserveCapacity(n)
        durationDeltas.reserveCapacity(n)
        for (p, row) in order.enumerated() {
            if p == 0 || traceOf[p] != traceOf[p - 1] { traceFirst = p }
            let start = batch.startTime[row]
            let duration = Int64(bitPattern: batch.endTime[row] &- start)
            let l = Int(local[p])
            if l > 0 && traceFirst + l - 1 < p {
                let parent = order[traceFirst + l - 1]
                let parentDuration = Int64(bitPattern: batch.endTime[parent] &- batch.startTime[parent])
                startDeltas.append(zigzag(Int64(bitPattern: start &- batch.startTime[parent])))
                durationDeltas.append(zigzag(parentDuration &- duration))
            } else {
                startDeltas.append(zigzag(Int64(bitPattern: start &- traceStart[traceOf[p]])))
                durationDeltas.append(zigzag(duration))
            }
        }
        section("span.start") { w in w.packed(startDeltas) }
        section("span.duration") { w in w.packed(durationDeltas) }

        // Small fixed columns.
        func column32(_ name: String, _ values: [UInt32]) { section(name) { w in w.packed(order.lazy.map { UInt64(values[$0]) }) } }
        func column8(_ name: String, _ values: [UInt8]) { section(name) { w in w.packed(order.lazy.map { UInt64(values[$0]) }) } }
        column32("span.name", batch.name)
        column8("span.kind", batch.kind)
        column8("span.status", batch.statusCode)
        column32("span.status_message", batch.statusMessage)
        column32("span.trace_state", batch.traceState)
        column32("span.flags", batch.flags)
        column32("span.resource", batch.resourceIndex)
        column32("span.scope", batch.scopeIndex)
        column32("span.dropped_attributes", batch.droppedAttrs)
        column32("span.dropped_events", batch.droppedEvents)
        column32("span.dropped_links", batch.droppedLinks)

        // Typed GenAI columns.
        column32("genai.provider", batch.genAIProvider)
        column32("genai.request_model", batch.genAIRequestModel)
        column32("genai.response_model", batch.genAIResponseModel)
        section("genai.input_tokens") { w in w.packed(order.lazy.map { tokens(batch.inputTokens[$0]) }) }
        section("genai.output_tokens") { w in w.packed(order.lazy.map { tokens(batch.outputTokens[$0]) }) }
        section("genai.cost") { w in
            let present = order.map { !batch.cost[$0].isNaN }
            w.packed(present.lazy.map { $0 ? 1 : 0 })
            for row in order where !batch.cost[row].isNaN { w.fixed64(batch.cost[row].bitPattern) }
        }

        // Span attributes grouped by key.
        section("span.attributes") { w in
            var entries: [(key: UInt32, position: Int, index: Int)] = []
            entries.reserveCapacity(batch.attrs.count)
            for (position, row) in order.enumerated() {
                for i in batch.attrRange(row) { entries.append((batch.attrs.keys[i], position, i)) }
            }
            entries.sort { ($0.key, $0.position, $0.index) < ($1.key, $1.position, $1.index) }
            writeGroupedAttributes(&w, entries, batch.attrs)
        }

        // Resources, scopes, events and links: flat, they are small.
        section("resources") { w in
            w.packed(batch.resourceAttrOffsets)
            writeFlatAttributes(&w, batch.resourceAttrs)
            w.packed(batch.resourceDroppedAttrs)
            w.packed(batch.resourceSchemaURL)
            w.packed(batch.resourceServiceName)
        }
        section("scopes") { w in
            w.packed(batch.scopeName)
            w.packed(batch.scopeVersion)
            w.packed(batch.scopeAttrOffsets)
            writeFlatAttributes(&w, batch.scopeAttrs)
            w.packed(batch.scopeDroppedAttrs)
            w.packed(batch.scopeSchemaURL)
        }
        section("events") { w in
            let (counts, rows) = ownedRows(order, batch.eventOffsets)
            w.packed(counts)
            w.packed(rows.lazy.map { batch.eventTime[$0] })
            w.packed(rows.lazy.map { UInt64(batch.eventName[$0]) })
            w.packed(rows.lazy.map { UInt64(batch.eventDroppedAttrs[$0]) })
            writeOwnedAttributes(&w, rows, batch.eventAttrOffsets, batch.eventAttrs)
        }
        section("links") { w in
            let (counts, rows) = ownedRows(order, batch.linkOffsets)
            w.packed(counts)
            for l in rows {
                w.fixed64(batch.linkTraceHigh[l])
                w.fixed64(batch.linkTraceLow[l])
                w.fixed64(batch.linkSpanID[l])
            }
            w.packed(rows.lazy.map { UInt64(batch.linkTraceState[$0]) })
            w.packed(rows.lazy.map { UInt64(batch.linkFlags[$0]) })
            w.packed(rows.lazy.map { UInt64(batch.linkDroppedAttrs[$0]) })
            writeOwnedAttributes(&w, rows, batch.linkAttrOffsets, batch.linkAttrs)
        }

        out.fixed32(count)
        out.raw(magic)
        return (out.bytes, sections)
    }

    /// For owners (events or links) of each span in `order`: how many each span has, and their indices.
    static func ownedRows(_ order: [Int], _ offsets: [UInt32]) -> (counts: [UInt64], rows: [Int]) {
        var counts: [UInt64] = []
        var rows: [Int] = []
        counts.reserveCapacity(order.count)
        for row in order {
            let r = Int(offsets[row])..<Int(offsets[row + 1])
            counts.append(UInt64(r.count))
            rows.append(contentsOf: r)
        }
        return (counts, rows)
    }

    @inlinable static func tokens(_ v: Int64) -> UInt64 { v == SpanBatch.noTokens ? 0 : zigzag(v) &+ 1 }
    @inlinable static func untokens(_ v: UInt64) -> Int64 { v == 0 ? SpanBatch.noTokens : unzigzag(v &- 1) }

    /// Values split by type: string-table IDs, zigzag integers, raw doubles, booleans.
    static func writeValues(_ w: inout ByteWriter, _ types: [UInt8], _ values: [UInt64]) {
        w.packed(types)
        var ids: [UInt64] = []
        var ints: [UInt64] = []
        var doubles: [UInt64] = []
        var bools: [UInt64] = []
        for (t, v) in zip(types, values) {
            switch ValueType(rawValue: t) ?? .empty {
            case .string, .array, .kvlist, .bytes: ids.append(v)
            case .int: ints.append(zigzag(Int64(bitPattern: v)))
            case .double: doubles.append(v)
            case .bool: bools.append(v)
            case .empty: break
            }
        }
        w.packed(ids)
        w.packed(ints)
        w.varint(UInt64(doubles.count))
        for d in doubles { w.fixed64(d) }
        w.packed(bools)
    }

    static func writeGroupedAttributes(_ w: inout ByteWriter, _ entries: [(key: UInt32, position: Int, index: Int)], _ attrs: AttributeColumns) {
        var keys: [UInt64] = []
        var perKey: [UInt64] = []
        var rowDeltas: [UInt64] = []
        var previous = 0
        for e in entries {
            if keys.last != UInt64(e.key) {
                keys.append(UInt64(e.key))
                perKey.append(0)
                previous = 0
            }
            perKey[perKey.count - 1] += 1
            rowDeltas.append(UInt64(e.position - previous))
            previous = e.position
        }
        w.packed(keys)
        w.packed(perKey)
        w.packed(rowDeltas)
        writeValues(&w, entries.map { attrs.types[$0.index] }, entries.map { attrs.values[$0.index] })
    }

    static func writeFlatAttributes(_ w: inout ByteWriter, _ attrs: AttributeColumns) {
        w.packed(attrs.keys)
        writeValues(&w, attrs.types, attrs.values)
    }

    /// Attributes of owners (events or links) in `rows` order: a count per owner, then the flat list.
    static func writeOwnedAttributes(_ w: inout ByteWriter, _ rows: [Int], _ offsets: [UInt32], _ attrs: AttributeColumns) {
        var flat = AttributeColumns()
        var counts: [UInt64] = []
        for r in rows {
            let range = Int(offsets[r])..<Int(offsets[r + 1])
            counts.append(UInt64(range.count))
            for i in range { flat.append(key: attrs.keys[i], type: ValueType(rawValue: attrs.types[i]) ?? .empty, value: attrs.values[i]) }
        }
        w.packed(counts)
        writeFlatAttributes(&w, flat)
    }
}
