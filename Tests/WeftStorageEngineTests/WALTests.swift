import Testing
import WeftStorageEngine
import WeftTestSupport

/// Deterministic WAL tests over ``SimulatedDisk``: torn writes, lost unsynced data, corruption, ENOSPC.
struct WALTests {
    static let dir = "/data/wal"

    static func record(_ i: Int, size: Int = 40) -> [UInt8] {
        var rng = SplitMix64(seed: UInt64(i) &+ 1)
        return (0..<size + i % 17).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    static func replayAll(_ disk: SimulatedDisk, segmentSize: Int = 1 << 20) throws -> (WAL, [[UInt8]], WAL.ReplayReport) {
        let wal = WAL(disk: disk, directory: dir, configuration: .init(segmentSize: segmentSize))
        var records: [[UInt8]] = []
        let report = try wal.replay { records.append(Array($0)) }
        return (wal, records, report)
    }

    @Test func test_appendSyncReplay_returnsRecordsInOrder() throws {
        let disk = SimulatedDisk()
        let (wal, initial, _) = try Self.replayAll(disk)
        #expect(initial.isEmpty)
        let written = (0..<50).map { Self.record($0) }
        for chunk in stride(from: 0, to: 50, by: 7) {
            try wal.append(written[chunk..<min(50, chunk + 7)])
            try wal.sync()
        }
        let (_, replayed, report) = try Self.replayAll(disk)
        #expect(replayed == written)
        #expect(report.records == 50)
        #expect(report.truncatedTail == nil)
    }

    @Test func test_crashAtEveryByteOfLastRecord_recoversExactlyTheSyncedPrefix() throws {
        // Build the durable prefix once, then crash at every byte offset of an unsynced last record.
        let acknowledged = (0..<5).map { Self.record($0) }
        let last = Self.record(99, size: 64)
        let frameLength = last.count + WAL.frameOverhead
        for keep in 0...frameLength {
            let disk = SimulatedDisk()
            let (wal, _, _) = try Self.replayAll(disk)
            try wal.append(acknowledged)
            try wal.sync()
            try wal.append([last])
            disk.crash { _, _ in keep }

            let (wal2, replayed, report) = try Self.replayAll(disk)
            if keep == frameLength {
                #expect(replayed == acknowledged + [last], "keep=\(keep)")
            } else {
                #expect(replayed == acknowledged, "keep=\(keep)")
                if keep > 0 { #expect(report.truncatedTail?.droppedBytes == keep, "keep=\(keep)") }
            }
            // The log stays appendable: a new record after recovery survives the next restart.
            let next = Self.record(1234)
            try wal2.append([next])
            try wal2.sync()
            let (_, again, _) = try Self.replayAll(disk)
            #expect(again.last == next, "keep=\(keep)")
            #expect(again.count == replayed.count + 1, "keep=\(keep)")
        }
    }

    @Test func test_flippedByteInLastRecord_dropsOnlyThatRecord() throws {
        let disk = SimulatedDisk()
        let (wal, _, _) = try Self.replayAll(disk)
        let written = (0..<4).map { Self.record($0) }
        try wal.append(written)
        try wal.sync()
        let path = Self.dir + "/" + (try disk.list(Self.dir).first!)
        let size = try disk.read(path).count
        disk.corrupt(path, at: size - 3)
        let (_, replayed, report) = try Self.replayAll(disk)
        #expect(replayed == Array(written.prefix(3)))
        #expect(report.truncatedTail != nil)
    }

    @Test func test_segmentsRoll_andReplayAcrossSegments() throws {
        let disk = SimulatedDisk()
        let (wal, _, _) = try Self.replayAll(disk, segmentSize: 300)
        let written = (0..<40).map { Self.record($0) }
        for r in written {
            try wal.append([r])
            try wal.sync()
        }
        #expect(try wal.segments().count > 5)
        let (_, replayed, report) = try Self.replayAll(disk, segmentSize: 300)
        #expect(replayed == written)
        #expect(report.segments == (try wal.segments().count))
    }

    @Test func test_diskFull_failsTheAppendAndKeepsTheLogUsable() throws {
        let disk = SimulatedDisk()
        let (wal, _, _) = try Self.replayAll(disk)
        let first = (0..<3).map { Self.record($0) }
        try wal.append(first)
        try wal.sync()
        disk.capacity = disk.totalBytes + 20
        #expect(throws: DiskError.self) { try wal.append([Self.record(50, size: 100)]) }
        disk.capacity = nil
        let after = Self.record(77)
        try wal.append([after])
        try wal.sync()
        let (_, replayed, _) = try Self.replayAll(disk)
        #expect(replayed == first + [after])
    }

    /// Random appends, syncs and crashes with torn tails; every synced record must survive, in order,
    /// and nothing that was never written may appear. A failure names its seed.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func test_randomCrashes_neverLoseSyncedRecords(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let disk = SimulatedDisk()
        var (wal, _, _) = try Self.replayAll(disk, segmentSize: 2_000)
        var durable: [[UInt8]] = []  // acknowledged
        var pending: [[UInt8]] = []  // written, not yet synced
        var counter = 0
        for step in 0..<400 {
            switch rng.next() % 10 {
            case 0..<6:
                let n = Int(rng.next() % 4) + 1
                let batch = (0..<n).map { _ -> [UInt8] in
                    counter += 1
                    return Self.record(counter, size: Int(rng.next() % 200))
                }
                try wal.append(batch)
                pending += batch
            case 6..<9:
                try wal.sync()
                durable += pending
                pending = []
            default:
                var crashRNG = SplitMix64(seed: rng.next())
                disk.crash { _, unsynced in Int(crashRNG.next() % UInt64(unsynced + 1)) }
                let replayed: [[UInt8]]
                (wal, replayed, _) = try Self.replayAll(disk, segmentSize: 2_000)
                #expect(replayed.count >= durable.count, "seed \(seed) step \(step)")
                #expect(Array(replayed.prefix(durable.count)) == durable, "seed \(seed) step \(step): lost an acknowledged record")
                #expect(Array(replayed.dropFirst(durable.count)) == Array(pending.prefix(replayed.count - durable.count)),
                        "seed \(seed) step \(step): recovered a record that was never written")
                durable = replayed
                pending = []
            }
        }
    }
}

struct CRC32CTests {
    @Test func test_knownVectors() {
        // RFC 3720 B.4 and the common "123456789" check value.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(Array(0..<32 as Range<UInt8>)) == 0x46DD_794E)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test func test_incremental_equalsWhole() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let whole = CRC32C.checksum(data)
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let first = data[..<split].withUnsafeBytes { CRC32C.checksum($0) }
            let both = data[split...].withUnsafeBytes { CRC32C.checksum($0, crc: first) }
            #expect(both == whole, "split \(split)")
        }
    }
}
