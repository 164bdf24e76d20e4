import NIOCore
import WeftCluster
import WeftModel
import WeftRuntime

/// Writes a part on this node's own storage (its WAL and head), for placements this node is a replica of.
public typealias LocalReplicaWrite = @Sendable (_ batch: SpanBatch, _ org: String, _ placement: PlacementKey, _ loop: any EventLoop)
    -> EventLoopFuture<Result<Void, IngestFailure>>

/// The sink of an ingest node in a cluster: each batch is split by the placement of its traces on the
/// write ring (with a history, the ring in force at each span's start: see `WriteRingHistory`), and
/// each part pushed to every replica of its placement. A write succeeds once every placement is durable
/// on ⌊RF/2⌋+1 replicas (``WriteQuorum``) and every other replica stored its part or is covered by a
/// hint; it fails as soon as one placement is out of reach (`.unavailable`, which clients see as 503 +
/// Retry-After or gRPC UNAVAILABLE).
///
/// Pushes hold their bytes against a ``PushBudget`` until they end; a replica over its budget is not
/// sent to (a failed replica for the quorum), and a write the node's budget cannot take is refused.
/// When this node is itself a replica, its part is written through `local` rather than the network.
///
/// Each part a replica missed (it failed, or was still silent `hintAfter` after the quorum was reached)
/// is left as a hint with every replica that stored it (`POST /internal/v1/hint`), which deliver it
/// later; the client is answered once those hints are stored (see ``ReplicatedWrite``). A hint kept
/// twice survives the loss of one holder (killed, its data directory wiped): until it is delivered,
/// some live holder still tells coordinators that the replica lacks the part.
public struct ReplicatedSpanSink: SpanSink {
    let localNode: NodeID
    let rings: @Sendable () -> (ring: Ring, history: WriteRingHistory?)
    let wallClock: @Sendable () -> UInt64
    let transport: any ReplicaTransport
    let local: LocalReplicaWrite?
    let budget: PushBudget
    let metrics: ReplicationMetrics?
    let hintAfter: Duration

    /// How long, by default, a replica may stay silent after the write quorum before it gets a hint.
    public static let defaultHintAfter: Duration = .milliseconds(500)

    /// - Parameters:
    ///   - localNode: this node's ID.
    ///   - rings: the current ring and the recent write rings (read once per write; without a history
    ///     every span goes by the current ring).
    ///   - wallClock: nanoseconds since the Unix epoch (compared with span start times); the system clock by default.
    ///   - local: how this node stores parts it is a replica of (nil: it has no storage role).
    ///   - hintAfter: how long a replica may stay silent once the write quorum is reached before its
    ///     part is left as a hint and the client answered.
    public init(
        localNode: NodeID, rings: @escaping @Sendable () -> (ring: Ring, history: WriteRingHistory?), wallClock: (@Sendable () -> UInt64)? = nil,
        transport: any ReplicaTransport, local: LocalReplicaWrite?, budget: PushBudget, metrics: ReplicationMetrics? = nil,
        hintAfter: Duration = Self.defaultHintAfter
    ) {
        self.localNode = localNode
        self.rings = rings
        self.wallClock = wallClock ?? { WallClock.nowNanos() }
        self.transport = transport
        self.local = local
        self.budget = budget
        self.metrics = metrics
        self.hintAfter = hintAfter
    }

    /// A sink that places every span by the current ring.
    public init(
        localNode: NodeID, ring: @escaping @Sendable () -> Ring, transport: any ReplicaTransport, local: LocalReplicaWrite?, budget: PushBudget,
        metrics: ReplicationMetrics? = nil, hintAfter: Duration = Self.defaultHintAfter
    ) {
        self.init(localNode: localNode, rings: { (ring(), nil) }, transport: transport, local: local, budget: budget, metrics: metrics, hintAfter: hintAfter)
    }

    public var refusal: IngestFailure? {
        if self.rings().ring.writes.placementCount == 0 { return .unavailable("no storage node is active") }
        let held = self.budget.inFlightBytes
        guard held >= self.budget.maxBytes else { return nil }
        return .unavailable("\(held) bytes are on their way to replicas (limit \(self.budget.maxBytes)); retry shortly")
    }

    public func write(_ batch: SpanBatch, org: String, on loop: any EventLoop) -> EventLoopFuture<Result<Void, IngestFailure>> {
        let (ring, history) = self.rings()
        guard ring.writes.placementCount > 0 else { return loop.makeSucceededFuture(.failure(.unavailable("no storage node is active"))) }
        let local = self.local == nil ? nil : self.localNode
        let parts: [ReplicaPart]
        // With a history, even of one ring: while a member restarts, the history's ring is the last
        // full one, where the compiled ring may hold fewer nodes than RF.
        if let history, !history.epochs.isEmpty {
            parts = ReplicaPlan.parts(of: batch, history: history, ring: ring.state, now: self.wallClock(), local: local)
        } else {
            parts = ReplicaPlan.parts(of: batch, on: ring.writes, local: local)
        }
        var bytes: [NodeID: Int] = [:]
        for part in parts {
            for replica in part.replicas where !self.isLocal(replica) { bytes[replica, default: 0] += part.payload.readableBytes }
        }
        let granted: Set<NodeID>
        switch self.budget.reserve(bytes) {
        case .peers(let peers):
            granted = peers
        case .refused(let inFlight):
            self.metrics?.refused()
            return loop.makeSucceededFuture(.failure(.unavailable(
                "\(inFlight) bytes are on their way to replicas (limit \(self.budget.maxBytes)); retry shortly"
            )))
        }
        self.metrics?.inFlightBytes(self.budget.inFlightBytes)
        let write = ReplicatedWrite(parts: parts, promise: loop.makePromise(), metrics: self.metrics, hintAfter: self.hintAfter) {
            [transport = self.transport, metrics = self.metrics] miss, done in
            let holders = miss.holders.compactMap { holder in ring.state[holder]?.address }
            Self.leaveHint(parts[miss.placement], org: org, for: miss.replica, holders: holders[...], transport: transport, metrics: metrics, on: loop, done: done)
        }
        write.start()
        for (index, part) in parts.enumerated() {
            for replica in part.replicas {
                if self.isLocal(replica), let local = self.local {
                    local(part.batch, org, part.key, loop).whenSuccess { result in
                        switch result {
                        case .success: write.record(placement: index, replica: replica, failure: nil)
                        case .failure(let why): write.record(placement: index, replica: replica, failure: "\(why)")
                        }
                    }
                } else if !granted.contains(replica) {
                    self.metrics?.pushed(peer: replica, outcome: "skipped", duration: nil)
                    write.record(placement: index, replica: replica, failure: "\(replica) has too many bytes in flight")
                } else if let address = ring.state[replica]?.address {
                    self.push(part, org: org, to: replica, at: address, placement: index, write: write, on: loop)
                } else {
                    self.budget.release(part.payload.readableBytes, peer: replica)
                    write.record(placement: index, replica: replica, failure: "\(replica) has no address in the ring")
                }
            }
        }
        return write.result
    }

    /// Sends a part that `target` missed as a hint to every holder at once, then calls `done` when each
    /// has answered: covered when one stored it, or when a holder's hints log is full (the target has
    /// been missing parts long enough to fill it; anti-entropy repairs what hints cannot hold).
    private static func leaveHint(
        _ part: ReplicaPart, org: String, for target: NodeID, holders: ArraySlice<NodeAddress>, transport: any ReplicaTransport, metrics: ReplicationMetrics?,
        on loop: any EventLoop, done: @escaping @Sendable (_ covered: Bool) -> Void
    ) {
        let attempts = holders.map { holder in transport.hint(part.payload, org: org, placement: part.key, for: target, to: holder, on: loop) }
        EventLoopFuture.whenAllComplete(attempts, on: loop).whenSuccess { results in
            let outcomes = results.compactMap { try? $0.get() }
            if outcomes.contains(.durable) {
                metrics?.hinted(target: target, outcome: "stored")
                done(true)
            } else if outcomes.contains(where: { if case .full = $0 { true } else { false } }) {
                metrics?.hinted(target: target, outcome: "dropped")
                done(true)
            } else {
                metrics?.hinted(target: target, outcome: "lost")
                done(false)
            }
        }
    }

    private func isLocal(_ replica: NodeID) -> Bool { self.local != nil && replica == self.localNode }

    private func push(_ part: ReplicaPart, org: String, to replica: NodeID, at address: NodeAddress, placement: Int, write: ReplicatedWrite, on loop: any EventLoop) {
        let started = ContinuousClock.now
        let size = part.payload.readableBytes
        let (budget, metrics) = (self.budget, self.metrics)
        self.transport.push(part.payload, org: org, placement: part.key, to: address, on: loop).whenSuccess { outcome in
            budget.release(size, peer: replica)
            metrics?.inFlightBytes(budget.inFlightBytes)
            let elapsed = ContinuousClock.now - started
            switch outcome {
            case .durable:
                metrics?.pushed(peer: replica, outcome: "durable", duration: elapsed, bytes: size)
                write.record(placement: placement, replica: replica, failure: nil)
            case .failed(let why):
                metrics?.pushed(peer: replica, outcome: "failed", duration: elapsed, bytes: size)
                write.record(placement: placement, replica: replica, failure: "\(replica): \(why)")
            case .timedOut:
                metrics?.pushed(peer: replica, outcome: "timeout", duration: elapsed, bytes: size)
                write.record(placement: placement, replica: replica, failure: "\(replica) did not answer in time")
            case .full(let why):
                metrics?.pushed(peer: replica, outcome: "failed", duration: elapsed, bytes: size)
                write.record(placement: placement, replica: replica, failure: "\(replica): \(why)")
            }
        }
    }
}
