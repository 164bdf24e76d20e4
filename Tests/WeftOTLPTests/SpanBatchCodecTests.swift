import Testing
import WeftLoad
import WeftModel
import WeftOTLP

struct SpanBatchCodecTests {
    static func roundTrip(_ batch: SpanBatch) throws -> SpanBatch {
        try SpanBatchCodec.encode(batch).withUnsafeBytes { try SpanBatchCodec.decode($0) }
    }

    static func decode(_ bytes: [UInt8]) throws -> SpanBatch {
        try bytes.withUnsafeBytes { try SpanBatchCodec.decode($0) }
    }

    @Test func test_roundTrip_richBatch_isIdentical() throws {
        let batch = try BatchFixtures.rich()
        // The fixture really covers what the encoding must carry.
        #expect(batch.spanCount == 6 && batch.resourceCount == 2 && batch.scopeCount == 3)
        #expect(batch.eventTime.count == 4 && batch.linkSpanID.count == 2 && batch.eventAttrs.count == 2 && batch.linkAttrs.count == 2)
        #expect(Set(batch.attrs.types) == Set((0...7).map(UInt8.init)))
        #expect(batch.cost.contains { !$0.isNaN } && batch.cost.contains { $0.isNaN })
        let decoded = try Self.roundTrip(batch)
        BatchFixtures.expectIdentical(batch, decoded)
        #expect(BatchFixtures.describeSpans(decoded) == BatchFixtures.describeSpans(batch))
        // The decoded table finds its strings (it is a working table, not just bytes).
        #expect(decoded.strings.lookup("upstream timeout") == batch.strings.lookup("upstream timeout"))
    }

    @Test func test_roundTrip_tokenCounts_atTheEdges() throws {
        var batch = try BatchFixtures.rich()
        batch.inputTokens = [SpanBatch.noTokens, -1, 0, Int64.max, 5, Int64.min + 1]
        batch.outputTokens = [1, 2, 3, 4, 5, 6]
        BatchFixtures.expectIdentical(batch, try Self.roundTrip(batch))
    }

    @Test func test_roundTrip_emptyBatch() throws {
        let empty = SpanBatch()
        let encoded = SpanBatchCodec.encode(empty)
        let decoded = try Self.decode(encoded)
        #expect(decoded.spanCount == 0 && decoded.resourceCount == 0 && decoded.strings.count == WellKnown.all.count)
        BatchFixtures.expectIdentical(empty, decoded)
    }

    @Test func test_roundTrip_generatedTraffic_isIdentical_andSmallerThanProtobuf() throws {
        var generator = TrafficGenerator(profile: LoadProfile(seed: 7))
        let request = generator.nextRequest(spans: 1000, startTimeNanos: BatchFixtures.nowNanos, spacingNanos: 1_000_000)
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try request.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        let encoded = SpanBatchCodec.encode(batch)
        BatchFixtures.expectIdentical(batch, try Self.decode(encoded))
        #expect(encoded.count < request.count)
        #expect(encoded.count <= SpanBatchCodec.encodedSizeBound(batch))
    }

    @Test func test_roundTrip_batchBuiltByAppend() throws {
        var combined = SpanBatch()
        combined.append(try BatchFixtures.rich())
        combined.append(try BatchFixtures.decode(json: BatchFixtures.richJSON(start: BatchFixtures.nowNanos + 1_000_000)))
        BatchFixtures.expectIdentical(combined, try Self.roundTrip(combined))
    }

    @Test func test_everyTruncation_throws() throws {
        let encoded = SpanBatchCodec.encode(try BatchFixtures.rich())
        for length in 0..<encoded.count {
            #expect(throws: SpanBatchCodec.DecodeError.self, "prefix of \(length) bytes") { _ = try Self.decode(Array(encoded[..<length])) }
        }
        #expect(throws: SpanBatchCodec.DecodeError.self) { _ = try Self.decode(encoded + [0]) }
    }

    @Test func test_unknownVersion_throwsNamingIt() throws {
        var encoded = SpanBatchCodec.encode(try BatchFixtures.rich())
        encoded[0] = 9
        #expect { _ = try Self.decode(encoded) } throws: { "\($0)".contains("version 9") }
    }

    /// Flips every bit of the payload in turn: each result either throws or decodes into a batch whose
    /// references all hold (it can be walked and re-encoded). A trap here fails the run.
    @Test func test_everySingleBitFlip_throwsOrYieldsAValidBatch() throws {
        let encoded = SpanBatchCodec.encode(try BatchFixtures.rich())
        var thrown = 0
        for bit in 0..<(encoded.count * 8) {
            var flipped = encoded
            flipped[bit / 8] ^= UInt8(1 << (bit % 8))
            do {
                let batch = try Self.decode(flipped)
                _ = BatchFixtures.describeSpans(batch)
                BatchFixtures.expectIdentical(batch, try Self.roundTrip(batch))
            } catch {
                thrown += 1
            }
        }
        // Flips in counts, widths, offsets, string lengths, IDs and types are caught.
        #expect(thrown > encoded.count)
    }

    @Test func test_hostileFields_throwClearErrors() throws {
        let batch = try BatchFixtures.rich()
        let encoded = SpanBatchCodec.encode(batch)
        func mutated(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
            var copy = encoded
            change(&copy)
            return copy
        }
        func expectError(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(sourceLocation: sourceLocation) { _ = try Self.decode(bytes) } throws: { "\($0)".contains(fragment) }
        }
        // A header claiming billions of spans is refused before anything is allocated.
        expectError(mutated { $0.replaceSubrange((1 + 6 * 4)..<(1 + 7 * 4), with: [0xFF, 0xFF, 0xFF, 0x7F]) }, "claims")
        // One span more than the columns hold.
        #expect(throws: SpanBatchCodec.DecodeError.self) { _ = try Self.decode(mutated { $0[1 + 6 * 4] &+= 1 }) }
        // The first column after the strings has an impossible width.
        expectError(mutated { $0[Self.firstColumnOffset(batch)] = 3 }, "invalid width 3")
        #expect(throws: SpanBatchCodec.DecodeError.self) { _ = try Self.decode([]) }
        // Every table claiming as many rows as the (padded) payload has bytes: refused up front.
        var padded = encoded + [UInt8](repeating: 0, count: 1 << 20)
        let claim = UInt32(padded.count)
        for table in 2..<12 {
            withUnsafeBytes(of: claim.littleEndian) { padded.replaceSubrange((1 + 4 * table)..<(5 + 4 * table), with: $0) }
        }
        expectError(padded, "bytes in memory")
    }

    /// Batches whose columns break a rule (the encoder writes what it is given): decoding refuses each.
    @Test func test_brokenReferences_areRefused() throws {
        let good = try BatchFixtures.rich()
        func expectRefused(_ fragment: String, sourceLocation: SourceLocation = #_sourceLocation, _ breakIt: (inout SpanBatch) -> Void) {
            var bad = good
            breakIt(&bad)
            #expect(sourceLocation: sourceLocation) { _ = try Self.roundTrip(bad) } throws: { "\($0)".contains(fragment) }
        }
        expectRefused("string ID") { $0.name[0] = UInt32($0.strings.count) }
        expectRefused("string ID") { $0.eventAttrs.keys[0] = 1_000_000 }
        expectRefused("unknown value type 12") { $0.attrs.types[0] = 12 }
        expectRefused("invalid value") { b in
            let i = b.attrs.types.firstIndex(of: ValueType.bool.rawValue)!
            b.attrs.values[i] = 2
        }
        expectRefused("invalid value") { b in
            let i = b.linkAttrs.types.firstIndex(of: ValueType.string.rawValue)!
            b.linkAttrs.values[i] = UInt64(b.strings.count) + 5
        }
        expectRefused("resources row") { $0.resourceIndex[1] = 2 }
        expectRefused("scopes row") { $0.scopeIndex[0] = 3 }
        expectRefused("offsets") { $0.attrOffsets[3] = 5 }
        expectRefused("offsets") { $0.eventOffsets[0] = 1 }
    }

    /// Offset of the first column: header, string-length column, string bytes.
    static func firstColumnOffset(_ batch: SpanBatch) -> Int {
        let extra = batch.strings.count - WellKnown.all.count
        let lengthWidth = Int(SpanBatchCodec.encode(batch)[1 + 12 * 4])
        let stringBytes = batch.strings.bytes.count - Int(batch.strings.offsets[WellKnown.all.count])
        return 1 + 12 * 4 + 1 + extra * lengthWidth + stringBytes
    }
}
