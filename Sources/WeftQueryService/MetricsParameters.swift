import WeftRuntime
import WeftQuery

/// Times as the metrics endpoints take them: unix seconds (with a fraction), unix nanoseconds, or RFC 3339.
/// Nanoseconds since the epoch must fit in a UInt64, so times from 2554-07-21T23:34:33Z on are refused.
public enum QueryTime {
    /// The first second whose nanoseconds do not fit in a UInt64 (2554-07-21T23:34:33Z).
    public static let endOfTimeSeconds: UInt64 = UInt64.max / 1_000_000_000

    /// Nanoseconds since the epoch, or nil when `text` is not a time or is out of range.
    public static func parse(_ text: String) -> UInt64? { try? self.parse(text, parameter: "time") }

    /// Nanoseconds since the epoch; throws naming `parameter` when `text` is not a time or is out of range.
    public static func parse(_ text: String, parameter: String) throws(QueryError) -> UInt64 {
        let outOfRange = QueryError("parameter '\(parameter)': '\(text)' is out of range (times must lie from 1970 to before 2554-07-21T23:34:33Z)")
        if let v = Double(text), v >= 0, v.isFinite {
            // Below 1e12 it is seconds (that is year 33658); above, nanoseconds.
            if v < 1e12 {
                guard v < Double(self.endOfTimeSeconds) else { throw outOfRange }
                return UInt64(v * 1e9)
            }
            guard let nanos = UInt64(exactly: v.rounded()) ?? UInt64(text) else { throw outOfRange }
            return nanos
        }
        switch self.rfc3339(text) {
        case .some(.some(let nanos)): return nanos
        case .some(.none): throw outOfRange
        case .none: throw QueryError("parameter '\(parameter)': '\(text)' is not unix seconds, unix nanoseconds or an RFC 3339 time")
        }
    }

    /// `2026-11-30T12:00:00Z`, `2026-11-30T12:00:00.123+01:00`: nil when not such a time, `.some(nil)`
    /// when it is one outside what nanoseconds since the epoch in a UInt64 hold.
    package static func rfc3339(_ text: String) -> UInt64?? {
        let c = Array(text.utf8)
        guard c.count >= 20, c[4] == UInt8(ascii: "-"), c[7] == UInt8(ascii: "-"), c[10] == UInt8(ascii: "T") || c[10] == UInt8(ascii: "t"),
            c[13] == UInt8(ascii: ":"), c[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard c[i] >= 48 && c[i] <= 57 else { return nil }
                v = v * 10 + Int(c[i] - 48)
            }
            return v
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13), let minute = number(14..<16),
            let second = number(17..<19), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        var fraction: UInt64 = 0
        if i < c.count && c[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < c.count && c[i] >= 48 && c[i] <= 57 {
                if digits < 9 {
                    fraction = fraction * 10 + UInt64(c[i] - 48)
                    digits += 1
                }
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<9 { fraction *= 10 }
        }
        var offset = 0
        guard i < c.count else { return nil }
        if c[i] == UInt8(ascii: "Z") || c[i] == UInt8(ascii: "z") {
            i += 1
        } else if c[i] == UInt8(ascii: "+") || c[i] == UInt8(ascii: "-") {
            guard i + 6 == c.count, c[i + 3] == UInt8(ascii: ":"), let h = number((i + 1)..<(i + 3)), let m = number((i + 4)..<(i + 6)) else { return nil }
            offset = (h * 60 + m) * 60 * (c[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == c.count else { return nil }
        // Days from the civil date (proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        guard seconds >= 0, UInt64(seconds) < self.endOfTimeSeconds else { return .some(nil) }
        return UInt64(seconds) * 1_000_000_000 + fraction
    }

    /// The [start, end] range of `start`/`end`/`since` parameters (defaults: end = now, since = 1h).
    package static func range(_ p: [String: String], now: UInt64, limits: QueryLimits) throws(QueryError) -> (UInt64, UInt64) {
        var end = now
        if let v = p["end"], !v.isEmpty { end = try self.parse(v, parameter: "end") }
        var since: UInt64 = 3_600_000_000_000
        if let v = p["since"], !v.isEmpty {
            guard let d = GoDuration.parse(v), d > 0 else { throw QueryError("parameter 'since': '\(v)' is not a duration such as 15m or 24h") }
            since = d
        }
        var start = end >= since ? end - since : 0
        if let v = p["start"], !v.isEmpty { start = try self.parse(v, parameter: "start") }
        guard end >= start else { throw QueryError("parameter 'end' must not be before 'start'") }
        try limits.check(start: start, end: end)
        return (start, end)
    }

    /// Hours with one decimal.
    package static func hours(_ nanos: UInt64) -> String {
        let tenths = nanos / 360_000_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}

extension QueryLimits {
    /// Throws the 400 error for a time range from `start` to `end` (nanoseconds since the Unix
    /// epoch) longer than ``maxRangeNanos``.
    package func check(start: UInt64, end: UInt64) throws(QueryError) {
        guard end > start, end - start > self.maxRangeNanos else { return }
        throw QueryError("the time range (\(QueryTime.hours(end - start)) h) exceeds the maximum of \(QueryTime.hours(self.maxRangeNanos)) h")
    }

    /// The same for a range that may be open: without `end` it runs to `now`; without `start` it is
    /// not limited (a search or tag lookup over all data).
    package func check(start: UInt64?, end: UInt64?, now: UInt64) throws(QueryError) {
        guard let start else { return }
        try self.check(start: start, end: end ?? max(now, start))
    }
}

/// `GET /api/metrics/query_range` and `/api/metrics/query`: a TraceQL metrics query over a range.
public struct MetricsRequest: Sendable {
    public var query: TraceQLQuery
    public var aggregation: AggregationQuery

    public init(parameters p: [String: String], instant: Bool, now: UInt64, limits: QueryLimits) throws(QueryError) {
        guard let q = p["q"], !q.isEmpty else { throw QueryError("parameter 'q' is required (e.g. {} | rate() by (resource.service.name))") }
        do {
            self.query = try TraceQLQuery(parsing: q)
        } catch {
            throw QueryError("parameter 'q': \(error)")
        }
        guard self.query.metrics != nil else {
            throw QueryError("parameter 'q': a metrics query needs a metrics stage, e.g. \(q) | rate()")
        }
        let (start, end) = try QueryTime.range(p, now: now, limits: limits)
        var step: UInt64? = nil
        if !instant {
            // Default: about 100 points, at least 1 s.
            var s = max(1_000_000_000, (end - start) / 100)
            if let v = p["step"], !v.isEmpty {
                if let seconds = Double(v), seconds > 0, seconds.isFinite {
                    guard seconds < Double(QueryTime.endOfTimeSeconds) else {
                        throw QueryError("parameter 'step': '\(v)' is out of range; use at most the query's time range")
                    }
                    s = UInt64(seconds * 1e9)
                } else if let d = GoDuration.parse(v), d > 0 {
                    s = d
                } else {
                    throw QueryError("parameter 'step': '\(v)' is not a duration such as 30s or a number of seconds")
                }
            }
            guard s > 0, (end - start) / s < UInt64(limits.maxSteps) else {
                throw QueryError("parameter 'step': \((end - start) / max(s, 1) + 1) steps exceed the maximum of \(limits.maxSteps); use a larger step")
            }
            step = s
        }
        self.aggregation = AggregationQuery(self.query, startNanos: start, endNanos: end, stepNanos: step)
        if let problem = self.aggregation.problem { throw QueryError("parameter 'q': \(problem)") }
    }
}

/// `GET /api/weft/aggregate`: an aggregation table — any filter, group-by fields and several
/// aggregates at once, ordered by one of them.
public struct AggregateRequest: Sendable {
    public var aggregation: AggregationQuery
    /// Index of the aggregate rows are ordered by.
    public var orderBy: Int
    public var descending: Bool
    public var limit: Int

    public static let defaultLimit = 100
    public static let maxLimit = 100_000

    public init(parameters p: [String: String], now: UInt64, limits: QueryLimits) throws(QueryError) {
        var filter = TraceQLFilter.all
        if let q = p["q"], !q.isEmpty {
            let query: TraceQLQuery
            do {
                query = try TraceQLQuery(parsing: q)
            } catch {
                throw QueryError("parameter 'q': \(error)")
            }
            guard query.metrics == nil else { throw QueryError("parameter 'q': a spanset filter only; put aggregates in 'select' and fields in 'by'") }
            filter = query.filter
        }
        var groupBy: [TraceQLField] = []
        if let by = p["by"], !by.isEmpty {
            do {
                groupBy = try TraceQLField.list(parsing: by)
            } catch {
                throw QueryError("parameter 'by': \(error)")
            }
        }
        var aggregates: [Aggregate] = [.count]
        if let select = p["select"], !select.isEmpty {
            do {
                aggregates = try Aggregate.list(parsing: select)
            } catch {
                throw QueryError("parameter 'select': \(error)")
            }
        }
        let (start, end) = try QueryTime.range(p, now: now, limits: limits)
        self.aggregation = AggregationQuery(filter: filter, groupBy: groupBy, aggregates: aggregates, startNanos: start, endNanos: end)
        if let problem = self.aggregation.problem { throw QueryError(problem) }
        self.orderBy = 0
        if let o = p["order_by"], !o.isEmpty {
            if let i = Int(o), i >= 1, i <= aggregates.count {
                self.orderBy = i - 1
            } else if let i = aggregates.firstIndex(where: { $0.name == o || (try? Aggregate.list(parsing: o)) == [$0] }) {
                self.orderBy = i
            } else {
                throw QueryError("parameter 'order_by': '\(o)' is not one of the selected aggregates (\(aggregates.map(\.name).joined(separator: ", "))) or their 1-based position")
            }
        }
        switch p["order"] ?? "desc" {
        case "desc", "": self.descending = true
        case "asc": self.descending = false
        case let o: throw QueryError("parameter 'order': '\(o)' is not asc or desc")
        }
        self.limit = AggregateRequest.defaultLimit
        if let v = p["limit"], !v.isEmpty {
            guard let l = Int(v), l > 0, l <= AggregateRequest.maxLimit else { throw QueryError("parameter 'limit': '\(v)' is not an integer between 1 and \(AggregateRequest.maxLimit)") }
            self.limit = l
        }
    }
}
