import WeftModel

/// The columnar block format, version 2: an immutable, self-checking encoding of a span batch that
/// can be read piecewise.
///
/// File: `WEFTBLK2`, section payloads, a section directory, then the footer
/// `[directory length: UInt32][directory crc32c: UInt32][section count: UInt32][WEFTBLK2]`. A reader
/// reads the footer and directory once, then only the sections a query needs (`pread`). Each
/// section is checksummed and optionally zstd-compressed.
///
/// Rows are ordered by trace (traces by first start time, then ID; spans of a trace adjacent, by start)
/// and cut into **row groups** of about ``Options/groupSpans`` spans at trace boundaries. Block-level
/// sections: the dictionary (sorted strings in pages, well-known IDs first), resources, scopes, the
/// group summary (rows, traces, time range and numeric min/max per group) and per-group trace Bloom
/// filters. Per group `g`, sections named `g/<column>` hold the span columns; string attributes are
/// stored inverted, as posting lists of rows per (key, value), so equality filters are intersections.
public enum BlockCodec {
    public static let magic: [UInt8] = Array("WEFTBLK2".utf8)
    public static let version = 2
    /// Strings per dictionary page.
    public static let dictionaryPage = 4096

    /// Bytes per section, for inspection and the per-column size breakdown.
    public struct Section: Sendable, Equatable {
        public var name: String
        /// Bytes on disk, directory entry excluded.
        public var bytes: Int
        /// Bytes before compression.
        public var rawBytes: Int
        public var compressed: Bool
    }

    /// Options for writing blocks.
    public struct Options: Sendable {
        /// zstd level for sections (0 = no compression).
        public var zstdLevel: Int32
        /// Spans per row group (groups end at trace boundaries, so they may be larger).
        public var groupSpans: Int
        public init(zstdLevel: Int32 = 3, groupSpans: Int = 16_384) {
            self.zstdLevel = zstdLevel
            self.groupSpans = max(1, groupSpans)
        }
    }

    /// Blocks a node writes when it flushes the head: quick to write, since ingest waits on flushes.
    public static func flushOptions(groupSpans: Int = 16_384) -> Options {
        Options(zstdLevel: 3, groupSpans: groupSpans)
    }

    /// Blocks a node writes when it compacts (in the background, so smaller at more CPU). The node and
    /// the benchmarks both write with these, so measured sizes are the sizes a node keeps.
    public static func compactionOptions(groupSpans: Int = 16_384) -> Options {
        Options(zstdLevel: 9, groupSpans: groupSpans)
    }

    /// What the encoder learned about the block, for its metadata.
    public struct Summary: Sendable {
        public var spans: Int
        public var traces: Int
        public var groups: Int
        public var minStart: UInt64
        public var maxStart: UInt64
        public var sections: [Section]
    }

    // MARK: Encoding

    /// Encodes `batch` (any row order) as a block.
    public static func encode(_ batch: SpanBatch, options: Options = Options()) -> (bytes: [UInt8], sections: [Section]) {
        let (bytes, summary) = self.encodeWithSummary(batch, options: options)
        return (bytes, summary.sections)
    }

    public static func encodeWithSummary(_ batch: SpanBatch, options: Options = Options()) -> (bytes: [UInt8], summary: Summary) {
        var w = SectionWriter(zstdLevel: options.zstdLevel)
        let n = batch.spanCount

        // Order: rows by (trace, start); then traces by (first start, ID).
        let byTrace = (0..<n).sorted { a, b in
            let ta = batch.traceID(a)
            let tb = batch.traceID(b)
            return ta != tb ? ta < tb : (batch.startTime[a], a) < (batch.startTime[b], b)
        }
        var traceRanges: [Range<Int>] = []
        var i = 0
        while i < n {
            var j = i + 1
            let id = batch.traceID(byTrace[i])
            while j < n && batch.traceID(byTrace[j]) == id { j += 1 }
            traceRanges.append(i..<j)
            i = j
        }
        traceRanges.sort { a, b in
            let sa = batch.startTime[byTrace[a.lowerBound]]
            let sb = batch.startTime[byTrace[b.lowerBound]]
            return sa != sb ? sa < sb : batch.traceID(byTrace[a.lowerBound]) < batch.traceID(byTrace[b.lowerBound])
        }
        var order: [Int] = []
        order.reserveCapacity(n)
        var traceBounds: [Int] = [0]
        for r in traceRanges {
            order.append(contentsOf: byTrace[r])
            traceBounds.append(order.count)
        }

        // Dictionary: referenced strings only, well-known IDs first, the rest sorted by bytes.
        let remap = self.writeDictionary(&w, batch.strings, used: batch.referencedStrings())
        @inline(__always) func sid(_ id: UInt32) -> UInt64 { UInt64(remap[Int(id)]) }

        w.section("resources") { s in
            s.packed(batch.resourceAttrOffsets)
            writeFlatAttributes(&s, batch.resourceAttrs, remap)
            s.packed(batch.resourceDroppedAttrs)
            s.packed(batch.resourceSchemaURL.lazy.map(sid))
            s.packed(batch.resourceServiceName.lazy.map(sid))
        }
        w.section("scopes") { s in
            s.packed(batch.scopeName.lazy.map(sid))
            s.packed(batch.scopeVersion.lazy.map(sid))
            s.packed(batch.scopeAttrOffsets)
            writeFlatAttributes(&s, batch.scopeAttrs, remap)
            s.packed(batch.scopeDroppedAttrs)
            s.packed(batch.scopeSchemaURL.lazy.map(sid))
        }

        // Row groups at trace boundaries.
        var groups: [(traces: Range<Int>, rows: Range<Int>)] = []
        var firstTrace = 0
        for t in 0..<traceRanges.count {
            let rows = traceBounds[firstTrace]..<traceBounds[t + 1]
            if rows.count >= options.groupSpans || t == traceRanges.count - 1 {
                groups.append((firstTrace..<(t + 1), rows))
                firstTrace = t + 1
            }
        }
        var summary = GroupSummary()
        var blooms: [TraceBloom] = []
        for (g, group) in groups.enumerated() {
            let rows = Array(order[group.rows])
            let bounds = group.traces.map { traceBounds[$0] - group.rows.lowerBound } + [rows.count]
            var bloom = TraceBloom(capacity: group.traces.count)
            for b in bounds.dropLast() { bloom.insert(batch.traceID(rows[b])) }
            blooms.append(bloom)
            summary.add(batch, rows, traces: group.traces.count)
            self.writeGroup(&w, g, batch, rows, bounds, remap)
        }
        var orphans: [Int] = []
        let edges = ServiceGraph.edges(batch, order: order, bounds: traceBounds, orphans: &orphans)
        w.section("servicemap") { s in ServiceGraph.write(&s, edges, remap) }
        w.section("servicemap.orphans") { s in ServiceGraph.writeOrphans(&s, batch, orphans, remap) }
        w.section("groups", compress: false) { s in summary.write(&s) }
        w.section("bloom", compress: false) { s in
            s.varint(UInt64(blooms.count))
            for b in blooms {
                s.varint(UInt64(b.bits.count))
                for word in b.bits { s.fixed64(word) }
            }
        }
        let bytes = w.finish()
        return (bytes, Summary(
            spans: n, traces: traceRanges.count, groups: groups.count,
            minStart: batch.startTime.min() ?? 0, maxStart: batch.startTime.max() ?? 0, sections: w.sections
        ))
    }

    /// Writes the dictionary pages; returns old ID → new ID (unreferenced strings map to 0).
    static func writeDictionary(_ w: inout SectionWriter, _ strings: StringTable, used: [Bool]) -> [UInt32] {
        let known = min(WellKnown.all.count, strings.count)
        var rest = (known..<strings.count).filter { used[$0] }
        strings.bytes.withUnsafeBytes { all in
            func view(_ id: Int) -> UnsafeRawBufferPointer {
                UnsafeRawBufferPointer(rebasing: all[Int(strings.offsets[id])..<Int(strings.offsets[id + 1])])
            }
            rest.sort { compareBytes(view($0), view($1)) < 0 }
        }
        let sorted = Array(0..<known) + rest
        var remap = [UInt32](repeating: 0, count: strings.count)
        for (new, old) in sorted.enumerated() { remap[old] = UInt32(new) }
        var page = 0
        while page * dictionaryPage < sorted.count || page == 0 {
            let ids = sorted[(page * dictionaryPage)..<min(sorted.count, (page + 1) * dictionaryPage)]
            w.section("dict/\(page)") { s in
                s.varint(UInt64(ids.count))
                s.packed(ids.lazy.map { UInt64(strings.length(UInt32($0))) })
                strings.bytes.withUnsafeBytes { all in
                    for id in ids { s.raw(UnsafeRawBufferPointer(rebasing: all[Int(strings.offsets[id])..<Int(strings.offsets[id + 1])])) }
                }
            }
            page += 1
        }
        w.section("dictionary", compress: false) { s in
            s.varint(UInt64(sorted.count))
            s.varint(UInt64(page))
        }
        return remap
    }

    /// One row group: `rows` are batch rows in block order; `bounds` the offsets where each trace starts
    /// (plus the end).
    static func writeGroup(_ w: inout SectionWriter, _ g: Int, _ batch: SpanBatch, _ order: [Int], _ bounds: [Int], _ remap: [UInt32]) {
        let n = order.count
        let prefix = "\(g)/"
        @inline(__always) func sid(_ id: UInt32) -> UInt64 { UInt64(remap[Int(id)]) }
        var traceOf = [Int](repeating: 0, count: n)
        for t in 0..<(bounds.count - 1) {
            for p in bounds[t]..<bounds[t + 1] { traceOf[p] = t }
        }
        let traceStart = (0..<(bounds.count - 1)).map { batch.startTime[order[bounds[$0]]] }

        w.section(prefix + "trace.id") { s in
            for t in 0..<(bounds.count - 1) {
                let id = batch.traceID(order[bounds[t]])
                s.fixed64(id.high)
                s.fixed64(id.low)
            }
        }
        w.section(prefix + "trace.spans") { s in s.packed((0..<(bounds.count - 1)).lazy.map { UInt64(bounds[$0 + 1] - bounds[$0]) }) }
        // Traces are sorted by start: store the gaps.
        w.section(prefix + "trace.start") { s in
            s.fixed64(traceStart.first ?? 0)
            s.packed(traceStart.indices.lazy.map { $0 == 0 ? 0 : traceStart[$0] - traceStart[$0 - 1] })
        }
        w.section(prefix + "span.id") { s in for row in order { s.fixed64(batch.spanID[row]) } }

        // Parent as (position within the trace + 1); 0 = root; unresolved parents listed separately.
        var local: [UInt64] = []
        local.reserveCapacity(n)
        var unresolved: [(Int, UInt64)] = []
        var positionOf: [UInt64: Int] = [:]
        for t in 0..<(bounds.count - 1) {
            positionOf.removeAll(keepingCapacity: true)
            for p in bounds[t]..<bounds[t + 1] { positionOf[batch.spanID[order[p]]] = p - bounds[t] }
            for p in bounds[t]..<bounds[t + 1] {
                let parent = batch.parentSpanID[order[p]]
                if parent == 0 {
                    local.append(0)
                } else if let q = positionOf[parent] {
                    local.append(UInt64(q + 1))
                } else {
                    local.append(0)
                    unresolved.append((p, parent))
                }
            }
        }
        w.section(prefix + "span.parent") { s in
            s.packed(local)
            s.varint(UInt64(unresolved.count))
            for (p, parent) in unresolved {
                s.varint(UInt64(p))
                s.fixed64(parent)
            }
        }
        // Timing relative to the parent when it comes earlier in the trace (nested calls start and end
        // close to their parents), else relative to the trace's start. The decoder applies the same rule.
        var startDeltas: [UInt64] = []
        var durationDeltas: [UInt64] = []
        startDeltas.reserveCapacity(n)
        durationDeltas.reserveCapacity(n)
        for p in 0..<n {
            let row = order[p]
            let first = bounds[traceOf[p]]
            let start = batch.startTime[row]
            let duration = Int64(bitPattern: batch.endTime[row] &- start)
            let l = Int(local[p])
            if l > 0 && first + l - 1 < p {
                let parent = order[first + l - 1]
                let parentDuration = Int64(bitPattern: batch.endTime[parent] &- batch.startTime[parent])
                startDeltas.append(zigzag(Int64(bitPattern: start &- batch.startTime[parent])))
                durationDeltas.append(zigzag(parentDuration &- duration))
            } else {
                startDeltas.append(zigzag(Int64(bitPattern: start &- traceStart[traceOf[p]])))
                durationDeltas.append(zigzag(duration))
            }
        }
        w.section(prefix + "span.start") { s in s.packed(startDeltas) }
        w.section(prefix + "span.duration") { s in s.packed(durationDeltas) }

        func ids(_ name: String, _ values: [UInt32]) { w.section(prefix + name) { s in s.packed(order.lazy.map { sid(values[$0]) }) } }
        func column32(_ name: String, _ values: [UInt32]) { w.section(prefix + name) { s in s.packed(order.lazy.map { UInt64(values[$0]) }) } }
        func column8(_ name: String, _ values: [UInt8]) { w.section(prefix + name) { s in s.packed(order.lazy.map { UInt64(values[$0]) }) } }
        ids("span.name", batch.name)
        column8("span.kind", batch.kind)
        column8("span.status", batch.statusCode)
        ids("span.status_message", batch.statusMessage)
        ids("span.trace_state", batch.traceState)
        column32("span.flags", batch.flags)
        column32("span.resource", batch.resourceIndex)
        column32("span.scope", batch.scopeIndex)
        column32("span.dropped_attributes", batch.droppedAttrs)
        column32("span.dropped_events", batch.droppedEvents)
        column32("span.dropped_links", batch.droppedLinks)
        ids("genai.provider", batch.genAIProvider)
        ids("genai.request_model", batch.genAIRequestModel)
        ids("genai.response_model", batch.genAIResponseModel)
        w.section(prefix + "genai.input_tokens") { s in s.packed(order.lazy.map { tokens(batch.inputTokens[$0]) }) }
        w.section(prefix + "genai.output_tokens") { s in s.packed(order.lazy.map { tokens(batch.outputTokens[$0]) }) }
        w.section(prefix + "genai.cost") { s in
            s.packed(order.lazy.map { batch.cost[$0].isNaN ? 0 : 1 })
            for row in order where !batch.cost[row].isNaN { s.fixed64(batch.cost[row].bitPattern) }
        }
        let implied = impliedAttributes(batch, order)
        w.section(prefix + "genai.implied") { s in s.packed(implied.masks.lazy.map { UInt64($0) }) }
        w.section(prefix + "span.attributes") { s in writeInvertedAttributes(&s, batch, order, remap, skip: implied.skip) }
        w.section(prefix + "events") { s in
            let (counts, rows) = ownedRows(order, batch.eventOffsets)
            s.packed(counts)
            s.packed(rows.lazy.map { batch.eventTime[$0] })
            s.packed(rows.lazy.map { sid(batch.eventName[$0]) })
            s.packed(rows.lazy.map { UInt64(batch.eventDroppedAttrs[$0]) })
            writeOwnedAttributes(&s, rows, batch.eventAttrOffsets, batch.eventAttrs, remap)
        }
        w.section(prefix + "links") { s in
            let (counts, rows) = ownedRows(order, batch.linkOffsets)
            s.packed(counts)
            for l in rows {
                s.fixed64(batch.linkTraceHigh[l])
                s.fixed64(batch.linkTraceLow[l])
                s.fixed64(batch.linkSpanID[l])
            }
            s.packed(rows.lazy.map { sid(batch.linkTraceState[$0]) })
            s.packed(rows.lazy.map { UInt64(batch.linkFlags[$0]) })
            s.packed(rows.lazy.map { UInt64(batch.linkDroppedAttrs[$0]) })
            writeOwnedAttributes(&s, rows, batch.linkAttrOffsets, batch.linkAttrs, remap)
        }
    }

    /// Span attributes of a group, by key. String values are inverted: per key, its distinct values
    /// (ascending, delta-coded) and for each a posting list of rows (delta-coded); other values keep
    /// (row, type, value) lists.
    ///
    /// Keys with few distinct string values per entry are inverted; ID-like keys (most values seen once
    /// or twice) keep their string values in the (row, value) lists.
    ///
    /// Layout: keys, string values per key, value deltas, posting lengths, first row of each posting
    /// list, further row deltas, other-entry count per key, other row deltas, then the other values
    /// split by type.
    static func writeInvertedAttributes(_ s: inout ByteWriter, _ batch: SpanBatch, _ order: [Int], _ remap: [UInt32], skip: [Bool]) {
        // One integer per attribute, sorted: key, then strings first (by value, row), then the others
        // (by row, original order). High half: key and string value (or `other`); low half: the row
        // in the group and the attribute's index, which is also their original order.
        let other: UInt64 = 0xFFFF_FFFF
        var sorted = [UInt128]()
        sorted.reserveCapacity(skip.count)
        var visited = 0
        for (position, row) in order.enumerated() {
            for i in batch.attrRange(row) {
                defer { visited += 1 }
                guard !skip[visited] else { continue }
                let isString = batch.attrs.types[i] == ValueType.string.rawValue
                let high = UInt64(remap[Int(batch.attrs.keys[i])]) << 32 | (isString ? UInt64(remap[Int(batch.attrs.values[i])]) : other)
                sorted.append(UInt128(high) << 64 | UInt128(UInt64(position) << 32 | UInt64(i)))
            }
        }
        sorted.sort()
        @inline(__always) func key(_ x: UInt128) -> UInt32 { UInt32(truncatingIfNeeded: x >> 96) }
        @inline(__always) func value(_ x: UInt128) -> UInt64 { UInt64(truncatingIfNeeded: x >> 64) & other }
        @inline(__always) func position(_ x: UInt128) -> Int { Int(truncatingIfNeeded: x >> 32) & 0xFFFF_FFFF }
        @inline(__always) func index(_ x: UInt128) -> Int { Int(truncatingIfNeeded: x) & 0xFFFF_FFFF }
        // Keys whose string values mostly occur once or twice (IDs) are cheaper as (row, value) lists:
        // their postings are found by scanning that key's entries. Their strings join the others.
        var run = 0
        while run < sorted.count {
            var end = run
            var strings = 0
            var distinct = 0
            while end < sorted.count && key(sorted[end]) == key(sorted[run]) {
                if value(sorted[end]) != other {
                    strings += 1
                    if end == run || value(sorted[end - 1]) != value(sorted[end]) { distinct += 1 }
                }
                end += 1
            }
            if strings > 0 && distinct * 3 > strings {
                let high = UInt128(UInt64(key(sorted[run])) << 32 | other) << 64
                for k in run..<end { sorted[k] = high | (sorted[k] & UInt128(UInt64.max)) }
                sorted[run..<end].sort()
            }
            run = end
        }
        var keys: [UInt64] = []
        var valuesPerKey: [UInt64] = []
        var valueDeltas: [UInt64] = []
        var postingLengths: [UInt64] = []
        var postingFirst: [UInt64] = []
        var postingDeltas: [UInt64] = []
        var othersPerKey: [UInt64] = []
        var otherDeltas: [UInt64] = []
        var otherTypes: [UInt8] = []
        var otherValues: [UInt64] = []
        var previousValue: UInt64 = 0
        var previousRow = 0
        for k in sorted.indices {
            let x = sorted[k]
            let newKey = k == 0 || key(sorted[k - 1]) != key(x)
            let wasString = k > 0 && value(sorted[k - 1]) != other
            if newKey {
                keys.append(UInt64(key(x)))
                valuesPerKey.append(0)
                othersPerKey.append(0)
                previousValue = 0
                previousRow = 0
            }
            let v = value(x)
            let row = position(x)
            if v != other {
                if newKey || value(sorted[k - 1]) != v {
                    valuesPerKey[valuesPerKey.count - 1] += 1
                    valueDeltas.append(v - previousValue)
                    previousValue = v
                    postingLengths.append(1)
                    postingFirst.append(UInt64(row))
                } else {
                    postingLengths[postingLengths.count - 1] += 1
                    postingDeltas.append(UInt64(row - previousRow))
                }
                previousRow = row
            } else {
                if newKey || wasString { previousRow = 0 }
                othersPerKey[othersPerKey.count - 1] += 1
                otherDeltas.append(UInt64(row - previousRow))
                previousRow = row
                let type = batch.attrs.types[index(x)]
                let raw = batch.attrs.values[index(x)]
                otherTypes.append(type)
                otherValues.append((ValueType(rawValue: type) ?? .empty).isInterned ? UInt64(remap[Int(raw)]) : raw)
            }
        }
        s.packed(keys)
        s.packed(valuesPerKey)
        s.packed(valueDeltas)
        s.packed(postingLengths)
        s.packed(postingFirst)
        s.packed(postingDeltas)
        s.packed(othersPerKey)
        s.packed(otherDeltas)
        writeValues(&s, otherTypes, otherValues)
    }

    /// GenAI attributes whose value equals the span's typed column are not stored twice: a mask per
    /// span says which keys to restore from the typed columns (bit i = ``impliedKeys``[i]).
    static let impliedKeys: [(key: UInt32, type: ValueType)] = [
        (WellKnown.genAIProviderName, .string), (WellKnown.genAISystem, .string), (WellKnown.genAIRequestModel, .string),
        (WellKnown.genAIResponseModel, .string), (WellKnown.genAIInputTokens, .int), (WellKnown.genAIPromptTokens, .int),
        (WellKnown.genAIOutputTokens, .int), (WellKnown.genAICompletionTokens, .int), (WellKnown.genAIUsageCost, .double),
    ]

    /// The typed-column value an implied attribute takes (its stored payload).
    static func impliedValue(_ bit: Int, provider: UInt32, request: UInt32, response: UInt32, input: Int64, output: Int64, cost: Double) -> UInt64? {
        switch bit {
        case 0, 1: return provider == 0 ? nil : UInt64(provider)
        case 2: return request == 0 ? nil : UInt64(request)
        case 3: return response == 0 ? nil : UInt64(response)
        case 4, 5: return input == SpanBatch.noTokens ? nil : UInt64(bitPattern: input)
        case 6, 7: return output == SpanBatch.noTokens ? nil : UInt64(bitPattern: output)
        default: return cost.isNaN ? nil : cost.bitPattern
        }
    }

    /// Per span in `order`, the implied-attribute mask; per attribute of those spans, in that order,
    /// whether it is left out.
    static func impliedAttributes(_ batch: SpanBatch, _ order: [Int]) -> (masks: [UInt16], skip: [Bool]) {
        var masks: [UInt16] = []
        masks.reserveCapacity(order.count)
        var skip: [Bool] = []
        for row in order {
            var mask: UInt16 = 0
            for i in batch.attrRange(row) {
                let key = batch.attrs.keys[i]
                skip.append(false)
                guard key >= WellKnown.genAIProviderName && key <= WellKnown.genAIUsageCost,
                    let bit = impliedKeys.firstIndex(where: { $0.key == key }), mask & (1 << bit) == 0,
                    batch.attrs.types[i] == impliedKeys[bit].type.rawValue,
                    let expected = impliedValue(
                        bit, provider: batch.genAIProvider[row], request: batch.genAIRequestModel[row], response: batch.genAIResponseModel[row],
                        input: batch.inputTokens[row], output: batch.outputTokens[row], cost: batch.cost[row]
                    ),
                    expected == batch.attrs.values[i]
                else { continue }
                mask |= 1 << bit
                skip[skip.count - 1] = true
            }
            masks.append(mask)
        }
        return (masks, skip)
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

    static func writeFlatAttributes(_ w: inout ByteWriter, _ attrs: AttributeColumns, _ remap: [UInt32]) {
        w.packed(attrs.keys.lazy.map { UInt64(remap[Int($0)]) })
        let values = (0..<attrs.count).map { i in
            (ValueType(rawValue: attrs.types[i]) ?? .empty).isInterned ? UInt64(remap[Int(attrs.values[i])]) : attrs.values[i]
        }
        writeValues(&w, attrs.types, values)
    }

    /// Attributes of owners (events or links) in `rows` order: a count per owner, then the flat list.
    static func writeOwnedAttributes(_ w: inout ByteWriter, _ rows: [Int], _ offsets: [UInt32], _ attrs: AttributeColumns, _ remap: [UInt32]) {
        var flat = AttributeColumns()
        var counts: [UInt64] = []
        for r in rows {
            let range = Int(offsets[r])..<Int(offsets[r + 1])
            counts.append(UInt64(range.count))
            for i in range { flat.append(key: attrs.keys[i], type: ValueType(rawValue: attrs.types[i]) ?? .empty, value: attrs.values[i]) }
        }
        w.packed(counts)
        writeFlatAttributes(&w, flat, remap)
    }
}

/// Lexicographic byte order (shorter first on a common prefix).
func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = min(a.count, b.count)
    if n > 0 {
        let c = memcmpRaw(a.baseAddress!, b.baseAddress!, n)
        if c != 0 { return c }
    }
    return a.count - b.count
}

@inline(__always) func memcmpRaw(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Int {
    for i in 0..<n {
        let x = a.load(fromByteOffset: i, as: UInt8.self)
        let y = b.load(fromByteOffset: i, as: UInt8.self)
        if x != y { return Int(x) - Int(y) }
    }
    return 0
}

/// Per-group facts kept in the block's `groups` section: rows, traces, time range and numeric
/// min/max, so queries skip groups without reading them.
public struct GroupSummary: Sendable, Equatable {
    public var spans: [UInt64] = []
    public var traces: [UInt64] = []
    public var minStart: [UInt64] = []
    public var maxStart: [UInt64] = []
    public var minDuration: [UInt64] = []
    public var maxDuration: [UInt64] = []
    /// Largest input and output token counts (0 when none).
    public var maxInputTokens: [UInt64] = []
    public var maxOutputTokens: [UInt64] = []

    public var count: Int { self.spans.count }

    mutating func add(_ batch: SpanBatch, _ rows: [Int], traces: Int) {
        var minS = UInt64.max, maxS: UInt64 = 0, minD = UInt64.max, maxD: UInt64 = 0, maxIn: Int64 = 0, maxOut: Int64 = 0
        for row in rows {
            let s = batch.startTime[row]
            let d = batch.endTime[row] > s ? batch.endTime[row] - s : 0
            minS = min(minS, s)
            maxS = max(maxS, s)
            minD = min(minD, d)
            maxD = max(maxD, d)
            maxIn = max(maxIn, batch.inputTokens[row])
            maxOut = max(maxOut, batch.outputTokens[row])
        }
        self.spans.append(UInt64(rows.count))
        self.traces.append(UInt64(traces))
        self.minStart.append(minS)
        self.maxStart.append(maxS)
        self.minDuration.append(minD)
        self.maxDuration.append(maxD)
        self.maxInputTokens.append(UInt64(max(0, maxIn)))
        self.maxOutputTokens.append(UInt64(max(0, maxOut)))
    }

    func write(_ s: inout ByteWriter) {
        for column in [self.spans, self.traces, self.minStart, self.maxStart, self.minDuration, self.maxDuration, self.maxInputTokens, self.maxOutputTokens] {
            s.packed(column)
        }
    }

    static func read(_ r: inout ByteReader) throws(BlockFormatError) -> GroupSummary {
        var g = GroupSummary()
        g.spans = try r.packed()
        g.traces = try r.packed()
        g.minStart = try r.packed()
        g.maxStart = try r.packed()
        g.minDuration = try r.packed()
        g.maxDuration = try r.packed()
        g.maxInputTokens = try r.packed()
        g.maxOutputTokens = try r.packed()
        let n = g.spans.count
        guard [g.traces, g.minStart, g.maxStart, g.minDuration, g.maxDuration, g.maxInputTokens, g.maxOutputTokens].allSatisfy({ $0.count == n })
        else { throw BlockFormatError("group summary columns disagree") }
        return g
    }
}

/// Accumulates checksummed (optionally compressed) sections and the directory that ends the file.
struct SectionWriter {
    let zstdLevel: Int32
    var out = ByteWriter()
    var directory = ByteWriter()
    var sections: [BlockCodec.Section] = []

    init(zstdLevel: Int32) {
        self.zstdLevel = zstdLevel
        self.out.raw(BlockCodec.magic)
    }

    /// The section's stored form for one packing: raw bytes, and the compressed form when it saves
    /// at least an eighth.
    private func encode(_ body: (inout ByteWriter) -> Void, aligned: Bool, compress: Bool) -> (raw: [UInt8], stored: [UInt8], codec: UInt8) {
        var w = ByteWriter(byteAligned: aligned)
        body(&w)
        if compress, self.zstdLevel > 0, w.bytes.count >= 64,
            let z = w.bytes.withUnsafeBytes({ Zstd.compress($0, level: self.zstdLevel) }), z.count < w.bytes.count - w.bytes.count / 8
        {
            return (w.bytes, z, 1)
        }
        return (w.bytes, w.bytes, 0)
    }

    mutating func section(_ name: String, compress: Bool = true, _ body: (inout ByteWriter) -> Void) {
        // Byte-aligned values compress far better under zstd. (Also trying exact widths and keeping the
        // smaller saved 0.4% on disk at a third of the compaction speed: not worth it.)
        let best = self.encode(body, aligned: self.zstdLevel > 0 && compress, compress: compress)
        let stored = best.stored
        let codec = best.codec
        let offset = self.out.bytes.count
        self.out.raw(stored)
        self.directory.varint(UInt64(name.utf8.count))
        self.directory.raw(Array(name.utf8))
        self.directory.raw([codec])
        self.directory.varint(UInt64(best.raw.count))
        self.directory.varint(UInt64(offset))
        self.directory.varint(UInt64(stored.count))
        self.directory.fixed32(stored.withUnsafeBytes { CRC32C.checksum($0) })
        self.sections.append(BlockCodec.Section(name: name, bytes: stored.count, rawBytes: best.raw.count, compressed: codec == 1))
    }

    mutating func finish() -> [UInt8] {
        let dir = self.directory.bytes
        self.out.raw(dir)
        self.out.fixed32(UInt32(dir.count))
        self.out.fixed32(dir.withUnsafeBytes { CRC32C.checksum($0) })
        self.out.fixed32(UInt32(self.sections.count))
        self.out.raw(BlockCodec.magic)
        return self.out.bytes
    }
}
