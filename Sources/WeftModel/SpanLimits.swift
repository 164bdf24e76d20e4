/// Per-span limits enforced on every decoded batch before anything is written, and again when the
/// write-ahead log is replayed, so a span the node refused at ingest never reappears after a restart
/// and no single span can make the head reserve unbounded memory.
public struct SpanLimits: Sendable, Equatable {
    /// Most spans in one export request (the whole request is refused beyond it).
    public var maxSpansPerRequest: Int
    /// Most attributes on one span, resource, scope, event or link.
    public var maxAttributesPerSpan: Int
    /// Most events on one span.
    public var maxEventsPerSpan: Int
    /// Most links on one span.
    public var maxLinksPerSpan: Int
    /// Longest string a span may carry: attribute keys and values (including array, kvlist and bytes
    /// values), span and event names, status messages and trace states.
    public var maxValueBytes: Int

    public init(
        maxSpansPerRequest: Int = 100_000,
        maxAttributesPerSpan: Int = 1_000,
        maxEventsPerSpan: Int = 1_000,
        maxLinksPerSpan: Int = 1_000,
        maxValueBytes: Int = 128 << 10
    ) {
        self.maxSpansPerRequest = maxSpansPerRequest
        self.maxAttributesPerSpan = maxAttributesPerSpan
        self.maxEventsPerSpan = maxEventsPerSpan
        self.maxLinksPerSpan = maxLinksPerSpan
        self.maxValueBytes = maxValueBytes
    }

    /// No limits (for tools that read back what a node already stored).
    public static let none = SpanLimits(
        maxSpansPerRequest: .max, maxAttributesPerSpan: .max, maxEventsPerSpan: .max, maxLinksPerSpan: .max, maxValueBytes: .max
    )

    /// What ``enforce(on:minStartNanos:)`` removed.
    public struct Outcome: Sendable, Equatable {
        /// Spans removed from the batch.
        public var rejectedSpans = 0
        /// Why the first removed span was removed (empty when none was).
        public var message = ""

        public init() {}

        mutating func reject(_ reason: @autoclosure () -> String) {
            if self.rejectedSpans == 0 { self.message = reason() }
            self.rejectedSpans += 1
        }
    }

    /// Removes from `batch` every span over a limit or starting before `minStartNanos` (the org's
    /// retention), and drops the strings only they used. A batch within the limits is left untouched
    /// (one pass over its offsets and string lengths).
    public func enforce(on batch: inout SpanBatch, minStartNanos: UInt64 = 0) -> Outcome {
        var outcome = Outcome()
        let longStrings = self.longStrings(in: batch.strings)
        let badResources = self.badOwners(batch.resourceAttrOffsets, batch.resourceAttrs, longStrings, extra: batch.resourceSchemaURL)
        let badScopes = self.badOwners(batch.scopeAttrOffsets, batch.scopeAttrs, longStrings, extra: batch.scopeSchemaURL, batch.scopeName, batch.scopeVersion)
        var keep: [Int] = []
        var anyRejected = false
        for row in 0..<batch.spanCount {
            if let reason = self.problem(row, batch, longStrings, badResources, badScopes, minStartNanos) {
                if !anyRejected {
                    anyRejected = true
                    keep.reserveCapacity(batch.spanCount)
                    keep.append(contentsOf: 0..<row)
                }
                outcome.reject(reason)
            } else if anyRejected {
                keep.append(row)
            }
        }
        guard anyRejected else { return outcome }
        var kept = SpanBatch()
        kept.strings = batch.strings
        kept.appendRows(keep, of: batch)
        kept.dropUnusedStrings()
        batch = kept
        return outcome
    }

    /// IDs of strings longer than ``maxValueBytes``, as a bitmap (nil when there are none).
    private func longStrings(in strings: StringTable) -> [Bool]? {
        guard self.maxValueBytes < Int(UInt32.max) else { return nil }
        var long: [Bool]? = nil
        let offsets = strings.offsets
        for id in 0..<strings.count where Int(offsets[id + 1] - offsets[id]) > self.maxValueBytes {
            if long == nil { long = [Bool](repeating: false, count: strings.count) }
            long![id] = true
        }
        return long
    }

    /// For each owner (resource or scope), why its spans are refused, or nil.
    private func badOwners(
        _ offsets: [UInt32], _ attrs: AttributeColumns, _ long: [Bool]?, extra: [UInt32]...
    ) -> [String?]? {
        var bad: [String?]? = nil
        for owner in 0..<(offsets.count - 1) {
            let range = Int(offsets[owner])..<Int(offsets[owner + 1])
            var reason: String? = nil
            if range.count > self.maxAttributesPerSpan {
                reason = "\(range.count) attributes (limit \(self.maxAttributesPerSpan))"
            } else if let long, Self.refersToLong(attrs, range, long) || extra.contains(where: { long[Int($0[owner])] }) {
                reason = "a string longer than \(self.maxValueBytes) bytes"
            }
            if let reason {
                if bad == nil { bad = [String?](repeating: nil, count: offsets.count - 1) }
                bad![owner] = reason
            }
        }
        return bad
    }

    private static func refersToLong(_ attrs: AttributeColumns, _ range: Range<Int>, _ long: [Bool]) -> Bool {
        for i in range {
            if long[Int(attrs.keys[i])] { return true }
            if (ValueType(rawValue: attrs.types[i]) ?? .empty).isInterned && long[Int(truncatingIfNeeded: attrs.values[i])] { return true }
        }
        return false
    }

    /// Why span `row` is refused, or nil.
    private func problem(
        _ row: Int, _ b: SpanBatch, _ long: [Bool]?, _ badResources: [String?]?, _ badScopes: [String?]?, _ minStart: UInt64
    ) -> String? {
        if b.startTime[row] < minStart {
            return "span starts before the org's retention period (older spans are not kept)"
        }
        if let reason = badResources?[Int(b.resourceIndex[row])] { return "the span's resource has \(reason)" }
        if let reason = badScopes?[Int(b.scopeIndex[row])] { return "the span's instrumentation scope has \(reason)" }
        let attrs = b.attrRange(row)
        if attrs.count > self.maxAttributesPerSpan {
            return "span has \(attrs.count) attributes (limit \(self.maxAttributesPerSpan))"
        }
        let events = Int(b.eventOffsets[row])..<Int(b.eventOffsets[row + 1])
        if events.count > self.maxEventsPerSpan { return "span has \(events.count) events (limit \(self.maxEventsPerSpan))" }
        let links = Int(b.linkOffsets[row])..<Int(b.linkOffsets[row + 1])
        if links.count > self.maxLinksPerSpan { return "span has \(links.count) links (limit \(self.maxLinksPerSpan))" }
        for e in events {
            let n = Int(b.eventAttrOffsets[e + 1] - b.eventAttrOffsets[e])
            if n > self.maxAttributesPerSpan { return "a span event has \(n) attributes (limit \(self.maxAttributesPerSpan))" }
        }
        for l in links {
            let n = Int(b.linkAttrOffsets[l + 1] - b.linkAttrOffsets[l])
            if n > self.maxAttributesPerSpan { return "a span link has \(n) attributes (limit \(self.maxAttributesPerSpan))" }
        }
        guard let long else { return nil }
        let tooLong = "span has a name, attribute, event or status string longer than \(self.maxValueBytes) bytes"
        if long[Int(b.name[row])] || long[Int(b.statusMessage[row])] || long[Int(b.traceState[row])] { return tooLong }
        if Self.refersToLong(b.attrs, attrs, long) { return tooLong }
        for e in events {
            if long[Int(b.eventName[e])] { return tooLong }
            if Self.refersToLong(b.eventAttrs, Int(b.eventAttrOffsets[e])..<Int(b.eventAttrOffsets[e + 1]), long) { return tooLong }
        }
        for l in links {
            if long[Int(b.linkTraceState[l])] { return tooLong }
            if Self.refersToLong(b.linkAttrs, Int(b.linkAttrOffsets[l])..<Int(b.linkAttrOffsets[l + 1]), long) { return tooLong }
        }
        return nil
    }
}

extension SpanBatch {
    /// Rebuilds the string table with only the strings the batch refers to (well-known IDs keep theirs).
    public mutating func dropUnusedStrings() {
        let used = self.referencedStrings()
        guard used.contains(false) else { return }
        var table = StringTable()
        var map = [UInt32](repeating: 0, count: used.count)
        self.strings.bytes.withUnsafeBytes { all in
            for id in 0..<used.count where used[id] {
                if id < WellKnown.all.count {
                    map[id] = UInt32(id)
                    continue
                }
                let range = Int(self.strings.offsets[id])..<Int(self.strings.offsets[id + 1])
                map[id] = table.intern(UnsafeRawBufferPointer(rebasing: all[range]), hash: self.strings.hashes[id])
            }
        }
        self.remapStrings(to: table) { map[Int($0)] }
    }
}
