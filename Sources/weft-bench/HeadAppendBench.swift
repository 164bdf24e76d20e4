import ArgumentParser
import Foundation
import WeftLoad
import WeftModel
import WeftOTLP
import WeftRuntime
import WeftStorageEngine

/// The cost of keeping a span resent after its trace was cut to a block from being stored twice:
/// head appends of fresh traces with and without the block check, over blocks whose time range
/// covers the new spans (the worst case: every block is a candidate, so every new trace costs a
/// Bloom probe per block), and appends of spans the blocks already hold.
struct HeadAppend: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "head-append",
        abstract: "Head append ns/span of fresh traces with and without the check against blocks, and of resent spans."
    )
    @Option(help: "Spans written to blocks first.") var blockSpans = 1_000_000
    @Option(help: "Spans per block.") var segmentSpans = 200_000
    @Option(help: "Fresh spans appended per run.") var spans = 500_000
    @Option(help: "Runs per mode (alternating); the median is reported.") var runs = 5
    @Option(help: "Data directory (emptied first).") var dir = "/tmp/weft-head-append-bench"

    func run() throws {
        try? FileManager.default.removeItem(atPath: self.dir)
        let disk = PosixDisk()
        var generator = TrafficGenerator(profile: LoadProfile(seed: 7))
        var decoder = OTLPProtobufDecoder()
        let base: UInt64 = UInt64(Date().timeIntervalSince1970 * 1e9) - 3_600_000_000_000
        let spacing: UInt64 = 10_000  // 10 µs: everything falls within a minute
        func batches(_ count: Int, from first: Int) throws -> [SpanBatch] {
            var out: [SpanBatch] = []
            var made = 0
            while made < count {
                let request = generator.nextRequest(spans: 1000, startTimeNanos: base + UInt64(first + made) * spacing, spacingNanos: spacing)
                var batch = SpanBatch()
                made += try request.withUnsafeBytes { try decoder.decode($0, into: &batch) }.acceptedSpans
                out.append(batch)
            }
            return out
        }
        let old = try batches(self.blockSpans, from: 0)
        let fresh = try batches(self.spans, from: self.blockSpans)
        func engine() throws -> StorageEngine {
            let e = StorageEngine(head: Head(), store: BlockStore(disk: disk, directory: self.dir + "/blocks"))
            _ = try e.open(wal: WAL(disk: disk, directory: self.dir + "/wal"), options: DecodeOptions())
            return e
        }
        let writer = try engine()
        var inSegment = 0
        var segment = 1
        for batch in old {
            writer.head.append(batch, org: "bench", segment: segment)
            inSegment += batch.spanCount
            if inSegment >= self.segmentSpans {
                try writer.flush(segment: segment)
                segment += 1
                inSegment = 0
            }
        }
        try writer.flushAll()
        print("blocks: \(writer.blocks.count) holding \(writer.blocks.reduce(0) { $0 + $1.spans }) spans")

        func time(_ input: [SpanBatch], check: Bool) throws -> (nsPerSpan: Double, added: Int) {
            let e = try engine()
            if !check { e.head.setStoredCheck(nil) }
            let clock = ContinuousClock()
            var added = 0
            let start = clock.now
            for (i, batch) in input.enumerated() { added += e.head.append(batch, org: "bench", stripe: i, segment: 1) }
            let elapsed = clock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return (seconds * 1e9 / Double(input.reduce(0) { $0 + $1.spanCount }), added)
        }
        var with: [Double] = []
        var without: [Double] = []
        for _ in 0..<self.runs {
            let a = try time(fresh, check: false)
            let b = try time(fresh, check: true)
            precondition(a.added == b.added, "the check dropped fresh spans")
            without.append(a.nsPerSpan)
            with.append(b.nsPerSpan)
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        print(String(format: "fresh traces: %.0f ns/span without the block check, %.0f ns/span with it (median of %d runs each)", median(without), median(with), self.runs))
        let resent = Array(old.suffix(max(1, 100_000 / 1000)))
        let r = try time(resent, check: true)
        print(String(format: "resent spans already in blocks: %.0f ns/span, %d of %d stored again", r.nsPerSpan, r.added, resent.reduce(0) { $0 + $1.spanCount }))
        try? FileManager.default.removeItem(atPath: self.dir)
    }
}
