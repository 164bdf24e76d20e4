import WeftRuntime
import WeftQuery

/// Parsing of `GET /api/search` parameters into a ``SearchRequest``.
extension SearchRequest {
    /// Parses query parameters; throws a ``QueryError`` naming the bad parameter.
    public init(parameters: [String: String]) throws(QueryError) {
        self.init()
        if let tags = parameters["tags"], !tags.isEmpty {
            self.conditions = try Logfmt.parse(tags)
        }
        if let q = parameters["q"], !q.isEmpty, q.trimmingSpaces != "{}" {
            let query: TraceQLQuery
            do {
                query = try TraceQLQuery(parsing: q)
            } catch {
                throw QueryError("parameter 'q': \(error)")
            }
            guard query.metrics == nil else {
                throw QueryError("parameter 'q': metrics queries (| rate() …) belong to /api/metrics/query_range and /api/metrics/query")
            }
            self.traceQL = query.filter
            self.select = query.select
        }
        if let v = parameters["minDuration"], !v.isEmpty {
            guard let d = GoDuration.parse(v) else { throw QueryError("parameter 'minDuration': '\(v)' is not a duration such as 100ms or 1.5s") }
            self.minDurationNanos = d
        }
        if let v = parameters["maxDuration"], !v.isEmpty {
            guard let d = GoDuration.parse(v) else { throw QueryError("parameter 'maxDuration': '\(v)' is not a duration such as 100ms or 1.5s") }
            self.maxDurationNanos = d
        }
        if let min = self.minDurationNanos, let max = self.maxDurationNanos, max < min {
            throw QueryError("parameter 'maxDuration' must not be less than 'minDuration'")
        }
        if let v = parameters["start"], !v.isEmpty {
            guard let s = UInt64(v), s < 10_000_000_000 else { throw QueryError("parameter 'start': '\(v)' is not a time in unix epoch seconds") }
            self.startNanos = s * 1_000_000_000
        }
        if let v = parameters["end"], !v.isEmpty {
            guard let e = UInt64(v), e < 10_000_000_000 else { throw QueryError("parameter 'end': '\(v)' is not a time in unix epoch seconds") }
            self.endNanos = e * 1_000_000_000 + 999_999_999
        }
        if let s = self.startNanos, let e = self.endNanos, e < s {
            throw QueryError("parameter 'end' must not be before 'start'")
        }
        if let v = parameters["limit"], !v.isEmpty {
            guard let l = Int(v), l > 0 else { throw QueryError("parameter 'limit': '\(v)' is not a positive integer") }
            guard l <= SearchRequest.maxLimit else { throw QueryError("parameter 'limit': \(l) exceeds the maximum of \(SearchRequest.maxLimit)") }
            self.limit = l
        }
        if let v = parameters["spss"], !v.isEmpty {
            guard let l = Int(v), l > 0, l <= 1000 else { throw QueryError("parameter 'spss': '\(v)' is not an integer between 1 and 1000") }
            self.spansPerSpanSet = l
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}

/// Parses logfmt tag lists: `service.name=checkout http.url="a b" name=x`.
public enum Logfmt {
    public static func parse(_ text: String) throws(QueryError) -> [TagCondition] {
        var result: [TagCondition] = []
        let chars = Array(text)
        var i = 0
        func fail(_ why: String) -> QueryError { QueryError("parameter 'tags': \(why) at position \(i)") }
        while i < chars.count {
            while i < chars.count && chars[i] == " " { i += 1 }
            if i >= chars.count { break }
            var key = ""
            while i < chars.count && chars[i] != "=" && chars[i] != " " {
                key.append(chars[i])
                i += 1
            }
            guard !key.isEmpty else { throw fail("expected a key") }
            guard i < chars.count, chars[i] == "=" else { throw fail("expected '=' after '\(key)'") }
            i += 1
            var value = ""
            if i < chars.count && chars[i] == "\"" {
                i += 1
                var closed = false
                while i < chars.count {
                    let c = chars[i]
                    if c == "\\" && i + 1 < chars.count {
                        value.append(chars[i + 1])
                        i += 2
                        continue
                    }
                    if c == "\"" {
                        closed = true
                        i += 1
                        break
                    }
                    value.append(c)
                    i += 1
                }
                guard closed else { throw fail("unterminated quoted value for '\(key)'") }
            } else {
                while i < chars.count && chars[i] != " " {
                    value.append(chars[i])
                    i += 1
                }
            }
            var scope = TagCondition.Scope.any
            if key.hasPrefix("span.") {
                scope = .span
                key.removeFirst(5)
            } else if key.hasPrefix("resource.") {
                scope = .resource
                key.removeFirst(9)
            } else if key.hasPrefix(".") {
                key.removeFirst()
            }
            guard !key.isEmpty else { throw fail("empty attribute name") }
            result.append(TagCondition(scope: scope, key: key, value: value))
        }
        return result
    }
}

/// Go's `time.ParseDuration` format: `300ms`, `1.5h`, `2h45m`, units ns, us/µs, ms, s, m, h.
public enum GoDuration {
    public static func parse(_ text: String) -> UInt64? {
        var s = Substring(text)
        guard !s.isEmpty else { return nil }
        if s == "0" { return 0 }
        var total: Double = 0
        while !s.isEmpty {
            let number = s.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            s = s.dropFirst(number.count)
            let unit = s.prefix { !$0.isNumber && $0 != "." }
            s = s.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs", "μs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            total += value * scale
        }
        guard total < 1.8e19 else { return nil }
        return UInt64(total)
    }
}
