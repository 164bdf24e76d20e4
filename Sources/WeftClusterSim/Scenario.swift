import WeftCluster
import WeftModel

/// One simulated run, entirely determined by its seed: cluster size, fault mix and timeline.
public struct Scenario: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        /// Crash one or two nodes, check every live node declares them dead in time, restart them.
        case crash
        /// 5 % loss, no fault: no live node may ever be declared dead.
        case loss
        /// Joins, a drain (LEAVING → LEFT → leave) and a crash followed by `forget`.
        case ringChanges
        /// A symmetric or one-way partition, then heal: membership and rings converge again.
        case partition
    }

    public var seed: UInt64
    public var kind: Kind
    public var nodeCount: Int
    public var loss: Double

    /// Every crashed node is dead on every live node within this many protocol periods of its crash.
    public static let detectionBoundPeriods = 12.0
    /// Nodes start within this time, and the cluster must have converged by `warmup`.
    static let second: UInt64 = 1_000_000_000
    static let warmup: UInt64 = 20 * second

    /// Derives the scenario of `seed`. Sizes lean towards small clusters (5–64 nodes, cubic skew) so a
    /// thousand seeds stay cheap; `nodeCount` and `loss` override the derived values.
    public init(seed: UInt64, nodeCount: Int? = nil, loss: Double? = nil) {
        var rng = SplitMix64(seed: seed ^ 0x5343_454E_4152_494F)
        self.seed = seed
        self.kind = Kind.allCases[Int(rng.next() % UInt64(Kind.allCases.count))]
        let u = Double(rng.next() >> 11) * 0x1p-53
        self.nodeCount = nodeCount ?? (5 + Int(59 * u * u * u + 0.5))
        let drawnLoss = Double(rng.next() % 6) / 100
        self.loss = loss ?? (self.kind == .loss ? 0.05 : drawnLoss)
    }

    public var description: String {
        "seed=\(self.seed) kind=\(self.kind.rawValue) nodes=\(self.nodeCount) loss=\(Int(self.loss * 100))%"
    }

    /// How to replay this scenario.
    public var replayCommand: String {
        "SIM_SEED=\(self.seed) swift test --filter ClusterSimulationTests   (or: weft-sim --seed \(self.seed))"
    }

    /// What one run measured and which properties it broke.
    public struct Outcome: Sendable {
        public var scenario: Scenario
        public var failures: [String] = []
        /// Per crashed node: protocol periods from the crash until the last live node declared it dead.
        public var detectionPeriods: [Double] = []
        /// Live nodes declared dead (by anyone) while no fault justified it.
        public var falsePositives = 0
        public var bytesSent = 0
        /// Node-seconds of running nodes (for bytes per node per second).
        public var nodeSeconds = 0.0
    }

    /// Runs the scenario and checks its properties.
    public func run(settings: SWIMSettings = SWIMSettings()) -> Outcome {
        var rng = SplitMix64(seed: self.seed)
        let joiners = self.kind == .ringChanges ? 1 + Int(rng.next() % 3) : 0
        let total = self.nodeCount + joiners
        var sim = ClusterSimulator(
            nodeCount: total, zoneCount: 3, loss: self.loss, minDelay: 1_000_000, maxDelay: 20_000_000,
            settings: settings, seed: rng.next()
        )
        var outcome = Outcome(scenario: self)
        let seeds = Array(0..<min(3, self.nodeCount))
        let second = Self.second
        // Everyone starts within two seconds and joins through the first three nodes.
        var startTimes = (0..<self.nodeCount).map { $0 == 0 ? 0 : rng.next() % (2 * second) }
        startTimes.sort()
        for (node, time) in startTimes.enumerated() {
            sim.run(until: time)
            sim.start(node, seeds: seeds)
        }
        let warmup = Self.warmup
        sim.run(until: warmup)
        if !sim.membershipConverged { outcome.failures.append("membership did not converge within \(warmup / second) s of start") }
        if !sim.ringsConverged { outcome.failures.append("rings did not converge within \(warmup / second) s of start") }

        var faulty = Set<Int>()
        let end: UInt64
        switch self.kind {
        case .loss:
            end = warmup + 60 * second
            sim.run(until: end)
        case .crash:
            let candidates = Array(0..<self.nodeCount).shuffledDeterministically(&rng)
            let crashed = Array(candidates.prefix(self.nodeCount >= 16 ? 2 : 1))
            faulty.formUnion(crashed)
            for node in crashed { sim.crash(node) }
            let bound = warmup + UInt64(Self.detectionBoundPeriods * Double(settings.protocolPeriod))
            sim.run(until: bound)
            let live = sim.runningNodes
            for node in crashed {
                let lagging = sim.observers(live, notSeeing: node, as: .dead)
                if !lagging.isEmpty {
                    outcome.failures.append("node-\(node) crashed at \(warmup / second) s but \(lagging.count) live nodes did not declare it dead within \(Int(Self.detectionBoundPeriods)) periods")
                }
                let lastDeclaration = live.compactMap { observer in
                    sim.observations.first { $0.observer == observer && $0.subject == node && $0.status == .dead && $0.time >= warmup }?.time
                }.max()
                if let lastDeclaration, lagging.isEmpty {
                    outcome.detectionPeriods.append(Double(lastDeclaration - warmup) / Double(settings.protocolPeriod))
                }
            }
            // Restart them: same ID and tokens, back above their old incarnation.
            sim.run(until: warmup + 25 * second)
            for node in crashed { sim.start(node, seeds: seeds.filter { !crashed.contains($0) } + [candidates.last!]) }
            end = warmup + 50 * second
            sim.run(until: end)
            for node in crashed where (sim.instance(node)?.incarnation ?? 0) == 0 {
                outcome.failures.append("restarted node-\(node) did not come back above its old incarnation")
            }
        case .ringChanges:
            // Joins.
            for node in self.nodeCount..<total { sim.start(node, seeds: seeds) }
            // A drain of one node, and a crash of another that an operator then forgets.
            let drained = 3 + Int(rng.next() % UInt64(self.nodeCount - 3))
            var forgotten = 3 + Int(rng.next() % UInt64(self.nodeCount - 3))
            if forgotten == drained { forgotten = forgotten == self.nodeCount - 1 ? 3 : forgotten + 1 }
            faulty.formUnion([drained, forgotten])
            sim.run(until: warmup + 5 * second)
            sim.setRingState(drained, .leaving)
            sim.crash(forgotten)
            sim.run(until: warmup + 10 * second)
            sim.setRingState(drained, .left)
            sim.run(until: warmup + 12 * second)
            sim.leave(drained)
            sim.run(until: warmup + 15 * second)
            sim.crash(drained)
            sim.run(until: warmup + 20 * second)
            sim.forget(forgotten, on: 0)
            end = warmup + 45 * second
            sim.run(until: end)
            if let ring = sim.instance(0)?.ring {
                if ring[sim.nodeID(drained)]?.state != .left { outcome.failures.append("drained node-\(drained) is not LEFT in the ring") }
                if ring[sim.nodeID(forgotten)]?.state != .left { outcome.failures.append("forgotten node-\(forgotten) is not LEFT in the ring") }
                for node in self.nodeCount..<total where ring[sim.nodeID(node)]?.state != .active {
                    outcome.failures.append("joined node-\(node) is not ACTIVE in the ring")
                }
            }
            let notLeft = sim.observers(sim.runningNodes, notSeeing: drained, as: .left)
            if !notLeft.isEmpty { outcome.failures.append("\(notLeft.count) live nodes do not see drained node-\(drained) as left") }
        case .partition:
            let minority = Array(Array(0..<self.nodeCount).shuffledDeterministically(&rng).prefix(max(1, self.nodeCount / 3)))
            let majority = (0..<self.nodeCount).filter { !minority.contains($0) }
            faulty.formUnion(0..<self.nodeCount)
            let oneWay = rng.next() % 2 == 0
            sim.partition(from: minority, to: majority)
            if !oneWay { sim.partition(from: majority, to: minority) }
            let heal = warmup + (8 + rng.next() % 13) * second
            sim.run(until: heal)
            sim.heal()
            end = heal + 40 * second
            sim.run(until: end)
        }

        if !sim.membershipConverged { outcome.failures.append("membership did not converge by the end (\(end / second) s)") }
        if !sim.ringsConverged { outcome.failures.append("rings did not converge by the end (\(end / second) s)") }
        if sim.decodeFailures > 0 { outcome.failures.append("\(sim.decodeFailures) messages failed to decode") }
        outcome.falsePositives = sim.observations.filter { $0.status == .dead && !faulty.contains($0.subject) }.count
        if outcome.falsePositives > 0, self.loss <= 0.05 {
            outcome.failures.append("\(outcome.falsePositives) false death declarations of live nodes")
        }
        outcome.bytesSent = sim.bytesSent
        outcome.nodeSeconds = Double(self.nodeCount) * Double(end) / Double(second)
        return outcome
    }
}

extension Array {
    /// Fisher–Yates with the given generator.
    func shuffledDeterministically(_ rng: inout SplitMix64) -> [Element] {
        var copy = self
        copy.shuffle(using: &rng)
        return copy
    }
}
