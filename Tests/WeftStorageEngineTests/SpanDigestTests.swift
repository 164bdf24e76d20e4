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

    /// Sends from `from` to `to` what `to` lacks, as a sync round does (the keys of every bucket both
    /// hold and that differ, in one read per side); returns the spans sent.
    static func syncPass(_ from: EngineHarness, _ to: EngineHarness) -> Int {
        let mine = from.engine.digest(Self.partition)
        let theirs = to.engine.digest(Self.partition)
        let differing = SpanDigest.differing(mine, theirs).filter { mine[$0] != nil }
        let both = Set(differing.filter { theirs[$0] != nil })
        let missing = SpanDigest.missing(from.engine.spanKeys(Self.partition, buckets: Set(differing)), from: to.engine.spanKeys(Self.partition, buckets: both))
        var sent = 0
        for batch in from.engine.spans(Self.partition, keys: Set(missing), maxSpans: 7) {
            #expect(batch.spanCount <= 7)
            // Through the codec, as a push carries it.
            let decoded = try! SpanBatchCodec.encode(batch).withUnsafeBytes { try SpanBatchCodec.decode($0) }
            sent += to.engine.head.append(decoded, org: Self.partition.org, placement: Self.partition.placement)
        }
        return sent
    }

    /// A partition's digest, keys and spans read the same whether its spans sit in the head, in
    /// freshly cut blocks or in compacted ones (blocks are read by their key columns only, and each
    /// block's digest is kept): the digest is that of the head before, and a block replaced by
    /// compaction no longer counts.
    @Test func test_digestKeysAndSpans_areTheSame_fromHeadAndFromBlocks() throws {
        var h = try EngineHarness(SimulatedDisk())
        var written: [SpanKey] = []
        for trace in 1...30 as ClosedRange<UInt64> {
            written += try h.write(org: "acme", trace: trace, count: 1 + Int(trace % 4), start: (trace % 3) * SpanDigest.bucketNanos + 500)
        }
        let inHead = h.engine.digest(Self.partition)
        let buckets = Set(inHead.keys.sorted().prefix(5))
        let keysInHead = h.engine.spanKeys(Self.partition, buckets: buckets)
        #expect(keysInHead == buckets.flatMap { h.engine.spanKeys(Self.partition, bucket: $0) }.sorted())
        #expect(inHead.values.reduce(0) { $0 + $1.spans } == UInt64(written.count))
        // Cut in two steps (two blocks), then compact them into one.
        try h.cutIdle(after: 10)
        for trace in 31...40 as ClosedRange<UInt64> {
            written += try h.write(org: "acme", trace: trace, count: 2, start: 700)
        }
        let withNew = h.engine.digest(Self.partition)
        try h.cutIdle(after: 10)
        #expect(h.engine.snapshot(org: "acme").chunks.isEmpty && h.engine.blocks.count == 2)
        #expect(h.engine.digest(Self.partition) == withNew)
        #expect(h.engine.digest(Self.partition) == withNew, "the second read uses the kept block digests")
        try h.compactAll()
        #expect(h.engine.blocks.count == 1)
        #expect(h.engine.digest(Self.partition) == withNew)
        let newBuckets = Set(withNew.keys)
        let allKeys = h.engine.spanKeys(Self.partition, buckets: newBuckets)
        #expect(allKeys.count == written.count)
        #expect(Set(h.engine.spanKeys(Self.partition, buckets: buckets)).isSuperset(of: keysInHead))
        // Spans by key from blocks: exactly the wanted ones, whole.
        let wanted = Set(allKeys.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
        let batches = h.engine.spans(Self.partition, keys: wanted, maxSpans: 4)
        var got: [ReplicaSpanKey] = []
        for b in batches {
            #expect(b.spanCount <= 4)
            for row in 0..<b.spanCount {
                got.append(ReplicaSpanKey(b, row: row))
                #expect(b.attrRange(row).count == 2, "attributes decoded too")
            }
        }
        #expect(got.sorted() == wanted.sorted())
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
