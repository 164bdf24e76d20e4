import Testing
import WeftLoad
import WeftModel
import WeftOTLP
import WeftStorageEngine
import WeftTestSupport

struct BlockCodecTests {
    /// A batch of generated LLM-gateway traffic, as the head holds it (several requests appended).
    static func generated(requests: Int, seed: UInt64) -> SpanBatch {
        var generator = TrafficGenerator(profile: LoadProfile(seed: seed))
        var decoder = OTLPProtobufDecoder()
        var chunk = SpanBatch()
        for i in 0..<requests {
            let body = generator.nextRequest(spans: 300, startTimeNanos: 1_764_460_800_000_000_000 + UInt64(i) * 1_000_000_000, spacingNanos: 1_000_000)
            var batch = SpanBatch()
            _ = try! body.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            chunk.append(batch)
        }
        return chunk
    }

    /// A span rendered independently of row order and string IDs.
    struct Row: Hashable {
        var trace: TraceID, span: UInt64, parent: UInt64, name: String, kind: UInt8, start: UInt64, end: UInt64
        var status: UInt8, message: String, state: String, flags: UInt32, service: String, scope: String
        var attributes: [String], resourceAttributes: [String], events: [String], links: [String]
        var genAI: String
    }

    static func rows(_ b: SpanBatch) -> [Row] {
        func attrs(_ a: AttributeColumns, _ range: Range<Int>) -> [String] {
            range.map { i -> String in
                let t = ValueType(rawValue: a.types[i])!
                let v = t.isInterned ? Hex.encode(b.strings.data(UInt32(a.values[i]))) : String(a.values[i])
                return "\(b.strings.string(a.keys[i]))=\(a.types[i]):\(v)"
            }.sorted()
        }
        return (0..<b.spanCount).map { r in
            let res = Int(b.resourceIndex[r])
            let sc = Int(b.scopeIndex[r])
            let events = (Int(b.eventOffsets[r])..<Int(b.eventOffsets[r + 1])).map { e in
                "\(b.eventTime[e]) \(b.strings.string(b.eventName[e])) \(attrs(b.eventAttrs, Int(b.eventAttrOffsets[e])..<Int(b.eventAttrOffsets[e + 1])))"
            }
            let links = (Int(b.linkOffsets[r])..<Int(b.linkOffsets[r + 1])).map { l in
                "\(b.linkTraceHigh[l]) \(b.linkTraceLow[l]) \(b.linkSpanID[l]) \(b.linkFlags[l]) \(attrs(b.linkAttrs, Int(b.linkAttrOffsets[l])..<Int(b.linkAttrOffsets[l + 1])))"
            }
            return Row(
                trace: b.traceID(r), span: b.spanID[r], parent: b.parentSpanID[r], name: b.strings.string(b.name[r]), kind: b.kind[r],
                start: b.startTime[r], end: b.endTime[r], status: b.statusCode[r], message: b.strings.string(b.statusMessage[r]),
                state: b.strings.string(b.traceState[r]), flags: b.flags[r], service: b.strings.string(b.resourceServiceName[res]),
                scope: b.strings.string(b.scopeName[sc]) + "@" + b.strings.string(b.scopeVersion[sc]),
                attributes: attrs(b.attrs, b.attrRange(r)), resourceAttributes: attrs(b.resourceAttrs, b.resourceAttrRange(res)),
                events: events, links: links,
                genAI: "\(b.strings.string(b.genAIProvider[r]))|\(b.strings.string(b.genAIRequestModel[r]))|\(b.strings.string(b.genAIResponseModel[r]))|\(b.inputTokens[r])|\(b.outputTokens[r])|\(b.cost[r].isNaN ? "-" : String(b.cost[r].bitPattern))"
            )
        }
    }

    @Test func test_packedColumns_roundTripEveryWidth() throws {
        var rng = SplitMix64(seed: 11)
        for width in 0...64 {
            let mask: UInt64 = width == 64 ? .max : (1 << UInt64(width)) - 1
            let base = rng.next() % 1000
            let values = (0..<Int(rng.next() % 300)).map { _ in (rng.next() & mask) &+ (width == 64 ? 0 : base) }
            var w = ByteWriter()
            w.packed(values)
            w.varint(42)
            let (back, tail) = try w.bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                return (try r.packed(), try r.varint())
            }
            #expect(back == values, "width \(width)")
            #expect(tail == 42, "width \(width)")
        }
    }

    @Test func test_generatedTraffic_roundTripsExactly() throws {
        let batch = Self.generated(requests: 6, seed: 3)
        #expect(batch.spanCount > 1500)
        // Small row groups, so the block has many.
        let (bytes, sections) = BlockCodec.encode(batch, options: .init(zstdLevel: 3, groupSpans: 256))
        #expect(sections.reduce(0) { $0 + $1.bytes } < bytes.count)
        #expect(try BlockReader(bytes: bytes).groups.count >= 5)
        let decoded = try BlockCodec.decode(bytes)
        #expect(decoded.spanCount == batch.spanCount)
        #expect(Set(Self.rows(decoded)) == Set(Self.rows(batch)))
        // Spans of a trace are adjacent and ordered by start time; traces by their first start.
        var seen = Set<TraceID>()
        var previousTraceStart: UInt64 = 0
        for r in 0..<decoded.spanCount {
            if r > 0 && decoded.traceID(r) == decoded.traceID(r - 1) {
                #expect(decoded.startTime[r] >= decoded.startTime[r - 1])
            } else {
                #expect(seen.insert(decoded.traceID(r)).inserted, "trace split at row \(r)")
                #expect(decoded.startTime[r] >= previousTraceStart)
                previousTraceStart = decoded.startTime[r]
            }
        }
    }

    @Test func test_sdkFixture_roundTripsEveryValueType() throws {
        // Arrays, kvlists, bytes, doubles, negative ints, events and links with attributes.
        let request = RequestBuilder.request([
            ("svc", [TestSpan(traceID: TraceID(high: 1, low: 2), spanID: 5, parentSpanID: 77, name: "orphan", start: 10, end: 5,
                              attributes: [("neg", .int(-5)), ("pi", .double(3.14)), ("ok", .bool(true)), ("s", .string("x"))])]),
        ])
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try request.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        let (bytes, _) = BlockCodec.encode(batch)
        let decoded = try BlockCodec.decode(bytes)
        #expect(Self.rows(decoded) == Self.rows(batch))
        #expect(decoded.parentSpanID == [77])  // a parent outside the block survives
        #expect(decoded.endTime == [5])  // end before start survives too
    }

    @Test func test_attributesMixingTypesAndCardinalities_roundTrip() throws {
        // Per key: a few repeated strings (inverted), IDs seen once (kept as row lists), and ints,
        // doubles and bools under the same keys, in spans of several traces and row groups.
        var spans: [TestSpan] = []
        for i in 0..<600 {
            var attributes: [(String, TestValue)] = [("tier", .string(["gold", "silver", "bronze"][i % 3])), ("request.id", .string("req-\(i)"))]
            if i % 4 == 0 { attributes.append(("tier", .int(Int64(i)))) }
            if i % 5 == 0 { attributes.append(("request.id", .double(Double(i) / 7))) }
            if i % 7 == 0 { attributes.append(("flag", .bool(i % 2 == 0))) }
            if i % 11 == 0 { attributes.append(("tier", .string("gold"))) }
            spans.append(TestSpan(
                traceID: TraceID(high: 9, low: UInt64(i / 3)), spanID: UInt64(i + 1), name: "op", start: UInt64(1_000 + i), end: UInt64(2_000 + i),
                attributes: attributes
            ))
        }
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try RequestBuilder.request([("svc", spans)]).withUnsafeBytes { try decoder.decode($0, into: &batch) }
        let (bytes, _) = BlockCodec.encode(batch, options: .init(zstdLevel: 1, groupSpans: 100))
        let decoded = try BlockCodec.decode(bytes)
        #expect(Set(Self.rows(decoded)) == Set(Self.rows(batch)))
        #expect(Self.rows(decoded).count == 600)
    }

    @Test func test_everyFlippedByte_isDetected() throws {
        let batch = Self.generated(requests: 1, seed: 9)
        let (bytes, _) = BlockCodec.encode(batch)
        var rng = SplitMix64(seed: 5)
        for _ in 0..<300 {
            var corrupt = bytes
            let at = Int(rng.next() % UInt64(bytes.count))
            corrupt[at] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            #expect(throws: BlockFormatError.self, "flipped byte \(at)") {
                _ = try BlockCodec.decode(corrupt)
            }
        }
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 200)) {
            #expect(throws: BlockFormatError.self, "truncated at \(cut)") {
                _ = try BlockCodec.decode(Array(bytes[..<cut]))
            }
        }
    }
}
