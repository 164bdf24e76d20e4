import Testing
import WeftModel
import WeftStorageEngine
import WeftTestSupport

/// Forwards to a ``SimulatedDisk`` until a given number of mutating operations has run, then
/// fails every call, as a process that died at that point would.
final class CrashingDisk: Disk {
    struct Crashed: Error {}
    let inner: SimulatedDisk
    var remaining: Int

    init(_ inner: SimulatedDisk, operations: Int) {
        self.inner = inner
        self.remaining = operations
    }

    private func step() throws {
        guard self.remaining > 0 else { throw Crashed() }
        self.remaining -= 1
    }

    func makeDirectory(_ path: String) throws { try self.inner.makeDirectory(path) }
    func list(_ directory: String) throws -> [String] { try self.inner.list(directory) }
    func exists(_ path: String) -> Bool { self.inner.exists(path) }
    func read(_ path: String) throws -> [UInt8] { try self.inner.read(path) }
    func append(_ path: String, _ bytes: UnsafeRawBufferPointer) throws {
        try self.step()
        try self.inner.append(path, bytes)
    }
    func sync(_ path: String) throws {
        try self.step()
        try self.inner.sync(path)
    }
    func syncDirectory(_ path: String) throws {
        try self.step()
        try self.inner.syncDirectory(path)
    }
    func truncate(_ path: String, to length: Int) throws {
        try self.step()
        try self.inner.truncate(path, to: length)
    }
    func rename(_ from: String, to: String) throws {
        try self.step()
        try self.inner.rename(from, to: to)
    }
    func remove(_ path: String) throws {
        try self.step()
        try self.inner.remove(path)
    }
}

struct BlockStoreTests {
    static let dir = "/data/blocks"

    static func batch(_ seed: UInt64) -> SpanBatch {
        BlockCodecTests.generated(requests: 1, seed: seed)
    }

    @Test func test_writeOpenRead_roundTrips() throws {
        let disk = SimulatedDisk()
        let store = BlockStore(disk: disk, directory: Self.dir)
        #expect(try store.open().blocks.isEmpty)
        let b = Self.batch(1)
        let meta = try store.write(b, org: "acme", placement: "local")
        let reopened = BlockStore(disk: disk, directory: Self.dir)
        let report = try reopened.open()
        #expect(report.blocks == [meta])
        #expect(report.removedFiles.isEmpty)
        #expect(meta.spans == b.spanCount)
        #expect(Set(BlockCodecTests.rows(try reopened.read(meta))) == Set(BlockCodecTests.rows(b)))
        // New IDs continue after the existing ones.
        #expect(try reopened.write(Self.batch(2), org: "acme", placement: "local").id == meta.id + 1)
    }

    /// A crash after every disk operation of a write, with every torn-tail choice, never exposes a
    /// partial block: after restart the block is either complete and readable or absent, and earlier
    /// blocks are untouched.
    @Test(arguments: [0, 1, 2] as [UInt64])
    func test_crashAtEveryStepOfAWrite_neverExposesAPartialBlock(tornSeed: UInt64) throws {
        let earlier = Self.batch(10)
        let next = Self.batch(11)
        var step = 0
        var sawAbsent = false
        var sawComplete = false
        while true {
            let disk = SimulatedDisk()
            let setup = BlockStore(disk: disk, directory: Self.dir)
            _ = try setup.open()
            let first = try setup.write(earlier, org: "o", placement: "p")
            let crashing = CrashingDisk(disk, operations: step)
            let store = BlockStore(disk: crashing, directory: Self.dir)
            _ = try store.open()
            var finished = false
            do {
                _ = try store.write(next, org: "o", placement: "p")
                finished = true
            } catch is CrashingDisk.Crashed {
            }
            var rng = SplitMix64(seed: tornSeed &* 1000 &+ UInt64(step))
            disk.crash { _, unsynced in Int(rng.next() % UInt64(unsynced + 1)) }

            let recovered = BlockStore(disk: disk, directory: Self.dir)
            let report = try recovered.open()
            #expect(report.corrupt.isEmpty, "step \(step)")
            #expect(report.blocks.first == first, "step \(step): an earlier block changed")
            #expect(Set(BlockCodecTests.rows(try recovered.read(first))) == Set(BlockCodecTests.rows(earlier)), "step \(step)")
            switch report.blocks.count {
            case 1: sawAbsent = true
            case 2:
                sawComplete = true
                #expect(Set(BlockCodecTests.rows(try recovered.read(report.blocks[1]))) == Set(BlockCodecTests.rows(next)), "step \(step)")
            default: Issue.record("step \(step): \(report.blocks.count) blocks")
            }
            // No leftovers survive a second open.
            #expect(try BlockStore(disk: disk, directory: Self.dir).open().removedFiles.isEmpty, "step \(step)")
            if finished { break }
            step += 1
        }
        #expect(sawAbsent && sawComplete)
        #expect(step >= 7)
    }

    @Test func test_corruptMetaOrData_isReportedAndSkipped() throws {
        let disk = SimulatedDisk()
        let store = BlockStore(disk: disk, directory: Self.dir)
        _ = try store.open()
        let good = try store.write(Self.batch(20), org: "o", placement: "p")
        let bad = try store.write(Self.batch(21), org: "o", placement: "p")
        disk.corrupt(Self.dir + "/000000000002.meta", at: 12)
        let report = try BlockStore(disk: disk, directory: Self.dir).open()
        #expect(report.blocks == [good])
        #expect(report.corrupt == ["000000000002.meta"])
        // A flipped byte in data is caught by the section checksums on read.
        disk.corrupt(Self.dir + "/000000000001.block", at: 100)
        #expect(throws: BlockFormatError.self) { try store.read(good) }
        _ = bad
    }
}

struct BlockReaderTests {
    /// Lookups decode only the trace's rows of one row group; the result equals the original spans.
    @Test func test_traceLookup_findsExactlyTheTracesRows() throws {
        let batch = BlockCodecTests.generated(requests: 2, seed: 31)
        let (bytes, _) = BlockCodec.encode(batch, options: .init(zstdLevel: 3, groupSpans: 100))
        let reader = try BlockReader(bytes: bytes)
        #expect(reader.groups.count > 4)
        var byTrace: [TraceID: [Int]] = [:]
        for row in 0..<batch.spanCount { byTrace[batch.traceID(row), default: []].append(row) }
        let all = BlockCodecTests.rows(batch)
        for (id, rows) in byTrace.sorted(by: { $0.key < $1.key }).prefix(80) {
            let found = try #require(try reader.trace(id))
            #expect(Set(BlockCodecTests.rows(found)) == Set(rows.map { all[$0] }))
            #expect(found.spanCount == rows.count)
        }
        #expect(try reader.trace(TraceID(high: 1, low: 1)) == nil)
    }

    @Test func test_bloom_hasNoFalseNegatives_andFewFalsePositives() {
        var rng = SplitMix64(seed: 77)
        let ids = (0..<10_000).map { _ in TraceID(high: rng.next(), low: rng.next()) }
        var bloom = TraceBloom(capacity: ids.count)
        for id in ids { bloom.insert(id) }
        #expect(ids.allSatisfy { bloom.mayContain($0) })
        let others = (0..<10_000).map { _ in TraceID(high: rng.next(), low: rng.next()) }
        let falsePositives = others.filter { bloom.mayContain($0) }.count
        #expect(falsePositives < 300)  // about 1% expected at 10 bits per trace
    }

    @Test func test_storeFindTrace_findsTheTraceThroughTheBloomFilters() throws {
        let disk = SimulatedDisk()
        let store = BlockStore(disk: disk, directory: "/b")
        _ = try store.open()
        let a = BlockCodecTests.generated(requests: 1, seed: 41)
        let b = BlockCodecTests.generated(requests: 1, seed: 42)
        _ = try store.write(a, org: "o", placement: "p")
        _ = try store.write(b, org: "o", placement: "p")
        let metas = try BlockStore(disk: disk, directory: "/b").open().blocks
        let id = b.traceID(0)
        let found = try store.findTrace(id, in: metas)
        #expect(found.count == 1)
        #expect(found[0].spanCount == (0..<b.spanCount).filter { b.traceID($0) == id }.count)
        #expect(try store.reader(metas[1]).candidateGroups(id).count >= 1)
    }

    /// The block-wide trace filter says yes to every trace a block holds (whichever group), and no to
    /// nearly every other.
    @Test func test_blockTraceFilter_holdsEveryTraceOfTheBlock() throws {
        let store = BlockStore(disk: SimulatedDisk(), directory: "/b")
        _ = try store.open()
        let batch = BlockCodecTests.generated(requests: 6, seed: 43)
        let meta = try store.write(batch, org: "o", placement: "p", options: BlockCodec.Options(groupSpans: 256))
        let reader = try store.reader(meta)
        #expect(reader.groups.count > 3)
        let held = Set((0..<batch.spanCount).map { batch.traceID($0) })
        #expect(try held.allSatisfy { try store.mayHold($0, in: meta, { reader }) })
        var rng = SplitMix64(seed: 78)
        let others = (0..<10_000).map { _ in TraceID(high: rng.next(), low: rng.next()) }
        #expect(try others.filter { try store.mayHold($0, in: meta, { reader }) }.count < 150)
        // Kept apart from the reader: later checks open none, even once the reader cache dropped it.
        store.readerCacheSize = 1
        _ = try store.reader(try store.write(BlockCodecTests.generated(requests: 1, seed: 44), org: "o", placement: "p"))
        var opened = 0
        #expect(try held.allSatisfy { trace in try store.mayHold(trace, in: meta, { opened += 1; return nil }) })
        #expect(opened == 0)
    }
}
