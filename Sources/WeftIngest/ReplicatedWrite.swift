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
    }

    private let keys: [PlacementKey]
    private let state: Mutex<State>
    private let promise: EventLoopPromise<Result<Void, IngestFailure>>
    private let metrics: ReplicationMetrics?

    init(parts: [ReplicaPart], promise: EventLoopPromise<Result<Void, IngestFailure>>, metrics: ReplicationMetrics?) {
        self.keys = parts.map(\.key)
        self.state = Mutex(State(
            quorum: WriteQuorum(replicaSets: parts.map(\.replicas)), durable: Array(repeating: 0, count: parts.count),
            failures: Array(repeating: [], count: parts.count)
        ))
        self.promise = promise
        self.metrics = metrics
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
        let (decision, message) = self.state.withLock { s -> (WriteQuorum.Decision, String) in
            if let failure { s.failures[placement].append(failure) } else { s.durable[placement] += 1 }
            let decision = s.quorum.record(placement: placement, replica: replica, succeeded: failure == nil)
            guard case .failed = decision else { return (decision, "") }
            let needed = WriteQuorum.quorum(replicas: self.keys[placement].replicas.count)
            return (decision, "placement \(self.keys[placement]) reached only \(s.durable[placement]) of the \(needed) replicas it needs (\(s.failures[placement].joined(separator: "; "))); retry shortly")
        }
        self.act(on: decision) { message }
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
