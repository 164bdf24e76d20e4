import WeftStorageEngine
import WeftModel

/// A ``TraceQLFilter`` resolved against one batch's dictionary: string values become IDs (regular
/// expressions become the set of dictionary IDs they match), so rows are tested with integer
/// comparisons.
public struct CompiledTraceQLFilter {
    indirect enum Node {
        case all
        case none
        case and(Node, Node)
        case or(Node, Node)
        case test(Test)
    }

    enum Test {
        case name(IDTest)
        case statusMessage(IDTest)
        case status(equal: Bool, UInt8)
        case kind(equal: Bool, UInt8)
        case duration(TraceQLOperator, UInt64)
        case attribute(scope: TraceQLField.Scope, key: UInt32, AttributeTest)
    }

    /// A test on a string-table ID: membership (for =, =~) or non-membership (for !=, !~) in `ids`.
    struct IDTest {
        var ids: Set<UInt32>
        var negate: Bool
        func matches(_ id: UInt32) -> Bool { self.ids.contains(id) != self.negate }
    }

    enum AttributeTest {
        case string(IDTest)
        case number(TraceQLOperator, Double)
        case bool(equal: Bool, Bool)
        /// `!= nil` (true) or `= nil` (false).
        case exists(Bool)
    }

    let root: Node

    /// Trace-level intrinsics are answered per span only once the engine has trace context.
    public static func unsupported(_ filter: TraceQLFilter) -> String? {
        switch filter {
        case .all: return nil
        case .and(let a, let b), .or(let a, let b): return unsupported(a) ?? unsupported(b)
        case .comparison(let field, _, _):
            if case .intrinsic(let i) = field, [.rootServiceName, .rootName, .traceDuration].contains(i) {
                return "the trace-level intrinsic '\(i.rawValue)' is answered by TraceQL alone, not"
            }
            return nil
        }
    }

    /// Whether the filter reads generic span attributes (so a block group must decode them).
    static func readsAttributes(_ filter: TraceQLFilter) -> Bool {
        switch filter {
        case .all: return false
        case .and(let a, let b), .or(let a, let b): return readsAttributes(a) || readsAttributes(b)
        case .comparison(let field, _, _):
            if case .attribute(let scope, _) = field { return scope != .resource }
            return false
        }
    }

    init(_ filter: TraceQLFilter, strings: StringTable) {
        self.root = Self.compile(filter, strings)
    }

    private static func ids(_ op: TraceQLOperator, _ value: String, _ strings: StringTable) -> IDTest? {
        switch op {
        case .equal, .notEqual:
            let ids: Set<UInt32> = strings.lookup(value).map { [$0] } ?? []
            return IDTest(ids: ids, negate: op == .notEqual)
        case .matches, .notMatches:
            guard let matcher = try? TraceQLRegex(value).matcher() else { return nil }
            var ids = Set<UInt32>()
            for id in 0..<strings.count where matcher.matches(strings.string(UInt32(id))) { ids.insert(UInt32(id)) }
            return IDTest(ids: ids, negate: op == .notMatches)
        default:
            return nil
        }
    }

    private static func compile(_ filter: TraceQLFilter, _ strings: StringTable) -> Node {
        switch filter {
        case .all: return .all
        case .and(let a, let b): return .and(compile(a, strings), compile(b, strings))
        case .or(let a, let b): return .or(compile(a, strings), compile(b, strings))
        case .comparison(let field, let op, .absent):
            guard case .attribute(let scope, let name) = field else { return op == .notEqual ? .all : .none }
            guard let key = strings.lookup(name) else { return op == .equal ? .all : .none }
            return .test(.attribute(scope: scope, key: key, .exists(op == .notEqual)))
        case .comparison(let field, let op, let value):
            switch (field, value) {
            case (.intrinsic(.name), .string(let s)):
                return ids(op, s, strings).map { .test(.name($0)) } ?? .none
            case (.intrinsic(.statusMessage), .string(let s)):
                return ids(op, s, strings).map { .test(.statusMessage($0)) } ?? .none
            case (.intrinsic(.status), .status(let code)):
                return .test(.status(equal: op == .equal, code))
            case (.intrinsic(.kind), .kind(let k)):
                return .test(.kind(equal: op == .equal, k))
            case (.intrinsic(.duration), .duration(let d)):
                return .test(.duration(op, d))
            case (.intrinsic(.duration), .int(let i)):
                return .test(.duration(op, UInt64(max(0, i))))
            case (.attribute(let scope, let name), _):
                guard let key = strings.lookup(name) else { return .none }
                switch value {
                case .string(let s):
                    return ids(op, s, strings).map { .test(.attribute(scope: scope, key: key, .string($0))) } ?? .none
                case .int(let i): return .test(.attribute(scope: scope, key: key, .number(op, Double(i))))
                case .float(let f): return .test(.attribute(scope: scope, key: key, .number(op, f)))
                case .duration(let d): return .test(.attribute(scope: scope, key: key, .number(op, Double(d))))
                case .bool(let b) where op == .equal || op == .notEqual: return .test(.attribute(scope: scope, key: key, .bool(equal: op == .equal, b)))
                default: return .none
                }
            default:
                return .none
            }
        }
    }

    static func compare(_ a: Double, _ op: TraceQLOperator, _ b: Double) -> Bool {
        switch op {
        case .equal: return a == b
        case .notEqual: return a != b
        case .greater: return a > b
        case .greaterOrEqual: return a >= b
        case .less: return a < b
        case .lessOrEqual: return a <= b
        case .matches, .notMatches: return false
        }
    }

    func matches(_ batch: SpanBatch, _ row: Int) -> Bool { Self.eval(self.root, batch, row) }

    private static func eval(_ node: Node, _ b: SpanBatch, _ row: Int) -> Bool {
        switch node {
        case .all: return true
        case .none: return false
        case .and(let x, let y): return eval(x, b, row) && eval(y, b, row)
        case .or(let x, let y): return eval(x, b, row) || eval(y, b, row)
        case .test(let t):
            switch t {
            case .name(let test): return test.matches(b.name[row])
            case .statusMessage(let test): return test.matches(b.statusMessage[row])
            case .status(let equal, let code): return (b.statusCode[row] == code) == equal
            case .kind(let equal, let kind): return (b.kind[row] == kind) == equal
            case .duration(let op, let d):
                let s = b.startTime[row], e = b.endTime[row]
                return compare(Double(e > s ? e - s : 0), op, Double(d))
            case .attribute(let scope, let key, .exists(let present)):
                let onSpan = scope != .resource && attribute(b.attrs, b.attrRange(row), key, .exists(true)) != nil
                let found = onSpan || (scope != .span && attribute(b.resourceAttrs, b.resourceAttrRange(Int(b.resourceIndex[row])), key, .exists(true)) != nil)
                return found == present
            case .attribute(let scope, let key, let test):
                if scope != .resource, let hit = attribute(b.attrs, b.attrRange(row), key, test) { return hit }
                if scope != .span, let hit = attribute(b.resourceAttrs, b.resourceAttrRange(Int(b.resourceIndex[row])), key, test) { return hit }
                return false
            }
        }
    }

    /// nil when the owner has no attribute `key` (of a comparable type); else whether it matches.
    private static func attribute(_ attrs: AttributeColumns, _ range: Range<Int>, _ key: UInt32, _ test: AttributeTest) -> Bool? {
        for i in range where attrs.keys[i] == key {
            let type = ValueType(rawValue: attrs.types[i]) ?? .empty
            let v = attrs.values[i]
            switch (test, type) {
            case (.string(let t), .string): return t.matches(UInt32(truncatingIfNeeded: v))
            case (.number(let op, let x), .int): return compare(Double(Int64(bitPattern: v)), op, x)
            case (.number(let op, let x), .double): return compare(Double(bitPattern: v), op, x)
            case (.bool(let equal, let x), .bool): return ((v != 0) == x) == equal
            case (.exists, _): return true
            default: continue
            }
        }
        return nil
    }
}

/// The attributes a search shows on each matching span: those its filter compares and those of
/// `| select(…)`, in that order, each once.
struct SpanAttributeSelection {
    let fields: [(scope: TraceQLField.Scope, name: String)]

    init(filter: TraceQLFilter, select: [TraceQLField]) {
        var fields: [(scope: TraceQLField.Scope, name: String)] = []
        func add(_ field: TraceQLField) {
            guard case .attribute(let scope, let name) = field, !fields.contains(where: { $0.scope == scope && $0.name == name }) else { return }
            fields.append((scope, name))
        }
        var pending = [filter]
        var compared: [TraceQLField] = []
        while let f = pending.popLast() {
            switch f {
            case .all: break
            case .and(let a, let b), .or(let a, let b): pending += [b, a]
            case .comparison(let field, _, _): compared.append(field)
            }
        }
        for field in compared + select { add(field) }
        self.fields = fields
    }

    /// The fields' string IDs in a batch (nil where it never saw the name), for ``values(_:_:keys:)``.
    func keys(_ b: SpanBatch) -> [UInt32?] { self.fields.map { b.strings.lookup($0.name) } }

    /// The row's values of the fields it has (span attribute first, then its resource's, as scoped);
    /// `keys` are the fields' IDs in the batch (``keys(_:)``, looked up once per batch).
    func values(_ b: SpanBatch, _ row: Int, keys: [UInt32?]) -> [(key: String, value: GroupValue)] {
        var out: [(key: String, value: GroupValue)] = []
        out.reserveCapacity(self.fields.count)
        for ((scope, name), key) in zip(self.fields, keys) {
            guard let key else { continue }
            let value = (scope != .resource ? Self.value(b.attrs, b.attrRange(row), key, b.strings) : nil)
                ?? (scope != .span ? Self.value(b.resourceAttrs, b.resourceAttrRange(Int(b.resourceIndex[row])), key, b.strings) : nil)
            if let value { out.append((name, value)) }
        }
        return out
    }

    /// Span attributes a block keeps only in typed columns when they equal them, and that another key
    /// may also fill (so a block row group's columns cannot tell which key the span carried).
    static let ambiguousInBlocks: Set<String> = [
        "gen_ai.provider.name", "gen_ai.system", "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "gen_ai.usage.cost",
    ]

    /// Whether some shown attribute can only be read from the whole decoded span (see ``ambiguousInBlocks``).
    var needsDecodedSpans: Bool { self.fields.contains { $0.scope != .resource && Self.ambiguousInBlocks.contains($0.name) } }

    /// The same values read from a block row group's scan columns, readers made once. Requires
    /// `!needsDecodedSpans`; the request and response models, which blocks keep only in their typed
    /// columns, are read from those after the span's own attributes.
    func reader(_ chunk: ChunkColumns, _ strings: SourceStrings, _ resources: SpanBatch) throws -> ColumnAttributeValues {
        func raw(_ scope: TraceQLField.Scope, _ name: String) throws -> FieldReader {
            try FieldReader(.attribute(scope, key: try strings.lookup(name)), chunk, resources)
        }
        var fields: [(name: String, readers: [FieldReader])] = []
        for (scope, name) in self.fields {
            let typed: ScanColumn? = name == "gen_ai.request.model" ? .requestModel : name == "gen_ai.response.model" ? .responseModel : nil
            if let typed, scope != .resource {
                var readers = [try raw(.span, name), try FieldReader(.ids(typed, zeroIsAbsent: true), chunk, resources)]
                if scope == .any { readers.append(try raw(.resource, name)) }
                fields.append((name, readers))
            } else {
                fields.append((name, [try raw(scope, name)]))
            }
        }
        return ColumnAttributeValues(fields: fields, strings: strings)
    }

    /// Scalar values only (arrays, maps and bytes are left out).
    private static func value(_ attrs: AttributeColumns, _ range: Range<Int>, _ key: UInt32, _ strings: StringTable) -> GroupValue? {
        for i in range where attrs.keys[i] == key {
            let v = attrs.values[i]
            switch ValueType(rawValue: attrs.types[i]) {
            case .string: return .string(strings.string(UInt32(truncatingIfNeeded: v)))
            case .int: return .int(Int64(bitPattern: v))
            case .double: return .double(Double(bitPattern: v))
            case .bool: return .bool(v != 0)
            default: return nil
            }
        }
        return nil
    }
}

/// A row's values of the selected attributes, from scan columns (see ``SpanAttributeSelection``):
/// per attribute, the first of its readers that has a value.
struct ColumnAttributeValues {
    let fields: [(name: String, readers: [FieldReader])]
    let strings: SourceStrings
    /// Values already looked up, by (field, reader, type, payload): most rows repeat a few strings.
    private var seen: [Key: GroupValue] = [:]

    private struct Key: Hashable {
        var field: Int
        var reader: Int
        var type: UInt8
        var payload: UInt64
    }

    init(fields: [(name: String, readers: [FieldReader])], strings: SourceStrings) {
        self.fields = fields
        self.strings = strings
    }

    mutating func values(_ row: Int) throws -> [(key: String, value: GroupValue)] {
        var out: [(key: String, value: GroupValue)] = []
        for (f, (name, readers)) in self.fields.enumerated() {
            for (i, reader) in readers.enumerated() {
                let (type, payload) = reader.value(row)
                let key = Key(field: f, reader: i, type: type, payload: payload)
                let value: GroupValue
                if let v = self.seen[key] {
                    value = v
                } else {
                    value = try reader.groupValue(type, payload, self.strings)
                    self.seen[key] = value
                }
                if case .absent = value { continue }
                out.append((name, value))
                break
            }
        }
        return out
    }
}
