import NIOCore
import Synchronization
import WeftCluster
import WeftRuntime

/// One replicated write in progress: feeds each replica's answer to its ``WriteQuorum`` and completes
/// the client's promise once, on the first decision.
final class ReplicatedWrite: Sendable {
    private struct State {
        var quorum: WriteQuorum
        var durable: [Int]
        var failures: [[String]]
        var stored: [[NodeID]]
        var acknowledged = false
        var handedOff = false
    }

    /// A replica that missed its part of an acknowledged write, and the replicas that stored that part.
    struct Miss: Sendable, Equatable {
        var placement: Int
        var replica: NodeID
        var holders: [NodeID]
    }

    private let keys: [PlacementKey]
    private let state: Mutex<State>
    private let promise: EventLoopPromise<Result<Void, IngestFailure>>
    private let metrics: ReplicationMetrics?
    private let onMissed: @Sendable ([Miss]) -> Void

    /// - Parameter onMissed: called once every replica answered, when the write was acknowledged
    ///   and some replicas missed their part (to leave hints for them).
    init(
        parts: [ReplicaPart], promise: EventLoopPromise<Result<Void, IngestFailure>>, metrics: ReplicationMetrics?,
        onMissed: @escaping @Sendable ([Miss]) -> Void = { _ in }
    ) {
        self.keys = parts.map(\.key)
        self.state = Mutex(State(
            quorum: WriteQuorum(replicaSets: parts.map(\.replicas)), durable: Array(repeating: 0, count: parts.count),
            failures: Array(repeating: [], count: parts.count), stored: Array(repeating: [], count: parts.count)
        ))
        self.promise = promise
        self.metrics = metrics
        self.onMissed = onMissed
    }

    /// The client's answer.
    var result: EventLoopFuture<Result<Void, IngestFailure>> { self.promise.futureResult }

    /// Decides a write with nothing to wait for (no parts).
    func start() {
        let decision = self.state.withLock { $0.quorum.start() }
        self.act(on: decision, message: { "a placement has no replica" })
    }

    /// Records one replica's answer for one placement: `failure` nil when its part is durable there.
    func record(placement: Int, replica: NodeID, failure: String?) {
        var misses: [Miss] = []
        let (decision, message) = self.state.withLock { s -> (WriteQuorum.Decision, String) in
            if let failure { s.failures[placement].append(failure) } else {
                s.durable[placement] += 1
                s.stored[placement].append(replica)
            }
            let decision = s.quorum.record(placement: placement, replica: replica, succeeded: failure == nil)
            if decision == .acknowledged { s.acknowledged = true }
            if s.acknowledged, !s.handedOff, s.quorum.isComplete {
                s.handedOff = true
                misses = s.quorum.missedReplicas.map { Miss(placement: $0.placement, replica: $0.replica, holders: s.stored[$0.placement]) }
            }
            guard case .failed = decision else { return (decision, "") }
            let needed = WriteQuorum.quorum(replicas: self.keys[placement].replicas.count)
            return (decision, "placement \(self.keys[placement]) reached only \(s.durable[placement]) of the \(needed) replicas it needs (\(s.failures[placement].joined(separator: "; "))); retry shortly")
        }
        self.act(on: decision) { message }
        if !misses.isEmpty { self.onMissed(misses) }
    }

    private func act(on decision: WriteQuorum.Decision, message: () -> String) {
        switch decision {
        case .acknowledged:
            self.promise.succeed(.success(()))
        case .failed:
            let text = message()
            self.metrics?.quorumFailed(text)
            self.promise.succeed(.failure(.unavailable(text)))
        case .pending, .decided:
            break
        }
    }
}
