import WeftModel

/// What a decode accepted and rejected. Rejected spans are counted for `partial_success`.
public struct DecodeOutcome: Sendable, Equatable {
    public var acceptedSpans = 0
    public var rejectedSpans = 0
    /// Why the first rejected span was rejected (empty when none was).
    public var rejectionMessage = ""

    public init() {}

    mutating func reject(_ reason: @autoclosure () -> String) {
        if self.rejectedSpans == 0 { self.rejectionMessage = reason() }
        self.rejectedSpans += 1
    }
}

/// Options shared by the protobuf and JSON decoders.
public struct DecodeOptions: Sendable {
    /// Normalisation of GenAI attributes into typed columns.
    public var genAI = GenAINormalizer()
    /// Deepest nesting of array/kvlist values accepted.
    public var maxValueDepth = 32

    public init(genAI: GenAINormalizer = GenAINormalizer(), maxValueDepth: Int = 32) {
        self.genAI = genAI
        self.maxValueDepth = maxValueDepth
    }
}

/// Decodes `ExportTraceServiceRequest` protobuf straight from the request bytes into a ``SpanBatch``.
///
/// Unknown fields are skipped; structurally malformed input throws ``OTLPDecodeError``; spans with
/// invalid IDs are rejected one by one and counted in the outcome.
public struct OTLPProtobufDecoder {
    public var options: DecodeOptions
    private var aliasIDs: [UInt32] = []
    private var scopeRanges: [Range<Int>] = []
    private var spanRanges: [Range<Int>] = []

    public init(options: DecodeOptions = DecodeOptions()) {
        self.options = options
    }

    /// Decodes a whole request into `batch` (appending). On error the batch may hold a prefix of the
    /// request; callers discard it.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer, into batch: inout SpanBatch) throws(OTLPDecodeError) -> DecodeOutcome {
        var outcome = DecodeOutcome()
        self.aliasIDs = self.options.genAI.aliasIDs(in: &batch.strings)
        guard let base = bytes.baseAddress, bytes.count > 0 else { return outcome }
        var r = ProtoReader(base: base, range: 0..<bytes.count)
        batch.reserve(spans: max(16, bytes.count / 300), attributes: max(64, bytes.count / 40))
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            if field == 1 {
                try expectWire(wire, 2, field, "ExportTraceServiceRequest")
                let range = try r.readLength()
                try self.decodeResourceSpans(r.sub(range), &batch, &outcome)
            } else {
                try r.skip(wire: wire)
            }
        }
        return outcome
    }

    private mutating func decodeResourceSpans(_ reader: ProtoReader, _ batch: inout SpanBatch, _ outcome: inout DecodeOutcome) throws(OTLPDecodeError) {
        var r = reader
        var resources: [Range<Int>] = []  // a repeated message field is merged (protobuf rule)
        var schemaURL: Range<Int>? = nil
        let firstScope = self.scopeRanges.count
        defer { self.scopeRanges.removeSubrange(firstScope...) }
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch field {
            case 1:
                try expectWire(wire, 2, field, "ResourceSpans")
                resources.append(try r.readLength())
            case 2:
                try expectWire(wire, 2, field, "ResourceSpans")
                self.scopeRanges.append(try r.readLength())
            case 3:
                try expectWire(wire, 2, field, "ResourceSpans")
                schemaURL = try r.readLength()
            default:
                try r.skip(wire: wire)
            }
        }
        // Resource.
        let resourceIndex = UInt32(batch.resourceCount)
        var dropped: UInt32 = 0
        for resource in resources {
            var rr = r.sub(resource)
            while !rr.isAtEnd {
                let (field, wire) = try rr.readTag()
                switch field {
                case 1:
                    try expectWire(wire, 2, field, "Resource")
                    let kv = try rr.readLength()
                    try self.decodeKeyValue(rr.sub(kv), &batch.resourceAttrs, &batch.strings, depth: 0)
                case 2:
                    try expectWire(wire, 0, field, "Resource")
                    dropped = UInt32(truncatingIfNeeded: try rr.readVarint())
                default:
                    try rr.skip(wire: wire)
                }
            }
        }
        let schema = schemaURL.map { batch.strings.intern(r.bytes($0)) } ?? 0
        batch.closeResource(droppedAttrs: dropped, schemaURL: schema)

        for s in firstScope..<self.scopeRanges.count {
            try self.decodeScopeSpans(r.sub(self.scopeRanges[s]), resourceIndex, &batch, &outcome)
        }
    }

    private mutating func decodeScopeSpans(_ reader: ProtoReader, _ resourceIndex: UInt32, _ batch: inout SpanBatch, _ outcome: inout DecodeOutcome) throws(OTLPDecodeError) {
        var r = reader
        var scopes: [Range<Int>] = []  // a repeated message field is merged (protobuf rule)
        var schemaURL: Range<Int>? = nil
        let firstSpan = self.spanRanges.count
        defer { self.spanRanges.removeSubrange(firstSpan...) }
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch field {
            case 1:
                try expectWire(wire, 2, field, "ScopeSpans")
                scopes.append(try r.readLength())
            case 2:
                try expectWire(wire, 2, field, "ScopeSpans")
                self.spanRanges.append(try r.readLength())
            case 3:
                try expectWire(wire, 2, field, "ScopeSpans")
                schemaURL = try r.readLength()
            default:
                try r.skip(wire: wire)
            }
        }
        let scopeIndex = UInt32(batch.scopeCount)
        var name: UInt32 = 0
        var version: UInt32 = 0
        var dropped: UInt32 = 0
        for scope in scopes {
            var sr = r.sub(scope)
            while !sr.isAtEnd {
                let (field, wire) = try sr.readTag()
                switch field {
                case 1:
                    try expectWire(wire, 2, field, "InstrumentationScope")
                    name = batch.strings.intern(sr.bytes(try sr.readLength()))
                case 2:
                    try expectWire(wire, 2, field, "InstrumentationScope")
                    version = batch.strings.intern(sr.bytes(try sr.readLength()))
                case 3:
                    try expectWire(wire, 2, field, "InstrumentationScope")
                    let kv = try sr.readLength()
                    try self.decodeKeyValue(sr.sub(kv), &batch.scopeAttrs, &batch.strings, depth: 0)
                case 4:
                    try expectWire(wire, 0, field, "InstrumentationScope")
                    dropped = UInt32(truncatingIfNeeded: try sr.readVarint())
                default:
                    try sr.skip(wire: wire)
                }
            }
        }
        batch.scopeName.append(name)
        batch.scopeVersion.append(version)
        batch.scopeAttrOffsets.append(UInt32(batch.scopeAttrs.count))
        batch.scopeDroppedAttrs.append(dropped)
        batch.scopeSchemaURL.append(schemaURL.map { batch.strings.intern(r.bytes($0)) } ?? 0)

        for s in firstSpan..<self.spanRanges.count {
            try self.decodeSpan(r.sub(self.spanRanges[s]), resourceIndex, scopeIndex, &batch, &outcome)
        }
    }

    private mutating func decodeSpan(
        _ reader: ProtoReader,
        _ resourceIndex: UInt32,
        _ scopeIndex: UInt32,
        _ batch: inout SpanBatch,
        _ outcome: inout DecodeOutcome
    ) throws(OTLPDecodeError) {
        var r = reader
        let mark = batch.spanMark
        var f = SpanFields()
        var traceIDRange: Range<Int>? = nil
        var spanIDRange: Range<Int>? = nil
        var parentRange: Range<Int>? = nil
        var linkProblem: String? = nil

        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch field {
            case 1:
                try expectWire(wire, 2, field, "Span")
                traceIDRange = try r.readLength()
            case 2:
                try expectWire(wire, 2, field, "Span")
                spanIDRange = try r.readLength()
            case 3:
                try expectWire(wire, 2, field, "Span")
                f.traceState = batch.strings.intern(r.bytes(try r.readLength()))
            case 4:
                try expectWire(wire, 2, field, "Span")
                parentRange = try r.readLength()
            case 5:
                try expectWire(wire, 2, field, "Span")
                f.name = batch.strings.intern(r.bytes(try r.readLength()))
            case 6:
                try expectWire(wire, 0, field, "Span")
                f.kind = UInt8(truncatingIfNeeded: try r.readVarint())
            case 7:
                try expectWire(wire, 1, field, "Span")
                f.start = try r.readFixed64()
            case 8:
                try expectWire(wire, 1, field, "Span")
                f.end = try r.readFixed64()
            case 9:
                try expectWire(wire, 2, field, "Span")
                let kv = try r.readLength()
                try self.decodeKeyValue(r.sub(kv), &batch.attrs, &batch.strings, depth: 0)
            case 10:
                try expectWire(wire, 0, field, "Span")
                f.droppedAttrs = UInt32(truncatingIfNeeded: try r.readVarint())
            case 11:
                try expectWire(wire, 2, field, "Span")
                let ev = try r.readLength()
                try self.decodeEvent(r.sub(ev), &batch)
            case 12:
                try expectWire(wire, 0, field, "Span")
                f.droppedEvents = UInt32(truncatingIfNeeded: try r.readVarint())
            case 13:
                try expectWire(wire, 2, field, "Span")
                let link = try r.readLength()
                if let problem = try self.decodeLink(r.sub(link), &batch), linkProblem == nil { linkProblem = problem }
            case 14:
                try expectWire(wire, 0, field, "Span")
                f.droppedLinks = UInt32(truncatingIfNeeded: try r.readVarint())
            case 15:
                try expectWire(wire, 2, field, "Span")
                var sr = r.sub(try r.readLength())
                while !sr.isAtEnd {
                    let (sf, sw) = try sr.readTag()
                    switch sf {
                    case 2:
                        try expectWire(sw, 2, sf, "Status")
                        f.statusMessage = batch.strings.intern(sr.bytes(try sr.readLength()))
                    case 3:
                        try expectWire(sw, 0, sf, "Status")
                        f.statusCode = UInt8(truncatingIfNeeded: try sr.readVarint())
                    default:
                        try sr.skip(wire: sw)
                    }
                }
            case 16:
                try expectWire(wire, 5, field, "Span")
                f.flags = try r.readFixed32()
            default:
                try r.skip(wire: wire)
            }
        }

        // Validate IDs; an invalid span is rejected and everything it appended is rolled back.
        var problem: String? = nil
        if let t = traceIDRange, t.count == 16 {
            f.traceHigh = r.id64(t)
            f.traceLow = r.id64(t, at: 8)
            if f.traceHigh == 0 && f.traceLow == 0 { problem = "span has an all-zero trace_id" }
        } else {
            problem = "span has a trace_id of \(traceIDRange?.count ?? 0) bytes, expected 16"
        }
        if problem == nil {
            if let s = spanIDRange, s.count == 8 {
                f.spanID = r.id64(s)
                if f.spanID == 0 { problem = "span has an all-zero span_id" }
            } else {
                problem = "span has a span_id of \(spanIDRange?.count ?? 0) bytes, expected 8"
            }
        }
        if problem == nil, let p = parentRange {
            if p.count == 8 {
                f.parentSpanID = r.id64(p)
            } else if p.count != 0 {
                problem = "span has a parent_span_id of \(p.count) bytes, expected 0 or 8"
            }
        }
        if problem == nil, let linkProblem { problem = linkProblem }
        if let problem {
            batch.rollBack(to: mark)
            outcome.reject(problem)
            return
        }
        batch.appendSpan(f, resource: resourceIndex, scope: scopeIndex, since: mark, costAliases: self.aliasIDs)
        outcome.acceptedSpans += 1
    }

    private func decodeEvent(_ reader: ProtoReader, _ batch: inout SpanBatch) throws(OTLPDecodeError) {
        var r = reader
        var time: UInt64 = 0
        var name: UInt32 = 0
        var dropped: UInt32 = 0
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch field {
            case 1:
                try expectWire(wire, 1, field, "Span.Event")
                time = try r.readFixed64()
            case 2:
                try expectWire(wire, 2, field, "Span.Event")
                name = batch.strings.intern(r.bytes(try r.readLength()))
            case 3:
                try expectWire(wire, 2, field, "Span.Event")
                let kv = try r.readLength()
                try self.decodeKeyValue(r.sub(kv), &batch.eventAttrs, &batch.strings, depth: 0)
            case 4:
                try expectWire(wire, 0, field, "Span.Event")
                dropped = UInt32(truncatingIfNeeded: try r.readVarint())
            default:
                try r.skip(wire: wire)
            }
        }
        batch.eventTime.append(time)
        batch.eventName.append(name)
        batch.eventDroppedAttrs.append(dropped)
        batch.eventAttrOffsets.append(UInt32(batch.eventAttrs.count))
    }

    /// Decodes a link; returns why its IDs are invalid (the span is then rejected), or nil.
    private func decodeLink(_ reader: ProtoReader, _ batch: inout SpanBatch) throws(OTLPDecodeError) -> String? {
        var r = reader
        var problem: String? = nil
        var high: UInt64 = 0
        var low: UInt64 = 0
        var spanID: UInt64 = 0
        var state: UInt32 = 0
        var flags: UInt32 = 0
        var dropped: UInt32 = 0
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch field {
            case 1:
                try expectWire(wire, 2, field, "Span.Link")
                let t = try r.readLength()
                if t.count == 16 {
                    high = r.id64(t)
                    low = r.id64(t, at: 8)
                } else if t.count != 0 {
                    problem = "link trace_id has \(t.count) bytes, expected 16"
                }
            case 2:
                try expectWire(wire, 2, field, "Span.Link")
                let s = try r.readLength()
                if s.count == 8 {
                    spanID = r.id64(s)
                } else if s.count != 0 {
                    problem = "link span_id has \(s.count) bytes, expected 8"
                }
            case 3:
                try expectWire(wire, 2, field, "Span.Link")
                state = batch.strings.intern(r.bytes(try r.readLength()))
            case 4:
                try expectWire(wire, 2, field, "Span.Link")
                let kv = try r.readLength()
                try self.decodeKeyValue(r.sub(kv), &batch.linkAttrs, &batch.strings, depth: 0)
            case 5:
                try expectWire(wire, 0, field, "Span.Link")
                dropped = UInt32(truncatingIfNeeded: try r.readVarint())
            case 6:
                try expectWire(wire, 5, field, "Span.Link")
                flags = try r.readFixed32()
            default:
                try r.skip(wire: wire)
            }
        }
        batch.linkTraceHigh.append(high)
        batch.linkTraceLow.append(low)
        batch.linkSpanID.append(spanID)
        batch.linkTraceState.append(state)
        batch.linkFlags.append(flags)
        batch.linkDroppedAttrs.append(dropped)
        batch.linkAttrOffsets.append(UInt32(batch.linkAttrs.count))
        return problem
    }

    /// Decodes one `KeyValue` and appends it to `attrs`.
    private func decodeKeyValue(
        _ reader: ProtoReader,
        _ attrs: inout AttributeColumns,
        _ strings: inout StringTable,
        depth: Int
    ) throws(OTLPDecodeError) {
        var r = reader
        var key: UInt32 = 0
        var type = ValueType.empty
        var value: UInt64 = 0
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch field {
            case 1:
                try expectWire(wire, 2, field, "KeyValue")
                key = strings.intern(r.bytes(try r.readLength()))
            case 2:
                try expectWire(wire, 2, field, "KeyValue")
                let v = try r.readLength()
                (type, value) = try self.decodeAnyValue(r.sub(v), &strings, depth: depth)
            default:
                try r.skip(wire: wire)
            }
        }
        attrs.append(key: key, type: type, value: value)
    }

    /// Decodes an `AnyValue`. Arrays and kvlists are validated and kept as their protobuf bytes.
    private func decodeAnyValue(_ reader: ProtoReader, _ strings: inout StringTable, depth: Int) throws(OTLPDecodeError) -> (ValueType, UInt64) {
        var r = reader
        var type = ValueType.empty
        var value: UInt64 = 0
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch field {
            case 1:
                try expectWire(wire, 2, field, "AnyValue")
                type = .string
                value = UInt64(strings.intern(r.bytes(try r.readLength())))
            case 2:
                try expectWire(wire, 0, field, "AnyValue")
                type = .bool
                value = try r.readVarint() != 0 ? 1 : 0
            case 3:
                try expectWire(wire, 0, field, "AnyValue")
                type = .int
                value = try r.readVarint()
            case 4:
                try expectWire(wire, 1, field, "AnyValue")
                type = .double
                value = try r.readFixed64()
            case 5, 6:
                try expectWire(wire, 2, field, "AnyValue")
                let range = try r.readLength()
                try self.validateList(r.sub(range), kvlist: field == 6, depth: depth + 1)
                type = field == 5 ? .array : .kvlist
                value = UInt64(strings.intern(r.bytes(range)))
            case 7:
                try expectWire(wire, 2, field, "AnyValue")
                type = .bytes
                value = UInt64(strings.intern(r.bytes(try r.readLength())))
            case 8:
                // string_value_strindex is for profiles only: treated as absent.
                try expectWire(wire, 0, field, "AnyValue")
                _ = try r.readVarint()
                type = .empty
                value = 0
            default:
                try r.skip(wire: wire)
            }
        }
        return (type, value)
    }

    /// Checks that an `ArrayValue` or `KeyValueList` is well formed, recursively.
    private func validateList(_ reader: ProtoReader, kvlist: Bool, depth: Int) throws(OTLPDecodeError) {
        guard depth <= self.options.maxValueDepth else {
            throw OTLPDecodeError("attribute value nested deeper than \(self.options.maxValueDepth) levels")
        }
        var r = reader
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            guard field == 1 else {
                try r.skip(wire: wire)
                continue
            }
            try expectWire(wire, 2, field, kvlist ? "KeyValueList" : "ArrayValue")
            var item = r.sub(try r.readLength())
            if kvlist {
                while !item.isAtEnd {
                    let (f, w) = try item.readTag()
                    if f == 1 || f == 2 {
                        try expectWire(w, 2, f, "KeyValue")
                        let inner = try item.readLength()
                        if f == 2 { try self.validateAnyValue(item.sub(inner), depth: depth) }
                    } else {
                        try item.skip(wire: w)
                    }
                }
            } else {
                try self.validateAnyValue(item, depth: depth)
            }
        }
    }

    private func validateAnyValue(_ reader: ProtoReader, depth: Int) throws(OTLPDecodeError) {
        var r = reader
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch field {
            case 1, 7:
                try expectWire(wire, 2, field, "AnyValue")
                _ = try r.readLength()
            case 2, 3:
                try expectWire(wire, 0, field, "AnyValue")
                _ = try r.readVarint()
            case 4:
                try expectWire(wire, 1, field, "AnyValue")
                _ = try r.readFixed64()
            case 5, 6:
                try expectWire(wire, 2, field, "AnyValue")
                let range = try r.readLength()
                try self.validateList(r.sub(range), kvlist: field == 6, depth: depth + 1)
            default:
                try r.skip(wire: wire)
            }
        }
    }
}
