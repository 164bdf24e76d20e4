import WeftModel

/// Decodes OTLP/JSON `ExportTraceServiceRequest` bodies into a ``SpanBatch`` by the same rules as the
/// protobuf decoder: hex trace and span IDs, 64-bit integers as strings or numbers, enums as integers
/// (names accepted too), lowerCamelCase and snake_case keys, unknown keys ignored.
public struct OTLPJSONDecoder {
    public var options: DecodeOptions
    private var aliasIDs: [UInt32] = []

    public init(options: DecodeOptions = DecodeOptions()) {
        self.options = options
    }

    public mutating func decode(_ bytes: UnsafeRawBufferPointer, into batch: inout SpanBatch) throws(OTLPDecodeError) -> DecodeOutcome {
        var outcome = DecodeOutcome()
        self.aliasIDs = self.options.genAI.aliasIDs(in: &batch.strings)
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw OTLPDecodeError("empty JSON body")
        }
        var r = JSONReader(base: base, range: 0..<bytes.count, maxDepth: 16 + 4 * (self.options.maxValueDepth + 1))
        try r.beginObject()
        var first = true
        while let key = try r.nextKey(first: &first) {
            if keyIs(key, "resourceSpans", "resource_spans") {
                if try r.skipNull() { continue }
                try r.beginArray()
                var firstElement = true
                while try r.nextElement(first: &firstElement) {
                    try self.decodeResourceSpans(&r, &batch, &outcome)
                }
            } else {
                try r.skipValue()
            }
        }
        guard r.atEnd() else { throw r.error("trailing data after the request object") }
        return outcome
    }

    private mutating func decodeResourceSpans(_ r: inout JSONReader, _ batch: inout SpanBatch, _ outcome: inout DecodeOutcome) throws(OTLPDecodeError) {
        var resource: Range<Int>? = nil
        var scopeSpans: Range<Int>? = nil
        var schemaURL: UInt32 = 0
        if try r.skipNull() { return }
        try r.beginObject()
        var first = true
        while let key = try r.nextKey(first: &first) {
            if keyIs(key, "resource") {
                resource = try r.captureValue()
            } else if keyIs(key, "scopeSpans", "scope_spans") {
                scopeSpans = try r.captureValue()
            } else if keyIs(key, "schemaUrl", "schema_url") {
                schemaURL = try self.readInternedString(&r, &batch.strings)
            } else {
                try r.skipValue()
            }
        }
        let resourceIndex = UInt32(batch.resourceCount)
        var dropped: UInt32 = 0
        if let resource {
            var rr = r.sub(resource)
            if try !rr.skipNull() {
                try rr.beginObject()
                var f = true
                while let key = try rr.nextKey(first: &f) {
                    if keyIs(key, "attributes") {
                        try self.decodeAttributes(&rr, &batch.resourceAttrs, &batch.strings)
                    } else if keyIs(key, "droppedAttributesCount", "dropped_attributes_count") {
                        dropped = UInt32(truncatingIfNeeded: try rr.readUInt64())
                    } else {
                        try rr.skipValue()
                    }
                }
            }
        }
        batch.closeResource(droppedAttrs: dropped, schemaURL: schemaURL)

        guard let scopeSpans else { return }
        var sr = r.sub(scopeSpans)
        if try sr.skipNull() { return }
        try sr.beginArray()
        var f = true
        while try sr.nextElement(first: &f) {
            try self.decodeScopeSpans(&sr, resourceIndex, &batch, &outcome)
        }
    }

    private mutating func decodeScopeSpans(_ r: inout JSONReader, _ resourceIndex: UInt32, _ batch: inout SpanBatch, _ outcome: inout DecodeOutcome) throws(OTLPDecodeError) {
        var scope: Range<Int>? = nil
        var spans: Range<Int>? = nil
        var schemaURL: UInt32 = 0
        if try r.skipNull() { return }
        try r.beginObject()
        var first = true
        while let key = try r.nextKey(first: &first) {
            if keyIs(key, "scope") {
                scope = try r.captureValue()
            } else if keyIs(key, "spans") {
                spans = try r.captureValue()
            } else if keyIs(key, "schemaUrl", "schema_url") {
                schemaURL = try self.readInternedString(&r, &batch.strings)
            } else {
                try r.skipValue()
            }
        }
        let scopeIndex = UInt32(batch.scopeCount)
        var name: UInt32 = 0
        var version: UInt32 = 0
        var dropped: UInt32 = 0
        if let scope {
            var sr = r.sub(scope)
            if try !sr.skipNull() {
                try sr.beginObject()
                var f = true
                while let key = try sr.nextKey(first: &f) {
                    if keyIs(key, "name") {
                        name = try self.readInternedString(&sr, &batch.strings)
                    } else if keyIs(key, "version") {
                        version = try self.readInternedString(&sr, &batch.strings)
                    } else if keyIs(key, "attributes") {
                        try self.decodeAttributes(&sr, &batch.scopeAttrs, &batch.strings)
                    } else if keyIs(key, "droppedAttributesCount", "dropped_attributes_count") {
                        dropped = UInt32(truncatingIfNeeded: try sr.readUInt64())
                    } else {
                        try sr.skipValue()
                    }
                }
            }
        }
        batch.scopeName.append(name)
        batch.scopeVersion.append(version)
        batch.scopeAttrOffsets.append(UInt32(batch.scopeAttrs.count))
        batch.scopeDroppedAttrs.append(dropped)
        batch.scopeSchemaURL.append(schemaURL)

        guard let spans else { return }
        var sp = r.sub(spans)
        if try sp.skipNull() { return }
        try sp.beginArray()
        var f = true
        while try sp.nextElement(first: &f) {
            try self.decodeSpan(&sp, resourceIndex, scopeIndex, &batch, &outcome)
        }
    }

    private mutating func decodeSpan(
        _ r: inout JSONReader,
        _ resourceIndex: UInt32,
        _ scopeIndex: UInt32,
        _ batch: inout SpanBatch,
        _ outcome: inout DecodeOutcome
    ) throws(OTLPDecodeError) {
        let mark = batch.spanMark
        var f = SpanFields()
        var traceID: (UInt64, UInt64)? = nil
        var traceIDLength = 0
        var spanID: UInt64? = nil
        var spanIDLength = 0
        var parentProblem: String? = nil
        var linkProblem: String? = nil

        if try r.skipNull() {
            outcome.reject("span is null")
            return
        }
        try r.beginObject()
        var first = true
        while let key = try r.nextKey(first: &first) {
            if keyIs(key, "traceId", "trace_id") {
                let s = try r.readString()
                traceIDLength = s.count
                traceID = parseHexID128(s)
            } else if keyIs(key, "spanId", "span_id") {
                let s = try r.readString()
                spanIDLength = s.count
                spanID = parseHexID64(s)
            } else if keyIs(key, "parentSpanId", "parent_span_id") {
                if try r.skipNull() { continue }
                let s = try r.readString()
                if s.count == 0 {
                    f.parentSpanID = 0
                } else if let p = parseHexID64(s) {
                    f.parentSpanID = p
                } else {
                    parentProblem = "span has a parentSpanId that is not 16 hex digits"
                }
            } else if keyIs(key, "traceState", "trace_state") {
                f.traceState = try self.readInternedString(&r, &batch.strings)
            } else if keyIs(key, "name") {
                f.name = try self.readInternedString(&r, &batch.strings)
            } else if keyIs(key, "kind") {
                f.kind = try self.readEnum(&r, names: spanKindNames)
            } else if keyIs(key, "startTimeUnixNano", "start_time_unix_nano") {
                f.start = try r.readUInt64()
            } else if keyIs(key, "endTimeUnixNano", "end_time_unix_nano") {
                f.end = try r.readUInt64()
            } else if keyIs(key, "attributes") {
                try self.decodeAttributes(&r, &batch.attrs, &batch.strings)
            } else if keyIs(key, "droppedAttributesCount", "dropped_attributes_count") {
                f.droppedAttrs = UInt32(truncatingIfNeeded: try r.readUInt64())
            } else if keyIs(key, "events") {
                if try r.skipNull() { continue }
                try r.beginArray()
                var firstItem = true
                while try r.nextElement(first: &firstItem) { try self.decodeEvent(&r, &batch) }
            } else if keyIs(key, "droppedEventsCount", "dropped_events_count") {
                f.droppedEvents = UInt32(truncatingIfNeeded: try r.readUInt64())
            } else if keyIs(key, "links") {
                if try r.skipNull() { continue }
                try r.beginArray()
                var firstItem = true
                while try r.nextElement(first: &firstItem) {
                    if let problem = try self.decodeLink(&r, &batch), linkProblem == nil { linkProblem = problem }
                }
            } else if keyIs(key, "droppedLinksCount", "dropped_links_count") {
                f.droppedLinks = UInt32(truncatingIfNeeded: try r.readUInt64())
            } else if keyIs(key, "status") {
                if try r.skipNull() { continue }
                try r.beginObject()
                var firstItem = true
                while let k = try r.nextKey(first: &firstItem) {
                    if keyIs(k, "message") {
                        f.statusMessage = try self.readInternedString(&r, &batch.strings)
                    } else if keyIs(k, "code") {
                        f.statusCode = try self.readEnum(&r, names: statusCodeNames)
                    } else {
                        try r.skipValue()
                    }
                }
            } else if keyIs(key, "flags") {
                f.flags = UInt32(truncatingIfNeeded: try r.readUInt64())
            } else {
                try r.skipValue()
            }
        }

        var problem: String? = nil
        if traceID == nil {
            problem = "span has a traceId of \(traceIDLength) characters that is not 32 hex digits"
        } else if traceID! == (0, 0) {
            problem = "span has an all-zero traceId"
        } else if spanID == nil {
            problem = "span has a spanId of \(spanIDLength) characters that is not 16 hex digits"
        } else if spanID! == 0 {
            problem = "span has an all-zero spanId"
        } else if let parentProblem {
            problem = parentProblem
        } else if let linkProblem {
            problem = linkProblem
        }
        if let problem {
            batch.rollBack(to: mark)
            outcome.reject(problem)
            return
        }
        f.traceHigh = traceID!.0
        f.traceLow = traceID!.1
        f.spanID = spanID!
        batch.appendSpan(f, resource: resourceIndex, scope: scopeIndex, since: mark, costAliases: self.aliasIDs)
        outcome.acceptedSpans += 1
    }

    private func decodeEvent(_ r: inout JSONReader, _ batch: inout SpanBatch) throws(OTLPDecodeError) {
        var time: UInt64 = 0
        var name: UInt32 = 0
        var dropped: UInt32 = 0
        if try r.skipNull() { return }
        try r.beginObject()
        var first = true
        while let key = try r.nextKey(first: &first) {
            if keyIs(key, "timeUnixNano", "time_unix_nano") {
                time = try r.readUInt64()
            } else if keyIs(key, "name") {
                name = try self.readInternedString(&r, &batch.strings)
            } else if keyIs(key, "attributes") {
                try self.decodeAttributes(&r, &batch.eventAttrs, &batch.strings)
            } else if keyIs(key, "droppedAttributesCount", "dropped_attributes_count") {
                dropped = UInt32(truncatingIfNeeded: try r.readUInt64())
            } else {
                try r.skipValue()
            }
        }
        batch.eventTime.append(time)
        batch.eventName.append(name)
        batch.eventDroppedAttrs.append(dropped)
        batch.eventAttrOffsets.append(UInt32(batch.eventAttrs.count))
    }

    /// Decodes a link; returns why its IDs are invalid (the span is then rejected), or nil.
    private func decodeLink(_ r: inout JSONReader, _ batch: inout SpanBatch) throws(OTLPDecodeError) -> String? {
        var problem: String? = nil
        var trace: (UInt64, UInt64) = (0, 0)
        var spanID: UInt64 = 0
        var state: UInt32 = 0
        var flags: UInt32 = 0
        var dropped: UInt32 = 0
        if try r.skipNull() { return nil }
        try r.beginObject()
        var first = true
        while let key = try r.nextKey(first: &first) {
            if keyIs(key, "traceId", "trace_id") {
                let text = try r.readString()
                if let t = parseHexID128(text) {
                    trace = t
                } else if text.count != 0 {
                    problem = "link traceId is not 32 hex digits"
                }
            } else if keyIs(key, "spanId", "span_id") {
                let text = try r.readString()
                if let s = parseHexID64(text) {
                    spanID = s
                } else if text.count != 0 {
                    problem = "link spanId is not 16 hex digits"
                }
            } else if keyIs(key, "traceState", "trace_state") {
                state = try self.readInternedString(&r, &batch.strings)
            } else if keyIs(key, "attributes") {
                try self.decodeAttributes(&r, &batch.linkAttrs, &batch.strings)
            } else if keyIs(key, "droppedAttributesCount", "dropped_attributes_count") {
                dropped = UInt32(truncatingIfNeeded: try r.readUInt64())
            } else if keyIs(key, "flags") {
                flags = UInt32(truncatingIfNeeded: try r.readUInt64())
            } else {
                try r.skipValue()
            }
        }
        batch.linkTraceHigh.append(trace.0)
        batch.linkTraceLow.append(trace.1)
        batch.linkSpanID.append(spanID)
        batch.linkTraceState.append(state)
        batch.linkFlags.append(flags)
        batch.linkDroppedAttrs.append(dropped)
        batch.linkAttrOffsets.append(UInt32(batch.linkAttrs.count))
        return problem
    }

    // MARK: Attributes

    private func readInternedString(_ r: inout JSONReader, _ strings: inout StringTable) throws(OTLPDecodeError) -> UInt32 {
        if try r.skipNull() { return 0 }
        return strings.intern(try r.readString())
    }

    private func readEnum(_ r: inout JSONReader, names: [String: UInt8]) throws(OTLPDecodeError) -> UInt8 {
        if try r.peek() == UInt8(ascii: "\"") {
            let s = try r.readString()
            if let v = parseInteger(s) { return UInt8(truncatingIfNeeded: v) }
            guard let v = names[String(decoding: s, as: UTF8.self)] else { throw r.error("unknown enum value") }
            return v
        }
        return UInt8(truncatingIfNeeded: try r.readInt64())
    }

    private func decodeAttributes(_ r: inout JSONReader, _ attrs: inout AttributeColumns, _ strings: inout StringTable) throws(OTLPDecodeError) {
        if try r.skipNull() { return }
        try r.beginArray()
        var first = true
        while try r.nextElement(first: &first) {
            var key: UInt32 = 0
            var type = ValueType.empty
            var value: UInt64 = 0
            try r.beginObject()
            var f = true
            while let k = try r.nextKey(first: &f) {
                if keyIs(k, "key") {
                    key = strings.intern(try r.readString())
                } else if keyIs(k, "value") {
                    (type, value) = try self.readAnyValue(&r, &strings)
                } else {
                    try r.skipValue()
                }
            }
            attrs.append(key: key, type: type, value: value)
        }
    }

    private func readAnyValue(_ r: inout JSONReader, _ strings: inout StringTable) throws(OTLPDecodeError) -> (ValueType, UInt64) {
        if try r.skipNull() { return (.empty, 0) }
        var type = ValueType.empty
        var value: UInt64 = 0
        try r.beginObject()
        var first = true
        while let k = try r.nextKey(first: &first) {
            if keyIs(k, "stringValue", "string_value") {
                type = .string
                value = UInt64(strings.intern(try r.readString()))
            } else if keyIs(k, "boolValue", "bool_value") {
                type = .bool
                value = try r.readBool() ? 1 : 0
            } else if keyIs(k, "intValue", "int_value") {
                type = .int
                value = UInt64(bitPattern: try r.readInt64())
            } else if keyIs(k, "doubleValue", "double_value") {
                type = .double
                value = try r.readDouble().bitPattern
            } else if keyIs(k, "bytesValue", "bytes_value") {
                type = .bytes
                guard let decoded = Base64.decode(try r.readString()) else { throw r.error("bytesValue is not base64") }
                value = UInt64(decoded.withUnsafeBytes { strings.intern($0) })
            } else if keyIs(k, "arrayValue", "array_value") {
                var w = ProtoWriter()
                try self.writeList(&r, &w, kvlist: false, depth: 1)
                type = .array
                value = UInt64(w.bytes.withUnsafeBytes { strings.intern($0) })
            } else if keyIs(k, "kvlistValue", "kvlist_value") {
                var w = ProtoWriter()
                try self.writeList(&r, &w, kvlist: true, depth: 1)
                type = .kvlist
                value = UInt64(w.bytes.withUnsafeBytes { strings.intern($0) })
            } else {
                try r.skipValue()
            }
        }
        return (type, value)
    }

    /// Writes an `ArrayValue` / `KeyValueList` JSON object as protobuf fields into `w`.
    private func writeList(_ r: inout JSONReader, _ w: inout ProtoWriter, kvlist: Bool, depth: Int) throws(OTLPDecodeError) {
        guard depth <= self.options.maxValueDepth else {
            throw OTLPDecodeError("attribute value nested deeper than \(self.options.maxValueDepth) levels")
        }
        if try r.skipNull() { return }
        try r.beginObject()
        var first = true
        while let k = try r.nextKey(first: &first) {
            guard keyIs(k, "values") else {
                try r.skipValue()
                continue
            }
            if try r.skipNull() { continue }
            try r.beginArray()
            var f = true
            while try r.nextElement(first: &f) {
                var item = ProtoWriter()
                if kvlist {
                    try r.beginObject()
                    var fk = true
                    while let kk = try r.nextKey(first: &fk) {
                        if keyIs(kk, "key") {
                            item.bytesField(1, try r.readString())
                        } else if keyIs(kk, "value") {
                            var v = ProtoWriter()
                            try self.writeAnyValue(&r, &v, depth: depth)
                            item.bytesField(2, v.bytes)
                        } else {
                            try r.skipValue()
                        }
                    }
                } else {
                    try self.writeAnyValue(&r, &item, depth: depth)
                }
                w.bytesField(1, item.bytes)
            }
        }
    }

    private func writeAnyValue(_ r: inout JSONReader, _ w: inout ProtoWriter, depth: Int) throws(OTLPDecodeError) {
        if try r.skipNull() { return }
        try r.beginObject()
        var first = true
        while let k = try r.nextKey(first: &first) {
            if keyIs(k, "stringValue", "string_value") {
                w.bytesField(1, try r.readString())
            } else if keyIs(k, "boolValue", "bool_value") {
                w.varintField(2, try r.readBool() ? 1 : 0)
            } else if keyIs(k, "intValue", "int_value") {
                w.varintField(3, UInt64(bitPattern: try r.readInt64()))
            } else if keyIs(k, "doubleValue", "double_value") {
                w.doubleField(4, try r.readDouble())
            } else if keyIs(k, "bytesValue", "bytes_value") {
                guard let decoded = Base64.decode(try r.readString()) else { throw r.error("bytesValue is not base64") }
                w.bytesField(7, decoded)
            } else if keyIs(k, "arrayValue", "array_value") {
                var inner = ProtoWriter()
                try self.writeList(&r, &inner, kvlist: false, depth: depth + 1)
                w.bytesField(5, inner.bytes)
            } else if keyIs(k, "kvlistValue", "kvlist_value") {
                var inner = ProtoWriter()
                try self.writeList(&r, &inner, kvlist: true, depth: depth + 1)
                w.bytesField(6, inner.bytes)
            } else {
                try r.skipValue()
            }
        }
    }
}

let spanKindNames: [String: UInt8] = [
    "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
]
let statusCodeNames: [String: UInt8] = ["STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2]

/// Parses exactly 32 hex digits.
func parseHexID128(_ s: UnsafeRawBufferPointer) -> (UInt64, UInt64)? {
    guard s.count == 32,
        let high = parseHex64(UnsafeRawBufferPointer(rebasing: s[0..<16])),
        let low = parseHex64(UnsafeRawBufferPointer(rebasing: s[16..<32]))
    else { return nil }
    return (high, low)
}

/// Parses exactly 16 hex digits.
func parseHexID64(_ s: UnsafeRawBufferPointer) -> UInt64? {
    guard s.count == 16 else { return nil }
    return parseHex64(s)
}

private func parseHex64(_ s: UnsafeRawBufferPointer) -> UInt64? {
    var v: UInt64 = 0
    for c in s {
        guard let d = Hex.value(c) else { return nil }
        v = v << 4 | UInt64(d)
    }
    return v
}
