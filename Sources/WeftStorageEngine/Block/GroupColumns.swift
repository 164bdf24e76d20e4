import Synchronization
import WeftModel

/// One column of a row group, decoded on its own for scans (see ``BlockReader/scanColumn(_:_:)``).
public enum ScanColumn: Hashable, Sendable {
    /// Start and end times.
    case timing
    case name, kind, status, statusMessage, resource
    case provider, requestModel, responseModel, inputTokens, outputTokens, cost
    /// Each row's trace (an index into per-trace IDs).
    case traces
    case spanID, parentSpanID
    /// One span-attribute key (a string ID of the source) for every row; see ``ColumnValues/absent``.
    case attribute(UInt32)
    /// Trace-level values repeated on each row of the trace, from the trace's spans in the same source
    /// (block row group or head batch): its first start and last end (as `.timing`), and its root
    /// span's service and name (as `.ids`, 0 when the root is not there).
    case traceTiming, rootService, rootName
}

/// The values of a ``ScanColumn``, one per row (per trace for the IDs of `.traces`).
public enum ColumnValues: Sendable {
    case timing(start: [UInt64], end: [UInt64])
    case ids([UInt32])
    case bytes([UInt8])
    case ints([Int64])
    /// Token counts that all fit in 32 bits, half the width of ``ints(_:)`` (``absentTokens`` where
    /// a row has none).
    case tokens32([Int32])
    case doubles([Double])
    case words([UInt64])
    case traces(traceOf: [UInt32], high: [UInt64], low: [UInt64])
    /// Attribute payloads by type (``ValueType`` raw values; ``absent`` where a row lacks the key).
    case attribute(types: [UInt8], values: [UInt64])
    /// An attribute whose values are all strings: string IDs (``absentID`` where a row lacks the key).
    case stringAttribute([UInt32])

    /// Type byte of a row without the attribute.
    public static let absent: UInt8 = 0xFF
    /// String ID of a row without the attribute (in ``stringAttribute``).
    public static let absentID = UInt32.max
    /// A row without a token count (in ``tokens32(_:)``).
    public static let absentTokens = Int32.min

    /// A token column in its smallest form: 32-bit when every count fits (``SpanBatch/noTokens``
    /// becomes ``absentTokens``).
    static func tokens(_ values: [Int64]) -> ColumnValues {
        var narrow: [Int32] = []
        narrow.reserveCapacity(values.count)
        for v in values {
            if v == SpanBatch.noTokens {
                narrow.append(absentTokens)
            } else if v > Int64(Int32.min) && v <= Int64(Int32.max) {
                narrow.append(Int32(truncatingIfNeeded: v))
            } else {
                return .ints(values)
            }
        }
        return .tokens32(narrow)
    }

    /// An attribute column in its smallest form: string IDs when every present value is a string.
    static func attribute(_ types: [UInt8], _ values: [UInt64]) -> ColumnValues {
        let string = ValueType.string.rawValue
        guard types.allSatisfy({ $0 == string || $0 == absent }) else { return .attribute(types: types, values: values) }
        var ids = [UInt32](repeating: absentID, count: types.count)
        for i in types.indices where types[i] == string { ids[i] = UInt32(truncatingIfNeeded: values[i]) }
        return .stringAttribute(ids)
    }

    /// An attribute column (``attribute(_:_:)``'s forms) of more rows: these rows, then `tail`'s.
    public func appending(_ tail: ColumnValues) -> ColumnValues {
        if case .stringAttribute(let head) = self, case .stringAttribute(let rest) = tail { return .stringAttribute(head + rest) }
        let (headTypes, headValues) = self.attributeTypesAndValues
        let (tailTypes, tailValues) = tail.attributeTypesAndValues
        return .attribute(types: headTypes + tailTypes, values: headValues + tailValues)
    }

    /// The first `rows` rows of an attribute column.
    public func attributePrefix(_ rows: Int) -> ColumnValues {
        switch self {
        case .stringAttribute(let ids): return .stringAttribute(Array(ids.prefix(rows)))
        default:
            let (types, values) = self.attributeTypesAndValues
            return ColumnValues.attribute(Array(types.prefix(rows)), Array(values.prefix(rows)))
        }
    }

    /// An attribute column as a type byte and a value per row.
    var attributeTypesAndValues: (types: [UInt8], values: [UInt64]) {
        switch self {
        case .attribute(let types, let values): return (types, values)
        case .stringAttribute(let ids):
            let string = ValueType.string.rawValue
            return (ids.map { $0 == Self.absentID ? Self.absent : string }, ids.map { $0 == Self.absentID ? 0 : UInt64($0) })
        default: preconditionFailure("not an attribute column")
        }
    }

    /// Approximate heap size, for cache accounting.
    public var bytes: Int {
        switch self {
        case .timing(let s, let e): return (s.count + e.count) * 8
        case .ids(let v): return v.count * 4
        case .bytes(let v): return v.count
        case .ints(let v): return v.count * 8
        case .tokens32(let v): return v.count * 4
        case .doubles(let v): return v.count * 8
        case .words(let v): return v.count * 8
        case .traces(let t, let h, let l): return t.count * 4 + (h.count + l.count) * 8
        case .attribute(let t, let v): return t.count + v.count * 8
        case .stringAttribute(let v): return v.count * 4
        }
    }
}

/// Decoded scan columns shared by queries, bounded in bytes; least recently used columns go first.
public final class ColumnCache: Sendable {
    /// The cache size a node uses unless configured otherwise (`queryColumnCacheBytes`).
    public static let defaultCapacityBytes = 1 << 30

    public struct Key: Hashable, Sendable {
        public var block: UInt64
        public var group: Int
        public var column: ScanColumn
    }

    private struct Entry {
        var values: ColumnValues
        var bytes: Int
        var used: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
        var hits = 0
        var misses = 0
    }

    public let capacityBytes: Int
    private let state = Mutex(State())

    public init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    public var stats: (bytes: Int, entries: Int, hits: Int, misses: Int) {
        self.state.withLock { ($0.bytes, $0.entries.count, $0.hits, $0.misses) }
    }

    /// The cached column, or `load()`'s result (stored when it fits).
    public func values(_ key: Key, load: () throws -> ColumnValues) rethrows -> ColumnValues {
        let cached: ColumnValues? = self.state.withLock { s in
            s.clock += 1
            guard var e = s.entries[key] else {
                s.misses += 1
                return nil
            }
            s.hits += 1
            e.used = s.clock
            s.entries[key] = e
            return e.values
        }
        if let cached { return cached }
        let values = try load()
        let bytes = values.bytes + 64
        guard bytes <= self.capacityBytes / 4 else { return values }
        self.state.withLock { s in
            if let old = s.entries[key] { s.bytes -= old.bytes }
            s.entries[key] = Entry(values: values, bytes: bytes, used: s.clock)
            s.bytes += bytes
            if s.bytes > self.capacityBytes { Self.evict(&s, to: self.capacityBytes * 9 / 10) }
        }
        return values
    }

    /// Drops every column of `block` (after it is removed or replaced).
    public func remove(block: UInt64) {
        self.state.withLock { s in
            for (k, e) in s.entries where k.block == block {
                s.entries[k] = nil
                s.bytes -= e.bytes
            }
        }
    }

    private static func evict(_ s: inout State, to target: Int) {
        let order = s.entries.sorted { $0.value.used < $1.value.used }
        for (k, e) in order {
            if s.bytes <= target { break }
            s.entries[k] = nil
            s.bytes -= e.bytes
        }
    }
}

extension BlockReader {
    /// Where each trace of a group starts and which trace each row of `range` belongs to.
    struct TraceLayout {
        var spansPerTrace: [UInt64]
        var traceStarts: [UInt64]
        /// Per position in the range: the trace index.
        var traceOf: [Int]
        /// Per trace: its first row in the group.
        var firstRowOf: [Int]
    }

    func traceLayout(_ g: Int, _ range: Range<Int>) throws -> TraceLayout {
        let n = Int(self.groups.spans[g])
        let traceCount = Int(self.groups.traces[g])
        let spansPerTrace = try self.groupSection(g, "trace.spans").withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            return try r.packed()
        }
        let traceStarts = try self.groupSection(g, "trace.start").withUnsafeBytes { raw throws -> [UInt64] in
            var r = ByteReader(raw)
            var at = try r.fixed64()
            return try r.packed().map { d in
                at &+= d
                return at
            }
        }
        guard spansPerTrace.count == traceCount, traceStarts.count == traceCount, Int(spansPerTrace.reduce(0, +)) == n else {
            throw BlockFormatError("group \(g) trace columns disagree")
        }
        var traceOf: [Int] = []
        traceOf.reserveCapacity(range.count)
        var firstRowOf: [Int] = []
        firstRowOf.reserveCapacity(traceCount)
        var at = 0
        for (t, c) in spansPerTrace.enumerated() {
            firstRowOf.append(at)
            let r = at..<(at + Int(c))
            let overlap = r.clamped(to: range)
            if !overlap.isEmpty {
                guard overlap == r else { throw BlockFormatError("rows \(range) split a trace in group \(g)") }
                traceOf.append(contentsOf: repeatElement(t, count: overlap.count))
            }
            at += Int(c)
        }
        return TraceLayout(spansPerTrace: spansPerTrace, traceStarts: traceStarts, traceOf: traceOf, firstRowOf: firstRowOf)
    }

    /// Appends each row's trace ID (per position in the layout's range) to `high` and `low`.
    func appendTraceIDs(_ g: Int, _ layout: TraceLayout, high: inout [UInt64], low: inout [UInt64]) throws {
        let ids = try self.groupSection(g, "trace.id")
        guard ids.count == Int(self.groups.traces[g]) * 16 else { throw BlockFormatError("group \(g) trace.id has the wrong size") }
        ids.withUnsafeBytes { raw in
            for t in layout.traceOf {
                high.append(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: t * 16, as: UInt64.self)))
                low.append(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: t * 16 + 8, as: UInt64.self)))
            }
        }
    }

    func spanIDs(_ g: Int, _ range: Range<Int>) throws -> [UInt64] {
        let n = Int(self.groups.spans[g])
        let bytes = try self.groupSection(g, "span.id")
        guard bytes.count == n * 8 else { throw BlockFormatError("group \(g) span.id has the wrong size") }
        let base = range.lowerBound
        return bytes.withUnsafeBytes { raw in
            [UInt64](unsafeUninitializedCapacity: range.count) { dst, count in
                for p in 0..<range.count { dst[p] = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: (base + p) * 8, as: UInt64.self)) }
                count = range.count
            }
        }
    }

    /// Each row's parent as a position within its trace (1-based; 0 = none or not in the group), and
    /// the parents outside the group as (row, span ID).
    func parentLinks(_ g: Int, _ range: Range<Int>, _ layout: TraceLayout) throws -> (local: [UInt64], unresolved: [(row: Int, id: UInt64)]) {
        let n = Int(self.groups.spans[g])
        let base = range.lowerBound
        return try self.groupSection(g, "span.parent").withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            let (count, local) = try r.packed(range: range)
            guard count == n else { throw BlockFormatError("group \(g) span.parent has the wrong row count") }
            for p in 0..<range.count {
                let first = layout.firstRowOf[layout.traceOf[p]] - base
                let l = Int(local[p])
                guard l == 0 || first + l - 1 < range.count else { throw BlockFormatError("span.parent points outside its trace") }
            }
            var unresolved: [(row: Int, id: UInt64)] = []
            let count2 = try r.count(max: n)
            for _ in 0..<count2 {
                let row = try r.count(max: n - 1)
                let id = try r.fixed64()
                if range.contains(row) { unresolved.append((row, id)) }
            }
            return (local, unresolved)
        }
    }

    /// Start and end times: deltas against the parent (or the trace start) undone in row order.
    func timing(_ g: Int, _ range: Range<Int>, _ layout: TraceLayout, _ local: [UInt64]) throws -> (start: [UInt64], end: [UInt64]) {
        let m = range.count
        let base = range.lowerBound
        let startDeltas = try self.packedColumn(g, "span.start", range)
        let durationDeltas = try self.packedColumn(g, "span.duration", range)
        var start = [UInt64](repeating: 0, count: m)
        var end = [UInt64](repeating: 0, count: m)
        for p in 0..<m {
            let first = layout.firstRowOf[layout.traceOf[p]] - base
            let l = Int(local[p])
            if l > 0 && first + l - 1 < p {
                let q = first + l - 1
                let parentDuration = Int64(bitPattern: end[q] &- start[q])
                start[p] = start[q] &+ UInt64(bitPattern: unzigzag(startDeltas[p]))
                end[p] = start[p] &+ UInt64(bitPattern: parentDuration &- unzigzag(durationDeltas[p]))
            } else {
                start[p] = layout.traceStarts[layout.traceOf[p]] &+ UInt64(bitPattern: unzigzag(startDeltas[p]))
                end[p] = start[p] &+ UInt64(bitPattern: unzigzag(durationDeltas[p]))
            }
        }
        return (start, end)
    }

    /// The keys (string IDs) of the span attributes of group `g`: those of its inverted layout and
    /// those implied by typed columns. Reads the layout's key list and the implied masks only.
    public func spanAttributeKeys(_ g: Int) throws -> [UInt32] {
        let count = UInt64(self.dictionary.count)
        var keys: [UInt32] = try self.groupSection(g, "span.attributes").withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            return try r.packed().map { k throws in
                guard k < count else { throw BlockFormatError("group \(g) attribute key \(k) outside the dictionary") }
                return UInt32(k)
            }
        }
        let masks = try self.packedColumn(g, "genai.implied", 0..<Int(self.groups.spans[g])).reduce(0, |)
        for (bit, implied) in BlockCodec.impliedKeys.enumerated() where masks & (1 << UInt64(bit)) != 0 && !keys.contains(implied.key) {
            keys.append(implied.key)
        }
        return keys
    }

    /// A packed column's values over `range`.
    func packedColumn(_ g: Int, _ name: String, _ range: Range<Int>) throws -> [UInt64] {
        let n = Int(self.groups.spans[g])
        return try self.groupSection(g, name).withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            let (count, values) = try r.packed(range: range)
            guard count == n else { throw BlockFormatError("column '\(g)/\(name)' has \(count) rows, expected \(n)") }
            return values
        }
    }

    /// GenAI cost per row (NaN where absent).
    func costs(_ g: Int, _ range: Range<Int>) throws -> [Double] {
        let n = Int(self.groups.spans[g])
        let base = range.lowerBound
        return try self.groupSection(g, "genai.cost").withUnsafeBytes { raw throws -> [Double] in
            var r = ByteReader(raw)
            let present = try r.packed()
            guard present.count == n else { throw BlockFormatError("genai.cost has the wrong row count") }
            let total = present.reduce(0) { $0 + ($1 == 1 ? 1 : 0) }
            let values = r.position
            guard raw.count == values + total * 8 else { throw BlockFormatError("genai.cost has \(raw.count - values) value bytes for \(total) values") }
            var index = present[0..<base].reduce(0) { $0 + ($1 == 1 ? 1 : 0) }
            var out = [Double](repeating: .nan, count: range.count)
            for p in 0..<range.count where present[base + p] == 1 {
                out[p] = Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: values + index * 8, as: UInt64.self)))
                index += 1
            }
            return out
        }
    }

    /// One column of group `g`, all rows, decoded without the rest of the group.
    public func scanColumn(_ g: Int, _ column: ScanColumn) throws -> ColumnValues {
        let n = Int(self.groups.spans[g])
        let range = 0..<n
        let stringCount = UInt64(self.dictionary.count)
        func ids(_ name: String, limit: UInt64) throws -> [UInt32] {
            let values = try self.packedColumn(g, name, range)
            return try values.map { v throws in
                guard v < limit else { throw BlockFormatError("column '\(g)/\(name)' value \(v) out of range") }
                return UInt32(v)
            }
        }
        switch column {
        case .timing:
            let layout = try self.traceLayout(g, range)
            let (local, _) = try self.parentLinks(g, range, layout)
            let (start, end) = try self.timing(g, range, layout, local)
            return .timing(start: start, end: end)
        case .name: return .ids(try ids("span.name", limit: stringCount))
        case .statusMessage: return .ids(try ids("span.status_message", limit: stringCount))
        case .provider: return .ids(try ids("genai.provider", limit: stringCount))
        case .requestModel: return .ids(try ids("genai.request_model", limit: stringCount))
        case .responseModel: return .ids(try ids("genai.response_model", limit: stringCount))
        case .resource: return .ids(try ids("span.resource", limit: UInt64(try self.resourceCount())))
        case .kind: return .bytes(try self.packedColumn(g, "span.kind", range).map { UInt8(truncatingIfNeeded: $0) })
        case .status: return .bytes(try self.packedColumn(g, "span.status", range).map { UInt8(truncatingIfNeeded: $0) })
        case .inputTokens: return .tokens(try self.packedColumn(g, "genai.input_tokens", range).map(BlockCodec.untokens))
        case .outputTokens: return .tokens(try self.packedColumn(g, "genai.output_tokens", range).map(BlockCodec.untokens))
        case .cost: return .doubles(try self.costs(g, range))
        case .spanID: return .words(try self.spanIDs(g, range))
        case .parentSpanID:
            let layout = try self.traceLayout(g, range)
            let spanID = try self.spanIDs(g, range)
            let (local, unresolved) = try self.parentLinks(g, range, layout)
            var parent = [UInt64](repeating: 0, count: n)
            for p in 0..<n where local[p] > 0 { parent[p] = spanID[layout.firstRowOf[layout.traceOf[p]] + Int(local[p]) - 1] }
            for (row, id) in unresolved { parent[row] = id }
            return .words(parent)
        case .traces:
            let layout = try self.traceLayout(g, range)
            let (high, low) = try self.traceIDs(inGroup: g)
            guard high.count == layout.firstRowOf.count else { throw BlockFormatError("group \(g) trace.id has the wrong size") }
            return .traces(traceOf: layout.traceOf.map { UInt32($0) }, high: high, low: low)
        case .attribute(let key):
            let (types, values) = try InvertedAttributes.column(key: key, of: try self.groupSection(g, "span.attributes"), groupRows: n, stringCount: Int(stringCount))
            return ColumnValues.attribute(types, values)
        case .traceTiming, .rootService, .rootName:
            // A group holds whole traces, rows of a trace adjacent.
            let layout = try self.traceLayout(g, range)
            let (local, unresolved) = try self.parentLinks(g, range, layout)
            var isRoot = local.map { $0 == 0 }
            for (row, _) in unresolved { isRoot[row] = false }
            var bounds = layout.firstRowOf
            bounds.append(n)
            switch column {
            case .traceTiming:
                let (start, end) = try self.timing(g, range, layout, local)
                return TraceContext.timing(start, end, bounds: bounds)
            case .rootService:
                let resource = try ids("span.resource", limit: UInt64(try self.resourceCount()))
                let names = try self.blockLevelBatch(strings: StringTable()).resourceServiceName
                return .ids(TraceContext.root(isRoot, bounds: bounds) { names[Int(resource[$0])] })
            default:
                let name = try ids("span.name", limit: stringCount)
                return .ids(TraceContext.root(isRoot, bounds: bounds) { name[$0] })
            }
        }
    }

    /// Number of resources of the block (their table is block-level).
    func resourceCount() throws -> Int { try self.blockLevelBatch(strings: StringTable()).resourceCount }
}

extension InvertedAttributes {
    /// Every row's value of one key, read in place from a group's attribute section.
    static func column(key wanted: UInt32, of bytes: [UInt8], groupRows n: Int, stringCount: Int) throws -> (types: [UInt8], values: [UInt64]) {
        var types = [UInt8](repeating: ColumnValues.absent, count: n)
        var out = [UInt64](repeating: 0, count: n)
        // A span's first value of the key wins (strings come first, as in a decoded row).
        try self.visit(bytes, groupRows: n, stringCount: stringCount, key: wanted) { row, _, type, value in
            if types[row] == ColumnValues.absent {
                types[row] = type
                out[row] = value
            }
        }
        return (types, out)
    }
}

/// Trace-level columns from rows grouped by trace.
enum TraceContext {
    /// Each row's trace start and end, over traces whose rows are `order[bounds[t]..<bounds[t+1]]`
    /// (`order` nil: rows in order).
    static func timing(_ start: [UInt64], _ end: [UInt64], bounds: [Int], order: [Int]? = nil) -> ColumnValues {
        var traceStart = [UInt64](repeating: 0, count: start.count), traceEnd = [UInt64](repeating: 0, count: start.count)
        for t in 0..<(bounds.count - 1) {
            let positions = bounds[t]..<bounds[t + 1]
            var lo = UInt64.max, hi: UInt64 = 0
            for p in positions {
                let row = order?[p] ?? p
                lo = min(lo, start[row])
                hi = max(hi, end[row])
            }
            for p in positions {
                let row = order?[p] ?? p
                traceStart[row] = lo
                traceEnd[row] = max(hi, lo)
            }
        }
        return .timing(start: traceStart, end: traceEnd)
    }

    /// Each row's value of its trace's root span (the first row that `isRoot`), 0 when none.
    static func root(_ isRoot: [Bool], bounds: [Int], order: [Int]? = nil, _ value: (Int) -> UInt32) -> [UInt32] {
        var out = [UInt32](repeating: 0, count: isRoot.count)
        for t in 0..<(bounds.count - 1) {
            let positions = bounds[t]..<bounds[t + 1]
            guard let root = positions.first(where: { isRoot[order?[$0] ?? $0] }) else { continue }
            let v = value(order?[root] ?? root)
            for p in positions { out[order?[p] ?? p] = v }
        }
        return out
    }
}

extension SpanBatch {
    /// Rows grouped by trace: the order and where each trace starts (and the end).
    func traceOrder() -> (order: [Int], bounds: [Int]) {
        var rowsOf: [TraceID: [Int]] = [:]
        for row in 0..<self.spanCount { rowsOf[self.traceID(row), default: []].append(row) }
        var order: [Int] = []
        order.reserveCapacity(self.spanCount)
        var bounds = [0]
        for rows in rowsOf.values {
            order += rows
            bounds.append(order.count)
        }
        return (order, bounds)
    }

    /// One column of this batch in scan form (the same shape a block group gives).
    public func scanColumn(_ column: ScanColumn) -> ColumnValues {
        switch column {
        case .traceTiming:
            let (order, bounds) = self.traceOrder()
            return TraceContext.timing(self.startTime, self.endTime, bounds: bounds, order: order)
        case .rootService, .rootName:
            let (order, bounds) = self.traceOrder()
            let isRoot = self.parentSpanID.map { $0 == 0 }
            if column == .rootName { return .ids(TraceContext.root(isRoot, bounds: bounds, order: order) { self.name[$0] }) }
            return .ids(TraceContext.root(isRoot, bounds: bounds, order: order) { self.resourceServiceName[Int(self.resourceIndex[$0])] })
        case .timing: return .timing(start: self.startTime, end: self.endTime)
        case .name: return .ids(self.name)
        case .statusMessage: return .ids(self.statusMessage)
        case .provider: return .ids(self.genAIProvider)
        case .requestModel: return .ids(self.genAIRequestModel)
        case .responseModel: return .ids(self.genAIResponseModel)
        case .resource: return .ids(self.resourceIndex)
        case .kind: return .bytes(self.kind)
        case .status: return .bytes(self.statusCode)
        case .inputTokens: return .ints(self.inputTokens)
        case .outputTokens: return .ints(self.outputTokens)
        case .cost: return .doubles(self.cost)
        case .spanID: return .words(self.spanID)
        case .parentSpanID: return .words(self.parentSpanID)
        case .traces:
            return .traces(traceOf: Array(0..<UInt32(self.spanCount)), high: self.traceHigh, low: self.traceLow)
        case .attribute(let key): return self.attributeColumn(key, rows: 0..<self.spanCount)
        }
    }

    /// The span attribute `key` of `rows` (their first value of it, as scans read it) in scan form.
    public func attributeColumn(_ key: UInt32, rows: Range<Int>) -> ColumnValues {
        var types = [UInt8](repeating: ColumnValues.absent, count: rows.count)
        var values = [UInt64](repeating: 0, count: rows.count)
        for row in rows {
            for i in self.attrRange(row) where self.attrs.keys[i] == key {
                types[row - rows.lowerBound] = self.attrs.types[i]
                values[row - rows.lowerBound] = self.attrs.values[i]
                break
            }
        }
        return ColumnValues.attribute(types, values)
    }
}
