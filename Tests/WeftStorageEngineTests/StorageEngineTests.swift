import Testing
import WeftModel
import WeftOTLP
import WeftStorageEngine
import WeftTestSupport

/// One node's storage over a disk: WAL, head and blocks, driven step by step as the server would.
struct EngineHarness {
    static let orgs = ["acme", "globex"]
    let engine: StorageEngine
    let wal: WAL
    let clock: ManualClock
    let report: StorageEngine.OpenReport
    var decoder = OTLPProtobufDecoder()

    init(_ disk: any Disk, configuration: StorageEngine.Configuration = .init(compactionMaxSpans: 10_000)) throws {
        let clock = ManualClock()
        self.clock = clock
        self.engine = StorageEngine(
            head: Head(configuration: .init(chunkSpans: 32), clock: clock.read), store: BlockStore(disk: disk, directory: "/n/blocks"),
            configuration: configuration
        )
        self.wal = WAL(disk: disk, directory: "/n/wal", configuration: .init(segmentSize: 1 << 20))
        self.report = try self.engine.open(wal: self.wal, options: DecodeOptions())
    }

    /// A request of `count` spans in trace `trace` (span IDs from `firstSpan` on); a span ID is
    /// unique across the test unless a request is repeated.
    static func request(trace: UInt64, count: Int, start: UInt64 = 1_000, firstSpan: Int = 0) -> [UInt8] {
        let spans = (firstSpan..<(firstSpan + count)).map { (i: Int) -> TestSpan in
            let first: UInt64 = start + trace * 10 + UInt64(i)
            let attributes: [(String, TestValue)] = [("tenant_id", .string("t\(trace % 4)")), ("user_id", .string("u\(trace)"))]
            return TestSpan(
                traceID: TraceID(high: trace, low: trace &* 7919), spanID: trace << 16 | UInt64(i + 1),
                parentSpanID: i == 0 ? 0 : trace << 16 | 1, name: "op-\(i % 3)", start: first, end: first + 50, attributes: attributes
            )
        }
        return RequestBuilder.request([("svc-\(trace % 2)", spans)])
    }

    /// Logs, syncs and appends one request, as an acknowledged write does. Returns its spans.
    mutating func write(org: String, trace: UInt64, count: Int, start: UInt64 = 1_000, firstSpan: Int = 0) throws -> [SpanKey] {
        let body = Self.request(trace: trace, count: count, start: start, firstSpan: firstSpan)
        let record = try body.withUnsafeBytes { try WALEntry.framed(org: org, encoding: .protobuf, body: $0) }
        let segment = try self.wal.append(framed: [record])
        try self.wal.sync()
        var batch = SpanBatch()
        _ = try body.withUnsafeBytes { try self.decoder.decode($0, into: &batch) }
        self.engine.head.append(batch, org: org, segment: segment)
        return (0..<batch.spanCount).map { SpanKey(org: org, trace: batch.traceID($0), span: batch.spanID[$0]) }
    }

    /// Closes the WAL segment and flushes every closed one, removing it from the WAL.
    func cut() throws {
        try self.wal.roll()
        for s in self.engine.flushableSegments(current: self.wal.current) {
            try self.engine.flush(segment: s)
            try self.wal.remove(segment: s)
        }
    }

    /// Closes the WAL segment, lets `seconds` pass on the head clock, cuts the traces that are idle
    /// and removes the WAL segments no head row needs, as the node's maintenance pass does.
    func cutIdle(after seconds: Double) throws {
        try self.wal.roll()
        self.clock.advance(seconds: seconds)
        try self.engine.cut()
        for s in self.engine.releasableSegments(current: self.wal.current) {
            try self.wal.remove(segment: s)
            self.engine.released(segment: s)
        }
    }

    func compactAll() throws {
        while let plan = self.engine.compactionPlan() {
            try self.engine.compact(plan)
            try self.engine.purgeRetired()
        }
    }

    /// Every stored span (head and blocks), with repeats.
    func stored() throws -> [SpanKey] {
        var keys: [SpanKey] = []
        for org in Self.orgs {
            let snapshot = self.engine.snapshot(org: org)
            for chunk in snapshot.chunks {
                let b = chunk.batch
                keys += (0..<b.spanCount).map { SpanKey(org: org, trace: b.traceID($0), span: b.spanID[$0]) }
            }
            for meta in snapshot.blocks {
                let b = try self.engine.store.read(meta)
                keys += (0..<b.spanCount).map { SpanKey(org: org, trace: b.traceID($0), span: b.spanID[$0]) }
            }
        }
        return keys
    }
}

struct SpanKey: Hashable, CustomStringConvertible {
    var org: String
    var trace: TraceID
    var span: UInt64
    var description: String { "\(self.org)/\(self.trace.high)/\(self.span)" }
}

struct StorageEngineTests {
    /// Writes, cuts, flushes and compacts; `acked` collects what was acknowledged before any failure.
    static func workload(_ h: inout EngineHarness, _ acked: inout [SpanKey], base: UInt64) throws {
        for i in 0..<14 as Range<UInt64> {
            acked += try h.write(org: EngineHarness.orgs[Int(i % 2)], trace: base + i, count: 3 + Int(i % 4))
            if i % 4 == 3 { try h.cut() }
        }
        // A late span of an early trace lands in a later segment (so in another block).
        acked += try h.write(org: "acme", trace: base + 1_000, count: 2)
        try h.cut()
        try h.compactAll()
        acked += try h.write(org: "globex", trace: base + 2_000, count: 4)
    }

    static func check(_ stored: [SpanKey], acked: [SpanKey], written: Set<SpanKey>, _ label: String) {
        var counts: [SpanKey: Int] = [:]
        for k in stored { counts[k, default: 0] += 1 }
        let duplicated = counts.filter { $0.value > 1 }.keys
        #expect(duplicated.isEmpty, "\(label): duplicated \(duplicated.prefix(3))")
        let lost = Set(acked).subtracting(counts.keys)
        #expect(lost.isEmpty, "\(label): lost \(lost.count) acknowledged spans, e.g. \(lost.prefix(3))")
        let invented = Set(counts.keys).subtracting(written)
        #expect(invented.isEmpty, "\(label): invented \(invented.prefix(3))")
    }

    @Test func test_flushCompactAndRestart_keepEverySpanExactlyOnce() throws {
        let disk = SimulatedDisk()
        var h = try EngineHarness(disk)
        var acked: [SpanKey] = []
        try Self.workload(&h, &acked, base: 1)
        #expect(!h.engine.blocks.isEmpty)
        #expect(h.engine.blocks.contains { $0.level > 0 }, "compaction ran")
        #expect(try h.wal.segments().count <= 2, "flushed segments left the WAL")
        Self.check(try h.stored(), acked: acked, written: Set(acked), "live")
        // Restart: blocks by metadata, WAL tail replayed.
        let reopened = try EngineHarness(disk)
        Self.check(try reopened.stored(), acked: acked, written: Set(acked), "restarted")
        // The late span's trace is found whole across blocks.
        let found = try reopened.engine.store.findTrace(TraceID(high: 1_001, low: 1_001 &* 7919), in: reopened.engine.snapshot(org: "acme").blocks)
        #expect(found.reduce(0) { $0 + $1.spanCount } == 2)
    }

    /// A crash after every disk operation of a workload that writes, flushes, removes WAL segments and
    /// compacts, with seeded torn tails: after restart every acknowledged span is there exactly once,
    /// nothing half-written is read, and the recovered node keeps working (a second round of writes
    /// and maintenance, then another restart, loses and duplicates nothing either).
    @Test(arguments: [1, 2, 3] as [UInt64])
    func test_crashAtEveryStep_losesAndDuplicatesNothing(seed: UInt64) throws {
        try Self.crashAtEveryStep(seed: seed, tornSalt: 10_007, written: Self.everySpan, workload: Self.workload)
    }

    /// Runs `workload` on a disk that crashes after its first n operations, for n = 0, 1, 2, … until the
    /// workload completes; each time tears the unsynced tail (seeded by `seed` and `tornSalt`), restarts,
    /// checks that every acknowledged span is stored exactly once and nothing outside `written` is,
    /// then runs a second round of the workload and restarts again with the same check.
    static func crashAtEveryStep(
        seed: UInt64, tornSalt: UInt64, written: Set<SpanKey>,
        workload: (inout EngineHarness, inout [SpanKey], UInt64) throws -> Void
    ) throws {
        var step = 0
        var finished = false
        while !finished {
            let disk = SimulatedDisk()
            let crashing = CrashingDisk(disk, operations: step)
            // Spans whose write returned (inout is written back when the workload throws).
            var acked: [SpanKey] = []
            do {
                var h = try EngineHarness(crashing)
                try workload(&h, &acked, 1)
                finished = true
            } catch is CrashingDisk.Crashed {
            } catch {
                Issue.record("seed \(seed) step \(step): unexpected \(error)")
                return
            }
            var rng = SplitMix64(seed: seed &* tornSalt &+ UInt64(step))
            disk.crash { _, unsynced in Int(rng.next() % UInt64(unsynced + 1)) }

            let label = "seed \(seed) step \(step)"
            var h = try EngineHarness(disk)
            Self.check(try h.stored(), acked: acked, written: written, label)
            // Carry on after recovery: new writes and maintenance, then restart again.
            var more: [SpanKey] = []
            try workload(&h, &more, 10_000)
            let again = try EngineHarness(disk)
            Self.check(try again.stored(), acked: acked + more, written: written.union(more), label + " (second round)")
            step += 1
        }
        #expect(step > 50, "the workload should take many disk operations")
    }

    /// Spans every request of ``workload`` can write (a superset of what may survive a crash).
    static let everySpan: Set<SpanKey> = {
        var h = try! EngineHarness(SimulatedDisk())
        var all: [SpanKey] = []
        try! Self.workload(&h, &all, base: 1)
        return Set(all)
    }()

    @Test func test_diskFullDuringFlush_failsCleanly_andTheRetryWritesOnce() throws {
        let disk = SimulatedDisk()
        var h = try EngineHarness(disk)
        var acked: [SpanKey] = []
        for i in 0..<6 as Range<UInt64> { acked += try h.write(org: EngineHarness.orgs[Int(i % 2)], trace: 100 + i, count: 5) }
        try h.wal.roll()
        disk.capacity = disk.totalBytes + 600  // room for about one block
        #expect(throws: (any Error).self) {
            for s in h.engine.flushableSegments(current: h.wal.current) { try h.engine.flush(segment: s) }
        }
        Self.check(try h.stored(), acked: acked, written: Set(acked), "after ENOSPC")
        disk.capacity = nil
        try h.cut()
        Self.check(try h.stored(), acked: acked, written: Set(acked), "after retry")
        #expect(h.engine.head.stats.spans == 0)
        let reopened = try EngineHarness(disk)
        Self.check(try reopened.stored(), acked: acked, written: Set(acked), "restarted")
    }

    @Test func test_retention_deletesOnlyExpiredBlocks_perOrg() throws {
        let disk = SimulatedDisk()
        let day: UInt64 = 86_400 * 1_000_000_000
        var h = try EngineHarness(disk, configuration: .init(retentionNanos: 14 * day, orgRetentionNanos: ["globex": 2 * day]))
        let now = 100 * day
        _ = try h.write(org: "acme", trace: 1, count: 3, start: now - 10 * day)  // kept: within 14 days
        _ = try h.write(org: "globex", trace: 2, count: 3, start: now - 10 * day)  // expired: globex keeps 2 days
        _ = try h.write(org: "acme", trace: 3, count: 3, start: now - 20 * day)  // expired
        try h.wal.roll()
        try h.cut()
        #expect(h.engine.blocks.count == 2)  // one per org
        let expired = try h.engine.applyRetention(nowNanos: now)
        #expect(Set(expired.map(\.org)) == ["globex"])
        #expect(h.engine.snapshot(org: "globex").blocks.isEmpty)
        #expect(disk.exists(h.engine.store.dataPath(expired[0])), "files wait for running queries")
        try h.engine.purgeRetired()
        #expect(!disk.exists(h.engine.store.dataPath(expired[0])))
        #expect(try EngineHarness(disk).engine.blocks.map(\.org) == ["acme"])
        // acme's block holds a 20-day-old span but its newest is 10 days old: kept until that expires.
        #expect(try h.engine.applyRetention(nowNanos: now + 5 * day).map(\.org) == ["acme"])
    }

    @Test func test_corruptBlock_isQuarantined_andTheRestIsServed() throws {
        let disk = SimulatedDisk()
        var h = try EngineHarness(disk)
        _ = try h.write(org: "acme", trace: 1, count: 4)
        try h.cut()
        _ = try h.write(org: "acme", trace: 2, count: 4)
        try h.cut()
        let blocks = h.engine.snapshot(org: "acme").blocks
        #expect(blocks.count == 2)
        let path = h.engine.store.dataPath(blocks[0])
        disk.corrupt(path, at: try disk.size(path) / 2)
        let reopened = try EngineHarness(disk)
        let store = reopened.engine.store
        let snapshot = reopened.engine.snapshot(org: "acme")
        let good = try store.findTrace(TraceID(high: 2, low: 2 &* 7919), in: snapshot.blocks)
        #expect(good.first?.spanCount == 4)
        _ = try store.findTrace(TraceID(high: 1, low: 7919), in: snapshot.blocks)
        #expect(store.quarantined.keys.contains(blocks[0].id), "the corrupt block is reported")
        #expect(reopened.engine.snapshot(org: "acme").blocks.map(\.id) == [blocks[1].id])
        #expect(throws: BlockFormatError.self) { _ = try BlockCodec.verify(try disk.read(path)) }
    }

    @Test func test_postingLists_holdExactlyTheMatchingRows() throws {
        let batch = BlockCodecTests.generated(requests: 3, seed: 12)
        let (bytes, _) = BlockCodec.encode(batch, options: .init(zstdLevel: 3, groupSpans: 200))
        let reader = try BlockReader(bytes: bytes)
        let key = try #require(try reader.dictionary.lookup("tenant_id"))
        var checked = 0
        for g in 0..<reader.groups.count {
            let decoded = try reader.decodedGroup(g)
            var expected: [UInt32: [Int]] = [:]
            for row in 0..<decoded.spanCount {
                for i in decoded.attrRange(row) where decoded.attrs.keys[i] == key && decoded.attrs.types[i] == ValueType.string.rawValue {
                    expected[UInt32(decoded.attrs.values[i]), default: []].append(row)
                }
            }
            for (value, rows) in expected {
                #expect(try reader.postings(group: g, key: key, value: value) == rows)
                checked += 1
            }
            #expect(try reader.postings(group: g, key: key, value: 0).isEmpty)
        }
        #expect(checked > 10)
        // The dictionary is sorted, so lookups are binary searches; unknown strings are absent.
        #expect(try reader.dictionary.lookup("no such tenant") == nil)
        #expect(try reader.dictionary.string(key) == "tenant_id")
        for id in (WellKnown.all.count + 1)..<min(reader.dictionary.count, 500) {
            #expect(Array(try reader.dictionary.string(UInt32(id - 1)).utf8).lexicographicallyPrecedes(Array(try reader.dictionary.string(UInt32(id)).utf8)))
        }
    }
}
