import ArgumentParser
import Foundation
import WeftLoad
import WeftModel
import WeftOTLP
import WeftRuntime
import WeftStorageEngine

/// The storage engine's bars on generated LLM-gateway traffic: bytes per span on disk after
/// compaction (with a per-column breakdown), trace-by-ID latency with no time range, time to open the
/// blocks on restart, and resident memory.
struct Storage: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generated spans through the head into blocks (flush per WAL-segment-sized cut, then compaction) and measure size, trace lookup, restart and RSS."
    )
    @Option(help: "Spans to generate.") var spans = 10_000_000
    @Option(help: "Generator seed (as weftctl load --seed).") var seed: UInt64 = 1
    @Option(help: "Hours of traffic the spans are spread over.") var hours: Double = 24
    @Option(help: "Spans per flushed segment (a 64 MiB WAL segment holds about 170,000).") var segmentSpans = 170_000
    @Option(help: "Compaction output size in spans.") var compactionSpans = 1_000_000
    @Option(help: "Spans per row group.") var groupSpans = 16_384
    @Option(help: "zstd level of compaction output (default: the node's).") var compactionZstd: Int32?
    @Option(help: "Trace lookups to time.") var lookups = 1_000
    @Option(help: "Data directory (emptied first).") var dir = "/tmp/weft-storage-bench"
    @Flag(help: "Reuse the blocks already in --dir: only measure restart, lookups and RSS.") var reuse = false

    func run() throws {
        let disk = PosixDisk()
        let configuration = StorageEngine.Configuration(
            blockOptions: BlockCodec.flushOptions(groupSpans: self.groupSpans),
            compactedOptions: self.compactionZstd.map { BlockCodec.Options(zstdLevel: $0, groupSpans: self.groupSpans) }
                ?? BlockCodec.compactionOptions(groupSpans: self.groupSpans),
            compactionMaxSpans: self.compactionSpans
        )
        if !self.reuse {
            try? FileManager.default.removeItem(atPath: self.dir)
            try self.load(disk, configuration)
        }
        try self.measure(disk, configuration)
    }

    func load(_ disk: PosixDisk, _ configuration: StorageEngine.Configuration) throws {
        let clock = ContinuousClock()
        let engine = StorageEngine(head: Head(), store: BlockStore(disk: disk, directory: self.dir + "/blocks"), configuration: configuration)
        let wal = WAL(disk: disk, directory: self.dir + "/wal")
        _ = try engine.open(wal: wal, options: DecodeOptions())

        // Generate, decode and append to the head; cut a "segment" every segmentSpans spans.
        var generator = TrafficGenerator(profile: LoadProfile(seed: self.seed))
        var decoder = OTLPProtobufDecoder()
        let base: UInt64 = 1_764_460_800_000_000_000
        let spacing = UInt64(self.hours * 3600e9 / Double(self.spans))
        var loaded = 0
        var segment = 1
        var inSegment = 0
        var wire = 0
        var flushTime = Duration.zero
        let loadStart = clock.now
        while loaded < self.spans {
            let request = generator.nextRequest(spans: 1000, startTimeNanos: base + UInt64(loaded) * spacing, spacingNanos: spacing)
            wire += request.count
            var batch = SpanBatch()
            let n = try request.withUnsafeBytes { try decoder.decode($0, into: &batch) }.acceptedSpans
            engine.head.append(batch, org: "bench", segment: segment)
            loaded += n
            inSegment += n
            if inSegment >= self.segmentSpans || loaded >= self.spans {
                let t = clock.now
                try engine.flush(segment: segment)
                flushTime += clock.now - t
                segment += 1
                inSegment = 0
            }
        }
        let flushed = engine.blocks
        print("loaded \(loaded) spans (\(Double(wire) / Double(loaded)) B/span of OTLP protobuf) in \(flushed.count) flushed blocks, \(String(format: "%.1f", elapsedSeconds(clock.now - loadStart))) s")
        print(String(format: "flushed blocks: %.2f B/span; flush %.0f spans/s", Double(flushed.reduce(0) { $0 + $1.bytes }) / Double(loaded), Double(loaded) / elapsedSeconds(flushTime)))

        let compactStart = clock.now
        var compactions = 0
        while let plan = engine.compactionPlan() {
            try engine.compact(plan)
            try engine.purgeRetired()
            compactions += 1
        }
        let compactTime = elapsedSeconds(clock.now - compactStart)
        let blocks = engine.blocks
        print(String(format: "compaction: %d runs, %.1f s (%.0f spans/s)", compactions, compactTime, Double(loaded) / max(compactTime, 1e-9)))

        // Bytes on disk: every file in the block directory (data and meta).
        let names = try disk.list(self.dir + "/blocks")
        let onDisk = try names.reduce(0) { $0 + (try disk.size(self.dir + "/blocks/" + $1)) }
        let metaBytes = try names.filter { $0.hasSuffix(".meta") }.reduce(0) { $0 + (try disk.size(self.dir + "/blocks/" + $1)) }
        print(String(format: "ON DISK: %.2f B/span  (%d blocks, %.1f MB; meta files %.1f KB)", Double(onDisk) / Double(loaded), blocks.count, Double(onDisk) / 1e6, Double(metaBytes) / 1e3))
        var columns: [String: (stored: Int, raw: Int)] = [:]
        for meta in blocks {
            let bytes = try disk.read(engine.store.dataPath(meta))
            for s in try BlockCodec.layout(bytes) {
                let c = BlockSizes.column(s.name)
                columns[c, default: (0, 0)].stored += s.bytes
                columns[c, default: (0, 0)].raw += s.rawBytes
            }
        }
        for (name, c) in columns.sorted(by: { $0.value.stored > $1.value.stored }) {
            print(String(format: "  %-24@ %6.2f B/span  (raw %6.2f)", name as NSString, Double(c.stored) / Double(loaded), Double(c.raw) / Double(loaded)))
        }

    }

    func measure(_ disk: PosixDisk, _ configuration: StorageEngine.Configuration) throws {
        let clock = ContinuousClock()
        // Restart: open the blocks by metadata only.
        let rssBeforeOpen = residentBytes()
        let openStart = clock.now
        let reopened = StorageEngine(head: Head(), store: BlockStore(disk: disk, directory: self.dir + "/blocks"), configuration: configuration)
        let report = try reopened.open(wal: WAL(disk: disk, directory: self.dir + "/wal"), options: DecodeOptions())
        let openTime = clock.now - openStart
        print(String(format: "restart: opened %d blocks (%d spans) in %.1f ms", report.blocks.blocks.count, report.blocks.blocks.reduce(0) { $0 + $1.spans }, elapsedSeconds(openTime) * 1e3))

        // Trace by ID, no time range, over every block of the reopened store; IDs drawn uniformly from
        // the stored traces (a random block, group and trace, read before timing starts).
        let all = reopened.snapshot(org: "bench").blocks
        var rng = LoadRandom(seed: self.seed ^ 0x5EED)
        var sample: [TraceID] = []
        let sampler = BlockStore(disk: disk, directory: self.dir + "/blocks")
        for _ in 0..<self.lookups {
            let meta = all[Int(rng.next() % UInt64(all.count))]
            let reader = try sampler.reader(meta)
            let g = Int(rng.next() % UInt64(reader.groups.count))
            let ids = try reader.section("\(g)/trace.id")
            let t = Int(rng.next() % UInt64(ids.count / 16))
            sample.append(ids.withUnsafeBytes { TraceID(high: $0.loadUnaligned(fromByteOffset: t * 16, as: UInt64.self), low: $0.loadUnaligned(fromByteOffset: t * 16 + 8, as: UInt64.self)) })
        }
        var times: [Double] = []
        var firstTimes: [Double] = []
        var found = 0
        for (i, id) in sample.prefix(self.lookups).enumerated() {
            let t = clock.now
            let batches = try reopened.store.findTrace(id, in: all)
            let ms = elapsedSeconds(clock.now - t) * 1e3
            if i < 20 { firstTimes.append(ms) } else { times.append(ms) }
            if !batches.isEmpty { found += 1 }
        }
        times.sort()
        func q(_ p: Double) -> Double { times.isEmpty ? 0 : times[min(times.count - 1, Int(Double(times.count) * p))] }
        print(String(format: "trace by ID (%d lookups, %d found, no time range): median %.2f ms  p90 %.2f  p99 %.2f  max %.2f; first 20 (cold reader cache) median %.2f ms",
                     times.count, found, q(0.5), q(0.9), q(0.99), times.last ?? 0, firstTimes.sorted()[firstTimes.count / 2]))
        print(String(format: "RSS: %.1f MiB before reopening, %.1f MiB after opening and %d lookups (reader cache %d blocks)",
                     Double(rssBeforeOpen) / 1_048_576, Double(residentBytes()) / 1_048_576, self.lookups, reopened.store.readerCacheSize))
    }
}

