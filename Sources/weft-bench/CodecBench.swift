import ArgumentParser
import Foundation
import WeftCluster
import WeftIngest
import WeftModel
import WeftOTLP
import WeftStorageEngine

/// Runs `body` for `seconds` (or exactly `rounds` times) after one warm-up; returns rounds per second.
func roundsPerSecond(seconds: Double, rounds: Int?, _ body: () throws -> Int) rethrows -> Double {
    _ = try body()
    var done = 0
    var check = 0
    let clock = ContinuousClock()
    let start = clock.now
    var elapsed = 0.0
    while rounds.map({ done < $0 }) ?? (elapsed < seconds) {
        check &+= try body()
        done += 1
        elapsed = elapsedSeconds(clock.now - start)
    }
    if check == -1 { print(check) }
    return Double(done) / elapsed
}

/// Decodes generated OTLP requests into one batch each.
func decodedBatches(_ payloads: [[UInt8]]) throws -> [SpanBatch] {
    var decoder = OTLPProtobufDecoder()
    return try payloads.map { p in
        var batch = SpanBatch()
        _ = try p.withUnsafeBytes { try decoder.decode($0, into: &batch) }
        return batch
    }
}

struct Codec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "SpanBatchCodec (WAL record and node-to-node payload): encode and decode speed, bytes per span beside the OTLP protobuf body."
    )
    @Option(help: "Distinct requests to generate.") var requests = 64
    @Option(help: "Spans per request.") var batchSize = 1000
    @Option(help: "Seconds to run each measurement.") var seconds: Double = 3
    @Option(help: "Generator seed.") var seed: UInt64 = 1
    @Option(help: "Run each measurement exactly this many rounds instead of for --seconds.") var rounds: Int?

    func run() throws {
        let payloads = makeRequests(count: self.requests, spansPerRequest: self.batchSize, seed: self.seed)
        let batches = try decodedBatches(payloads)
        let encoded = batches.map { SpanBatchCodec.encode($0) }
        let spans = batches.reduce(0) { $0 + $1.spanCount }
        let otlpBytes = payloads.reduce(0) { $0 + $1.count }
        let codecBytes = encoded.reduce(0) { $0 + $1.count }
        let v1Record = try payloads.reduce(0) { n, p in try n + p.withUnsafeBytes { try WALEntry.encode(org: "bench", encoding: .protobuf, body: $0) }.count }
        let v2Record = try batches.reduce(0) { try $0 + WALEntry.encode(org: "bench", placement: "local", batch: $1).count }
        func perSpan(_ bytes: Int) -> Double { Double(bytes) / Double(spans) }
        print("batches: \(batches.count) × \(self.batchSize) spans (\(spans) spans)")
        print(String(format: "OTLP protobuf body: %7.1f B/span", perSpan(otlpBytes)))
        print(String(format: "encoded batch:      %7.1f B/span (%.2f× the protobuf body)", perSpan(codecBytes), Double(codecBytes) / Double(otlpBytes)))
        print(String(format: "WAL record v1: %.1f B/span   v2: %.1f B/span", perSpan(v1Record), perSpan(v2Record)))

        let encodeRate = roundsPerSecond(seconds: self.seconds, rounds: self.rounds) {
            var n = 0
            for b in batches { n &+= SpanBatchCodec.encode(b).count }
            return n
        }
        print(String(format: "encode: %10.0f spans/s  %8.1f MB/s encoded  %8.1f MB/s of OTLP equivalent  %6.1f ns/span",
                     encodeRate * Double(spans), encodeRate * Double(codecBytes) / 1e6, encodeRate * Double(otlpBytes) / 1e6, 1e9 / (encodeRate * Double(spans))))
        let decodeRate = try roundsPerSecond(seconds: self.seconds, rounds: self.rounds) {
            var n = 0
            for e in encoded { n &+= try e.withUnsafeBytes { try SpanBatchCodec.decode($0) }.spanCount }
            return n
        }
        print(String(format: "decode: %10.0f spans/s  %8.1f MB/s encoded  %8.1f MB/s of OTLP equivalent  %6.1f ns/span",
                     decodeRate * Double(spans), decodeRate * Double(codecBytes) / 1e6, decodeRate * Double(otlpBytes) / 1e6, 1e9 / (decodeRate * Double(spans))))
        var decoder = OTLPProtobufDecoder()
        let otlpRate = try roundsPerSecond(seconds: self.seconds, rounds: self.rounds) {
            var n = 0
            for p in payloads {
                var batch = SpanBatch()
                n &+= try p.withUnsafeBytes { try decoder.decode($0, into: &batch) }.acceptedSpans
            }
            return n
        }
        print(String(format: "OTLP protobuf decode (for scale): %10.0f spans/s  %6.1f ns/span", otlpRate * Double(spans), 1e9 / (otlpRate * Double(spans))))
    }
}

struct Split: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ReplicaPlan.parts: a request grouped by the placement of each trace on a ring, cut into self-contained parts and encoded, as an ingest node does before pushing to replicas; beside decode cost per span."
    )
    @Option(help: "Distinct requests to generate.") var requests = 32
    @Option(help: "Spans per request.") var batchSize = 2000
    @Option(help: "Seconds to run each measurement.") var seconds: Double = 3
    @Option(help: "Generator seed.") var seed: UInt64 = 1
    @Option(help: "Run each measurement exactly this many rounds instead of for --seconds.") var rounds: Int?
    @Option(parsing: .upToNextOption, help: "Storage nodes on the ring (RF=3).") var ways: [Int] = [3, 5]

    func run() throws {
        let payloads = makeRequests(count: self.requests, spansPerRequest: self.batchSize, seed: self.seed)
        let batches = try decodedBatches(payloads)
        let spans = Double(batches.reduce(0) { $0 + $1.spanCount })
        print("batches: \(batches.count) × \(self.batchSize) spans")
        var decoder = OTLPProtobufDecoder()
        let otlpRate = try roundsPerSecond(seconds: self.seconds, rounds: self.rounds) {
            var n = 0
            for p in payloads {
                var batch = SpanBatch()
                n &+= try p.withUnsafeBytes { try decoder.decode($0, into: &batch) }.acceptedSpans
            }
            return n
        }
        print(String(format: "OTLP protobuf decode:     %6.1f ns/span", 1e9 / (otlpRate * spans)))
        let encoded = batches.map { SpanBatchCodec.encode($0) }
        let codecRate = try roundsPerSecond(seconds: self.seconds, rounds: self.rounds) {
            var n = 0
            for e in encoded { n &+= try e.withUnsafeBytes { try SpanBatchCodec.decode($0) }.spanCount }
            return n
        }
        print(String(format: "SpanBatchCodec decode:    %6.1f ns/span", 1e9 / (codecRate * spans)))
        for nodes in self.ways {
            let ring = Ring(
                state: RingState((1...nodes).map { RingEntry(nodeID: NodeID("node-\($0)")!, version: 1, state: .active, address: NodeAddress(host: "node-\($0)", port: 9400)!) }),
                replicationFactor: 3
            )
            var sizes: [Int] = []
            let rate = roundsPerSecond(seconds: self.seconds, rounds: self.rounds) {
                var n = 0
                for b in batches {
                    let parts = ReplicaPlan.parts(of: b, on: ring.writes)
                    sizes = parts.map(\.batch.spanCount)
                    for p in parts { n &+= p.batch.spanCount }
                }
                return n
            }
            let strings = ReplicaPlan.parts(of: batches[0], on: ring.writes).map(\.batch.strings.count)
            print(String(format: "%d storage nodes, RF=%d: %6.1f ns/span to group by placement, cut and encode the parts  (last parts: %@ spans; strings per part of the first: %@ of %d)",
                         nodes, ring.writes.replicationFactor, 1e9 / (rate * spans), "\(sizes)" as NSString, "\(strings)" as NSString, batches[0].strings.count))
        }
    }
}
