import Testing
import WeftQuery
import WeftQueryService

/// Hostile query parameters get a clear error naming the parameter.
struct ParameterParsingTests {
    static func message(_ body: () throws(QueryError) -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return error.message
        }
    }

    /// Every numeric parameter that could overflow is refused with its name.
    @Test func test_overflowingParameters_nameTheParameter() {
        let now: UInt64 = 1_764_460_800_000_000_000
        let search: [([String: String], String)] = [
            (["q": "{ duration > 1e300h }"], "q"), (["q": "{ duration > 20000000000h }"], "q"),
            (["minDuration": "100000000000000000000ns"], "minDuration"), (["maxDuration": "1e300h"], "maxDuration"),
            (["start": "20000000000"], "start"), (["end": "99999999999999999999"], "end"),
            (["limit": "99999999999999999999"], "limit"), (["spss": "99999999999999999999"], "spss"),
        ]
        for (p, name) in search {
            let m = Self.message { () throws(QueryError) in _ = try SearchRequest(parameters: p) }
            #expect(m?.contains("'\(name)'") == true, "\(p): \(m ?? "accepted")")
        }
        let metrics: [([String: String], String)] = [
            (["step": "1e11"], "step"), (["step": "1e300"], "step"), (["start": "20000000000"], "start"),
            (["start": "2600-01-01T00:00:00Z"], "start"), (["end": "2554-07-21T23:34:33Z"], "end"),
            (["end": "18446744073"], "end"), (["since": "1e300h"], "since"),
            (["q": "{ duration > 100000000000000000000ns } | rate()"], "q"),
        ]
        for (extra, name) in metrics {
            let p = ["q": "{ } | rate()"].merging(extra) { $1 }
            let m = Self.message { () throws(QueryError) in _ = try MetricsRequest(parameters: p, instant: false, now: now, limits: QueryLimits()) }
            #expect(m?.contains("'\(name)'") == true, "\(p): \(m ?? "accepted")")
        }
        let table = Self.message { () throws(QueryError) in
            _ = try AggregateRequest(parameters: ["q": "{ duration > 1e300h }"], now: now, limits: QueryLimits())
        }
        #expect(table?.contains("'q'") == true)
        // The last representable second still parses; the first beyond is out of range.
        #expect(QueryTime.parse("2554-07-21T23:34:32Z") == 18_446_744_072_000_000_000)
        #expect(QueryTime.parse("2554-07-21T23:34:33Z") == nil)
        #expect(Self.message { () throws(QueryError) in _ = try QueryTime.parse("2600-01-01T00:00:00Z", parameter: "end") }?.contains("out of range") == true)
    }
}
