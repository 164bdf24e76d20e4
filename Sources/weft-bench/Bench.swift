import ArgumentParser
import Foundation
import WeftLoad
import WeftModel
import WeftOTLP
import WeftStorageEngine

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weft-bench",
        abstract: "Benchmarks of Weft's hot paths (build with -c release). End-to-end ingest: `weftctl load` against `weft serve`.",
        subcommands: [Decode.self, Codec.self, Split.self, HeadMemory.self, Blocks.self, Storage.self, HeadAppend.self, QueryBench.self]
    )
}

/// Generates `weftctl load`-shaped OTLP requests.
func makeRequests(count: Int, spansPerRequest: Int, seed: UInt64) -> [[UInt8]] {
    var generator = TrafficGenerator(profile: LoadProfile(seed: seed))
    let base: UInt64 = 1_764_460_800_000_000_000
    return (0..<count).map { i in
        generator.nextRequest(spans: spansPerRequest, startTimeNanos: base + UInt64(i) * 1_000_000_000, spacingNanos: 1_000_000)
    }
}

func elapsedSeconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "OTLP protobuf decode throughput on one core (MB/s, spans/s), beside memcpy and JSON.")
    @Option(help: "Distinct requests to generate.") var requests = 64
    @Option(help: "Spans per request.") var batchSize = 1000
    @Option(help: "Seconds to run each measurement.") var seconds: Double = 3
    @Option(help: "Generator seed.") var seed: UInt64 = 1
    @Option(help: "Run each measurement exactly this many rounds instead of for --seconds (for callgrind).") var rounds: Int?

    func run() throws {
        let payloads = makeRequests(count: self.requests, spansPerRequest: self.batchSize, seed: self.seed)
        let bytes = payloads.reduce(0) { $0 + $1.count }
        var spans = 0
        var decoder = OTLPProtobufDecoder()
        for p in payloads {
            var batch = SpanBatch()
            spans += try p.withUnsafeBytes { try decoder.decode($0, into: &batch) }.acceptedSpans
        }
        print("payloads: \(self.requests) requests, \(spans) spans, \(bytes) bytes (\(bytes / max(spans, 1)) B/span)")

        // Protobuf decode into a fresh columnar batch per request, as the receiver does.
        let pb = try self.measure(bytes: bytes, spans: spans) {
            var batch = SpanBatch()
            for p in payloads {
                batch = SpanBatch()
                _ = try p.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            }
            return batch.spanCount
        }
        print(String(format: "protobuf decode: %8.1f MB/s  %10.0f spans/s", pb.mbps, pb.spansPerSecond))

        // memcpy of the same bytes, as the ceiling of any decoder on this machine.
        var sink = [UInt8](repeating: 0, count: payloads.map(\.count).max() ?? 0)
        let copy = try self.measure(bytes: bytes, spans: spans) {
            for p in payloads {
                sink.withUnsafeMutableBytes { dst in p.withUnsafeBytes { dst.copyMemory(from: $0) } }
            }
            return Int(sink[0])
        }
        print(String(format: "memcpy:          %8.1f MB/s  (decode = %.1f%% of memcpy)", copy.mbps, 100 * pb.mbps / copy.mbps))
    }

    func measure(bytes: Int, spans: Int, _ body: () throws -> Int) throws -> (mbps: Double, spansPerSecond: Double) {
        _ = try body()  // warm-up
        var rounds = 0
        var check = 0
        let clock = ContinuousClock()
        let start = clock.now
        var elapsed = 0.0
        while self.rounds.map({ rounds < $0 }) ?? (elapsed < self.seconds) {
            check &+= try body()
            rounds += 1
            elapsed = elapsedSeconds(clock.now - start)
        }
        if check == -1 { print(check) }
        return (Double(bytes * rounds) / elapsed / 1e6, Double(spans * rounds) / elapsed)
    }
}

struct HeadMemory: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "RSS per million spans held in the head.")
    @Option(help: "Spans to load into the head.") var spans = 2_000_000
    @Option(help: "Spans per request.") var batchSize = 1000
    @Option(help: "Generator seed.") var seed: UInt64 = 1

    func run() throws {
        let before = residentBytes()
        let head = Head()
        var generator = TrafficGenerator(profile: LoadProfile(seed: self.seed))
        var decoder = OTLPProtobufDecoder()
        var loaded = 0
        var wire = 0
        let base: UInt64 = 1_764_460_800_000_000_000
        while loaded < self.spans {
            let request = generator.nextRequest(spans: self.batchSize, startTimeNanos: base + UInt64(loaded) * 1_000_000, spacingNanos: 1_000_000)
            wire += request.count
            var batch = SpanBatch()
            loaded += try request.withUnsafeBytes { try decoder.decode($0, into: &batch) }.acceptedSpans
            head.append(batch, org: "bench")
        }
        let after = residentBytes()
        let stats = head.stats
        let perMillion = Double(after - before) / Double(loaded) * 1e6
        print("spans in head:        \(loaded) (\(stats.chunks) chunks)")
        print(String(format: "OTLP protobuf bytes:  %.1f B/span", Double(wire) / Double(loaded)))
        print(String(format: "head (accounted):     %.1f B/span", Double(stats.bytes) / Double(loaded)))
        print(String(format: "RSS growth:           %.1f MiB per million spans (%.1f B/span)", perMillion / 1_048_576, perMillion / 1e6))
        if let chunk = head.snapshot(org: "bench").first {
            let b = chunk.batch
            let n = Double(b.spanCount)
            print(String(format: "one chunk: %d spans, %.1f span attrs/span, %d strings (%.1f B/span of string bytes), %.1f resource attrs total, %d events, %d links",
                         b.spanCount, Double(b.attrs.count) / n, b.strings.count, Double(b.strings.bytes.count) / n,
                         Double(b.resourceAttrs.count), b.eventTime.count, b.linkSpanID.count))
        }
    }
}

/// Resident set size from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

struct Blocks: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Block format: bytes per span by column, encode and decode speed.")
    @Option(help: "Spans to generate.") var spans = 1_000_000
    @Option(help: "Spans per block.") var blockSpans = 1_000_000
    @Option(help: "Spans per row group.") var groupSpans = 16_384
    @Option(help: "zstd level (0: none).") var zstdLevel: Int32 = 3
    @Option(help: "Generator seed.") var seed: UInt64 = 1
    @Option(help: "Also write the first block to this file (for weftctl block inspect).") var write: String?

    func run() throws {
        var generator = TrafficGenerator(profile: LoadProfile(seed: self.seed))
        var decoder = OTLPProtobufDecoder()
        var chunks: [SpanBatch] = []
        var current = SpanBatch()
        var total = 0
        let base: UInt64 = 1_764_460_800_000_000_000
        while total < self.spans {
            let request = generator.nextRequest(spans: 1000, startTimeNanos: base + UInt64(total) * 1_000_000, spacingNanos: 1_000_000)
            var batch = SpanBatch()
            total += try request.withUnsafeBytes { try decoder.decode($0, into: &batch) }.acceptedSpans
            current.append(batch)
            if current.spanCount >= self.blockSpans {
                chunks.append(current)
                current = SpanBatch()
            }
        }
        if current.spanCount > 0 { chunks.append(current) }
        let clock = ContinuousClock()
        var bySection: [String: Int] = [:]
        var bytes = 0
        var blocks: [[UInt8]] = []
        let encodeStart = clock.now
        for c in chunks {
            let (b, sections) = BlockCodec.encode(c, options: .init(zstdLevel: self.zstdLevel, groupSpans: self.groupSpans))
            bytes += b.count
            blocks.append(b)
            for s in sections { bySection[BlockSizes.column(s.name), default: 0] += s.bytes }
            bySection["(directory and footer)", default: 0] += b.count - sections.reduce(8) { $0 + $1.bytes }
        }
        let encodeTime = elapsedSeconds(clock.now - encodeStart)
        if let path = self.write, let first = blocks.first {
            _ = FileManager.default.createFile(atPath: path, contents: Data(first))
        }
        let decodeStart = clock.now
        var decoded = 0
        for b in blocks { decoded += try BlockCodec.decode(b).spanCount }
        let decodeTime = elapsedSeconds(clock.now - decodeStart)
        print("spans: \(total) in \(chunks.count) blocks; decoded back: \(decoded)")
        print(String(format: "block bytes: %.1f B/span (%.1f MB)", Double(bytes) / Double(total), Double(bytes) / 1e6))
        print(String(format: "encode: %.0f spans/s   decode: %.0f spans/s (one core)", Double(total) / encodeTime, Double(total) / decodeTime))
        for (name, b) in bySection.sorted(by: { $0.value > $1.value }) {
            print(String(format: "  %-26@ %6.2f B/span", name as NSString, Double(b) / Double(total)))
        }
    }
}

/// Groups section names into columns: `12/span.id` → `span.id`, `dict/3` → `dictionary`.
enum BlockSizes {
    static func column(_ section: String) -> String {
        if section.hasPrefix("dict") { return "dictionary" }
        if let slash = section.firstIndex(of: "/") { return String(section[section.index(after: slash)...]) }
        return section
    }
}
