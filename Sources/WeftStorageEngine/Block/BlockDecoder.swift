import WeftModel

extension BlockCodec {
    /// Where one section lies in a block, from its header.
    public struct SectionEntry: Sendable {
        public var name: String
        public var codec: UInt8
        public var rawLength: Int
        public var crc: UInt32
        /// The stored bytes, as offsets into the block.
        public var range: Range<Int>
        /// Header plus stored bytes.
        public var onDisk: Int
    }

    /// Parses the section headers (magic, footer and bounds checked; payloads not read).
    public static func directory(_ raw: UnsafeRawBufferPointer) throws(BlockFormatError) -> [SectionEntry] {
        guard raw.count >= magic.count * 2 + 4, magic.elementsEqual(raw[0..<magic.count]),
            magic.elementsEqual(raw[(raw.count - magic.count)...])
        else { throw BlockFormatError("not a Weft block (bad magic or truncated)") }
        let expected = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - magic.count - 4, as: UInt32.self)))
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - magic.count - 4)])
        var r = ByteReader(body, at: magic.count)
        var entries: [SectionEntry] = []
        while !r.isAtEnd {
            let headerStart = r.position
            let name = String(decoding: try r.raw(try r.count(max: 256)), as: UTF8.self)
            let codec = try r.raw(1)[0]
            let rawLength = try r.count(max: 1 << 31)
            let length = try r.count(max: body.count)
            let crc = try r.fixed32()
            let start = r.position
            _ = try r.raw(length)
            entries.append(SectionEntry(
                name: name, codec: codec, rawLength: rawLength, crc: crc, range: start..<(start + length), onDisk: r.position - headerStart
            ))
        }
        guard entries.count == expected else { throw BlockFormatError("block has \(entries.count) sections, footer says \(expected)") }
        return entries
    }

    /// A section's payload, checksum verified and decompressed.
    public static func payload(_ raw: UnsafeRawBufferPointer, _ e: SectionEntry) throws(BlockFormatError) -> [UInt8] {
        let stored = UnsafeRawBufferPointer(rebasing: raw[e.range])
        guard CRC32C.checksum(stored) == e.crc else { throw BlockFormatError("checksum mismatch in section '\(e.name)'") }
        switch e.codec {
        case 0:
            guard e.rawLength == stored.count else { throw BlockFormatError("section '\(e.name)' has inconsistent lengths") }
            return Array(stored)
        case 1:
            return try Zstd.decompress(stored, size: e.rawLength)
        default:
            throw BlockFormatError("section '\(e.name)' uses unknown codec \(e.codec)")
        }
    }

    /// Splits a block into its checksummed, decompressed sections; throws on a bad magic, truncation,
    /// checksum or compression error.
    public static func sections(_ raw: UnsafeRawBufferPointer) throws(BlockFormatError) -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for e in try directory(raw) { result[e.name] = try payload(raw, e) }
        return result
    }

    /// Each section's name, stored and raw size and codec, in file order (checksums not read).
    public static func layout(_ raw: UnsafeRawBufferPointer) throws(BlockFormatError) -> [Section] {
        try directory(raw).map { Section(name: $0.name, bytes: $0.onDisk, rawBytes: $0.rawLength, compressed: $0.codec == 1) }
    }

    /// Checks every checksum and that the block decodes; returns its sections and span count.
    public static func verify(_ raw: UnsafeRawBufferPointer) throws(BlockFormatError) -> (sections: [String: Int], spans: Int) {
        let sections = try sections(raw)
        let batch = try decode(raw)
        return (sections.mapValues(\.count), batch.spanCount)
    }

    /// Decodes a whole block back into a batch (rows in block order).
    public static func decode(_ raw: UnsafeRawBufferPointer) throws(BlockFormatError) -> SpanBatch {
        let s = try sections(raw)
        // One owned buffer holds every section while readers view it.
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, s.values.reduce(0) { $0 + $1.count }), alignment: 8)
        defer { storage.deallocate() }
        var views: [String: UnsafeRawBufferPointer] = [:]
        var at = 0
        for (name, bytes) in s {
            bytes.withUnsafeBytes { src in
                if let base = src.baseAddress, src.count > 0 { (storage.baseAddress! + at).copyMemory(from: base, byteCount: src.count) }
            }
            views[name] = UnsafeRawBufferPointer(rebasing: storage[at..<(at + bytes.count)])
            at += bytes.count
        }
        func reader(_ name: String) throws(BlockFormatError) -> ByteReader {
            guard let payload = views[name] else { throw BlockFormatError("block lacks section '\(name)'") }
            return ByteReader(payload)
        }
        var batch = SpanBatch()

        // Dictionary: re-intern in ID order; the well-known prefix maps to itself.
        var dict = try reader("dictionary")
        let stringCount = try dict.count()
        let lengths = try dict.packed()
        guard lengths.count == stringCount else { throw BlockFormatError("dictionary lengths do not match its count") }
        batch.strings = StringTable()
        var map: [UInt32] = []
        map.reserveCapacity(stringCount)
        for length in lengths {
            map.append(batch.strings.intern(try dict.raw(Int(length))))
        }
        guard map.enumerated().allSatisfy({ $0.offset == Int($0.element) }) else {
            throw BlockFormatError("dictionary has duplicate strings")
        }
        func id(_ v: UInt64) throws(BlockFormatError) -> UInt32 {
            guard v < UInt64(stringCount) else { throw BlockFormatError("string ID \(v) outside the dictionary") }
            return UInt32(v)
        }

        // Traces.
        var t = try reader("trace.id")
        let traceCount = try t.count()
        var traceIDs: [TraceID] = []
        traceIDs.reserveCapacity(traceCount)
        for _ in 0..<traceCount { traceIDs.append(TraceID(high: try t.fixed64(), low: try t.fixed64())) }
        var ts = try reader("trace.spans")
        let spansPerTrace = try ts.packed()
        var tst = try reader("trace.start")
        let traceStarts = try tst.packed()
        guard spansPerTrace.count == traceCount, traceStarts.count == traceCount else { throw BlockFormatError("trace columns disagree") }
        let n = Int(spansPerTrace.reduce(0, +))
        var traceOf: [Int] = []
        traceOf.reserveCapacity(n)
        for (i, c) in spansPerTrace.enumerated() { traceOf.append(contentsOf: repeatElement(i, count: Int(c))) }

        func column(_ name: String) throws(BlockFormatError) -> [UInt64] {
            var r = try reader(name)
            let values = try r.packed()
            guard values.count == n else { throw BlockFormatError("column '\(name)' has \(values.count) rows, expected \(n)") }
            return values
        }

        var sid = try reader("span.id")
        for _ in 0..<n { batch.spanID.append(try sid.fixed64()) }
        for p in 0..<n {
            batch.traceHigh.append(traceIDs[traceOf[p]].high)
            batch.traceLow.append(traceIDs[traceOf[p]].low)
        }
        var parentReader = try reader("span.parent")
        let local = try parentReader.packed()
        guard local.count == n else { throw BlockFormatError("span.parent has the wrong row count") }
        var traceFirst = 0
        for p in 0..<n {
            if p == 0 || traceOf[p] != traceOf[p - 1] { traceFirst = p }
            let l = Int(local[p])
            guard l == 0 || traceFirst + l - 1 < n else { throw BlockFormatError("span.parent points outside its trace") }
            batch.parentSpanID.append(l == 0 ? 0 : batch.spanID[traceFirst + l - 1])
        }
        let unresolved = try parentReader.count(max: n)
        for _ in 0..<unresolved {
            let p = try parentReader.count(max: n - 1)
            batch.parentSpanID[p] = try parentReader.fixed64()
        }
        let starts = try column("span.start")
        let durations = try column("span.duration")
        traceFirst = 0
        for p in 0..<n {
            if p == 0 || traceOf[p] != traceOf[p - 1] { traceFirst = p }
            let l = Int(local[p])
            let start: UInt64
            let duration: Int64
            if l > 0 && traceFirst + l - 1 < p {
                let parent = traceFirst + l - 1
                let parentDuration = Int64(bitPattern: batch.endTime[parent] &- batch.startTime[parent])
                start = batch.startTime[parent] &+ UInt64(bitPattern: unzigzag(starts[p]))
                duration = parentDuration &- unzigzag(durations[p])
            } else {
                start = traceStarts[traceOf[p]] &+ UInt64(bitPattern: unzigzag(starts[p]))
                duration = unzigzag(durations[p])
            }
            batch.startTime.append(start)
            batch.endTime.append(start &+ UInt64(bitPattern: duration))
        }
        batch.name = try column("span.name").map(id)
        batch.kind = try column("span.kind").map { UInt8(truncatingIfNeeded: $0) }
        batch.statusCode = try column("span.status").map { UInt8(truncatingIfNeeded: $0) }
        batch.statusMessage = try column("span.status_message").map(id)
        batch.traceState = try column("span.trace_state").map(id)
        batch.flags = try column("span.flags").map { UInt32(truncatingIfNeeded: $0) }
        batch.resourceIndex = try column("span.resource").map { UInt32(truncatingIfNeeded: $0) }
        batch.scopeIndex = try column("span.scope").map { UInt32(truncatingIfNeeded: $0) }
        batch.droppedAttrs = try column("span.dropped_attributes").map { UInt32(truncatingIfNeeded: $0) }
        batch.droppedEvents = try column("span.dropped_events").map { UInt32(truncatingIfNeeded: $0) }
        batch.droppedLinks = try column("span.dropped_links").map { UInt32(truncatingIfNeeded: $0) }
        batch.genAIProvider = try column("genai.provider").map(id)
        batch.genAIRequestModel = try column("genai.request_model").map(id)
        batch.genAIResponseModel = try column("genai.response_model").map(id)
        batch.inputTokens = try column("genai.input_tokens").map(untokens)
        batch.outputTokens = try column("genai.output_tokens").map(untokens)
        var costReader = try reader("genai.cost")
        let present = try costReader.packed()
        guard present.count == n else { throw BlockFormatError("genai.cost has the wrong row count") }
        for p in present { batch.cost.append(p == 1 ? Double(bitPattern: try costReader.fixed64()) : .nan) }

        // Span attributes, regrouped by row.
        var ar = try reader("span.attributes")
        let keys = try ar.packed()
        let perKey = try ar.packed()
        let deltas = try ar.packed()
        let values = try readValues(&ar, count: deltas.count)
        guard keys.count == perKey.count, Int(perKey.reduce(0, +)) == deltas.count else {
            throw BlockFormatError("span.attributes columns disagree")
        }
        var byRow = [[(UInt32, UInt8, UInt64)]](repeating: [], count: n)
        var e = 0
        for (k, c) in zip(keys, perKey) {
            var position = 0
            for _ in 0..<Int(c) {
                position += Int(deltas[e])
                guard position < n else { throw BlockFormatError("attribute row outside the block") }
                byRow[position].append((try id(k), values.types[e], values.values[e]))
                e += 1
            }
        }
        for p in 0..<n {
            for (k, type, v) in byRow[p] {
                batch.attrs.append(key: k, type: ValueType(rawValue: type) ?? .empty, value: try checkedValue(type, v, stringCount))
            }
            batch.attrOffsets.append(UInt32(batch.attrs.count))
        }

        // Resources and scopes.
        var rr = try reader("resources")
        batch.resourceAttrOffsets = try rr.packed32()
        batch.resourceAttrs = try readFlatAttributes(&rr, stringCount)
        batch.resourceDroppedAttrs = try rr.packed32()
        batch.resourceSchemaURL = try rr.packed().map(id)
        batch.resourceServiceName = try rr.packed().map(id)
        var sr = try reader("scopes")
        batch.scopeName = try sr.packed().map(id)
        batch.scopeVersion = try sr.packed().map(id)
        batch.scopeAttrOffsets = try sr.packed32()
        batch.scopeAttrs = try readFlatAttributes(&sr, stringCount)
        batch.scopeDroppedAttrs = try sr.packed32()
        batch.scopeSchemaURL = try sr.packed().map(id)
        guard batch.resourceAttrOffsets.last.map({ Int($0) == batch.resourceAttrs.count }) ?? false,
            batch.scopeAttrOffsets.last.map({ Int($0) == batch.scopeAttrs.count }) ?? false,
            batch.resourceIndex.allSatisfy({ Int($0) < batch.resourceCount }),
            batch.scopeIndex.allSatisfy({ Int($0) < batch.scopeCount })
        else { throw BlockFormatError("resource or scope tables disagree with the spans") }

        // Events and links.
        var er = try reader("events")
        let eventCounts = try er.packed()
        guard eventCounts.count == n else { throw BlockFormatError("events has the wrong row count") }
        batch.eventTime = try er.packed()
        batch.eventName = try er.packed().map(id)
        batch.eventDroppedAttrs = try er.packed32()
        let (eventAttrCounts, eventAttrs) = try readOwnedAttributes(&er, stringCount)
        guard Int(eventCounts.reduce(0, +)) == batch.eventTime.count, eventAttrCounts.count == batch.eventTime.count else {
            throw BlockFormatError("events columns disagree")
        }
        batch.eventAttrs = eventAttrs
        for c in eventCounts { batch.eventOffsets.append(batch.eventOffsets.last! + UInt32(c)) }
        for c in eventAttrCounts { batch.eventAttrOffsets.append(batch.eventAttrOffsets.last! + UInt32(c)) }

        var lr = try reader("links")
        let linkCounts = try lr.packed()
        guard linkCounts.count == n else { throw BlockFormatError("links has the wrong row count") }
        let linkTotal = Int(linkCounts.reduce(0, +))
        for _ in 0..<linkTotal {
            batch.linkTraceHigh.append(try lr.fixed64())
            batch.linkTraceLow.append(try lr.fixed64())
            batch.linkSpanID.append(try lr.fixed64())
        }
        batch.linkTraceState = try lr.packed().map(id)
        batch.linkFlags = try lr.packed32()
        batch.linkDroppedAttrs = try lr.packed32()
        let (linkAttrCounts, linkAttrs) = try readOwnedAttributes(&lr, stringCount)
        guard linkAttrCounts.count == linkTotal, batch.linkTraceState.count == linkTotal else { throw BlockFormatError("links columns disagree") }
        batch.linkAttrs = linkAttrs
        for c in linkCounts { batch.linkOffsets.append(batch.linkOffsets.last! + UInt32(c)) }
        for c in linkAttrCounts { batch.linkAttrOffsets.append(batch.linkAttrOffsets.last! + UInt32(c)) }
        return batch
    }

    static func checkedValue(_ type: UInt8, _ v: UInt64, _ stringCount: Int) throws(BlockFormatError) -> UInt64 {
        if (ValueType(rawValue: type) ?? .empty).isInterned && v >= UInt64(stringCount) {
            throw BlockFormatError("attribute value ID \(v) outside the dictionary")
        }
        return v
    }

    static func readValues(_ r: inout ByteReader, count: Int) throws(BlockFormatError) -> (types: [UInt8], values: [UInt64]) {
        let types = try r.packed8()
        guard types.count == count else { throw BlockFormatError("attribute types have the wrong count") }
        let ids = try r.packed()
        let ints = try r.packed()
        let doubleCount = try r.count(max: count)
        var doubles: [UInt64] = []
        for _ in 0..<doubleCount { doubles.append(try r.fixed64()) }
        let bools = try r.packed()
        var values: [UInt64] = []
        values.reserveCapacity(count)
        var (i, j, k, b) = (0, 0, 0, 0)
        for t in types {
            switch ValueType(rawValue: t) ?? .empty {
            case .string, .array, .kvlist, .bytes:
                guard i < ids.count else { throw BlockFormatError("attribute ID values run short") }
                values.append(ids[i])
                i += 1
            case .int:
                guard j < ints.count else { throw BlockFormatError("attribute integer values run short") }
                values.append(UInt64(bitPattern: unzigzag(ints[j])))
                j += 1
            case .double:
                guard k < doubles.count else { throw BlockFormatError("attribute double values run short") }
                values.append(doubles[k])
                k += 1
            case .bool:
                guard b < bools.count else { throw BlockFormatError("attribute bool values run short") }
                values.append(bools[b])
                b += 1
            case .empty:
                values.append(0)
            }
        }
        return (types, values)
    }

    static func readFlatAttributes(_ r: inout ByteReader, _ stringCount: Int) throws(BlockFormatError) -> AttributeColumns {
        let keys = try r.packed32()
        let (types, values) = try readValues(&r, count: keys.count)
        var attrs = AttributeColumns()
        for i in 0..<keys.count {
            guard Int(keys[i]) < stringCount else { throw BlockFormatError("attribute key outside the dictionary") }
            attrs.append(key: keys[i], type: ValueType(rawValue: types[i]) ?? .empty, value: try checkedValue(types[i], values[i], stringCount))
        }
        return attrs
    }

    static func readOwnedAttributes(_ r: inout ByteReader, _ stringCount: Int) throws(BlockFormatError) -> ([UInt64], AttributeColumns) {
        let counts = try r.packed()
        let attrs = try readFlatAttributes(&r, stringCount)
        guard Int(counts.reduce(0, +)) == attrs.count else { throw BlockFormatError("owned attribute counts disagree") }
        return (counts, attrs)
    }
}
