import WeftModel

/// Byte forms of the values partial answers are built of (strings, trace IDs, group values, scan
/// statistics) and of the partials themselves. Readers validate and throw ``BlockFormatError``.
extension ByteWriter {
    /// `[length][UTF-8]`.
    public mutating func string(_ s: String) {
        self.varint(UInt64(s.utf8.count))
        self.raw(s.utf8)
    }

    /// Both halves, fixed 64-bit.
    public mutating func traceID(_ id: TraceID) {
        self.fixed64(id.high)
        self.fixed64(id.low)
    }

    /// `[type]` then the value.
    public mutating func groupValue(_ v: GroupValue) {
        switch v {
        case .absent: self.varint(0)
        case .string(let s):
            self.varint(1)
            self.string(s)
        case .int(let i):
            self.varint(2)
            self.fixed64(UInt64(bitPattern: i))
        case .double(let d):
            self.varint(3)
            self.fixed64(d.bitPattern)
        case .bool(let b): self.varint(b ? 5 : 4)
        }
    }

    /// Every counter as a varint.
    public mutating func stats(_ s: ScanStats) {
        for v in [s.chunks, s.blocks, s.skippedGroups, s.inspectedSpans, s.inspectedTraces, s.inspectedBytes] { self.varint(UInt64(v)) }
        self.varint(s.elapsedNanos)
    }
}

extension ByteReader {
    /// A string written by ``ByteWriter/string(_:)`` (invalid UTF-8 is replaced, not refused).
    public mutating func string() throws(BlockFormatError) -> String {
        let n = try self.count(max: 1 << 24)
        return String(decoding: try self.raw(n), as: UTF8.self)
    }

    /// A trace ID written by ``ByteWriter/traceID(_:)``.
    public mutating func traceID() throws(BlockFormatError) -> TraceID {
        let high = try self.fixed64()
        return TraceID(high: high, low: try self.fixed64())
    }

    /// A value written by ``ByteWriter/groupValue(_:)``.
    public mutating func groupValue() throws(BlockFormatError) -> GroupValue {
        try self.groupValue(tag: try self.varint())
    }

    /// The rest of a value written by ``ByteWriter/groupValue(_:)`` whose type tag (1 for a string,
    /// then ``string()``'s length and bytes) was read already.
    public mutating func groupValue(tag: UInt64) throws(BlockFormatError) -> GroupValue {
        switch tag {
        case 0: return .absent
        case 1: return .string(try self.string())
        case 2: return .int(Int64(bitPattern: try self.fixed64()))
        case 3: return .double(Double(bitPattern: try self.fixed64()))
        case 4: return .bool(false)
        case 5: return .bool(true)
        default: throw BlockFormatError("unknown group value type")
        }
    }

    /// Statistics written by ``ByteWriter/stats(_:)``.
    public mutating func stats() throws(BlockFormatError) -> ScanStats {
        var s = ScanStats()
        s.chunks = try self.count()
        s.blocks = try self.count()
        s.skippedGroups = try self.count()
        s.inspectedSpans = try self.count()
        s.inspectedTraces = try self.count()
        s.inspectedBytes = try self.count(max: 1 << 62)
        s.elapsedNanos = try self.varint()
        return s
    }

    /// Throws unless every byte was read.
    public func expectEnd(_ what: String) throws(BlockFormatError) {
        guard self.isAtEnd else { throw BlockFormatError("trailing bytes after \(what)") }
    }
}

extension TraceMatchesPartial {
    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(self.traces.count))
        for (id, e) in self.traces.sorted(by: { $0.key < $1.key }) {
            w.traceID(id)
            w.fixed64(e.latestStart)
            w.varint(UInt64(e.matched))
        }
        w.varint(UInt64(self.spans))
        w.stats(self.stats)
    }

    public static func decode(_ r: inout ByteReader) throws(BlockFormatError) -> TraceMatchesPartial {
        var p = TraceMatchesPartial()
        let count = try r.count(max: 1 << 28)
        // Room for them all at once (a trace takes at least 25 bytes, so a hostile count asks no more).
        p.traces.reserveCapacity(min(count, r.remaining / 25))
        for _ in 0..<count {
            let id = try r.traceID()
            let latest = try r.fixed64()
            let matched = try r.count()
            guard p.traces.updateValue(Entry(latestStart: latest, matched: matched), forKey: id) == nil else { throw BlockFormatError("a trace listed twice") }
        }
        p.spans = try r.count(max: Int.max >> 1)
        p.stats = try r.stats()
        return p
    }
}

extension TagNamesPartial {
    public func encode(into w: inout ByteWriter) {
        w.varint(self.includeIntrinsics ? 1 : 0)
        for names in [self.span, self.resource] {
            w.varint(UInt64(names.count))
            for n in names.sorted() { w.string(n) }
        }
        w.stats(self.stats)
    }

    public static func decode(_ r: inout ByteReader) throws(BlockFormatError) -> TagNamesPartial {
        var p = TagNamesPartial(includeIntrinsics: try r.count(max: 1) == 1)
        for _ in 0..<(try r.count(max: 1 << 24)) { p.span.insert(try r.string()) }
        for _ in 0..<(try r.count(max: 1 << 24)) { p.resource.insert(try r.string()) }
        p.stats = try r.stats()
        return p
    }
}

extension TagValuesPartial {
    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(self.limit))
        w.varint(UInt64(self.values.count))
        for v in self.values { w.groupValue(v) }
        w.stats(self.stats)
    }

    /// - Throws: when the bytes are malformed or hold another `limit`.
    public static func decode(_ r: inout ByteReader, limit: Int) throws(BlockFormatError) -> TagValuesPartial {
        guard try r.count(max: 1 << 24) == limit else { throw BlockFormatError("the partial has another limit") }
        var values: [GroupValue] = []
        for _ in 0..<(try r.count(max: limit)) { values.append(try r.groupValue()) }
        var p = TagValuesPartial(limit: limit, values: values)
        guard p.values.count == values.count else { throw BlockFormatError("a value listed twice") }
        p.stats = try r.stats()
        return p
    }
}

extension ServiceMapPartial {
    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(self.edges.count))
        for e in self.sorted {
            w.string(e.parent)
            w.string(e.child)
            w.varint(e.calls)
            w.varint(e.errors)
            e.latency.encode(into: &w)
        }
        w.stats(self.stats)
    }

    public static func decode(_ r: inout ByteReader) throws(BlockFormatError) -> ServiceMapPartial {
        var p = ServiceMapPartial()
        for _ in 0..<(try r.count(max: 1 << 24)) {
            let parent = try r.string()
            let child = try r.string()
            let calls = try r.varint()
            let errors = try r.varint()
            let latency = try QuantileSketch.decode(&r)
            guard p.edges[Pair(parent: parent, child: child)] == nil else { throw BlockFormatError("an edge listed twice") }
            p.add(ServiceMapEdge(parent: parent, child: child, calls: calls, errors: errors, latency: latency))
        }
        p.stats = try r.stats()
        return p
    }
}

extension ServiceMapPartial {
    /// The orphans (at most ``maxOrphans``): count, then per orphan trace ID, parent span ID, service,
    /// start, duration and error flag. Service names repeat, so each is written once and then by number.
    public func encodeOrphans(into w: inout ByteWriter) {
        let orphans = self.orphans.prefix(Self.maxOrphans)
        var numbers: [String: UInt64] = [:]
        w.varint(UInt64(orphans.count))
        for o in orphans {
            w.traceID(o.trace)
            w.fixed64(o.parentSpanID)
            if let n = numbers[o.child] {
                w.varint(n + 1)
            } else {
                numbers[o.child] = UInt64(numbers.count)
                w.varint(0)
                w.string(o.child)
            }
            w.fixed64(o.start)
            w.varint(o.duration)
            w.varint(o.isError ? 1 : 0)
        }
    }

    /// Reads what ``encodeOrphans(into:)`` wrote.
    public static func decodeOrphans(_ r: inout ByteReader) throws(BlockFormatError) -> [ServiceOrphan] {
        var names: [String] = []
        var orphans: [ServiceOrphan] = []
        for _ in 0..<(try r.count(max: Self.maxOrphans)) {
            let trace = try r.traceID()
            let parent = try r.fixed64()
            let n = try r.count(max: names.count)
            if n == 0 { names.append(try r.string()) }
            let child = names[n == 0 ? names.count - 1 : n - 1]
            let start = try r.fixed64()
            let duration = try r.varint()
            let failed = try r.varint()
            guard failed <= 1 else { throw BlockFormatError("bad service map orphan") }
            orphans.append(ServiceOrphan(trace: trace, parentSpanID: parent, child: child, start: start, duration: duration, isError: failed == 1))
        }
        return orphans
    }
}
