/// The TraceQL subset Weft answers: one spanset filter, optionally followed by a metrics stage and
/// a top-k/bottom-k stage.
///
///     { resource.service.name = "checkout" && span.gen_ai.request.model =~ "gpt-4.*" && duration > 2s }
///     { status = error } | rate() by (resource.service.name)
///     { span.gen_ai.request.model != "" } | quantile_over_time(duration, .5, .95, .99) by (span.gen_ai.request.model) | topk(10)
///     { status = error } | select(span.tenant_id, resource.service.name)
public struct TraceQLQuery: Sendable, Equatable {
    public var filter: TraceQLFilter
    public var metrics: TraceQLMetrics?
    public var limit: TraceQLLimit?
    /// `| select(f, …)`: attributes a search shows on each matching span (with those the filter reads).
    public var select: [TraceQLField] = []

    /// Parses a query; throws ``TraceQLError`` naming the position and what was expected.
    public init(parsing text: String) throws(TraceQLError) {
        var parser = TraceQLParser(text)
        self = try parser.query()
    }

    init(filter: TraceQLFilter, metrics: TraceQLMetrics?, limit: TraceQLLimit?, select: [TraceQLField] = []) {
        self.filter = filter
        self.metrics = metrics
        self.limit = limit
        self.select = select
    }
}

/// A boolean combination of comparisons on one span.
public indirect enum TraceQLFilter: Sendable, Equatable {
    /// `{}`: every span.
    case all
    case comparison(TraceQLField, TraceQLOperator, TraceQLValue)
    case and(TraceQLFilter, TraceQLFilter)
    case or(TraceQLFilter, TraceQLFilter)
}

/// What a comparison or a grouping reads.
public enum TraceQLField: Sendable, Equatable, Hashable {
    public enum Intrinsic: String, Sendable, CaseIterable {
        case name, status, kind, duration, statusMessage, rootServiceName, rootName, traceDuration
    }

    public enum Scope: String, Sendable {
        /// Unscoped (`.tenant_id` or `tenant_id`): span attribute, else resource attribute.
        case any
        case span
        case resource
    }

    case intrinsic(Intrinsic)
    case attribute(Scope, String)
}

public enum TraceQLOperator: String, Sendable, Equatable {
    case equal = "=", notEqual = "!=", greater = ">", greaterOrEqual = ">=", less = "<", lessOrEqual = "<="
    case matches = "=~", notMatches = "!~"
}

public enum TraceQLValue: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case float(Double)
    /// Nanoseconds.
    case duration(UInt64)
    case bool(Bool)
    /// `ok`, `error`, `unset`.
    case status(UInt8)
    /// `unspecified`, `internal`, `server`, `client`, `producer`, `consumer`.
    case kind(UInt8)
    /// `nil`: `field != nil` holds where the field exists, `field = nil` where it does not.
    case absent
}

/// A metrics stage: one function per span, grouped by fields.
public struct TraceQLMetrics: Sendable, Equatable {
    public enum Function: Sendable, Equatable {
        case rate
        case countOverTime
        case sumOverTime(TraceQLField)
        case avgOverTime(TraceQLField)
        case minOverTime(TraceQLField)
        case maxOverTime(TraceQLField)
        case quantileOverTime(TraceQLField, [Double])
        case histogramOverTime(TraceQLField)
    }

    public var function: Function
    public var by: [TraceQLField]

    public init(function: Function, by: [TraceQLField] = []) {
        self.function = function
        self.by = by
    }
}

/// `| topk(n)` or `| bottomk(n)` over the series of a metrics stage.
public struct TraceQLLimit: Sendable, Equatable {
    public var bottom: Bool
    public var count: Int

    public init(bottom: Bool, count: Int) {
        self.bottom = bottom
        self.count = count
    }
}

/// A parse error: `position` is the offset (in characters) where the problem starts.
public struct TraceQLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var position: Int
    public var message: String
    public var description: String { "TraceQL error at position \(self.position): \(self.message)" }
}

// MARK: - Lexer

struct TraceQLToken: Equatable {
    enum Kind: Equatable {
        case identifier(String)
        case string(String)
        case number(String)
        case symbol(String)
        case end
    }

    var kind: Kind
    var position: Int

    var text: String {
        switch self.kind {
        case .identifier(let s), .number(let s), .symbol(let s): return "'\(s)'"
        case .string(let s): return "\"\(s)\""
        case .end: return "the end of the query"
        }
    }
}

struct TraceQLLexer {
    /// The character a backslash escape at `i` in a double-quoted string stands for, and the
    /// escape's length: Go's escapes, as Tempo reads TraceQL strings (`\\`, `\"`, `\n`, `\t`, `\r`,
    /// `\a`, `\b`, `\f`, `\v`, `\x7f`, `\101`, `\u00e9`, `\U0001F600`). Any other escape is an error, so
    /// a regex written with one backslash (`"\d"`) is refused rather than read without it.
    static func escape(_ chars: [Character], at i: Int) throws(TraceQLError) -> (Unicode.Scalar, Int) {
        let e = chars[i + 1]
        func hex(_ digits: Int) throws(TraceQLError) -> (Unicode.Scalar, Int) {
            let text = i + 2 + digits <= chars.count ? chars[(i + 2)..<(i + 2 + digits)] : []
            guard text.count == digits, text.allSatisfy(\.isHexDigit), let v = UInt32(String(text), radix: 16) else {
                throw TraceQLError(position: i, message: "'\\\(e)' needs \(digits) hexadecimal digits")
            }
            guard let scalar = Unicode.Scalar(v) else { throw TraceQLError(position: i, message: "'\\\(e)' escapes no character") }
            return (scalar, 2 + digits)
        }
        switch e {
        case "\\", "\"": return (e.unicodeScalars.first!, 2)
        case "n": return ("\n", 2)
        case "t": return ("\t", 2)
        case "r": return ("\r", 2)
        case "a": return ("\u{07}", 2)
        case "b": return ("\u{08}", 2)
        case "f": return ("\u{0C}", 2)
        case "v": return ("\u{0B}", 2)
        case "u": return try hex(4)
        case "U": return try hex(8)
        case "x":
            let (scalar, length) = try hex(2)
            guard scalar.isASCII else { throw TraceQLError(position: i, message: "'\\x' escapes a byte past ASCII: write the character itself, or '\\u'") }
            return (scalar, length)
        case "0"..."7":
            let text = i + 4 <= chars.count ? chars[(i + 1)..<(i + 4)] : []
            guard text.count == 3, text.allSatisfy({ ("0"..."7").contains($0) }), let v = UInt8(String(text), radix: 8), v < 0x80 else {
                throw TraceQLError(position: i, message: "'\\\(e)' is not an escape: an octal escape is three digits below 200, and a regex backslash is written '\\\\'")
            }
            return (Unicode.Scalar(v), 4)
        default:
            throw TraceQLError(position: i, message: "unknown escape '\\\(e)' in a string: write '\\\\\(e)' for a backslash (as in a regex)")
        }
    }

    static func tokens(_ text: String) throws(TraceQLError) -> [TraceQLToken] {
        let chars = Array(text)
        var out: [TraceQLToken] = []
        var i = 0
        func isIdentifierStart(_ c: Character) -> Bool { c.isLetter || c == "_" || c == "." }
        func isIdentifierPart(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "." || c == "-" || c == "/" || c == ":" }
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                i += 1
                continue
            }
            let start = i
            if c == "\"" || c == "`" {
                let quote = c
                var value = ""
                i += 1
                var closed = false
                while i < chars.count {
                    if chars[i] == "\\" && quote == "\"" && i + 1 < chars.count {
                        let (scalar, length) = try Self.escape(chars, at: i)
                        value.unicodeScalars.append(scalar)
                        i += length
                        continue
                    }
                    if chars[i] == quote {
                        closed = true
                        i += 1
                        break
                    }
                    value.append(chars[i])
                    i += 1
                }
                guard closed else { throw TraceQLError(position: start, message: "unterminated string") }
                out.append(TraceQLToken(kind: .string(value), position: start))
                continue
            }
            if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) || (c == "-" && i + 1 < chars.count && (chars[i + 1].isNumber || chars[i + 1] == ".")) {
                var s = String(c)
                i += 1
                while i < chars.count && (chars[i].isNumber || chars[i] == "." || chars[i].isLetter || chars[i] == "µ") {
                    s.append(chars[i])
                    i += 1
                }
                out.append(TraceQLToken(kind: .number(s), position: start))
                continue
            }
            if isIdentifierStart(c) {
                var s = ""
                while i < chars.count && isIdentifierPart(chars[i]) {
                    s.append(chars[i])
                    i += 1
                }
                out.append(TraceQLToken(kind: .identifier(s), position: start))
                continue
            }
            let two = i + 1 < chars.count ? String([c, chars[i + 1]]) : ""
            if ["&&", "||", "!=", ">=", "<=", "=~", "!~"].contains(two) {
                out.append(TraceQLToken(kind: .symbol(two), position: start))
                i += 2
                continue
            }
            if "{}()=<>|,!~".contains(c) {
                out.append(TraceQLToken(kind: .symbol(String(c)), position: start))
                i += 1
                continue
            }
            throw TraceQLError(position: start, message: "unexpected character '\(c)'")
        }
        out.append(TraceQLToken(kind: .end, position: chars.count))
        return out
    }
}

// MARK: - Parser

struct TraceQLParser {
    let tokens: [TraceQLToken]
    var at = 0
    var lexError: TraceQLError?
    /// Open parentheses around the current position, and comparisons so far: both bounded so that
    /// nothing downstream (planning, evaluation, comparison, deallocation) recurses deeply.
    var depth = 0
    var conditions = 0

    /// Deepest nesting of parentheses in a filter.
    static let maxDepth = 64
    /// Most comparisons in a filter.
    static let maxConditions = 1000
    /// Most quantiles in one `quantile_over_time` or `quantile`.
    static let maxQuantiles = 20

    init(_ text: String) {
        do {
            self.tokens = try TraceQLLexer.tokens(text)
        } catch {
            self.tokens = []
            self.lexError = error
        }
    }

    var current: TraceQLToken { self.tokens[self.at] }

    mutating func advance() { if self.at < self.tokens.count - 1 { self.at += 1 } }

    func error(_ expected: String) -> TraceQLError {
        TraceQLError(position: self.current.position, message: "expected \(expected), found \(self.current.text)")
    }

    mutating func expect(_ symbol: String, _ what: String? = nil) throws(TraceQLError) {
        guard self.current.kind == .symbol(symbol) else { throw self.error(what ?? "'\(symbol)'") }
        self.advance()
    }

    mutating func query() throws(TraceQLError) -> TraceQLQuery {
        if let e = self.lexError { throw e }
        try self.expect("{", "'{' to open a spanset")
        var filter = TraceQLFilter.all
        if self.current.kind != .symbol("}") { filter = try self.orExpression() }
        try self.expect("}", "'&&', '||' or '}'")
        if case .symbol(let s) = self.current.kind, s != "|" {
            throw TraceQLError(
                position: self.current.position,
                message: "spanset operators ('>>', '<<', '>', '<', '~', '&&', '||' between { } spansets) are not supported; use one spanset filter"
            )
        }
        var metrics: TraceQLMetrics? = nil
        var limit: TraceQLLimit? = nil
        var select: [TraceQLField] = []
        while self.current.kind == .symbol("|") {
            self.advance()
            guard case .identifier(let name) = self.current.kind else { throw self.error("a metrics function, select or topk/bottomk after '|'") }
            if name == "select" {
                guard metrics == nil, select.isEmpty else {
                    throw TraceQLError(position: self.current.position, message: "select(...) comes once, straight after the spanset filter, and not with a metrics stage")
                }
                self.advance()
                try self.expect("(", "'(' after select")
                select.append(try self.field())
                while self.current.kind == .symbol(",") {
                    self.advance()
                    select.append(try self.field())
                }
                try self.expect(")", "',' or ')'")
                continue
            }
            if Self.spansetStages.contains(name) {
                throw TraceQLError(
                    position: self.current.position,
                    message: "the spanset stage '| \(name)(…)' is not supported; filter spans inside { } or use a metrics stage such as count_over_time() by (…)"
                )
            }
            if !select.isEmpty && name != "topk" && name != "bottomk" {
                throw TraceQLError(position: self.current.position, message: "select(...) and a metrics stage do not mix")
            }
            if name == "topk" || name == "bottomk" {
                guard metrics != nil else {
                    throw TraceQLError(position: self.current.position, message: "\(name) needs a metrics stage before it (e.g. | rate() by (...) | \(name)(10))")
                }
                guard limit == nil else { throw TraceQLError(position: self.current.position, message: "only one topk/bottomk stage is allowed") }
                self.advance()
                try self.expect("(")
                guard case .number(let text) = self.current.kind, let n = Int(text), n > 0 else { throw self.error("a positive integer") }
                self.advance()
                try self.expect(")")
                limit = TraceQLLimit(bottom: name == "bottomk", count: n)
                continue
            }
            guard metrics == nil else { throw TraceQLError(position: self.current.position, message: "only one metrics stage is allowed") }
            metrics = try self.metricsStage()
        }
        guard self.current.kind == .end else { throw self.error("'|' or the end of the query") }
        return TraceQLQuery(filter: filter, metrics: metrics, limit: limit, select: select)
    }

    mutating func orExpression() throws(TraceQLError) -> TraceQLFilter {
        var left = try self.andExpression()
        while self.current.kind == .symbol("||") {
            self.advance()
            left = .or(left, try self.andExpression())
        }
        return left
    }

    mutating func andExpression() throws(TraceQLError) -> TraceQLFilter {
        var left = try self.primary()
        while self.current.kind == .symbol("&&") {
            self.advance()
            left = .and(left, try self.primary())
        }
        return left
    }

    mutating func primary() throws(TraceQLError) -> TraceQLFilter {
        if self.current.kind == .symbol("(") {
            guard self.depth < Self.maxDepth else {
                throw TraceQLError(position: self.current.position, message: "parentheses nested deeper than \(Self.maxDepth)")
            }
            self.depth += 1
            self.advance()
            let inner = try self.orExpression()
            try self.expect(")", "'&&', '||' or ')'")
            self.depth -= 1
            return inner
        }
        let fieldPosition = self.current.position
        self.conditions += 1
        guard self.conditions <= Self.maxConditions else {
            throw TraceQLError(position: fieldPosition, message: "more than \(Self.maxConditions) conditions in one filter")
        }
        let field = try self.field()
        guard case .symbol(let s) = self.current.kind, let op = TraceQLOperator(rawValue: s) else {
            throw self.error("a comparison operator (=, !=, >, >=, <, <=, =~, !~)")
        }
        self.advance()
        let valuePosition = self.current.position
        let value = try self.value(for: field)
        try Self.check(field, op, value, at: valuePosition, fieldAt: fieldPosition)
        return .comparison(field, op, value)
    }

    mutating func field() throws(TraceQLError) -> TraceQLField {
        guard case .identifier(let name) = self.current.kind else { throw self.error("an attribute or intrinsic (name, status, kind, duration, …)") }
        self.advance()
        if let intrinsic = TraceQLField.Intrinsic(rawValue: name) { return .intrinsic(intrinsic) }
        if name.contains(":") {
            guard let intrinsic = Self.scopedIntrinsics[name] else {
                throw TraceQLError(
                    position: self.tokens[self.at - 1].position,
                    message: "unsupported intrinsic '\(name)'; use one of \(Self.scopedIntrinsics.keys.sorted().joined(separator: ", "))"
                )
            }
            return .intrinsic(intrinsic)
        }
        if name.hasPrefix("span.") && name.count > 5 { return .attribute(.span, String(name.dropFirst(5))) }
        if name.hasPrefix("resource.") && name.count > 9 { return .attribute(.resource, String(name.dropFirst(9))) }
        if name.hasPrefix(".") && name.count > 1 { return .attribute(.any, String(name.dropFirst())) }
        if name == "span." || name == "resource." || name == "." {
            throw TraceQLError(position: self.tokens[self.at - 1].position, message: "expected an attribute name after '\(name)'")
        }
        return .attribute(.any, name)
    }

    /// Tempo's spanset pipeline stages (`| count() > 2`, `| by(…)`, `| coalesce()`), which Weft does not evaluate.
    static let spansetStages: Set<String> = ["count", "avg", "min", "max", "sum", "by", "coalesce"]

    /// Intrinsics spelled with their scope, as Grafana's query builder writes them.
    static let scopedIntrinsics: [String: TraceQLField.Intrinsic] = [
        "span:name": .name, "span:status": .status, "span:kind": .kind, "span:duration": .duration, "span:statusMessage": .statusMessage,
        "trace:rootService": .rootServiceName, "trace:rootName": .rootName, "trace:duration": .traceDuration,
    ]

    mutating func value(for field: TraceQLField) throws(TraceQLError) -> TraceQLValue {
        let token = self.current
        switch token.kind {
        case .string(let s):
            self.advance()
            return .string(s)
        case .number(let text):
            self.advance()
            if let nanos = Self.durationNanos(text) {
                guard nanos.rounded() < 0x1p64 else {
                    throw TraceQLError(position: token.position, message: "the duration '\(text)' is out of range (at most about 5124095h)")
                }
                return .duration(UInt64(nanos.rounded()))
            }
            if let i = Int64(text) { return .int(i) }
            if let f = Double(text) { return .float(f) }
            throw TraceQLError(position: token.position, message: "'\(text)' is not a number or a duration (e.g. 250ms, 1.5s, 2m)")
        case .identifier(let word):
            self.advance()
            switch word {
            case "nil": return .absent
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "ok": return .status(1)
            case "error": return .status(2)
            case "unset": return .status(0)
            default:
                if let k = ["unspecified", "internal", "server", "client", "producer", "consumer"].firstIndex(of: word) { return .kind(UInt8(k)) }
                throw TraceQLError(position: token.position, message: "expected a value (a \"string\", number, duration, true/false, a status or a kind), found '\(word)'")
            }
        default:
            throw self.error("a value (a \"string\", number, duration, true/false, a status or a kind)")
        }
    }

    /// Type rules: intrinsics take their own kinds of values; regular expressions need strings and must compile.
    static func check(_ field: TraceQLField, _ op: TraceQLOperator, _ value: TraceQLValue, at position: Int, fieldAt: Int) throws(TraceQLError) {
        if op == .matches || op == .notMatches {
            guard case .string(let pattern) = value else { throw TraceQLError(position: position, message: "\(op.rawValue) needs a \"regular expression\" string") }
            do {
                _ = try TraceQLRegex(pattern)
            } catch {
                throw TraceQLError(position: position, message: "invalid regular expression \"\(pattern)\": \(error)")
            }
        }
        if value == .absent {
            guard op == .equal || op == .notEqual else { throw TraceQLError(position: position, message: "nil compares with = or != only") }
            return
        }
        guard case .intrinsic(let i) = field else { return }
        switch i {
        case .duration, .traceDuration:
            switch value {
            case .duration: return
            case .int(0): return
            default: throw TraceQLError(position: position, message: "\(i.rawValue) compares with a duration such as 250ms or 2s")
            }
        case .status:
            guard case .status = value, op == .equal || op == .notEqual else {
                throw TraceQLError(position: position, message: "status compares with = or != to ok, error or unset")
            }
        case .kind:
            guard case .kind = value, op == .equal || op == .notEqual else {
                throw TraceQLError(position: position, message: "kind compares with = or != to server, client, internal, producer, consumer or unspecified")
            }
        case .name, .statusMessage, .rootServiceName, .rootName:
            guard case .string = value else { throw TraceQLError(position: position, message: "\(i.rawValue) compares with a \"string\"") }
        }
    }

    /// `250ms`, `1.5s`, `2m`, `1h`, `10us`/`10µs`, `5ns` → nanoseconds (perhaps more than a UInt64 holds).
    static func durationNanos(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard let v = Double(number), v >= 0, v.isFinite, !number.isEmpty else { return nil }
            // `ms` ends in `s` too: make sure the number part is a number.
            if suffix == "s", number.hasSuffix("m") || number.hasSuffix("n") || number.hasSuffix("u") || number.hasSuffix("µ") { return nil }
            return v * scale
        }
        return nil
    }

    mutating func metricsStage() throws(TraceQLError) -> TraceQLMetrics {
        guard case .identifier(let name) = self.current.kind else { throw self.error("a metrics function") }
        let namePosition = self.current.position
        self.advance()
        try self.expect("(", "'(' after \(name)")
        let function: TraceQLMetrics.Function
        switch name {
        case "rate":
            function = .rate
        case "count_over_time":
            function = .countOverTime
        case "sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "histogram_over_time":
            let field = try self.field()
            switch name {
            case "sum_over_time": function = .sumOverTime(field)
            case "avg_over_time": function = .avgOverTime(field)
            case "min_over_time": function = .minOverTime(field)
            case "max_over_time": function = .maxOverTime(field)
            default: function = .histogramOverTime(field)
            }
        case "quantile_over_time":
            let field = try self.field()
            let qs = try self.quantiles()
            guard !qs.isEmpty else { throw self.error("',' and at least one quantile (e.g. quantile_over_time(duration, .5, .99))") }
            function = .quantileOverTime(field, qs)
        default:
            throw TraceQLError(
                position: namePosition,
                message: "unknown metrics function '\(name)'; use rate, count_over_time, sum_over_time, avg_over_time, min_over_time, max_over_time, quantile_over_time or histogram_over_time"
            )
        }
        try self.expect(")")
        var by: [TraceQLField] = []
        if case .identifier("by") = self.current.kind {
            self.advance()
            try self.expect("(", "'(' after by")
            by.append(try self.field())
            while self.current.kind == .symbol(",") {
                self.advance()
                by.append(try self.field())
            }
            try self.expect(")", "',' or ')'")
        }
        return TraceQLMetrics(function: function, by: by)
    }
}

// MARK: Aggregation tables

extension TraceQLParser {
    /// `, q, q, …`: at most ``maxQuantiles`` numbers in [0, 1].
    mutating func quantiles() throws(TraceQLError) -> [Double] {
        var qs: [Double] = []
        while self.current.kind == .symbol(",") {
            self.advance()
            guard case .number(let text) = self.current.kind, let q = Double(text), q >= 0, q <= 1 else { throw self.error("a quantile between 0 and 1") }
            guard qs.count < Self.maxQuantiles else {
                throw TraceQLError(position: self.current.position, message: "at most \(Self.maxQuantiles) quantiles")
            }
            qs.append(q)
            self.advance()
        }
        return qs
    }
}

extension TraceQLParser {
    /// `field, field, …` to the end.
    mutating func fieldList() throws(TraceQLError) -> [TraceQLField] {
        if let e = self.lexError { throw e }
        var fields = [try self.field()]
        while self.current.kind == .symbol(",") {
            self.advance()
            fields.append(try self.field())
        }
        guard self.current.kind == .end else { throw self.error("',' or the end of the list") }
        return fields
    }

    /// `count, sum(f), avg(f), min(f), max(f), quantile(f, q, …), p50(f) … p999(f), histogram(f)` to the end.
    mutating func aggregateList() throws(TraceQLError) -> [Aggregate] {
        if let e = self.lexError { throw e }
        var out: [Aggregate] = []
        repeat {
            if !out.isEmpty { self.advance() }
            guard case .identifier(let name) = self.current.kind else { throw self.error("an aggregate (count, sum, avg, min, max, quantile, p95, histogram)") }
            let position = self.current.position
            self.advance()
            if name == "count" {
                if self.current.kind == .symbol("(") {
                    self.advance()
                    try self.expect(")", "')' (count takes no field)")
                }
                out.append(.count)
                continue
            }
            try self.expect("(", "'(' after \(name)")
            let field = try self.field()
            switch name {
            case "sum": out.append(.sum(field))
            case "avg": out.append(.avg(field))
            case "min": out.append(.min(field))
            case "max": out.append(.max(field))
            case "histogram": out.append(.histogram(field))
            case "quantile":
                let qs = try self.quantiles()
                guard !qs.isEmpty else { throw self.error("',' and at least one quantile (e.g. quantile(duration, .5, .99))") }
                out.append(.quantiles(field, qs))
            default:
                guard name.hasPrefix("p"), let digits = Int(name.dropFirst()), digits > 0, name.count <= 4 else {
                    throw TraceQLError(position: position, message: "unknown aggregate '\(name)'; use count, sum, avg, min, max, quantile, p50/p90/p95/p99/p999 or histogram")
                }
                // p95 → 0.95, p999 → 0.999.
                let q = Double(digits) / Double([1, 10, 100, 1000][name.count - 1])
                out.append(.quantiles(field, [q]))
            }
            try self.expect(")")
        } while self.current.kind == .symbol(",")
        guard self.current.kind == .end else { throw self.error("',' or the end of the list") }
        return out
    }
}

extension TraceQLField {
    /// Parses a comma-separated list of fields (`span.tenant_id, resource.service.name, status`).
    public static func list(parsing text: String) throws(TraceQLError) -> [TraceQLField] {
        var parser = TraceQLParser(text)
        return try parser.fieldList()
    }
}

extension Aggregate {
    /// Parses a comma-separated list of aggregates (`count, sum(span.gen_ai.usage.cost), p95(duration)`).
    public static func list(parsing text: String) throws(TraceQLError) -> [Aggregate] {
        var parser = TraceQLParser(text)
        return try parser.aggregateList()
    }

    /// The aggregate as written (`sum(span.gen_ai.usage.cost)`, `quantile(duration, 0.5, 0.99)`).
    public var name: String {
        switch self {
        case .count: return "count"
        case .sum(let f): return "sum(\(f.labelName))"
        case .avg(let f): return "avg(\(f.labelName))"
        case .min(let f): return "min(\(f.labelName))"
        case .max(let f): return "max(\(f.labelName))"
        case .histogram(let f): return "histogram(\(f.labelName))"
        case .quantiles(let f, let qs): return "quantile(\(f.labelName), \(qs.map { String($0) }.joined(separator: ", ")))"
        }
    }
}
