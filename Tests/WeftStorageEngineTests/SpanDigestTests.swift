import Testing
import WeftModel
import WeftStorageEngine

struct SpanDigestTests {
    static let partition = PartitionKey(org: "acme", placement: "local")

    /// Two replicas with overlapping, differing data (head and blocks, several hours): one pass of
    /// the sync plan (differing buckets → keys → missing spans sent) makes digests and span sets
    /// equal, with no span twice; a second pass finds nothing to do.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func test_syncPlan_makesReplicasEqual(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var a = try EngineHarness(SimulatedDisk())
        var b = try EngineHarness(SimulatedDisk())
        var written = Set<SpanKey>()
        for trace in 1...40 as ClosedRange<UInt64> {
            let start = (rng.next() % 5) * SpanDigest.bucketNanos + 1_000
            let count = 1 + Int(rng.next() % 5)
            switch rng.next() % 4 {
            case 0: written.formUnion(try a.write(org: "acme", trace: trace, count: count, start: start))
            case 1: written.formUnion(try b.write(org: "acme", trace: trace, count: count, start: start))
            default:
                written.formUnion(try a.write(org: "acme", trace: trace, count: count, start: start))
                // b may hold only part of the trace.
                _ = try b.write(org: "acme", trace: trace, count: max(1, count - Int(rng.next() % 2)), start: start)
            }
            if trace == 20 { try a.cutIdle(after: 10) }
        }
        #expect(a.engine.digest(Self.partition) != b.engine.digest(Self.partition))
        let sent = Self.syncPass(a, b) + Self.syncPass(b, a)
        #expect(sent > 0)
        #expect(a.engine.digest(Self.partition) == b.engine.digest(Self.partition))
        for h in [a, b] {
            let stored = try h.stored()
            #expect(stored.count == Set(stored).count, "no span twice")
            #expect(Set(stored) == written)
        }
        #expect(Self.syncPass(a, b) + Self.syncPass(b, a) == 0, "in sync: nothing more to send")
    }

    /// Sends from `from` to `to` what `to` lacks, as a sync round does; returns the spans sent.
    static func syncPass(_ from: EngineHarness, _ to: EngineHarness) -> Int {
        let mine = from.engine.digest(Self.partition)
        let theirs = to.engine.digest(Self.partition)
        var sent = 0
        for bucket in SpanDigest.differing(mine, theirs) {
            let missing = SpanDigest.missing(from.engine.spanKeys(Self.partition, bucket: bucket), from: to.engine.spanKeys(Self.partition, bucket: bucket))
            for batch in from.engine.spans(Self.partition, keys: Set(missing), maxSpans: 7) {
                #expect(batch.spanCount <= 7)
                // Through the codec, as a push carries it.
                let decoded = try! SpanBatchCodec.encode(batch).withUnsafeBytes { try SpanBatchCodec.decode($0) }
                sent += to.engine.head.append(decoded, org: Self.partition.org, placement: Self.partition.placement)
            }
        }
        return sent
    }

    @Test func test_digest_isOrderIndependent_andCountsSpans() {
        let keys = (0..<100 as Range<UInt64>).map { ReplicaSpanKey(traceHigh: $0 / 10, traceLow: $0 * 31, spanID: $0 + 1) }
        func digest(_ keys: [ReplicaSpanKey]) -> BucketDigest {
            keys.reduce(into: BucketDigest()) { d, k in
                d.spans += 1
                d.hash &+= SpanDigest.spanHash(k)
            }
        }
        #expect(digest(keys) == digest(keys.reversed()))
        #expect(digest(keys) != digest(Array(keys.dropFirst())))
        #expect(digest(keys).spans == 100)
    }

    @Test func test_byteForms_roundTrip_andRefuseTruncation() throws {
        let digests: [UInt64: BucketDigest] = [1: .init(spans: 3, hash: 99), 7 << 8 | 5: .init(spans: 1, hash: .max)]
        let bytes = SpanDigest.encode(digests)
        #expect(try SpanDigest.decodeDigests(bytes) == digests)
        let keys = [ReplicaSpanKey(traceHigh: 1, traceLow: 2, spanID: 3), ReplicaSpanKey(traceHigh: .max, traceLow: 0, spanID: 9)]
        let keyBytes = SpanDigest.encode(keys: keys)
        #expect(try SpanDigest.decodeKeys(keyBytes) == keys)
        for cut in 0..<bytes.count { #expect(throws: DigestFormatError.self) { try SpanDigest.decodeDigests(Array(bytes.prefix(cut))) } }
        for cut in 0..<keyBytes.count { #expect(throws: DigestFormatError.self) { try SpanDigest.decodeKeys(Array(keyBytes.prefix(cut))) } }
        var wrongVersion = bytes
        wrongVersion[0] = 9
        #expect(throws: DigestFormatError.self) { try SpanDigest.decodeDigests(wrongVersion) }
        #expect(SpanDigest.differing(digests, [:]) == digests.keys.sorted())
        #expect(SpanDigest.differing(digests, digests).isEmpty)
    }
}
