/// The OTLP type of an attribute value. Array, kvlist and bytes values keep their bytes in the
/// string table: arrays and kvlists as the protobuf encoding of `ArrayValue` / `KeyValueList`.
public enum ValueType: UInt8, Sendable {
    case empty = 0
    case string = 1
    case bool = 2
    case int = 3
    case double = 4
    case array = 5
    case kvlist = 6
    case bytes = 7

    /// Whether the payload is a string-table ID.
    @inlinable public var isInterned: Bool {
        switch self {
        case .string, .array, .kvlist, .bytes: return true
        default: return false
        }
    }
}

/// A flat list of attributes; owners (resources, scopes, spans, events, links) point at ranges of it.
public struct AttributeColumns: Sendable {
    /// String-table IDs of the keys.
    public var keys: [UInt32] = []
    /// ``ValueType`` raw values.
    public var types: [UInt8] = []
    /// String ID, 0/1, `Int64` bit pattern or `Double` bit pattern, depending on the type.
    public var values: [UInt64] = []

    public init() {}

    @inlinable public var count: Int { self.keys.count }

    @inlinable public mutating func append(key: UInt32, type: ValueType, value: UInt64) {
        self.keys.append(key)
        self.types.append(type.rawValue)
        self.values.append(value)
    }

    @inlinable public mutating func truncate(to n: Int) {
        if n < self.keys.count {
            self.keys.removeSubrange(n...)
            self.types.removeSubrange(n...)
            self.values.removeSubrange(n...)
        }
    }

    public mutating func reserve(_ n: Int) {
        self.keys.reserveCapacity(n)
        self.types.reserveCapacity(n)
        self.values.reserveCapacity(n)
    }

    public mutating func removeAll() {
        self.keys.removeAll(keepingCapacity: true)
        self.types.removeAll(keepingCapacity: true)
        self.values.removeAll(keepingCapacity: true)
    }

    var memoryFootprint: Int { self.keys.capacity * 4 + self.types.capacity + self.values.capacity * 8 }
}

/// Spans in columnar form: one array per field, string fields as IDs into ``strings``.
///
/// A batch is what the OTLP decoders produce and what the head stores (a head chunk is a large batch).
/// Ranges into the attribute, event and link tables use offsets arrays with one extra trailing entry.
public struct SpanBatch: Sendable {
    /// Sentinel for absent token counts.
    public static let noTokens = Int64.min

    public var strings = StringTable()

    // Resources.
    public var resourceAttrOffsets: [UInt32] = [0]
    public var resourceAttrs = AttributeColumns()
    public var resourceDroppedAttrs: [UInt32] = []
    public var resourceSchemaURL: [UInt32] = []
    /// `service.name` of each resource (string ID; 0 if unset).
    public var resourceServiceName: [UInt32] = []

    // Instrumentation scopes.
    public var scopeName: [UInt32] = []
    public var scopeVersion: [UInt32] = []
    public var scopeAttrOffsets: [UInt32] = [0]
    public var scopeAttrs = AttributeColumns()
    public var scopeDroppedAttrs: [UInt32] = []
    public var scopeSchemaURL: [UInt32] = []

    // Spans.
    public var traceHigh: [UInt64] = []
    public var traceLow: [UInt64] = []
    public var spanID: [UInt64] = []
    /// 0 for a root span.
    public var parentSpanID: [UInt64] = []
    public var traceState: [UInt32] = []
    public var name: [UInt32] = []
    public var kind: [UInt8] = []
    public var startTime: [UInt64] = []
    public var endTime: [UInt64] = []
    public var flags: [UInt32] = []
    public var statusCode: [UInt8] = []
    public var statusMessage: [UInt32] = []
    public var resourceIndex: [UInt32] = []
    public var scopeIndex: [UInt32] = []
    public var attrOffsets: [UInt32] = [0]
    public var attrs = AttributeColumns()
    public var droppedAttrs: [UInt32] = []
    public var droppedEvents: [UInt32] = []
    public var droppedLinks: [UInt32] = []
    public var eventOffsets: [UInt32] = [0]
    public var linkOffsets: [UInt32] = [0]

    // GenAI typed columns (normalised on ingest).
    public var genAIProvider: [UInt32] = []
    public var genAIRequestModel: [UInt32] = []
    public var genAIResponseModel: [UInt32] = []
    public var inputTokens: [Int64] = []
    public var outputTokens: [Int64] = []
    /// NaN when absent.
    public var cost: [Double] = []

    // Events.
    public var eventTime: [UInt64] = []
    public var eventName: [UInt32] = []
    public var eventAttrOffsets: [UInt32] = [0]
    public var eventAttrs = AttributeColumns()
    public var eventDroppedAttrs: [UInt32] = []

    // Links.
    public var linkTraceHigh: [UInt64] = []
    public var linkTraceLow: [UInt64] = []
    public var linkSpanID: [UInt64] = []
    public var linkTraceState: [UInt32] = []
    public var linkFlags: [UInt32] = []
    public var linkAttrOffsets: [UInt32] = [0]
    public var linkAttrs = AttributeColumns()
    public var linkDroppedAttrs: [UInt32] = []

    /// Resources and scopes already stored, by content (used when appending batches).
    var resourceLookup: [[UInt64]: UInt32] = [:]
    var scopeLookup: [[UInt64]: UInt32] = [:]

    public init() {}

    @inlinable public var spanCount: Int { self.spanID.count }
    public var resourceCount: Int { self.resourceServiceName.count }
    public var scopeCount: Int { self.scopeName.count }

    @inlinable public func traceID(_ row: Int) -> TraceID { TraceID(high: self.traceHigh[row], low: self.traceLow[row]) }

    /// Range of span attributes of a row.
    @inlinable public func attrRange(_ row: Int) -> Range<Int> {
        Int(self.attrOffsets[row])..<Int(self.attrOffsets[row + 1])
    }

    /// Range of resource attributes of a resource.
    @inlinable public func resourceAttrRange(_ resource: Int) -> Range<Int> {
        Int(self.resourceAttrOffsets[resource])..<Int(self.resourceAttrOffsets[resource + 1])
    }

    /// Approximate heap bytes held by this batch.
    public var memoryFootprint: Int {
        var n = self.strings.memoryFootprint
        n += self.resourceAttrs.memoryFootprint + self.scopeAttrs.memoryFootprint + self.attrs.memoryFootprint
        n += self.eventAttrs.memoryFootprint + self.linkAttrs.memoryFootprint
        n += (self.traceHigh.capacity + self.traceLow.capacity + self.spanID.capacity + self.parentSpanID.capacity) * 8
        n += (self.startTime.capacity + self.endTime.capacity + self.inputTokens.capacity + self.outputTokens.capacity) * 8
        n += self.cost.capacity * 8 + self.kind.capacity + self.statusCode.capacity
        n += (self.traceState.capacity + self.name.capacity + self.flags.capacity + self.statusMessage.capacity) * 4
        n += (self.resourceIndex.capacity + self.scopeIndex.capacity + self.attrOffsets.capacity) * 4
        n += (self.droppedAttrs.capacity + self.droppedEvents.capacity + self.droppedLinks.capacity) * 4
        n += (self.eventOffsets.capacity + self.linkOffsets.capacity) * 4
        n += (self.genAIProvider.capacity + self.genAIRequestModel.capacity + self.genAIResponseModel.capacity) * 4
        n += self.eventTime.capacity * 8 + (self.eventName.capacity + self.eventAttrOffsets.capacity) * 4
        n += (self.linkTraceHigh.capacity + self.linkTraceLow.capacity + self.linkSpanID.capacity) * 8
        n += (self.linkTraceState.capacity + self.linkFlags.capacity + self.linkAttrOffsets.capacity) * 4
        return n
    }

    /// Reserves room for about `spans` spans with `attributes` span attributes.
    public mutating func reserve(spans: Int, attributes: Int) {
        self.traceHigh.reserveCapacity(spans)
        self.traceLow.reserveCapacity(spans)
        self.spanID.reserveCapacity(spans)
        self.parentSpanID.reserveCapacity(spans)
        self.traceState.reserveCapacity(spans)
        self.name.reserveCapacity(spans)
        self.kind.reserveCapacity(spans)
        self.startTime.reserveCapacity(spans)
        self.endTime.reserveCapacity(spans)
        self.flags.reserveCapacity(spans)
        self.statusCode.reserveCapacity(spans)
        self.statusMessage.reserveCapacity(spans)
        self.resourceIndex.reserveCapacity(spans)
        self.scopeIndex.reserveCapacity(spans)
        self.attrOffsets.reserveCapacity(spans + 1)
        self.droppedAttrs.reserveCapacity(spans)
        self.droppedEvents.reserveCapacity(spans)
        self.droppedLinks.reserveCapacity(spans)
        self.eventOffsets.reserveCapacity(spans + 1)
        self.linkOffsets.reserveCapacity(spans + 1)
        self.genAIProvider.reserveCapacity(spans)
        self.genAIRequestModel.reserveCapacity(spans)
        self.genAIResponseModel.reserveCapacity(spans)
        self.inputTokens.reserveCapacity(spans)
        self.outputTokens.reserveCapacity(spans)
        self.cost.reserveCapacity(spans)
        self.attrs.reserve(attributes)
    }
}

// MARK: - Appending another batch

extension SpanBatch {
    /// Appends every resource, scope, span, event and link of `other`, re-interning its strings here.
    public mutating func append(_ other: SpanBatch) {
        // Map other's string IDs to ours (well-known IDs map to themselves).
        var map = [UInt32](repeating: 0, count: other.strings.count)
        other.strings.bytes.withUnsafeBytes { all in
            for id in 0..<other.strings.count {
                if id < WellKnown.all.count {
                    map[id] = UInt32(id)
                    continue
                }
                let start = Int(other.strings.offsets[id])
                let end = Int(other.strings.offsets[id + 1])
                map[id] = self.strings.intern(UnsafeRawBufferPointer(rebasing: all[start..<end]), hash: other.strings.hashes[id])
            }
        }
        let eventBase = UInt32(self.eventTime.count)
        let linkBase = UInt32(self.linkSpanID.count)

        // Resources and scopes: identical ones (same attributes etc.) are stored once.
        var resourceMap = [UInt32](repeating: 0, count: other.resourceCount)
        for r in 0..<other.resourceCount {
            var key: [UInt64] = [UInt64(other.resourceDroppedAttrs[r]), UInt64(map[Int(other.resourceSchemaURL[r])])]
            for i in other.resourceAttrRange(r) { Self.appendKey(&key, other.resourceAttrs, i, map) }
            if let existing = self.resourceLookup[key] {
                resourceMap[r] = existing
                continue
            }
            let index = UInt32(self.resourceCount)
            self.resourceLookup[key] = index
            resourceMap[r] = index
            Self.appendAttrs(&self.resourceAttrs, &self.resourceAttrOffsets, other.resourceAttrs, other.resourceAttrRange(r), map)
            self.resourceDroppedAttrs.append(other.resourceDroppedAttrs[r])
            self.resourceSchemaURL.append(map[Int(other.resourceSchemaURL[r])])
            self.resourceServiceName.append(map[Int(other.resourceServiceName[r])])
        }
        var scopeMap = [UInt32](repeating: 0, count: other.scopeCount)
        for s in 0..<other.scopeCount {
            let range = Int(other.scopeAttrOffsets[s])..<Int(other.scopeAttrOffsets[s + 1])
            var key: [UInt64] = [
                UInt64(map[Int(other.scopeName[s])]), UInt64(map[Int(other.scopeVersion[s])]),
                UInt64(other.scopeDroppedAttrs[s]), UInt64(map[Int(other.scopeSchemaURL[s])]),
            ]
            for i in range { Self.appendKey(&key, other.scopeAttrs, i, map) }
            if let existing = self.scopeLookup[key] {
                scopeMap[s] = existing
                continue
            }
            let index = UInt32(self.scopeCount)
            self.scopeLookup[key] = index
            scopeMap[s] = index
            self.scopeName.append(map[Int(other.scopeName[s])])
            self.scopeVersion.append(map[Int(other.scopeVersion[s])])
            Self.appendAttrs(&self.scopeAttrs, &self.scopeAttrOffsets, other.scopeAttrs, range, map)
            self.scopeDroppedAttrs.append(other.scopeDroppedAttrs[s])
            self.scopeSchemaURL.append(map[Int(other.scopeSchemaURL[s])])
        }

        // Spans.
        self.traceHigh.append(contentsOf: other.traceHigh)
        self.traceLow.append(contentsOf: other.traceLow)
        self.spanID.append(contentsOf: other.spanID)
        self.parentSpanID.append(contentsOf: other.parentSpanID)
        self.traceState.append(contentsOf: other.traceState.lazy.map { map[Int($0)] })
        self.name.append(contentsOf: other.name.lazy.map { map[Int($0)] })
        self.kind.append(contentsOf: other.kind)
        self.startTime.append(contentsOf: other.startTime)
        self.endTime.append(contentsOf: other.endTime)
        self.flags.append(contentsOf: other.flags)
        self.statusCode.append(contentsOf: other.statusCode)
        self.statusMessage.append(contentsOf: other.statusMessage.lazy.map { map[Int($0)] })
        self.resourceIndex.append(contentsOf: other.resourceIndex.lazy.map { resourceMap[Int($0)] })
        self.scopeIndex.append(contentsOf: other.scopeIndex.lazy.map { scopeMap[Int($0)] })
        Self.appendAttrs(&self.attrs, &self.attrOffsets, other.attrs, other.attrOffsets, map)
        self.droppedAttrs.append(contentsOf: other.droppedAttrs)
        self.droppedEvents.append(contentsOf: other.droppedEvents)
        self.droppedLinks.append(contentsOf: other.droppedLinks)
        self.eventOffsets.append(contentsOf: other.eventOffsets.dropFirst().lazy.map { $0 + eventBase })
        self.linkOffsets.append(contentsOf: other.linkOffsets.dropFirst().lazy.map { $0 + linkBase })
        self.genAIProvider.append(contentsOf: other.genAIProvider.lazy.map { map[Int($0)] })
        self.genAIRequestModel.append(contentsOf: other.genAIRequestModel.lazy.map { map[Int($0)] })
        self.genAIResponseModel.append(contentsOf: other.genAIResponseModel.lazy.map { map[Int($0)] })
        self.inputTokens.append(contentsOf: other.inputTokens)
        self.outputTokens.append(contentsOf: other.outputTokens)
        self.cost.append(contentsOf: other.cost)

        // Events.
        self.eventTime.append(contentsOf: other.eventTime)
        self.eventName.append(contentsOf: other.eventName.lazy.map { map[Int($0)] })
        Self.appendAttrs(&self.eventAttrs, &self.eventAttrOffsets, other.eventAttrs, other.eventAttrOffsets, map)
        self.eventDroppedAttrs.append(contentsOf: other.eventDroppedAttrs)

        // Links.
        self.linkTraceHigh.append(contentsOf: other.linkTraceHigh)
        self.linkTraceLow.append(contentsOf: other.linkTraceLow)
        self.linkSpanID.append(contentsOf: other.linkSpanID)
        self.linkTraceState.append(contentsOf: other.linkTraceState.lazy.map { map[Int($0)] })
        self.linkFlags.append(contentsOf: other.linkFlags)
        Self.appendAttrs(&self.linkAttrs, &self.linkAttrOffsets, other.linkAttrs, other.linkAttrOffsets, map)
        self.linkDroppedAttrs.append(contentsOf: other.linkDroppedAttrs)
    }

    /// Appends one owner's attributes (`range` of `other`) and closes its offsets entry.
    private static func appendAttrs(
        _ attrs: inout AttributeColumns,
        _ offsets: inout [UInt32],
        _ other: AttributeColumns,
        _ range: Range<Int>,
        _ map: [UInt32]
    ) {
        for i in range {
            let type = other.types[i]
            let value = ValueType(rawValue: type)!.isInterned ? UInt64(map[Int(other.values[i])]) : other.values[i]
            attrs.keys.append(map[Int(other.keys[i])])
            attrs.types.append(type)
            attrs.values.append(value)
        }
        offsets.append(UInt32(attrs.count))
    }

    private static func appendKey(_ key: inout [UInt64], _ attrs: AttributeColumns, _ i: Int, _ map: [UInt32]) {
        let type = attrs.types[i]
        key.append(UInt64(map[Int(attrs.keys[i])]) << 8 | UInt64(type))
        key.append(ValueType(rawValue: type)!.isInterned ? UInt64(map[Int(attrs.values[i])]) : attrs.values[i])
    }

    private static func appendAttrs(
        _ attrs: inout AttributeColumns,
        _ offsets: inout [UInt32],
        _ other: AttributeColumns,
        _ otherOffsets: [UInt32],
        _ map: [UInt32]
    ) {
        let base = UInt32(attrs.count)
        attrs.reserve(attrs.count + other.count)
        for i in 0..<other.count {
            let type = other.types[i]
            let value = ValueType(rawValue: type)!.isInterned ? UInt64(map[Int(other.values[i])]) : other.values[i]
            attrs.keys.append(map[Int(other.keys[i])])
            attrs.types.append(type)
            attrs.values.append(value)
        }
        offsets.append(contentsOf: otherOffsets.dropFirst().lazy.map { $0 + base })
    }
}

// MARK: - Memory

extension SpanBatch {
    /// Drops spare array capacity (after the batch stops growing, e.g. when a head chunk is sealed).
    public mutating func shrinkToFit() {
        self.resourceAttrOffsets = exactCopy(self.resourceAttrOffsets)
        self.resourceDroppedAttrs = exactCopy(self.resourceDroppedAttrs)
        self.resourceSchemaURL = exactCopy(self.resourceSchemaURL)
        self.resourceServiceName = exactCopy(self.resourceServiceName)
        self.scopeName = exactCopy(self.scopeName)
        self.scopeVersion = exactCopy(self.scopeVersion)
        self.scopeAttrOffsets = exactCopy(self.scopeAttrOffsets)
        self.scopeDroppedAttrs = exactCopy(self.scopeDroppedAttrs)
        self.scopeSchemaURL = exactCopy(self.scopeSchemaURL)
        self.traceHigh = exactCopy(self.traceHigh)
        self.traceLow = exactCopy(self.traceLow)
        self.spanID = exactCopy(self.spanID)
        self.parentSpanID = exactCopy(self.parentSpanID)
        self.traceState = exactCopy(self.traceState)
        self.name = exactCopy(self.name)
        self.kind = exactCopy(self.kind)
        self.startTime = exactCopy(self.startTime)
        self.endTime = exactCopy(self.endTime)
        self.flags = exactCopy(self.flags)
        self.statusCode = exactCopy(self.statusCode)
        self.statusMessage = exactCopy(self.statusMessage)
        self.resourceIndex = exactCopy(self.resourceIndex)
        self.scopeIndex = exactCopy(self.scopeIndex)
        self.attrOffsets = exactCopy(self.attrOffsets)
        self.droppedAttrs = exactCopy(self.droppedAttrs)
        self.droppedEvents = exactCopy(self.droppedEvents)
        self.droppedLinks = exactCopy(self.droppedLinks)
        self.eventOffsets = exactCopy(self.eventOffsets)
        self.linkOffsets = exactCopy(self.linkOffsets)
        self.genAIProvider = exactCopy(self.genAIProvider)
        self.genAIRequestModel = exactCopy(self.genAIRequestModel)
        self.genAIResponseModel = exactCopy(self.genAIResponseModel)
        self.inputTokens = exactCopy(self.inputTokens)
        self.outputTokens = exactCopy(self.outputTokens)
        self.cost = exactCopy(self.cost)
        self.eventTime = exactCopy(self.eventTime)
        self.eventName = exactCopy(self.eventName)
        self.eventAttrOffsets = exactCopy(self.eventAttrOffsets)
        self.eventDroppedAttrs = exactCopy(self.eventDroppedAttrs)
        self.linkTraceHigh = exactCopy(self.linkTraceHigh)
        self.linkTraceLow = exactCopy(self.linkTraceLow)
        self.linkSpanID = exactCopy(self.linkSpanID)
        self.linkTraceState = exactCopy(self.linkTraceState)
        self.linkFlags = exactCopy(self.linkFlags)
        self.linkAttrOffsets = exactCopy(self.linkAttrOffsets)
        self.linkDroppedAttrs = exactCopy(self.linkDroppedAttrs)
        self.resourceAttrs.shrinkToFit()
        self.scopeAttrs.shrinkToFit()
        self.attrs.shrinkToFit()
        self.eventAttrs.shrinkToFit()
        self.linkAttrs.shrinkToFit()
        self.strings.shrinkToFit()
    }
}

extension AttributeColumns {
    public mutating func shrinkToFit() {
        self.keys = exactCopy(self.keys)
        self.types = exactCopy(self.types)
        self.values = exactCopy(self.values)
    }
}

/// A copy of `array` whose capacity is its count.
@usableFromInline
func exactCopy<T>(_ array: [T]) -> [T] {
    array.withUnsafeBufferPointer { Array($0) }
}

// MARK: - Building (shared by the decoders)

/// The fixed fields of one span, as a decoder collects them before appending.
public struct SpanFields: Sendable {
    public var traceHigh: UInt64 = 0
    public var traceLow: UInt64 = 0
    public var spanID: UInt64 = 0
    public var parentSpanID: UInt64 = 0
    public var traceState: UInt32 = 0
    public var name: UInt32 = 0
    public var kind: UInt8 = 0
    public var start: UInt64 = 0
    public var end: UInt64 = 0
    public var flags: UInt32 = 0
    public var statusCode: UInt8 = 0
    public var statusMessage: UInt32 = 0
    public var droppedAttrs: UInt32 = 0
    public var droppedEvents: UInt32 = 0
    public var droppedLinks: UInt32 = 0

    public init() {}
}

extension SpanBatch {
    /// Where a span's attributes, events and links begin, so a rejected span can be rolled back.
    public struct SpanMark: Sendable {
        @usableFromInline let attrs: Int
        @usableFromInline let events: Int
        @usableFromInline let eventAttrs: Int
        @usableFromInline let links: Int
        @usableFromInline let linkAttrs: Int

        @usableFromInline init(attrs: Int, events: Int, eventAttrs: Int, links: Int, linkAttrs: Int) {
            self.attrs = attrs
            self.events = events
            self.eventAttrs = eventAttrs
            self.links = links
            self.linkAttrs = linkAttrs
        }
    }

    /// Marks the start of a span's nested data.
    @inlinable
    public var spanMark: SpanMark {
        SpanMark(attrs: self.attrs.count, events: self.eventTime.count, eventAttrs: self.eventAttrs.count,
                 links: self.linkSpanID.count, linkAttrs: self.linkAttrs.count)
    }

    /// Removes the attributes, events and links appended since `mark` (for a rejected span).
    public mutating func rollBack(to mark: SpanMark) {
        self.attrs.truncate(to: mark.attrs)
        self.eventAttrs.truncate(to: mark.eventAttrs)
        self.linkAttrs.truncate(to: mark.linkAttrs)
        if self.eventTime.count > mark.events {
            self.eventTime.removeSubrange(mark.events...)
            self.eventName.removeSubrange(mark.events...)
            self.eventDroppedAttrs.removeSubrange(mark.events...)
            self.eventAttrOffsets.removeSubrange((mark.events + 1)...)
        }
        if self.linkSpanID.count > mark.links {
            self.linkTraceHigh.removeSubrange(mark.links...)
            self.linkTraceLow.removeSubrange(mark.links...)
            self.linkSpanID.removeSubrange(mark.links...)
            self.linkTraceState.removeSubrange(mark.links...)
            self.linkFlags.removeSubrange(mark.links...)
            self.linkDroppedAttrs.removeSubrange(mark.links...)
            self.linkAttrOffsets.removeSubrange((mark.links + 1)...)
        }
    }

    /// Appends a span whose attributes, events and links (appended since `mark`) are already in place,
    /// and fills its typed GenAI columns.
    @inlinable
    public mutating func appendSpan(_ f: SpanFields, resource: UInt32, scope: UInt32, since mark: SpanMark, costAliases: [UInt32]) {
        self.appendSpanColumns(f, resource: resource, scope: scope)
        GenAINormalizer.appendTypedColumns(to: &self, attributes: mark.attrs..<self.attrs.count, aliasIDs: costAliases)
    }

    /// Appends a span's fixed columns and closes its attribute, event and link ranges (typed GenAI
    /// columns are the caller's).
    @inlinable
    mutating func appendSpanColumns(_ f: SpanFields, resource: UInt32, scope: UInt32) {
        self.traceHigh.append(f.traceHigh)
        self.traceLow.append(f.traceLow)
        self.spanID.append(f.spanID)
        self.parentSpanID.append(f.parentSpanID)
        self.traceState.append(f.traceState)
        self.name.append(f.name)
        self.kind.append(f.kind)
        self.startTime.append(f.start)
        self.endTime.append(f.end)
        self.flags.append(f.flags)
        self.statusCode.append(f.statusCode)
        self.statusMessage.append(f.statusMessage)
        self.resourceIndex.append(resource)
        self.scopeIndex.append(scope)
        self.attrOffsets.append(UInt32(self.attrs.count))
        self.droppedAttrs.append(f.droppedAttrs)
        self.droppedEvents.append(f.droppedEvents)
        self.droppedLinks.append(f.droppedLinks)
        self.eventOffsets.append(UInt32(self.eventTime.count))
        self.linkOffsets.append(UInt32(self.linkSpanID.count))
    }

    /// Closes the resource whose attributes were appended last; returns its index.
    @discardableResult
    public mutating func closeResource(droppedAttrs: UInt32, schemaURL: UInt32) -> UInt32 {
        let index = self.resourceCount
        self.resourceAttrOffsets.append(UInt32(self.resourceAttrs.count))
        self.resourceDroppedAttrs.append(droppedAttrs)
        self.resourceSchemaURL.append(schemaURL)
        var service: UInt32 = 0
        for i in self.resourceAttrRange(index)
        where self.resourceAttrs.keys[i] == WellKnown.serviceName && self.resourceAttrs.types[i] == ValueType.string.rawValue {
            service = UInt32(self.resourceAttrs.values[i])
        }
        self.resourceServiceName.append(service)
        return UInt32(index)
    }
}

extension SpanBatch {
    /// Appends `rows` of `other` (in that order), which must share this batch's string table (same
    /// IDs), with their attributes, events and links. Resources and scopes are copied whole.
    public mutating func appendRows(_ rows: some Sequence<Int>, of other: SpanBatch) {
        precondition(self.spanCount == 0, "appendRows starts an empty batch")
        self.resourceAttrOffsets = other.resourceAttrOffsets
        self.resourceAttrs = other.resourceAttrs
        self.resourceDroppedAttrs = other.resourceDroppedAttrs
        self.resourceSchemaURL = other.resourceSchemaURL
        self.resourceServiceName = other.resourceServiceName
        self.scopeName = other.scopeName
        self.scopeVersion = other.scopeVersion
        self.scopeAttrOffsets = other.scopeAttrOffsets
        self.scopeAttrs = other.scopeAttrs
        self.scopeDroppedAttrs = other.scopeDroppedAttrs
        self.scopeSchemaURL = other.scopeSchemaURL
        for row in rows {
            var f = SpanFields()
            f.traceHigh = other.traceHigh[row]
            f.traceLow = other.traceLow[row]
            f.spanID = other.spanID[row]
            f.parentSpanID = other.parentSpanID[row]
            f.traceState = other.traceState[row]
            f.name = other.name[row]
            f.kind = other.kind[row]
            f.start = other.startTime[row]
            f.end = other.endTime[row]
            f.flags = other.flags[row]
            f.statusCode = other.statusCode[row]
            f.statusMessage = other.statusMessage[row]
            f.droppedAttrs = other.droppedAttrs[row]
            f.droppedEvents = other.droppedEvents[row]
            f.droppedLinks = other.droppedLinks[row]
            for i in other.attrRange(row) {
                self.attrs.append(key: other.attrs.keys[i], type: ValueType(rawValue: other.attrs.types[i]) ?? .empty, value: other.attrs.values[i])
            }
            for e in Int(other.eventOffsets[row])..<Int(other.eventOffsets[row + 1]) {
                self.eventTime.append(other.eventTime[e])
                self.eventName.append(other.eventName[e])
                self.eventDroppedAttrs.append(other.eventDroppedAttrs[e])
                for i in Int(other.eventAttrOffsets[e])..<Int(other.eventAttrOffsets[e + 1]) {
                    self.eventAttrs.append(key: other.eventAttrs.keys[i], type: ValueType(rawValue: other.eventAttrs.types[i]) ?? .empty, value: other.eventAttrs.values[i])
                }
                self.eventAttrOffsets.append(UInt32(self.eventAttrs.count))
            }
            for l in Int(other.linkOffsets[row])..<Int(other.linkOffsets[row + 1]) {
                self.linkTraceHigh.append(other.linkTraceHigh[l])
                self.linkTraceLow.append(other.linkTraceLow[l])
                self.linkSpanID.append(other.linkSpanID[l])
                self.linkTraceState.append(other.linkTraceState[l])
                self.linkFlags.append(other.linkFlags[l])
                self.linkDroppedAttrs.append(other.linkDroppedAttrs[l])
                for i in Int(other.linkAttrOffsets[l])..<Int(other.linkAttrOffsets[l + 1]) {
                    self.linkAttrs.append(key: other.linkAttrs.keys[i], type: ValueType(rawValue: other.linkAttrs.types[i]) ?? .empty, value: other.linkAttrs.values[i])
                }
                self.linkAttrOffsets.append(UInt32(self.linkAttrs.count))
            }
            self.appendSpanColumns(f, resource: other.resourceIndex[row], scope: other.scopeIndex[row])
            // Typed GenAI values are copied as stored (not re-derived).
            self.genAIProvider.append(other.genAIProvider[row])
            self.genAIRequestModel.append(other.genAIRequestModel[row])
            self.genAIResponseModel.append(other.genAIResponseModel[row])
            self.inputTokens.append(other.inputTokens[row])
            self.outputTokens.append(other.outputTokens[row])
            self.cost.append(other.cost[row])
        }
    }
}

// MARK: - Re-mapping string IDs

extension SpanBatch {
    /// Rewrites every string ID in the batch (span, resource, scope, event and link columns and all
    /// attribute keys and interned values) through `map`, and installs `strings` as the new table.
    public mutating func remapStrings(to strings: StringTable, _ map: (UInt32) -> UInt32) {
        func column(_ c: inout [UInt32]) {
            c.withUnsafeMutableBufferPointer { b in
                for i in b.indices { b[i] = map(b[i]) }
            }
        }
        func attributes(_ a: inout AttributeColumns) {
            column(&a.keys)
            for i in 0..<a.count where (ValueType(rawValue: a.types[i]) ?? .empty).isInterned {
                a.values[i] = UInt64(map(UInt32(truncatingIfNeeded: a.values[i])))
            }
        }
        column(&self.name)
        column(&self.statusMessage)
        column(&self.traceState)
        column(&self.genAIProvider)
        column(&self.genAIRequestModel)
        column(&self.genAIResponseModel)
        attributes(&self.attrs)
        column(&self.resourceSchemaURL)
        column(&self.resourceServiceName)
        attributes(&self.resourceAttrs)
        column(&self.scopeName)
        column(&self.scopeVersion)
        column(&self.scopeSchemaURL)
        attributes(&self.scopeAttrs)
        column(&self.eventName)
        attributes(&self.eventAttrs)
        column(&self.linkTraceState)
        attributes(&self.linkAttrs)
        self.strings = strings
        self.resourceLookup = [:]
        self.scopeLookup = [:]
    }

    /// Calls `body` with every string ID the batch refers to (with repeats; well-known IDs not included
    /// unless used).
    public func forEachStringID(_ body: (UInt32) -> Void) {
        func column(_ c: [UInt32]) { for id in c { body(id) } }
        func attributes(_ a: AttributeColumns) {
            column(a.keys)
            for i in 0..<a.count where (ValueType(rawValue: a.types[i]) ?? .empty).isInterned { body(UInt32(truncatingIfNeeded: a.values[i])) }
        }
        column(self.name)
        column(self.statusMessage)
        column(self.traceState)
        column(self.genAIProvider)
        column(self.genAIRequestModel)
        column(self.genAIResponseModel)
        attributes(self.attrs)
        column(self.resourceSchemaURL)
        column(self.resourceServiceName)
        attributes(self.resourceAttrs)
        column(self.scopeName)
        column(self.scopeVersion)
        column(self.scopeSchemaURL)
        attributes(self.scopeAttrs)
        column(self.eventName)
        attributes(self.eventAttrs)
        column(self.linkTraceState)
        attributes(self.linkAttrs)
    }

    /// Every string ID the batch refers to, as a bitmap over its table (well-known IDs always set).
    public func referencedStrings() -> [Bool] {
        var used = [Bool](repeating: false, count: self.strings.count)
        for id in 0..<min(WellKnown.all.count, used.count) { used[id] = true }
        self.forEachStringID { used[Int($0)] = true }
        return used
    }
}
