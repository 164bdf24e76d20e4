import NIOCore
import WeftCluster
import WeftHTTP2

/// How one push to one replica ended.
public enum PushOutcome: Sendable, Equatable {
    /// The replica made the spans durable.
    case durable
    /// The replica refused or could not be reached (why).
    case failed(String)
    /// No answer within the push timeout.
    case timedOut
    /// The replica is at its configured limit (its hints log is full: HTTP 507).
    case full(String)
}

/// Carries a part of a write to one remote replica (over the internal port in a cluster; in memory in tests).
public protocol ReplicaTransport: Sendable {
    /// Pushes `payload` (a `SpanBatchCodec` encoding of spans of `org`) to the replica at `address`,
    /// to be kept under `placement`. The future, completed on `loop`, always succeeds.
    func push(_ payload: ByteBuffer, org: String, placement: PlacementKey, to address: NodeAddress, on loop: any EventLoop) -> EventLoopFuture<PushOutcome>

    /// Leaves `payload`, which replica `target` missed, as a hint with the replica at `address` (one that
    /// stored it), to be delivered to `target` later. `.durable` once the hint is in that replica's hints log.
    func hint(_ payload: ByteBuffer, org: String, placement: PlacementKey, for target: NodeID, to address: NodeAddress, on loop: any EventLoop) -> EventLoopFuture<PushOutcome>
}

/// Pushes over the internal HTTP/2 port: one connection per peer (from the pool), one stream per
/// push, each reset when it outlives the timeout.
public struct HTTP2ReplicaTransport: ReplicaTransport {
    let pool: HTTP2ClientPool
    let secret: (name: String, value: String)?
    let timeout: Duration

    /// - Parameters:
    ///   - secret: the header field of the cluster secret, sent with every push (none: not sent).
    ///   - timeout: how long a push may take, connecting included.
    public init(pool: HTTP2ClientPool, secret: (name: String, value: String)?, timeout: Duration) {
        self.pool = pool
        self.secret = secret
        self.timeout = timeout
    }

    public func push(_ payload: ByteBuffer, org: String, placement: PlacementKey, to address: NodeAddress, on loop: any EventLoop) -> EventLoopFuture<PushOutcome> {
        self.send(ReplicaPush.path, payload, org: org, placement: placement, extra: [], to: address, on: loop)
    }

    /// A push of anti-entropy (``ReplicaPush/repairHeader``): spans the replica was found to lack.
    public func pushRepair(_ payload: ByteBuffer, org: String, placement: PlacementKey, to address: NodeAddress, on loop: any EventLoop) -> EventLoopFuture<PushOutcome> {
        self.send(ReplicaPush.path, payload, org: org, placement: placement, extra: [(ReplicaPush.repairHeader, "1")], to: address, on: loop)
    }

    public func hint(_ payload: ByteBuffer, org: String, placement: PlacementKey, for target: NodeID, to address: NodeAddress, on loop: any EventLoop) -> EventLoopFuture<PushOutcome> {
        self.send(ReplicaHint.path, payload, org: org, placement: placement, extra: [(ReplicaHint.targetHeader, target.rawValue)], to: address, on: loop)
    }

    private func send(
        _ path: String, _ payload: ByteBuffer, org: String, placement: PlacementKey, extra: [(name: String, value: String)], to address: NodeAddress, on loop: any EventLoop
    ) -> EventLoopFuture<PushOutcome> {
        var headers: [(name: String, value: String)] = [
            ("content-type", "application/octet-stream"), (ReplicaPush.orgHeader, org), (ReplicaPush.placementHeader, placement.rawValue),
        ] + extra
        if let secret = self.secret { headers.append(secret) }
        let request = HTTP2ClientRequest(method: "POST", path: path, authority: address.description, headers: headers, body: payload)
        let peer = HTTP2ClientPool.Peer(host: address.host, port: Int(address.port))
        let deadline = ContinuousClock.now.advanced(by: self.timeout)
        let promise = loop.makePromise(of: PushOutcome.self)
        promise.completeWithTask { [pool = self.pool] in
            do {
                let response = try await pool.send(request, to: peer, deadline: deadline)
                if response.status == 204 || response.status == 200 { return .durable }
                let text = String(buffer: response.body).prefix(200).split(whereSeparator: \.isNewline).joined(separator: " ")
                return response.status == 507 ? .full(text) : .failed("HTTP \(response.status): \(text)")
            } catch HTTP2ClientError.deadlineExceeded {
                return .timedOut
            } catch {
                // A connection attempt still under way at the deadline counts as a timeout too.
                return ContinuousClock.now >= deadline ? .timedOut : .failed("\(error)")
            }
        }
        return promise.futureResult
    }
}
