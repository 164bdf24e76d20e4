import WeftCluster
import WeftModel

/// Many `SWIMInstance`s over a simulated network in virtual time, driven by one generator.
///
/// Messages go through `SWIMCodec` both ways (so the codec is exercised and gossip bytes are
/// counted), each node keeps one timer as its instance asks, and crashes drop a node's state and
/// its pending timer. Nothing reads a clock: time jumps from event to event.
public struct ClusterSimulator {
    /// Virtual time, nanoseconds.
    public private(set) var now: UInt64 = 0
    public let settings: SWIMSettings
    private(set) var nodes: [SimNode]
    private var network: SimNetwork
    private var queue = EventQueue<Event>()
    private var rng: SplitMix64
    private var nodeByAddress: [NodeAddress: Int] = [:]
    /// Every member status change any node reported, in order.
    public private(set) var observations: [Observation] = []
    /// Bytes handed to the network (lost messages included).
    public private(set) var bytesSent = 0
    /// Messages that failed to decode (must stay 0).
    public private(set) var decodeFailures = 0

    /// One simulated process slot: an ID and address that survive restarts, and the running instance.
    struct SimNode {
        var id: NodeID
        var address: NodeAddress
        var ringEntry: RingEntry
        var instance: SWIMInstance?
        /// Bumped by every start, crash and timer change; stale timer events are ignored.
        var timerToken: UInt64 = 0
    }

    enum Event {
        case deliver([UInt8], from: Int, to: Int)
        case tick(node: Int, token: UInt64)
    }

    /// A status change reported by `observer` about `subject`.
    public struct Observation: Sendable {
        public var time: UInt64
        public var observer: Int
        public var subject: Int
        public var status: MemberStatus
        public var incarnation: UInt64
    }

    /// Creates `nodeCount` node slots (none running) in `zoneCount` zones.
    public init(nodeCount: Int, zoneCount: Int, loss: Double, minDelay: UInt64, maxDelay: UInt64, settings: SWIMSettings, seed: UInt64) {
        self.settings = settings
        self.rng = SplitMix64(seed: seed)
        self.network = SimNetwork(nodeCount: nodeCount, loss: loss, minDelay: minDelay, maxDelay: maxDelay)
        self.nodes = (0..<nodeCount).map { i in
            let id = NodeID("node-\(i)")!
            let address = NodeAddress(host: "10.0.\(i / 256).\(i % 256)", port: 9400)!
            let entry = RingEntry(nodeID: id, version: 1, state: .active, address: address, zone: Zone("z\(i % max(zoneCount, 1))")!, roles: .all)
            return SimNode(id: id, address: address, ringEntry: entry)
        }
        for (i, node) in self.nodes.enumerated() { self.nodeByAddress[node.address] = i }
    }

    public func instance(_ node: Int) -> SWIMInstance? { self.nodes[node].instance }
    public func nodeID(_ node: Int) -> NodeID { self.nodes[node].id }
    public var runningNodes: [Int] { self.nodes.indices.filter { self.nodes[$0].instance != nil } }

    // MARK: Faults and operations

    /// Starts (or restarts) `node`, joining through `seeds`. A restart keeps the ID, address and
    /// tokens; the instance starts at incarnation 0 and refutes its old death to come back above it.
    public mutating func start(_ node: Int, seeds: [Int]) {
        precondition(self.nodes[node].instance == nil, "node \(node) is already running")
        let instance = SWIMInstance(
            myself: self.nodes[node].id, address: self.nodes[node].address, ringEntry: self.nodes[node].ringEntry,
            seeds: seeds.map { self.nodes[$0].address }, settings: self.settings, seed: self.rng.next()
        )
        self.nodes[node].instance = instance
        self.nodes[node].timerToken += 1
        self.drive(node) { $0.onStart(now: $1) }
    }

    /// Kills `node`: its state is gone, in-flight messages to it are dropped on arrival.
    public mutating func crash(_ node: Int) {
        self.nodes[node].instance = nil
        self.nodes[node].timerToken += 1
    }

    /// Blocks the links from each node of `from` to each node of `to` (call twice for a symmetric cut).
    public mutating func partition(from: [Int], to: [Int]) { self.network.block(from: from, to: to) }

    public mutating func heal() { self.network.heal() }

    /// Sets `node`'s own ring entry to `state` (drain: LEAVING, then LEFT).
    public mutating func setRingState(_ node: Int, _ state: NodeState) {
        var entry = self.nodes[node].ringEntry
        entry.state = state
        self.nodes[node].ringEntry = entry
        self.drive(node) { $0.onRingUpdate(entry, now: $1) }
    }

    /// An operator's `forget` of `subject`, issued on `node`: a LEFT tombstone above its current version.
    public mutating func forget(_ subject: Int, on node: Int) {
        guard let current = self.nodes[node].instance?.ring[self.nodes[subject].id] else { return }
        var tombstone = current
        tombstone.state = .left
        self.drive(node) { $0.onRingUpdate(tombstone, now: $1) }
    }

    /// Graceful leave: announces `left`; the caller crashes (stops) the node afterwards.
    public mutating func leave(_ node: Int) {
        self.drive(node) { $0.onLeave(now: $1) }
    }

    // MARK: Running

    /// Processes events up to and including `time`, then sets the clock to `time`.
    public mutating func run(until time: UInt64) {
        while let next = self.queue.nextTime, next <= time {
            let (eventTime, event) = self.queue.pop()!
            self.now = eventTime
            switch event {
            case .deliver(let bytes, _, let to):
                guard self.nodes[to].instance != nil else { continue }
                let message: SWIMMessage
                do {
                    message = try SWIMCodec.decode(bytes)
                } catch {
                    self.decodeFailures += 1
                    continue
                }
                self.drive(to) { $0.onMessage(message, now: $1) }
            case .tick(let node, let token):
                guard self.nodes[node].instance != nil, self.nodes[node].timerToken == token else { continue }
                self.drive(node) { $0.onTick(now: $1) }
            }
        }
        self.now = max(self.now, time)
    }

    /// Feeds one event to `node`'s instance and carries out the directives.
    private mutating func drive(_ node: Int, _ event: (inout SWIMInstance, UInt64) -> [SWIMDirective]) {
        guard var instance = self.nodes[node].instance else { return }
        self.nodes[node].instance = nil
        let directives = event(&instance, self.now)
        self.nodes[node].instance = instance
        for directive in directives {
            switch directive {
            case .send(let message, let address):
                let bytes = SWIMCodec.encode(message)
                self.bytesSent += bytes.count
                guard let to = self.nodeByAddress[address], let delay = self.network.delay(from: node, to: to, using: &self.rng) else { continue }
                self.queue.push(.deliver(bytes, from: node, to: to), at: self.now + delay)
            case .scheduleTick(let at):
                self.nodes[node].timerToken += 1
                self.queue.push(.tick(node: node, token: self.nodes[node].timerToken), at: max(at, self.now))
            case .memberStatusChanged(let change):
                guard let subject = self.nodeByAddress[change.member.address] else { continue }
                self.observations.append(Observation(
                    time: self.now, observer: node, subject: subject, status: change.member.status, incarnation: change.member.incarnation
                ))
            case .ringChanged:
                break
            }
        }
    }

    // MARK: Checks

    /// Nodes among `observers` whose view of `subject` is not `status`.
    public func observers(_ observers: [Int], notSeeing subject: Int, as status: MemberStatus) -> [Int] {
        observers.filter { observer in
            observer != subject && self.nodes[observer].instance?.members[self.nodes[subject].id]?.status != status
        }
    }

    /// Whether every running node holds the same ring state (compared entry by entry, not by digest).
    public var ringsConverged: Bool {
        let states = self.runningNodes.compactMap { self.nodes[$0].instance?.ring }
        guard let first = states.first else { return true }
        return states.allSatisfy { $0.entries == first.entries }
    }

    /// Whether every running node sees every other running node alive or suspect (a suspicion under
    /// loss is a transient state the protocol resolves, not a divergence).
    public var membershipConverged: Bool {
        let running = self.runningNodes
        return running.allSatisfy { subject in
            running.allSatisfy { observer in
                observer == subject || self.nodes[observer].instance?.members[self.nodes[subject].id]?.status.isReachable == true
            }
        }
    }
}
