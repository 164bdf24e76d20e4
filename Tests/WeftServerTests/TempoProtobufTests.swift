import Testing
import WeftModel
import WeftOTLP
import WeftStorageEngine
import WeftTestSupport

@testable import WeftQueryService

struct TempoProtobufTests {
    static let trace = TraceID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10)
    static let start: UInt64 = 1_700_000_000_000_000_000

    /// Two resources, the second span a child of the first, with every scalar attribute type.
    static func chunk() throws -> HeadChunk {
        let bytes = RequestBuilder.request([
            ("checkout", [TestSpan(traceID: trace, spanID: 0xAA, name: "POST /buy", kind: 2, start: start, end: start + 900)]),
            ("llm-gateway", [
                TestSpan(traceID: trace, spanID: 0xBB, parentSpanID: 0xAA, name: "chat gpt-4o", kind: 3, start: start + 10, end: start + 800,
                         statusCode: 2,
                         attributes: [("tenant_id", .string("acme")), ("retries", .int(-2)), ("cost", .double(0.25)), ("cached", .bool(true))]),
            ]),
            ("other", [TestSpan(traceID: TraceID(high: 9, low: 9), spanID: 0xCC, name: "unrelated", start: start, end: start + 1)]),
        ])
        return HeadChunk(org: "t", batch: try Self.decode(bytes))
    }

    static func decode(_ bytes: [UInt8]) throws -> SpanBatch {
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try bytes.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        return batch
    }

    @Test func traceEncodesTheStoredSpansAsOTLP() throws {
        let bytes = try #require(TraceProtobuf.trace(Self.trace, in: [try Self.chunk()]))
        // `Trace.batches` has the field number of ExportTraceServiceRequest's resource spans.
        let decoded = try Self.decode(bytes)
        #expect(decoded.spanCount == 2)
        #expect(decoded.resourceCount == 2)
        #expect((0..<2).map { decoded.strings.string(decoded.name[$0]) } == ["POST /buy", "chat gpt-4o"])
        #expect((0..<2).map { decoded.traceID($0) } == [Self.trace, Self.trace])
        #expect(decoded.spanID == [0xAA, 0xBB] && decoded.parentSpanID == [0, 0xAA])
        #expect(decoded.kind == [2, 3] && decoded.statusCode == [0, 2])
        #expect(decoded.startTime == [Self.start, Self.start + 10] && decoded.endTime == [Self.start + 900, Self.start + 800])
        let attrs = decoded.attrRange(1).map { i -> (String, ValueType?, UInt64) in
            (decoded.strings.string(decoded.attrs.keys[i]), ValueType(rawValue: decoded.attrs.types[i]), decoded.attrs.values[i])
        }
        #expect(attrs.map(\.0) == ["tenant_id", "retries", "cost", "cached"])
        #expect(attrs.map(\.1) == [.string, .int, .double, .bool])
        #expect(decoded.strings.string(UInt32(attrs[0].2)) == "acme")
        #expect(Int64(bitPattern: attrs[1].2) == -2 && Double(bitPattern: attrs[2].2) == 0.25 && attrs[3].2 == 1)
        let services = decoded.resourceServiceName.map { decoded.strings.string($0) }
        #expect(services == ["checkout", "llm-gateway"])
        // Encoding what was decoded gives the same bytes: nothing is lost or added.
        #expect(TraceProtobuf.trace(Self.trace, in: [HeadChunk(org: "t", batch: decoded)]) == bytes)
    }

    @Test func traceByIDResponseWrapsTheTraceInFieldOne() throws {
        let chunk = try Self.chunk()
        let trace = try #require(TraceProtobuf.trace(Self.trace, in: [chunk]))
        let response = try #require(TraceProtobuf.traceByIDResponse(Self.trace, in: [chunk]))
        var prefix = ProtoWriter()
        prefix.tag(1, .len)
        prefix.varint(UInt64(trace.count))
        #expect(response == prefix.bytes + trace)
    }

    @Test func anUnknownTraceHasNoAnswer() throws {
        let chunk = try Self.chunk()
        #expect(TraceProtobuf.trace(TraceID(high: 7, low: 7), in: [chunk]) == nil)
        #expect(TraceProtobuf.traceByIDResponse(TraceID(high: 7, low: 7), in: []) == nil)
    }

    @Test func searchRequestBecomesSearchParameters() throws {
        var w = ProtoWriter()
        w.message(1) { tag in
            tag.stringField(1, "tenant_id")
            tag.stringField(2, "a \"b\"")
        }
        w.varintField(2, 100)
        w.varintField(4, 20)
        w.varintField(5, 1_700_000_000)
        w.varintField(6, 1_700_003_600)
        w.stringField(8, "{ span.x != nil }")
        w.varintField(9, 3)
        w.fixed32Field(30, 7)  // unknown fields are skipped
        let p = try TempoRequests.search(w.bytes)
        #expect(p == [
            "tags": "tenant_id=\"a \\\"b\\\"\"", "minDuration": "100ms", "limit": "20", "start": "1700000000", "end": "1700003600",
            "q": "{ span.x != nil }", "spss": "3",
        ])
    }

    @Test func metricsRequestBecomesMetricsParameters() throws {
        var w = ProtoWriter()
        w.stringField(1, "{ } | rate()")
        w.varintField(2, Self.start)
        w.varintField(3, Self.start + 3_600_000_000_000)
        w.varintField(4, 60_000_000_000)
        #expect(try TempoRequests.metrics(w.bytes) == ["q": "{ } | rate()", "start": String(Self.start), "end": String(Self.start + 3_600_000_000_000), "step": "60000000000ns"])
    }

    @Test func malformedRequestsAreRefused() {
        #expect(throws: (any Error).self) { try TempoRequests.search([0x42, 0x05, 0x61]) }  // length past the end
        #expect(throws: (any Error).self) { try TempoRequests.metrics([0x10, 0xFF]) }  // truncated varint
        #expect(throws: (any Error).self) { try TempoRequests.metrics([0x0B]) }  // group wire type
    }

    @Test func stepsScanTheHeadThenMoreAndMoreBlocksNewestFirst() {
        func block(_ id: UInt64) -> BlockMeta {
            BlockMeta(id: id, org: "t", placement: "", spans: 1, minStart: id * 10, maxStart: id * 10 + 5, bytes: 1)
        }
        let none = StreamingQuerier.steps(StorageEngine.Snapshot(chunks: [], blocks: []))
        #expect(none.map { $0.blocks.count } == [0, 0])
        let two = StreamingQuerier.steps(StorageEngine.Snapshot(chunks: [], blocks: [block(1), block(2)]))
        #expect(two.map { $0.blocks.map(\.id) } == [[], [2, 1]])
        let five = StreamingQuerier.steps(StorageEngine.Snapshot(chunks: [], blocks: (1...5).map(block)))
        #expect(five.map { $0.blocks.map(\.id) } == [[], [5, 4], [5, 4, 3], [5, 4, 3, 2, 1]])
    }
}
