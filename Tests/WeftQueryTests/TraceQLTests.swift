import Testing
import WeftQuery

struct TraceQLTests {
    typealias F = TraceQLFilter

    @Test func test_spanFilters_parseIntoTheExpectedTree() throws {
        let q = try TraceQLQuery(parsing: #"{ resource.service.name = "checkout" && span.gen_ai.request.model =~ "gpt-4.*" && duration > 2s && status = error }"#)
        let expected: F = .and(.and(.and(
            .comparison(.attribute(.resource, "service.name"), .equal, .string("checkout")),
            .comparison(.attribute(.span, "gen_ai.request.model"), .matches, .string("gpt-4.*"))),
            .comparison(.intrinsic(.duration), .greater, .duration(2_000_000_000))),
            .comparison(.intrinsic(.status), .equal, .status(2)))
        #expect(q.filter == expected)
        #expect(q.metrics == nil && q.limit == nil)

        // || binds looser than &&; parentheses override.
        #expect(try TraceQLQuery(parsing: "{ .a = 1 || .b = 2 && .c = 3 }").filter == .or(
            .comparison(.attribute(.any, "a"), .equal, .int(1)),
            .and(.comparison(.attribute(.any, "b"), .equal, .int(2)), .comparison(.attribute(.any, "c"), .equal, .int(3)))))
        #expect(try TraceQLQuery(parsing: "{ (.a = 1 || .b = 2) && .c = 3 }").filter == .and(
            .or(.comparison(.attribute(.any, "a"), .equal, .int(1)), .comparison(.attribute(.any, "b"), .equal, .int(2))),
            .comparison(.attribute(.any, "c"), .equal, .int(3))))
        #expect(try TraceQLQuery(parsing: "{}").filter == .all)
        #expect(try TraceQLQuery(parsing: "{ tenant_id != \"acme\" }").filter == .comparison(.attribute(.any, "tenant_id"), .notEqual, .string("acme")))

        // Literals: numbers, floats, durations in every unit, booleans, kinds, escapes.
        let literals: [(String, TraceQLValue)] = [
            ("span.n >= -3", .int(-3)), ("span.x < 0.25", .float(0.25)), ("span.x <= .5", .float(0.5)),
            ("duration > 250ms", .duration(250_000_000)), ("duration > 1.5s", .duration(1_500_000_000)),
            ("duration > 2m", .duration(120_000_000_000)), ("duration > 1h", .duration(3_600_000_000_000)),
            ("duration > 10us", .duration(10_000)), ("duration > 5ns", .duration(5)),
            ("span.cached = true", .bool(true)), ("kind = client", .kind(3)), ("status != ok", .status(1)),
            (#"name = "say \"hi\"""#, .string(#"say "hi""#)),
            // Go's escapes, as Tempo reads them: a regex backslash is written twice.
            (#"span.re =~ "\\d+\\.\\w""#, .string(#"\d+\.\w"#)), (#"name = "a\tb\nc\rd""#, .string("a\tb\nc\rd")),
            (#"name = "\a\b\f\v""#, .string("\u{07}\u{08}\u{0C}\u{0B}")), (#"name = "\x41\101\u00e9\U0001F600""#, .string("AAé😀")),
            ("name = `raw \\d`", .string(#"raw \d"#)),
        ]
        for (text, value) in literals {
            guard case .comparison(_, _, let got) = try TraceQLQuery(parsing: "{ \(text) }").filter else {
                Issue.record("\(text): not a comparison")
                continue
            }
            #expect(got == value, "\(text)")
        }
    }

    @Test func test_metricsPipelines_parse() throws {
        let rate = try TraceQLQuery(parsing: "{ status = error } | rate() by (resource.service.name)")
        #expect(rate.metrics == TraceQLMetrics(function: .rate, by: [.attribute(.resource, "service.name")]))
        let q = try TraceQLQuery(parsing: "{ } | quantile_over_time(duration, .5, .95, 0.99) by (span.gen_ai.request.model, .region) | topk(10)")
        #expect(q.metrics == TraceQLMetrics(
            function: .quantileOverTime(.intrinsic(.duration), [0.5, 0.95, 0.99]),
            by: [.attribute(.span, "gen_ai.request.model"), .attribute(.any, "region")]))
        #expect(q.limit == TraceQLLimit(bottom: false, count: 10))
        let functions: [(String, TraceQLMetrics.Function)] = [
            ("count_over_time()", .countOverTime),
            ("sum_over_time(span.gen_ai.usage.cost)", .sumOverTime(.attribute(.span, "gen_ai.usage.cost"))),
            ("avg_over_time(duration)", .avgOverTime(.intrinsic(.duration))),
            ("min_over_time(duration)", .minOverTime(.intrinsic(.duration))),
            ("max_over_time(span.gen_ai.usage.input_tokens)", .maxOverTime(.attribute(.span, "gen_ai.usage.input_tokens"))),
            ("histogram_over_time(duration)", .histogramOverTime(.intrinsic(.duration))),
        ]
        for (text, f) in functions {
            #expect(try TraceQLQuery(parsing: "{} | \(text)").metrics?.function == f, "\(text)")
        }
        #expect(try TraceQLQuery(parsing: "{} | count_over_time() by (span.tenant_id) | bottomk(3)").limit == TraceQLLimit(bottom: true, count: 3))
    }

    /// Each malformed query fails at the right position with a message naming what was expected.
    @Test func test_errors_namePositionAndExpectation() {
        let cases: [(String, Int, String)] = [
            ("", 0, "expected '{' to open a spanset"),
            ("{ span.tenant_id }", 17, "expected a comparison operator"),
            ("{ span.tenant_id = }", 19, "expected a value"),
            ("{ .a = 1 && }", 12, "expected an attribute or intrinsic"),
            ("{ .a = 1 .b = 2 }", 9, "expected '&&', '||' or '}'"),
            ("{ (.a = 1 }", 10, "expected '&&', '||' or ')'"),
            (#"{ name = "open }"#, 9, "unterminated string"),
            ("{ duration > fast }", 13, "expected a value"),
            ("{ duration > \"2s\" }", 13, "duration compares with a duration"),
            ("{ status = 500 }", 11, "status compares with = or != to ok, error or unset"),
            ("{ status > error }", 11, "status compares with = or !="),
            ("{ kind = sideways }", 9, "expected a value"),
            ("{ name = 3 }", 9, "name compares with a \"string\""),
            (#"{ .a =~ "([" }"#, 8, "invalid regular expression"),
            ("{ .a =~ 3 }", 8, "=~ needs a \"regular expression\" string"),
            ("{ .a = 1 } | median()", 13, "unknown metrics function 'median'"),
            ("{ .a = 1 } | quantile_over_time(duration)", 40, "at least one quantile"),
            ("{ .a = 1 } | quantile_over_time(duration, 1.5)", 42, "a quantile between 0 and 1"),
            ("{ .a = 1 } | rate() by span.x", 23, "expected '(' after by"),
            ("{ .a = 1 } | topk(5)", 13, "topk needs a metrics stage"),
            ("{ .a = 1 } | rate() | topk(0)", 27, "a positive integer"),
            ("{ .a = 1 } extra", 11, "expected '|' or the end of the query"),
            ("{ .a = 1 # }", 9, "unexpected character '#'"),
            ("{ span. = 1 }", 2, "expected an attribute name after 'span.'"),
            // One backslash before a regex construct is an unknown escape, not the construct.
            (#"{ .a =~ "\d+" }"#, 9, "unknown escape '\\d' in a string: write '\\\\d'"),
            (#"{ .a =~ "\p{L}" }"#, 9, "unknown escape '\\p'"),
            (#"{ .a =~ "(a)\1" }"#, 12, "'\\1' is not an escape"),
            (#"{ .a = "\u12" }"#, 8, "'\\u' needs 4 hexadecimal digits"),
            (#"{ .a = "\u+123" }"#, 8, "'\\u' needs 4 hexadecimal digits"), (#"{ .a = "\x-1" }"#, 8, "'\\x' needs 2 hexadecimal digits"),
            (#"{ .a = "\0+7" }"#, 8, "'\\0' is not an escape"),
            (#"{ .a = "\uD800" }"#, 8, "'\\u' escapes no character"),
            (#"{ .a = "\xff" }"#, 8, "a byte past ASCII"),
        ]
        for (text, position, message) in cases {
            do {
                _ = try TraceQLQuery(parsing: text)
                Issue.record("\(text): parsed, expected an error")
            } catch {
                #expect(error.position == position, "\(text): \(error)")
                #expect(error.message.contains(message), "\(text): \(error)")
            }
        }
    }
}
