extension SpanBatch {
    /// A self-contained batch of `rows` (in that order) with only the strings, resources and scopes
    /// they use: how an ingest node cuts a request into the parts it sends to each replica set.
    public func subset(rows: [Int]) -> SpanBatch {
        var builder = SubsetBuilder(source: self)
        // Room for the part's share of the attributes, so appends do not reallocate as they grow.
        let share = self.spanCount > 0 ? Double(rows.count) / Double(self.spanCount) : 0
        builder.part.reserve(spans: rows.count, attributes: Int((Double(self.attrs.count) * share * 1.1).rounded(.up)))
        for row in rows { builder.appendRow(row, of: self) }
        return builder.part
    }
}

/// Copies rows of one batch into a new one, re-numbering strings, resources and scopes on first use.
/// The source is passed to each call (borrowed) rather than stored, so reading it costs no reference
/// counting per row.
private struct SubsetBuilder {
    static let unmapped = UInt32.max

    var part = SpanBatch()
    var stringMap: [UInt32]
    var resourceMap: [UInt32]
    var scopeMap: [UInt32]

    init(source: SpanBatch) {
        self.stringMap = [UInt32](repeating: Self.unmapped, count: source.strings.count)
        for id in 0..<min(WellKnown.all.count, source.strings.count) { self.stringMap[id] = UInt32(id) }
        self.resourceMap = [UInt32](repeating: Self.unmapped, count: source.resourceCount)
        self.scopeMap = [UInt32](repeating: Self.unmapped, count: source.scopeCount)
    }

    /// The part's ID of source string `id`, copying the string on first use.
    @inline(__always)
    mutating func string(_ id: UInt32, _ strings: StringTable) -> UInt32 {
        let mapped = self.stringMap[Int(id)]
        if mapped != Self.unmapped { return mapped }
        return self.copyString(id, strings)
    }

    mutating func copyString(_ id: UInt32, _ strings: StringTable) -> UInt32 {
        let new = strings.bytes.withUnsafeBytes { all in
            let range = Int(strings.offsets[Int(id)])..<Int(strings.offsets[Int(id) + 1])
            return self.part.strings.intern(UnsafeRawBufferPointer(rebasing: all[range]), hash: strings.hashes[Int(id)])
        }
        self.stringMap[Int(id)] = new
        return new
    }

    /// Which attribute table of the part an attribute goes to.
    enum Owner { case resource, scope, span, event, link }

    /// Appends `range` of source `attrs` to the `owner` table of the part, re-numbering strings.
    mutating func copyAttributes(_ attrs: AttributeColumns, _ range: Range<Int>, _ strings: StringTable, to owner: Owner) {
        for i in range {
            let type = ValueType(rawValue: attrs.types[i]) ?? .empty
            let value = type.isInterned ? UInt64(self.string(UInt32(truncatingIfNeeded: attrs.values[i]), strings)) : attrs.values[i]
            let key = self.string(attrs.keys[i], strings)
            switch owner {
            case .resource: self.part.resourceAttrs.append(key: key, type: type, value: value)
            case .scope: self.part.scopeAttrs.append(key: key, type: type, value: value)
            case .span: self.part.attrs.append(key: key, type: type, value: value)
            case .event: self.part.eventAttrs.append(key: key, type: type, value: value)
            case .link: self.part.linkAttrs.append(key: key, type: type, value: value)
            }
        }
    }

    mutating func resource(_ r: Int, of s: SpanBatch) -> UInt32 {
        let mapped = self.resourceMap[r]
        if mapped != Self.unmapped { return mapped }
        self.copyAttributes(s.resourceAttrs, s.resourceAttrRange(r), s.strings, to: .resource)
        self.part.resourceAttrOffsets.append(UInt32(self.part.resourceAttrs.count))
        self.part.resourceDroppedAttrs.append(s.resourceDroppedAttrs[r])
        self.part.resourceSchemaURL.append(self.string(s.resourceSchemaURL[r], s.strings))
        self.part.resourceServiceName.append(self.string(s.resourceServiceName[r], s.strings))
        let index = UInt32(self.part.resourceCount - 1)
        self.resourceMap[r] = index
        return index
    }

    mutating func scope(_ c: Int, of s: SpanBatch) -> UInt32 {
        let mapped = self.scopeMap[c]
        if mapped != Self.unmapped { return mapped }
        self.copyAttributes(s.scopeAttrs, Int(s.scopeAttrOffsets[c])..<Int(s.scopeAttrOffsets[c + 1]), s.strings, to: .scope)
        self.part.scopeAttrOffsets.append(UInt32(self.part.scopeAttrs.count))
        self.part.scopeName.append(self.string(s.scopeName[c], s.strings))
        self.part.scopeVersion.append(self.string(s.scopeVersion[c], s.strings))
        self.part.scopeDroppedAttrs.append(s.scopeDroppedAttrs[c])
        self.part.scopeSchemaURL.append(self.string(s.scopeSchemaURL[c], s.strings))
        let index = UInt32(self.part.scopeCount - 1)
        self.scopeMap[c] = index
        return index
    }

    mutating func appendRow(_ row: Int, of s: SpanBatch) {
        var f = SpanFields()
        f.traceHigh = s.traceHigh[row]
        f.traceLow = s.traceLow[row]
        f.spanID = s.spanID[row]
        f.parentSpanID = s.parentSpanID[row]
        f.traceState = self.string(s.traceState[row], s.strings)
        f.name = self.string(s.name[row], s.strings)
        f.kind = s.kind[row]
        f.start = s.startTime[row]
        f.end = s.endTime[row]
        f.flags = s.flags[row]
        f.statusCode = s.statusCode[row]
        f.statusMessage = self.string(s.statusMessage[row], s.strings)
        f.droppedAttrs = s.droppedAttrs[row]
        f.droppedEvents = s.droppedEvents[row]
        f.droppedLinks = s.droppedLinks[row]
        let resource = self.resource(Int(s.resourceIndex[row]), of: s)
        let scope = self.scope(Int(s.scopeIndex[row]), of: s)

        // The span's attribute, event and link ranges are closed by `appendSpanColumns`.
        self.copyAttributes(s.attrs, s.attrRange(row), s.strings, to: .span)

        for e in Int(s.eventOffsets[row])..<Int(s.eventOffsets[row + 1]) {
            self.part.eventTime.append(s.eventTime[e])
            self.part.eventName.append(self.string(s.eventName[e], s.strings))
            self.part.eventDroppedAttrs.append(s.eventDroppedAttrs[e])
            self.copyAttributes(s.eventAttrs, Int(s.eventAttrOffsets[e])..<Int(s.eventAttrOffsets[e + 1]), s.strings, to: .event)
            self.part.eventAttrOffsets.append(UInt32(self.part.eventAttrs.count))
        }
        for l in Int(s.linkOffsets[row])..<Int(s.linkOffsets[row + 1]) {
            self.part.linkTraceHigh.append(s.linkTraceHigh[l])
            self.part.linkTraceLow.append(s.linkTraceLow[l])
            self.part.linkSpanID.append(s.linkSpanID[l])
            self.part.linkTraceState.append(self.string(s.linkTraceState[l], s.strings))
            self.part.linkFlags.append(s.linkFlags[l])
            self.part.linkDroppedAttrs.append(s.linkDroppedAttrs[l])
            self.copyAttributes(s.linkAttrs, Int(s.linkAttrOffsets[l])..<Int(s.linkAttrOffsets[l + 1]), s.strings, to: .link)
            self.part.linkAttrOffsets.append(UInt32(self.part.linkAttrs.count))
        }
        self.part.appendSpanColumns(f, resource: resource, scope: scope)
        self.part.genAIProvider.append(self.string(s.genAIProvider[row], s.strings))
        self.part.genAIRequestModel.append(self.string(s.genAIRequestModel[row], s.strings))
        self.part.genAIResponseModel.append(self.string(s.genAIResponseModel[row], s.strings))
        self.part.inputTokens.append(s.inputTokens[row])
        self.part.outputTokens.append(s.outputTokens[row])
        self.part.cost.append(s.cost[row])
    }
}
