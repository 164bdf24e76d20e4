// Span limits and org IDs: what is refused before anything is written, and what is kept intact.

import Testing
import WeftModel
import WeftOTLP
import WeftTestSupport

struct SpanLimitsTests {
    static func span(_ n: UInt64, attributes: Int = 2, start: UInt64 = 5_000, value: String = "v") -> TestSpan {
        var attrs: [(String, TestValue)] = [("tenant_id", .string("t\(n)"))]
        for i in 1..<max(1, attributes) { attrs.append(("k\(i)", .string(value))) }
        return TestSpan(traceID: TraceID(high: 7, low: n), spanID: n, name: "op-\(n)", start: start, end: start + 10, attributes: attrs)
    }

    static func decode(_ spans: [TestSpan], service: String = "svc") throws -> SpanBatch {
        let body = RequestBuilder.request([(service, spans)])
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try body.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        return batch
    }

    /// Span names, with each span's attribute keys and string values, read through the batch's table.
    static func contents(_ b: SpanBatch) -> [String] {
        (0..<b.spanCount).map { row in
            var text = b.strings.string(b.name[row])
            for i in b.attrRange(row) {
                text += " " + (b.strings.string(b.attrs.keys[i])) + "=" + (b.strings.string(UInt32(b.attrs.values[i])))
            }
            return text
        }
    }

    @Test func test_enforce_withinLimits_leavesBatchUntouched() throws {
        var batch = try Self.decode((1...5).map { Self.span($0) })
        let before = Self.contents(batch)
        let outcome = SpanLimits().enforce(on: &batch)
        #expect(outcome.rejectedSpans == 0)
        #expect(Self.contents(batch) == before)
    }

    @Test func test_enforce_tooManyAttributes_removesOnlyThatSpan_andItsStrings() throws {
        let limits = SpanLimits(maxAttributesPerSpan: 10)
        var batch = try Self.decode([Self.span(1), Self.span(2, attributes: 11, value: "only-in-the-big-span"), Self.span(3)])
        let expected = Self.contents(try Self.decode([Self.span(1), Self.span(3)]))
        let outcome = limits.enforce(on: &batch)
        #expect(outcome.rejectedSpans == 1)
        #expect(outcome.message.contains("11 attributes (limit 10)"))
        #expect(Self.contents(batch) == expected)
        #expect(batch.spanID == [1, 3])
        // The refused span's strings are gone, so they never reach the head's dictionary.
        #expect(batch.strings.lookup("only-in-the-big-span") == nil)
    }

    @Test func test_enforce_longValue_isRefused_atTheLimitIsKept() throws {
        let limits = SpanLimits(maxValueBytes: 64)
        var batch = try Self.decode([
            Self.span(1, value: String(repeating: "a", count: 64)), Self.span(2, value: String(repeating: "b", count: 65)),
        ])
        let outcome = limits.enforce(on: &batch)
        #expect(outcome.rejectedSpans == 1)
        #expect(outcome.message.contains("longer than 64 bytes"))
        #expect(batch.spanID == [1])
    }

    @Test func test_enforce_longResourceAttribute_refusesEverySpanOfThatResource() throws {
        let limits = SpanLimits(maxValueBytes: 32)
        let body = RequestBuilder.request([
            (String(repeating: "s", count: 40), [Self.span(1), Self.span(2)]), ("short", [Self.span(3)]),
        ])
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try body.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        let outcome = limits.enforce(on: &batch)
        #expect(outcome.rejectedSpans == 2)
        #expect(outcome.message.contains("resource"))
        #expect(batch.spanID == [3])
        #expect(batch.strings.string(batch.resourceServiceName[Int(batch.resourceIndex[0])]) == "short")
    }

    @Test func test_enforce_retention_refusesOlderSpans() throws {
        var batch = try Self.decode([Self.span(1, start: 999), Self.span(2, start: 1_000), Self.span(3, start: 5_000)])
        let outcome = SpanLimits().enforce(on: &batch, minStartNanos: 1_000)
        #expect(outcome.rejectedSpans == 1)
        #expect(outcome.message.contains("retention"))
        #expect(batch.spanID == [2, 3])
    }

    @Test func test_enforce_hundredThousandAttributes_isRefusedCheaply() throws {
        var batch = try Self.decode([Self.span(1, attributes: 100_000), Self.span(2)])
        let outcome = SpanLimits().enforce(on: &batch)
        #expect(outcome.rejectedSpans == 1)
        #expect(batch.spanID == [2])
        #expect(batch.attrs.count == 2)
    }

    // MARK: Org IDs

    @Test func test_orgID_absentOrEmpty_isTheDefaultOrg() {
        #expect(OrgID.parse(nil) == .success(OrgID.defaultOrg))
        #expect(OrgID.parse("") == .success(OrgID.defaultOrg))
    }

    @Test func test_orgID_acceptsTheDocumentedCharacterSet() {
        for id in ["team-a", "Team_B.1", "a!b*c'd(e)", String(repeating: "x", count: 150), "..."] {
            #expect(OrgID.parse(id) == .success(id), "\(id)")
        }
    }

    @Test func test_orgID_refusesConfusableLongAndOddHeaders() {
        let refused = [
            "caf\u{E9}", "cafe\u{301}", "\u{212B}", "\u{C5}", "x\u{FFFD}", "a b", "a/b", "a|b", "a\tb", ".", "..",
            String(repeating: "x", count: 151), String(repeating: "y", count: 70_000),
        ]
        for id in refused {
            guard case .failure = OrgID.parse(id) else {
                Issue.record("accepted \(id.prefix(20))")
                continue
            }
        }
        // Canonically equivalent strings are equal as Swift Strings: refusing non-ASCII is what keeps them apart.
        #expect("caf\u{E9}" == "cafe\u{301}")
    }
}
