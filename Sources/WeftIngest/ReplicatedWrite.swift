import NIOCore
import Synchronization
import WeftCluster
import WeftRuntime

/// One replicated write in progress: feeds each replica's answer to its ``WriteQuorum`` and answers
/// the client once.
///
/// A write is acknowledged only when every replica of every placement has either stored its part or
/// is covered by a hint: a hint for each replica that failed, and for each replica still silent
/// `hintAfter` after the quorum was reached, left with a replica that stored the part. So no
/// acknowledged span is missing from a replica that coordinators take as in sync (a replica is in sync
/// for a placement when no other node holds hints for it): without that, a query planned while the
/// last push was still on its way could read the one replica that lacked the spans. A miss that no
/// replica could keep as a hint (every holder unreachable or failing, none with a full hints log)
/// fails the write: the client retries rather than the replica lacking the part unbeknown.
final class ReplicatedWrite: Sendable {
    /// One replica of one placement.
    private struct Replica: Hashable {
        var placement: Int
        var node: NodeID
    }

    private struct State {
        var quorum: WriteQuorum
        var durable: [Int]
        var failures: [[String]]
        var stored: [[NodeID]]
        var answered: [Set<NodeID>]
        /// Every placement reached its quorum.
        var quorumReached = false
        /// The client has its answer.
        var decided = false
        /// `hintAfter` has passed since the quorum was reached.
        var waitOver = false
        var hinted: Set<Replica> = []
        var hintsUnderWay = 0
        var timer: Scheduled<Void>?
    }

    /// A replica that missed its part of an acknowledged write, and the replicas that stored that part.
    struct Miss: Sendable, Equatable {
        var placement: Int
        var replica: NodeID
        var holders: [NodeID]
    }

    private let keys: [PlacementKey]
    /// Per placement, the nodes its part is written to (for a placement of an earlier write ring, its
    /// current write targets, which may differ from the nodes its key names).
    private let targets: [[NodeID]]
    private let state: Mutex<State>
    private let promise: EventLoopPromise<Result<Void, IngestFailure>>
    private let metrics: ReplicationMetrics?
    private let hintAfter: TimeAmount
    private let leaveHint: @Sendable (Miss, _ done: @escaping @Sendable (_ covered: Bool) -> Void) -> Void

    /// - Parameters:
    ///   - hintAfter: how long a replica may stay silent once the quorum is reached before it gets a
    ///     hint and the client its answer.
    ///   - leaveHint: leaves a hint for a replica that missed its part; calls `done` once the hint is
    ///     stored (covered) or no holder took it (not covered: the write fails, the client retries).
    init(
        parts: [ReplicaPart], promise: EventLoopPromise<Result<Void, IngestFailure>>, metrics: ReplicationMetrics?, hintAfter: Duration,
        leaveHint: @escaping @Sendable (Miss, _ done: @escaping @Sendable (_ covered: Bool) -> Void) -> Void = { _, done in done(true) }
    ) {
        self.keys = parts.map(\.key)
        self.targets = parts.map(\.replicas)
        self.state = Mutex(State(
            quorum: WriteQuorum(replicaSets: parts.map(\.replicas)), durable: Array(repeating: 0, count: parts.count),
            failures: Array(repeating: [], count: parts.count), stored: Array(repeating: [], count: parts.count),
            answered: Array(repeating: [], count: parts.count)
        ))
        self.promise = promise
        self.metrics = metrics
        let (seconds, attoseconds) = hintAfter.components
        self.hintAfter = .nanoseconds(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        self.leaveHint = leaveHint
    }

    /// The client's answer.
    var result: EventLoopFuture<Result<Void, IngestFailure>> { self.promise.futureResult }

    /// Decides a write with nothing to wait for (no parts).
    func start() {
        let decision = self.state.withLock { $0.quorum.start() }
        switch decision {
        case .acknowledged: self.promise.succeed(.success(()))
        case .failed: self.fail("a placement has no replica")
        case .pending, .decided: break
        }
    }

    /// Records one replica's answer for one placement: `failure` nil when its part is durable there.
    func record(placement: Int, replica: NodeID, failure: String?) {
        let (decision, message) = self.state.withLock { s -> (WriteQuorum.Decision, String) in
            if let failure { s.failures[placement].append(failure) } else {
                s.durable[placement] += 1
                s.stored[placement].append(replica)
            }
            s.answered[placement].insert(replica)
            let decision = s.quorum.record(placement: placement, replica: replica, succeeded: failure == nil)
            if decision == .acknowledged { s.quorumReached = true }
            guard case .failed = decision else { return (decision, "") }
            s.decided = true
            let needed = WriteQuorum.quorum(replicas: self.targets[placement].count)
            return (decision, "placement \(self.keys[placement]) reached only \(s.durable[placement]) of the \(needed) replicas it needs (\(s.failures[placement].joined(separator: "; "))); retry shortly")
        }
        if case .failed = decision {
            self.fail(message)
            return
        }
        if decision == .acknowledged, !self.state.withLock({ $0.quorum.isComplete }) {
            let timer = self.promise.futureResult.eventLoop.scheduleTask(in: self.hintAfter) { [self] in
                self.state.withLock { $0.waitOver = true }
                self.settle()
            }
            self.state.withLock { $0.timer = timer }
        }
        self.settle()
    }

    /// Leaves the hints now due and answers the client once nothing is left to wait for.
    private func settle() {
        let (misses, acknowledge) = self.state.withLock { s -> ([Miss], Bool) in
            guard s.quorumReached, !s.decided else { return ([], false) }
            var misses: [Miss] = []
            for (placement, targets) in self.targets.enumerated() {
                for node in targets {
                    let replica = Replica(placement: placement, node: node)
                    guard !s.hinted.contains(replica), !s.stored[placement].contains(node) else { continue }
                    let failed = s.answered[placement].contains(node)
                    guard failed || s.waitOver else { continue }
                    s.hinted.insert(replica)
                    misses.append(Miss(placement: placement, replica: node, holders: s.stored[placement]))
                }
            }
            s.hintsUnderWay += misses.count
            guard misses.isEmpty, s.hintsUnderWay == 0, s.quorum.isComplete || s.waitOver else { return (misses, false) }
            s.decided = true
            s.timer?.cancel()
            s.timer = nil
            return ([], true)
        }
        if acknowledge { self.promise.succeed(.success(())) }
        for miss in misses {
            self.leaveHint(miss) { [self] covered in
                let failNow = self.state.withLock { s -> Bool in
                    s.hintsUnderWay -= 1
                    guard !covered, !s.decided else { return false }
                    s.decided = true
                    s.timer?.cancel()
                    s.timer = nil
                    return true
                }
                if failNow {
                    // Nothing would tell a coordinator that this replica lacks the part: not acknowledged.
                    self.fail("\(miss.replica) missed its part of placement \(self.keys[miss.placement]) and no replica that stored it could keep a hint; retry shortly")
                } else {
                    self.settle()
                }
            }
        }
    }

    private func fail(_ message: String) {
        self.metrics?.quorumFailed(message)
        self.promise.succeed(.failure(.unavailable(message)))
    }
}
