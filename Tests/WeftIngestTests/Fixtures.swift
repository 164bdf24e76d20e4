import Foundation
import NIOCore
import Synchronization
import WeftCluster
import WeftIngest
import WeftLoad
import WeftModel
import WeftOTLP

/// Storage nodes `a`, `b`, `c` (… as many as asked) on a ring, each reachable at host = its name.
func ring(_ names: [String], replicationFactor: Int = 3) -> Ring {
    Ring(
        state: RingState(names.map { RingEntry(nodeID: NodeID($0)!, version: 1, state: .active, address: NodeAddress(host: $0, port: 9400)!) }),
        replicationFactor: replicationFactor
    )
}

/// A generated batch of `spans` spans over many traces, with current timestamps.
func generatedBatch(spans: Int, seed: UInt64) throws -> SpanBatch {
    var generator = TrafficGenerator(profile: LoadProfile(seed: seed))
    let request = generator.nextRequest(spans: spans, startTimeNanos: UInt64(Date().timeIntervalSince1970 * 1e9), spacingNanos: 1_000_000)
    var batch = SpanBatch()
    var decoder = OTLPProtobufDecoder()
    _ = try request.withUnsafeBytes { try decoder.decode($0, into: &batch) }
    return batch
}

/// A transport that answers each replica (by host) as told, records what it was sent, and can hold
/// a replica's pushes until the test answers them.
final class ScriptedTransport: ReplicaTransport {
    enum Behaviour: Sendable { case durable, fail, timeOut, hold }

    struct Push: Sendable {
        var host: String
        var placement: PlacementKey
        var spanIDs: [UInt64]
    }

    struct Hint: Sendable, Equatable {
        var holder: String
        var target: NodeID
        var placement: PlacementKey
        var spanIDs: [UInt64]
    }

    private struct State {
        var behaviour: [String: Behaviour] = [:]
        var pushes: [Push] = []
        var hints: [Hint] = []
        var held: [EventLoopPromise<PushOutcome>] = []
        var refusingHints: Set<String> = []
        var fullHints: Set<String> = []
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - refusingHints: hosts that store pushes as `behaviour` says but fail every hint.
    ///   - fullHints: hosts that store pushes as `behaviour` says but whose hints log is full.
    init(_ behaviour: [String: Behaviour] = [:], refusingHints: Set<String> = [], fullHints: Set<String> = []) {
        self.state.withLock {
            $0.behaviour = behaviour
            $0.refusingHints = refusingHints
            $0.fullHints = fullHints
        }
    }

    func push(_ payload: ByteBuffer, org: String, placement: PlacementKey, to address: NodeAddress, on loop: any EventLoop) -> EventLoopFuture<PushOutcome> {
        let batch = try! payload.withUnsafeReadableBytes { bytes throws(SpanBatchCodec.DecodeError) in try SpanBatchCodec.decode(bytes) }
        let promise = loop.makePromise(of: PushOutcome.self)
        let behaviour = self.state.withLock { s -> Behaviour in
            s.pushes.append(Push(host: address.host, placement: placement, spanIDs: batch.spanID))
            let b = s.behaviour[address.host] ?? .durable
            if b == .hold { s.held.append(promise) }
            return b
        }
        switch behaviour {
        case .durable: promise.succeed(.durable)
        case .fail: promise.succeed(.failed("HTTP 503: disk full"))
        case .timeOut: promise.succeed(.timedOut)
        case .hold: break
        }
        return promise.futureResult
    }

    func hint(_ payload: ByteBuffer, org: String, placement: PlacementKey, for target: NodeID, to address: NodeAddress, on loop: any EventLoop) -> EventLoopFuture<PushOutcome> {
        let batch = try! payload.withUnsafeReadableBytes { bytes throws(SpanBatchCodec.DecodeError) in try SpanBatchCodec.decode(bytes) }
        let (behaviour, full) = self.state.withLock { s -> (Behaviour, Bool) in
            s.hints.append(Hint(holder: address.host, target: target, placement: placement, spanIDs: batch.spanID))
            return (s.refusingHints.contains(address.host) ? .fail : s.behaviour[address.host] ?? .durable, s.fullHints.contains(address.host))
        }
        if full { return loop.makeSucceededFuture(.full("the hints log is full")) }
        return loop.makeSucceededFuture(behaviour == .durable ? .durable : .failed("HTTP 503: cannot write the hints log"))
    }

    var pushes: [Push] { self.state.withLock { $0.pushes } }

    var hints: [Hint] { self.state.withLock { $0.hints } }

    /// Answers every held push with `outcome`.
    func releaseHeld(_ outcome: PushOutcome) {
        let held = self.state.withLock { s in
            defer { s.held = [] }
            return s.held
        }
        for p in held { p.succeed(outcome) }
    }
}
