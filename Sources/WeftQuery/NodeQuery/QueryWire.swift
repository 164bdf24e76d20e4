import WeftModel
import WeftStorageEngine

/// Byte forms of the query values requests are built of: TraceQL filters and fields, aggregation
/// queries and optional numbers (strings, trace IDs, group values and statistics are in
/// WeftAggregates). Readers validate and throw ``BlockFormatError`` on anything malformed.
extension ByteWriter {
    mutating func field(_ f: TraceQLField) {
        switch f {
        case .intrinsic(let i):
            self.varint(0)
            self.string(i.rawValue)
        case .attribute(let scope, let key):
            self.varint(1)
            self.string(scope.rawValue)
            self.string(key)
        }
    }

    mutating func filter(_ f: TraceQLFilter) {
        switch f {
        case .all: self.varint(0)
        case .comparison(let field, let op, let value):
            self.varint(1)
            self.field(field)
            self.string(op.rawValue)
            switch value {
            case .string(let s):
                self.varint(0)
                self.string(s)
            case .int(let i):
                self.varint(1)
                self.fixed64(UInt64(bitPattern: i))
            case .float(let d):
                self.varint(2)
                self.fixed64(d.bitPattern)
            case .duration(let n):
                self.varint(3)
                self.varint(n)
            case .bool(let b): self.varint(b ? 5 : 4)
            case .status(let s):
                self.varint(6)
                self.varint(UInt64(s))
            case .kind(let k):
                self.varint(7)
                self.varint(UInt64(k))
            case .absent: self.varint(8)
            }
        case .and(let a, let b):
            self.varint(2)
            self.filter(a)
            self.filter(b)
        case .or(let a, let b):
            self.varint(3)
            self.filter(a)
            self.filter(b)
        }
    }

    mutating func aggregationQuery(_ q: AggregationQuery) {
        self.filter(q.filter)
        self.varint(UInt64(q.groupBy.count))
        for f in q.groupBy { self.field(f) }
        self.varint(UInt64(q.aggregates.count))
        for a in q.aggregates {
            switch a {
            case .count: self.varint(0)
            case .sum(let f):
                self.varint(1)
                self.field(f)
            case .avg(let f):
                self.varint(2)
                self.field(f)
            case .min(let f):
                self.varint(3)
                self.field(f)
            case .max(let f):
                self.varint(4)
                self.field(f)
            case .quantiles(let f, let qs):
                self.varint(5)
                self.field(f)
                self.varint(UInt64(qs.count))
                for q in qs { self.fixed64(q.bitPattern) }
            case .histogram(let f):
                self.varint(6)
                self.field(f)
            }
        }
        self.fixed64(q.startNanos)
        self.fixed64(q.endNanos)
        self.optional(q.stepNanos)
    }

    mutating func optional(_ v: UInt64?) {
        if let v {
            self.varint(1)
            self.fixed64(v)
        } else {
            self.varint(0)
        }
    }
}

extension ByteReader {
    /// Nesting a decoded filter may have (deeper input is refused rather than recursed into).
    static let maxFilterDepth = 200
    /// Most time steps a decoded aggregation may have.
    static let maxSteps = 1 << 20

    mutating func field() throws(BlockFormatError) -> TraceQLField {
        switch try self.varint() {
        case 0:
            let name = try self.string()
            guard let i = TraceQLField.Intrinsic(rawValue: name) else { throw BlockFormatError("unknown intrinsic '\(name)'") }
            return .intrinsic(i)
        case 1:
            let scopeName = try self.string()
            guard let scope = TraceQLField.Scope(rawValue: scopeName) else { throw BlockFormatError("unknown scope '\(scopeName)'") }
            return .attribute(scope, try self.string())
        default: throw BlockFormatError("unknown field type")
        }
    }

    mutating func filter(depth: Int = 0) throws(BlockFormatError) -> TraceQLFilter {
        guard depth < Self.maxFilterDepth else { throw BlockFormatError("filter nested too deeply") }
        switch try self.varint() {
        case 0: return .all
        case 1:
            let field = try self.field()
            let opName = try self.string()
            guard let op = TraceQLOperator(rawValue: opName) else { throw BlockFormatError("unknown operator '\(opName)'") }
            let value: TraceQLValue
            switch try self.varint() {
            case 0: value = .string(try self.string())
            case 1: value = .int(Int64(bitPattern: try self.fixed64()))
            case 2: value = .float(Double(bitPattern: try self.fixed64()))
            case 3: value = .duration(try self.varint())
            case 4: value = .bool(false)
            case 5: value = .bool(true)
            case 6: value = .status(UInt8(try self.count(max: 255)))
            case 7: value = .kind(UInt8(try self.count(max: 255)))
            case 8: value = .absent
            default: throw BlockFormatError("unknown value type")
            }
            return .comparison(field, op, value)
        case 2:
            let a = try self.filter(depth: depth + 1)
            return .and(a, try self.filter(depth: depth + 1))
        case 3:
            let a = try self.filter(depth: depth + 1)
            return .or(a, try self.filter(depth: depth + 1))
        default: throw BlockFormatError("unknown filter node")
        }
    }

    mutating func aggregationQuery() throws(BlockFormatError) -> AggregationQuery {
        let filter = try self.filter()
        var groupBy: [TraceQLField] = []
        for _ in 0..<(try self.count(max: AggregationQuery.maxGroupBy)) { groupBy.append(try self.field()) }
        var aggregates: [Aggregate] = []
        for _ in 0..<(try self.count(max: 64)) {
            switch try self.varint() {
            case 0: aggregates.append(.count)
            case 1: aggregates.append(.sum(try self.field()))
            case 2: aggregates.append(.avg(try self.field()))
            case 3: aggregates.append(.min(try self.field()))
            case 4: aggregates.append(.max(try self.field()))
            case 5:
                let f = try self.field()
                var qs: [Double] = []
                for _ in 0..<(try self.count(max: 64)) { qs.append(Double(bitPattern: try self.fixed64())) }
                aggregates.append(.quantiles(f, qs))
            case 6: aggregates.append(.histogram(try self.field()))
            default: throw BlockFormatError("unknown aggregate")
            }
        }
        let start = try self.fixed64()
        let end = try self.fixed64()
        let query = AggregationQuery(filter: filter, groupBy: groupBy, aggregates: aggregates, startNanos: start, endNanos: end, stepNanos: try self.optional())
        if let problem = query.problem { throw BlockFormatError("invalid aggregation: \(problem)") }
        guard query.stepNanos != 0, query.steps <= Self.maxSteps else { throw BlockFormatError("aggregation step out of range") }
        return query
    }

    mutating func optional() throws(BlockFormatError) -> UInt64? {
        switch try self.varint() {
        case 0: return nil
        case 1: return try self.fixed64()
        default: throw BlockFormatError("bad optional marker")
        }
    }
}

/// Reads `bytes` with `body`, which must consume them all.
func readAll<T>(_ bytes: [UInt8], _ what: String, _ body: (inout ByteReader) throws -> T) throws -> T {
    try bytes.withUnsafeBytes { raw in
        var r = ByteReader(raw)
        let value = try body(&r)
        try r.expectEnd(what)
        return value
    }
}
