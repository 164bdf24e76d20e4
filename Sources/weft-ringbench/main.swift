import WeftCluster
import WeftModel

// Replica-set lookups per second on one core: hash of the trace ID, binary search over the sorted
// tokens, placement read. Usage: weft-ringbench [nodes] [tokens] [rf] [zones]
let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let nodeCount = arguments.count > 0 ? arguments[0] : 100
let tokenCount = arguments.count > 1 ? arguments[1] : 128
let replicationFactor = arguments.count > 2 ? arguments[2] : 3
let zoneCount = arguments.count > 3 ? arguments[3] : 3

var state = RingState()
for i in 0..<nodeCount {
    state.apply(RingEntry(
        nodeID: NodeID("storage-\(i)")!, version: 1, state: .active,
        address: NodeAddress(host: "10.0.\(i / 256).\(i % 256)", port: 9400)!,
        zone: Zone("zone-\(i % zoneCount)")!, tokenCount: UInt16(tokenCount), roles: .storage
    ))
}
let buildStart = ContinuousClock.now
let ring = Ring(state: state, replicationFactor: replicationFactor)
let buildTime = ContinuousClock.now - buildStart
let lookup = ring.writes

var rng = SplitMix64(seed: 42)
let keys = (0..<(1 << 20)).map { _ in TraceID(high: rng.next(), low: rng.next()) }
var checksum = 0
var best = 0.0
for _ in 0..<5 {
    let start = ContinuousClock.now
    let rounds = 10
    for _ in 0..<rounds {
        for key in keys { checksum &+= lookup.replica(0, ofPlacement: lookup.placement(for: key)) }
    }
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    best = max(best, Double(rounds * keys.count) / seconds)
}
print("ring: \(nodeCount) nodes x \(tokenCount) tokens, RF=\(lookup.replicationFactor), \(zoneCount) zones; \(lookup.tokenCount) ranges, \(lookup.placementCount) placements, built in \(buildTime)")
print("lookups/s (best of 5, one core): \(Int(best)) (checksum \(checksum))")
