import WeftModel
import WeftStorageEngine

/// The strings a source's IDs refer to: a head batch's table or a block's dictionary.
struct SourceStrings {
    let table: StringTable?
    let dictionary: BlockDictionary?
    /// Strings beyond the table's (IDs from its count on): trace-level values taken from other head chunks.
    var extra: [String] = []

    init(table: StringTable?, dictionary: BlockDictionary?, extra: [String] = []) {
        self.table = table
        self.dictionary = dictionary
        self.extra = extra
    }

    var base: Int { self.table?.count ?? self.dictionary?.count ?? 0 }
    var count: Int { self.base + self.extra.count }

    func lookup(_ s: String) throws -> UInt32? {
        let found = try self.table.map { $0.lookup(s) } ?? self.dictionary?.lookup(s)
        if let found { return found }
        return self.extra.firstIndex(of: s).map { UInt32(self.base + $0) }
    }

    /// Calls `body` with the UTF-8 bytes of string `id`.
    private func withBytes<R>(_ id: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if Int(id) >= self.base {
            var s = self.extra[Int(id) - self.base]
            return try s.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
        }
        if let table { return try table.withBytes(id, body) }
        guard let dictionary else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try dictionary.withBytes(id, body)
    }

    /// Calls `body` with each of `ids` (ascending; for an in-memory table, any order with its own strings
    /// before the extras) and its UTF-8 bytes; a block's dictionary pages are read once each, not once per string.
    func forEachBytes(_ ids: [UInt32], _ body: (UInt32, UnsafeRawBufferPointer) throws -> Void) throws {
        let inBase = ids.prefix { Int($0) < self.base }
        if let dictionary, self.table == nil {
            try inBase.withUnsafeBufferPointer { try dictionary.forEachBytes($0, body) }
        } else {
            for id in inBase { try self.withBytes(id) { try body(id, $0) } }
        }
        for id in ids[inBase.endIndex...] { try self.withBytes(id) { try body(id, $0) } }
    }

    func string(_ id: UInt32) throws -> String {
        if Int(id) >= self.base { return self.extra[Int(id) - self.base] }
        if let table { return table.string(id) }
        return try self.dictionary?.string(id) ?? ""
    }

    /// IDs of the strings a regular expression matches in full (checking the query's deadline as it goes).
    func matching(_ regex: TraceQLRegex, _ limits: AggregationLimits) throws -> Set<UInt32> {
        let matcher = regex.matcher()
        var ids = Set<UInt32>()
        for id in 0..<UInt32(self.count) {
            if id & 1023 == 0 { try limits.check() }
            if matcher.matches(try self.string(id)) { ids.insert(id) }
        }
        return ids
    }
}

/// How a ``TraceQLField`` is read in one source (strings resolved to its IDs).
enum FieldPlan: Equatable {
    case duration
    /// The trace's duration (first start to last end of its spans in the same source).
    case traceDuration
    /// A string-ID column; `zeroIsAbsent` for typed GenAI columns (ID 0, the empty string, means unset).
    case ids(ScanColumn, zeroIsAbsent: Bool)
    /// The resource's `service.name`.
    case service
    case status
    case kind
    /// Token counts (``SpanBatch/noTokens`` when unset).
    case tokens(ScanColumn)
    /// Cost (NaN when unset).
    case cost
    /// A generic attribute; `key` nil when the source never saw the key.
    case attribute(TraceQLField.Scope, key: UInt32?)

    static let costKeys: Set<String> = ["gen_ai.usage.cost", "gen_ai.cost.usd", "gen_ai.cost.total_cost", "gen_ai.usage.total_cost"]

    init(_ field: TraceQLField, _ strings: SourceStrings) throws {
        switch field {
        case .intrinsic(let i):
            switch i {
            case .name: self = .ids(.name, zeroIsAbsent: false)
            case .statusMessage: self = .ids(.statusMessage, zeroIsAbsent: false)
            case .status: self = .status
            case .kind: self = .kind
            case .duration: self = .duration
            case .rootServiceName: self = .ids(.rootService, zeroIsAbsent: true)
            case .rootName: self = .ids(.rootName, zeroIsAbsent: true)
            case .traceDuration: self = .traceDuration
            }
        case .attribute(let scope, let key):
            if scope != .span && key == "service.name" {
                self = .service
                return
            }
            if scope != .resource {
                switch key {
                case "gen_ai.provider.name", "gen_ai.system": self = .ids(.provider, zeroIsAbsent: true); return
                case "gen_ai.request.model": self = .ids(.requestModel, zeroIsAbsent: true); return
                case "gen_ai.response.model": self = .ids(.responseModel, zeroIsAbsent: true); return
                case "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens": self = .tokens(.inputTokens); return
                case "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens": self = .tokens(.outputTokens); return
                default: if Self.costKeys.contains(key) { self = .cost; return }
                }
            }
            self = .attribute(scope, key: try strings.lookup(key))
        }
    }

    /// Columns this field reads (besides the resource table).
    var columns: [ScanColumn] {
        switch self {
        case .duration: return [.timing]
        case .traceDuration: return [.traceTiming]
        case .ids(let c, _), .tokens(let c): return [c]
        case .service: return [.resource]
        case .status: return [.status]
        case .kind: return [.kind]
        case .cost: return [.cost]
        case .attribute(let scope, let key):
            guard let key else { return [] }
            switch scope {
            case .span: return [.attribute(key)]
            case .resource: return [.resource]
            case .any: return [.attribute(key), .resource]
            }
        }
    }
}

/// A chunk's columns, fetched once each on first use.
final class ChunkColumns {
    let rows: Int
    private let fetch: (ScanColumn) throws -> ColumnValues
    private var fetched: [ScanColumn: ColumnValues] = [:]

    /// Columns a source has built already, read before ``readOnly(_:of:)`` fills one for a few rows.
    private let kept: ((ScanColumn) -> ColumnValues?)?

    init(rows: Int, fetch: @escaping (ScanColumn) throws -> ColumnValues) {
        self.rows = rows
        self.fetch = fetch
        self.kept = nil
    }

    /// A head chunk's columns (the columns it keeps once sealed, see ``HeadChunk/scanColumn(_:)``);
    /// `given` replaces any of them.
    init(head: HeadChunk, _ given: [ScanColumn: ColumnValues] = [:]) {
        self.rows = head.spanCount
        self.fetch = { c in given[c] ?? head.scanColumn(c) }
        self.kept = { c in given[c] ?? head.keptColumn(c) }
    }

    /// Set by ``readOnly(_:of:)``: the only rows read from then on, and the head batch they are in.
    private var onlyRows: [Int32]?
    private var sparseBatch: SpanBatch?

    /// Declares that only `rows` of the head batch `batch` are read from now on: span attribute
    /// columns not yet fetched are filled for those rows alone (the others read as absent).
    func readOnly(_ rows: [Int32], of batch: SpanBatch) {
        self.onlyRows = rows
        self.sparseBatch = batch
    }

    func values(_ c: ScanColumn) throws -> ColumnValues {
        if let v = self.fetched[c] { return v }
        if let v = self.kept?(c) {
            self.fetched[c] = v
            return v
        }
        if case .attribute(let key) = c, let rows = self.onlyRows, let batch = self.sparseBatch {
            var types = [UInt8](repeating: ColumnValues.absent, count: batch.spanCount)
            var values = [UInt64](repeating: 0, count: batch.spanCount)
            for row in rows {
                for i in batch.attrRange(Int(row)) where batch.attrs.keys[i] == key {
                    types[Int(row)] = batch.attrs.types[i]
                    values[Int(row)] = batch.attrs.values[i]
                    break
                }
            }
            let v = ColumnValues.attribute(types: types, values: values)
            self.fetched[c] = v
            return v
        }
        let v = try self.fetch(c)
        self.fetched[c] = v
        return v
    }

    /// Span times (`.timing`) or trace times (`.traceTiming`).
    func timing(_ c: ScanColumn = .timing) throws -> (start: [UInt64], end: [UInt64]) {
        guard case .timing(let s, let e) = try self.values(c), s.count == self.rows, e.count == self.rows else { throw Self.shape(c) }
        return (s, e)
    }

    func ids(_ c: ScanColumn) throws -> [UInt32] {
        guard case .ids(let v) = try self.values(c), v.count == self.rows else { throw Self.shape(c) }
        return v
    }

    func bytes(_ c: ScanColumn) throws -> [UInt8] {
        guard case .bytes(let v) = try self.values(c), v.count == self.rows else { throw Self.shape(c) }
        return v
    }

    func ints(_ c: ScanColumn) throws -> [Int64] {
        guard case .ints(let v) = try self.values(c), v.count == self.rows else { throw Self.shape(c) }
        return v
    }

    func words(_ c: ScanColumn) throws -> [UInt64] {
        guard case .words(let v) = try self.values(c), v.count == self.rows else { throw Self.shape(c) }
        return v
    }

    func doubles(_ c: ScanColumn) throws -> [Double] {
        guard case .doubles(let v) = try self.values(c), v.count == self.rows else { throw Self.shape(c) }
        return v
    }

    /// An attribute column: string IDs when all its values are strings, else (type, payload) pairs.
    func attribute(_ key: UInt32) throws -> ColumnValues {
        let v = try self.values(.attribute(key))
        switch v {
        case .stringAttribute(let ids) where ids.count == self.rows: return v
        case .attribute(let t, let p) where t.count == self.rows && p.count == self.rows: return v
        default: throw Self.shape(.attribute(key))
        }
    }

    private static func shape(_ c: ScanColumn) -> BlockFormatError { BlockFormatError("column \(c) has the wrong shape") }
}

/// Per-row access to one field of a chunk as (type, payload): ``ValueType`` raw values, with
/// ``ColumnValues/absent`` where the span has no value.
struct FieldReader {
    enum Source {
        case duration(start: [UInt64], end: [UInt64])
        case ids([UInt32], zeroIsAbsent: Bool)
        case service(resource: [UInt32], names: [UInt32])
        case small([UInt8])
        case tokens([Int64])
        /// Token counts in 32 bits, ``ColumnValues/absentTokens`` when unset.
        case tokens32([Int32])
        case cost([Double])
        /// A span attribute (no resource fallback) whose values are all strings: IDs, ``ColumnValues/absentID`` when unset.
        case attributeIDs([UInt32])
        /// Span values (if read) then the resource's (if in scope).
        case attribute(types: [UInt8]?, values: [UInt64]?, resource: [UInt32]?, resourceTypes: [UInt8], resourceValues: [UInt64])
        case absent
    }

    let source: Source
    let plan: FieldPlan

    init(_ plan: FieldPlan, _ chunk: ChunkColumns, _ resources: SpanBatch) throws {
        self.plan = plan
        switch plan {
        case .duration:
            let (s, e) = try chunk.timing()
            self.source = .duration(start: s, end: e)
        case .traceDuration:
            let (s, e) = try chunk.timing(.traceTiming)
            self.source = .duration(start: s, end: e)
        case .ids(let c, let zero): self.source = .ids(try chunk.ids(c), zeroIsAbsent: zero)
        case .service: self.source = .service(resource: try chunk.ids(.resource), names: resources.resourceServiceName)
        case .status: self.source = .small(try chunk.bytes(.status))
        case .kind: self.source = .small(try chunk.bytes(.kind))
        case .tokens(let c):
            if case .tokens32(let v) = try chunk.values(c), v.count == chunk.rows {
                self.source = .tokens32(v)
            } else {
                self.source = .tokens(try chunk.ints(c))
            }
        case .cost: self.source = .cost(try chunk.doubles(.cost))
        case .attribute(let scope, let key):
            guard let key else {
                self.source = .absent
                return
            }
            var spanTypes: [UInt8]?, spanValues: [UInt64]?
            if scope != .resource {
                switch try chunk.attribute(key) {
                case .stringAttribute(let ids):
                    if scope == .span {
                        self.source = .attributeIDs(ids)
                        return
                    }
                    spanTypes = ids.map { $0 == ColumnValues.absentID ? ColumnValues.absent : ValueType.string.rawValue }
                    spanValues = ids.map { UInt64($0) }
                case .attribute(let t, let v): (spanTypes, spanValues) = (t, v)
                default: break
                }
            }
            var resource: [UInt32]?
            var rTypes: [UInt8] = [], rValues: [UInt64] = []
            if scope != .span {
                resource = try chunk.ids(.resource)
                rTypes = [UInt8](repeating: ColumnValues.absent, count: resources.resourceCount)
                rValues = [UInt64](repeating: 0, count: resources.resourceCount)
                for r in 0..<resources.resourceCount {
                    for i in resources.resourceAttrRange(r) where resources.resourceAttrs.keys[i] == key {
                        rTypes[r] = resources.resourceAttrs.types[i]
                        rValues[r] = resources.resourceAttrs.values[i]
                        break
                    }
                }
                for r in resource! where Int(r) >= resources.resourceCount { throw BlockFormatError("span resource \(r) outside the resource table") }
            }
            self.source = .attribute(types: spanTypes, values: spanValues, resource: resource, resourceTypes: rTypes, resourceValues: rValues)
        }
    }

    static let string = ValueType.string.rawValue
    static let int = ValueType.int.rawValue
    static let double = ValueType.double.rawValue
    static let bool = ValueType.bool.rawValue
    static let absent = ColumnValues.absent

    /// The row's value as (type, payload). Status and kind read as integers.
    @inline(__always) func value(_ row: Int) -> (UInt8, UInt64) {
        switch self.source {
        case .duration(let s, let e): return (Self.int, e[row] > s[row] ? e[row] - s[row] : 0)
        case .ids(let ids, let zero):
            let id = ids[row]
            return zero && id == 0 ? (Self.absent, 0) : (Self.string, UInt64(id))
        case .service(let resource, let names): return (Self.string, UInt64(names[Int(resource[row])]))
        case .small(let v): return (Self.int, UInt64(v[row]))
        case .tokens(let v): return v[row] == SpanBatch.noTokens ? (Self.absent, 0) : (Self.int, UInt64(bitPattern: v[row]))
        case .tokens32(let v): return v[row] == ColumnValues.absentTokens ? (Self.absent, 0) : (Self.int, UInt64(bitPattern: Int64(v[row])))
        case .cost(let v): return v[row].isNaN ? (Self.absent, 0) : (Self.double, v[row].bitPattern)
        case .attributeIDs(let ids): return ids[row] == ColumnValues.absentID ? (Self.absent, 0) : (Self.string, UInt64(ids[row]))
        case .attribute(let types, let values, let resource, let rTypes, let rValues):
            if let types, types[row] != Self.absent { return (types[row], values![row]) }
            if let resource {
                let r = Int(resource[row])
                return (rTypes[r], rValues[r])
            }
            return (Self.absent, 0)
        case .absent: return (Self.absent, 0)
        }
    }

    /// The row's value as a number, if it is one.
    @inline(__always) func number(_ row: Int) -> Double? {
        let (t, v) = self.value(row)
        switch t {
        case Self.int: return Double(Int64(bitPattern: v))
        case Self.double: return Double(bitPattern: v)
        default: return nil
        }
    }

    /// The group-by value of (type, payload), strings looked up in `strings`.
    func groupValue(_ type: UInt8, _ payload: UInt64, _ strings: SourceStrings) throws -> GroupValue {
        switch (self.plan, type) {
        case (.status, _), (.kind, _): return CodeNames.groupValue(self.plan, payload)
        case (_, Self.absent): return .absent
        case (_, Self.int): return .int(Int64(bitPattern: payload))
        case (_, Self.double): return .double(Double(bitPattern: payload))
        case (_, Self.bool): return .bool(payload != 0)
        default:
            if ValueType(rawValue: type)?.isInterned ?? false { return .string(try strings.string(UInt32(truncatingIfNeeded: payload))) }
            return .absent
        }
    }
}

/// A span filter resolved against one source: string values become ID sets.
indirect enum FilterPlan {
    case all
    case none
    case and(FilterPlan, FilterPlan)
    case or(FilterPlan, FilterPlan)
    case test(FieldPlan, Predicate)

    enum Predicate {
        /// A string equal to one of `ids` (or, negated, a string not among them).
        case ids(Set<UInt32>, negate: Bool)
        case number(TraceQLOperator, Double)
        case bool(equal: Bool, Bool)
        /// Status or kind code.
        case code(equal: Bool, UInt8)
        /// `field != nil` (true) or `field = nil` (false).
        case exists(Bool)
    }

    init(_ filter: TraceQLFilter, _ strings: SourceStrings, _ limits: AggregationLimits) throws {
        switch filter {
        case .all: self = .all
        case .and(let a, let b):
            let (x, y) = (try FilterPlan(a, strings, limits), try FilterPlan(b, strings, limits))
            switch (x, y) {
            case (.none, _), (_, .none): self = .none
            case (.all, _): self = y
            case (_, .all): self = x
            // A `!=` string test passes most rows: the other side first, so it tests fewer.
            case (.test(_, .ids(_, negate: true)), _) where !y.isStringInequality: self = .and(y, x)
            default: self = .and(x, y)
            }
        case .or(let a, let b):
            let (x, y) = (try FilterPlan(a, strings, limits), try FilterPlan(b, strings, limits))
            switch (x, y) {
            case (.all, _), (_, .all): self = .all
            case (.none, _): self = y
            case (_, .none): self = x
            default: self = .or(x, y)
            }
        case .comparison(let field, let op, let value):
            let plan = try FieldPlan(field, strings)
            if value == .absent {
                // An attribute the source never saw exists nowhere in it.
                if case .attribute(_, nil) = plan { self = op == .equal ? .all : .none } else { self = .test(plan, .exists(op == .notEqual)) }
                return
            }
            if case .attribute(_, nil) = plan {
                self = .none
                return
            }
            switch (plan, value) {
            case (.status, .status(let code)): self = .test(plan, .code(equal: op == .equal, code))
            case (.kind, .kind(let k)): self = .test(plan, .code(equal: op == .equal, k))
            case (.duration, .duration(let d)), (.traceDuration, .duration(let d)): self = .test(plan, .number(op, Double(d)))
            case (.duration, .int(let i)), (.traceDuration, .int(let i)): self = .test(plan, .number(op, Double(i)))
            case (.duration, .float(let f)), (.traceDuration, .float(let f)): self = .test(plan, .number(op, f))
            case (.status, _), (.kind, _), (.duration, _), (.traceDuration, _): self = .none
            case (_, .string(let s)):
                switch op {
                case .equal, .notEqual:
                    let ids: Set<UInt32> = try strings.lookup(s).map { [$0] } ?? []
                    // A value the source never saw: nothing is equal to it.
                    self = ids.isEmpty && op == .equal ? .none : .test(plan, .ids(ids, negate: op == .notEqual))
                case .matches, .notMatches:
                    guard let regex = try? TraceQLRegex(s) else {
                        self = .none
                        return
                    }
                    let ids = try strings.matching(regex, limits)
                    self = ids.isEmpty && op == .matches ? .none : .test(plan, .ids(ids, negate: op == .notMatches))
                default:
                    self = .none
                }
            case (_, .int(let i)): self = .test(plan, .number(op, Double(i)))
            case (_, .float(let f)): self = .test(plan, .number(op, f))
            case (_, .duration(let d)): self = .test(plan, .number(op, Double(d)))
            case (_, .bool(let b)) where op == .equal || op == .notEqual: self = .test(plan, .bool(equal: op == .equal, b))
            default: self = .none
            }
        }
    }

    /// Whether this is a `!=` (or `!~`) test of a string field.
    var isStringInequality: Bool {
        if case .test(_, .ids(_, negate: true)) = self { return true }
        return false
    }

    /// Fields the filter reads.
    var fields: [FieldPlan] {
        switch self {
        case .all, .none: return []
        case .and(let a, let b), .or(let a, let b): return a.fields + b.fields
        case .test(let f, _): return [f]
        }
    }

    /// The rows of `candidates` (ascending) that pass.
    func select(_ candidates: [Int32], _ chunk: ChunkColumns, _ resources: SpanBatch) throws -> [Int32] {
        switch self {
        case .all: return candidates
        case .none: return []
        case .and(let a, let b):
            let first = try a.select(candidates, chunk, resources)
            return first.isEmpty ? [] : try b.select(first, chunk, resources)
        case .or(let a, let b):
            let x = try a.select(candidates, chunk, resources)
            if x.count == candidates.count { return x }
            let y = try b.select(candidates, chunk, resources)
            return Self.union(x, y)
        case .test(let field, let predicate):
            let reader = try FieldReader(field, chunk, resources)
            return Self.test(reader, predicate, candidates)
        }
    }

    private static func test(_ reader: FieldReader, _ predicate: Predicate, _ candidates: [Int32]) -> [Int32] {
        switch (predicate, reader.source) {
        case (.exists(let present), _):
            return keep(candidates) { (reader.value($0).0 != FieldReader.absent) == present }
        case (.ids(let ids, let negate), .ids(let column, let zero)) where ids.count <= 1:
            // `field = "value"` / `field != "value"` on a string column: integer compares per row.
            let id = ids.first ?? UInt32.max
            return column.withUnsafeBufferPointer { c in
                if !negate {
                    if zero && id == 0 { return [] }
                    return keep(candidates) { c[$0] == id }
                }
                return zero ? keep(candidates) { c[$0] != id && c[$0] != 0 } : keep(candidates) { c[$0] != id }
            }
        case (.ids(let ids, let negate), .attributeIDs(let column)) where ids.count <= 1:
            let id = ids.first ?? UInt32.max - 1
            return column.withUnsafeBufferPointer { c in
                negate ? keep(candidates) { c[$0] != id && c[$0] != ColumnValues.absentID } : keep(candidates) { c[$0] == id }
            }
        case (.ids(let ids, let negate), .service(let resource, let names)):
            // Decided once per resource.
            let match = names.map { ids.contains($0) != negate }
            return match.withUnsafeBufferPointer { m in
                resource.withUnsafeBufferPointer { r in keep(candidates) { m[Int(r[$0])] } }
            }
        case (.number(let op, let x), .cost(let column)):
            // NaN (no cost) passes no comparison, `!=` included.
            return column.withUnsafeBufferPointer { c in
                op == .notEqual ? keep(candidates) { !c[$0].isNaN && c[$0] != x } : compare(candidates, op, x) { c[$0] }
            }
        case (.number(let op, let x), .tokens(let column)):
            return column.withUnsafeBufferPointer { c in
                keep(candidates) { c[$0] != SpanBatch.noTokens && CompiledTraceQLFilter.compare(Double(c[$0]), op, x) }
            }
        case (.number(let op, let x), .tokens32(let column)):
            return column.withUnsafeBufferPointer { c in
                keep(candidates) { c[$0] != ColumnValues.absentTokens && CompiledTraceQLFilter.compare(Double(c[$0]), op, x) }
            }
        case (.ids(let ids, let negate), _):
            return keep(candidates) { row in
                let (t, v) = reader.value(row)
                guard t != FieldReader.absent, ValueType(rawValue: t)?.isInterned ?? false else { return false }
                return ids.contains(UInt32(truncatingIfNeeded: v)) != negate
            }
        case (.number(let op, let x), .duration(let s, let e)):
            return s.withUnsafeBufferPointer { s in
                e.withUnsafeBufferPointer { e in
                    compare(candidates, op, x) { r in Double(e[r] > s[r] ? e[r] - s[r] : 0) }
                }
            }
        case (.number(let op, let x), _):
            return keep(candidates) { row in
                guard let v = reader.number(row) else { return false }
                return CompiledTraceQLFilter.compare(v, op, x)
            }
        case (.bool(let equal, let b), _):
            return keep(candidates) { row in
                let (t, v) = reader.value(row)
                return t == FieldReader.bool && ((v != 0) == b) == equal
            }
        case (.code(let equal, let code), .small(let column)):
            return column.withUnsafeBufferPointer { c in
                equal ? keep(candidates) { c[$0] == code } : keep(candidates) { c[$0] != code }
            }
        case (.code, _):
            return []
        }
    }

    /// The candidates (ascending rows) that pass `pass`, written without a branch per row.
    @inline(__always)
    static func keep(_ candidates: [Int32], _ pass: (Int) -> Bool) -> [Int32] {
        [Int32](unsafeUninitializedCapacity: candidates.count) { out, count in
            var n = 0
            candidates.withUnsafeBufferPointer { rows in
                for row in rows {
                    out[n] = row
                    // As an integer, not a `? :`: for float compares the compiler made that a branch
                    // on each row's value, which the profile showed as the filter's hot spot.
                    n &+= Int(unsafeBitCast(pass(Int(row)), to: UInt8.self))
                }
            }
            count = n
        }
    }

    /// The candidates whose `value` compares to `x` by `op` (the operator chosen once, not per row).
    @inline(__always)
    static func compare(_ candidates: [Int32], _ op: TraceQLOperator, _ x: Double, _ value: (Int) -> Double) -> [Int32] {
        switch op {
        case .equal: return keep(candidates) { value($0) == x }
        case .notEqual: return keep(candidates) { value($0) != x }
        case .greater: return keep(candidates) { value($0) > x }
        case .greaterOrEqual: return keep(candidates) { value($0) >= x }
        case .less: return keep(candidates) { value($0) < x }
        case .lessOrEqual: return keep(candidates) { value($0) <= x }
        case .matches, .notMatches: return []
        }
    }

    static func union(_ a: [Int32], _ b: [Int32]) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count || j < b.count {
            if j == b.count || (i < a.count && a[i] < b[j]) {
                out.append(a[i])
                i += 1
            } else if i == a.count || b[j] < a[i] {
                out.append(b[j])
                j += 1
            } else {
                out.append(a[i])
                i += 1
                j += 1
            }
        }
        return out
    }
}


/// Trace-level values of the traces in the head, over all its chunks: a trace's spans often arrive in
/// different requests (one per service) and so in different chunks.
final class HeadTraceContext: @unchecked Sendable {
    struct Trace {
        var start = UInt64.max
        var end: UInt64 = 0
        var service: String?
        var name: String?
    }

    let traces: [TraceID: Trace]

    init(_ chunks: [HeadChunk]) {
        var traces: [TraceID: Trace] = [:]
        for chunk in chunks {
            let b = chunk.batch
            for row in 0..<b.spanCount {
                let id = b.traceID(row)
                var t = traces[id] ?? Trace()
                t.start = min(t.start, b.startTime[row])
                t.end = max(t.end, b.endTime[row])
                if b.parentSpanID[row] == 0 && t.service == nil {
                    t.service = b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])])
                    t.name = b.strings.string(b.name[row])
                }
                traces[id] = t
            }
        }
        self.traces = traces
    }

    /// Whether a query reads trace-level intrinsics.
    static func needed(_ query: AggregationQuery) -> Bool {
        func fields(_ f: TraceQLFilter) -> [TraceQLField] {
            switch f {
            case .all: return []
            case .and(let a, let b), .or(let a, let b): return fields(a) + fields(b)
            case .comparison(let field, _, _): return [field]
            }
        }
        return (fields(query.filter) + query.groupBy + query.aggregates.compactMap(\.field)).contains {
            $0 == .intrinsic(.rootServiceName) || $0 == .intrinsic(.rootName) || $0 == .intrinsic(.traceDuration)
        }
    }

    /// One chunk's trace-level columns, and the strings they use that the chunk's table lacks.
    func columns(_ batch: SpanBatch) -> (columns: [ScanColumn: ColumnValues], extra: [String]) {
        var extra: [String] = []
        var extraIDs: [String: UInt32] = [:]
        func id(_ s: String?) -> UInt32 {
            guard let s else { return 0 }
            if let id = batch.strings.lookup(s) { return id }
            if let id = extraIDs[s] { return id }
            let id = UInt32(batch.strings.count + extra.count)
            extra.append(s)
            extraIDs[s] = id
            return id
        }
        let n = batch.spanCount
        var start = [UInt64](repeating: 0, count: n), end = [UInt64](repeating: 0, count: n)
        var service = [UInt32](repeating: 0, count: n), name = [UInt32](repeating: 0, count: n)
        for row in 0..<n {
            guard let t = self.traces[batch.traceID(row)] else { continue }
            start[row] = t.start
            end[row] = max(t.end, t.start)
            service[row] = id(t.service)
            name[row] = id(t.name)
        }
        return ([.traceTiming: .timing(start: start, end: end), .rootService: .ids(service), .rootName: .ids(name)], extra)
    }

    /// A head chunk's columns and strings, the trace-level ones from this context.
    func source(_ head: HeadChunk) -> (ChunkColumns, SourceStrings) {
        let batch = head.batch
        let (columns, extra) = self.columns(batch)
        return (ChunkColumns(head: head, columns), SourceStrings(table: batch.strings, dictionary: nil, extra: extra))
    }
}
