import WeftCluster
import WeftModel

func node(_ name: String) -> NodeID { NodeID(name)! }
func address(_ i: Int) -> NodeAddress { NodeAddress(host: "10.1.0.\(i)", port: 9400)! }

/// A ring entry for `name` (storage node unless `roles` says otherwise).
func entry(_ name: String, version: UInt64 = 1, state: NodeState = .active, zone: String = "", tokens: UInt16 = 128, roles: NodeRoles = .all, port: UInt16 = 9400) -> RingEntry {
    RingEntry(nodeID: node(name), version: version, state: state, address: NodeAddress(host: "h-\(name)", port: port)!, zone: Zone(zone)!, tokenCount: tokens, roles: roles)
}

/// A random ring entry from a small value space, so that random states overlap and conflict.
func randomEntry(_ rng: inout SplitMix64) -> RingEntry {
    entry(
        "n\(rng.next() % 6)", version: rng.next() % 4, state: NodeState(rawValue: UInt8(rng.next() % 4))!,
        zone: "z\(rng.next() % 2)", tokens: UInt16(rng.next() % 3), roles: NodeRoles(rawValue: UInt8(rng.next() % 8)),
        port: UInt16(9400 + rng.next() % 2)
    )
}

func randomState(_ rng: inout SplitMix64) -> RingState {
    RingState((0..<(rng.next() % 8)).map { _ in randomEntry(&rng) })
}
