import NIOCore
import Synchronization
import WeftCluster
import WeftHTTP2
import WeftModel

/// What a storage node made of a pushed part.
public enum ReplicaStoreOutcome: Sendable, Equatable {
    /// Durable (in the WAL, fsynced) and in the head.
    case durable
    /// Not stored now (overloaded, WAL failure); the sender may retry.
    case unavailable(String)
    /// Never storable as sent (the reason).
    case rejected(String)
    /// Not stored: the store is at its configured limit (a full hints log), and stays so for a while.
    case full(String)
}

/// Stores a decoded part of a replicated write under its org and placement, completing on the loop.
public typealias ReplicaStore = @Sendable (_ batch: SpanBatch, _ org: String, _ placement: PlacementKey, _ loop: any EventLoop) -> EventLoopFuture<ReplicaStoreOutcome>

/// Holds this node's store once its WAL is replayed (the internal port opens before that).
public final class ReplicaStoreReference: Sendable {
    /// The closure sits in a struct: a `Mutex` whose value is a bare function type re-wraps it in
    /// reabstraction thunks on every `withLock` (the inout round trip) in unoptimised builds, so each
    /// read would deepen its call chain until a call overflows the stack.
    private struct Held: Sendable { let store: ReplicaStore }
    private let state = Mutex<Held?>(nil)
    private struct HeldRepair: Sendable { let repaired: @Sendable (_ org: String, _ placement: PlacementKey) -> Void }
    private let repair = Mutex<HeldRepair?>(nil)

    public init() {}

    public var store: ReplicaStore? { self.state.withLock { $0 }?.store }

    public func set(_ store: @escaping ReplicaStore) { self.state.withLock { $0 = Held(store: store) } }

    /// Told of each durable push of anti-entropy (``ReplicaPush/repairHeader``), after the store.
    public var repaired: (@Sendable (_ org: String, _ placement: PlacementKey) -> Void)? { self.repair.withLock { $0 }?.repaired }

    public func onRepair(_ repaired: @escaping @Sendable (_ org: String, _ placement: PlacementKey) -> Void) {
        self.repair.withLock { $0 = HeldRepair(repaired: repaired) }
    }
}

/// The storage side of replicated writes: `POST /internal/v1/push` (see ``ReplicaPush``).
public enum PushAPI {
    /// Adds the push route to `router`. A node without the storage role answers 503 naming its roles;
    /// a storage node answers 503 until `store` holds its store.
    public static func install(into router: inout HTTP2Router, roles: NodeRoles, secret: String?, store reference: ReplicaStoreReference) {
        router.on("POST", ReplicaPush.path, InternalAPI.guarded(secret) { request, loop in
            guard roles.contains(.storage) else {
                return loop.makeSucceededFuture(Self.retryLater("this node (roles: \(roles)) has no storage role and stores no spans\n"))
            }
            guard let store = reference.store else {
                return loop.makeSucceededFuture(Self.retryLater("recovering the write-ahead log; retry shortly\n"))
            }
            let org: String, placement: PlacementKey
            switch Self.orgAndPlacement(of: request) {
            case .success(let parsed): (org, placement) = parsed
            case .failure(let refusal): return loop.makeSucceededFuture(refusal.response)
            }
            let batch: SpanBatch
            do {
                batch = try request.body.withUnsafeReadableBytes { bytes throws(SpanBatchCodec.DecodeError) in try SpanBatchCodec.decode(bytes) }
            } catch {
                return loop.makeSucceededFuture(InternalAPI.text(400, "bad span batch payload: \(error)\n"))
            }
            let repair = Self.header(ReplicaPush.repairHeader, of: request) != nil
            return store(batch, org, placement, loop).map { outcome in
                switch outcome {
                case .durable:
                    if repair { reference.repaired?(org, placement) }
                    return HTTP2Response(status: 204, headers: [])
                case .unavailable(let why): return Self.retryLater(why + "\n")
                case .rejected(let why): return InternalAPI.text(400, why + "\n")
                case .full(let why): return Self.full(why)
                }
            }
        })
    }

    /// The answer to a request a store at its limit cannot take: 507 with the reason.
    static func full(_ why: String) -> HTTP2Response {
        InternalAPI.text(507, why + "\n")
    }

    /// A 400 answer to a request whose headers do not name what it needs.
    struct BadHeaders: Error {
        var response: HTTP2Response
    }

    /// The org (``ReplicaPush/orgHeader``) and placement (``ReplicaPush/placementHeader``) a push, hint
    /// or sync request names, or the 400 answer saying which is wrong.
    static func orgAndPlacement(of request: HTTP2Request) -> Result<(String, PlacementKey), BadHeaders> {
        let org: String
        switch OrgID.parse(Self.header(ReplicaPush.orgHeader, of: request)) {
        case .success(let parsed): org = parsed
        case .failure(let invalid): return .failure(BadHeaders(response: InternalAPI.text(400, "bad \(ReplicaPush.orgHeader): \(invalid)\n")))
        }
        guard let text = Self.header(ReplicaPush.placementHeader, of: request), let placement = PlacementKey(parsing: text) else {
            return .failure(BadHeaders(response: InternalAPI.text(400, "\(ReplicaPush.placementHeader) must be a placement key (sorted node IDs joined by '+')\n")))
        }
        return .success((org, placement))
    }

    static func header(_ name: String, of request: HTTP2Request) -> String? {
        request.headers.first { $0.name == name }?.value
    }

    static func retryLater(_ text: String) -> HTTP2Response {
        var response = InternalAPI.text(503, text)
        response.headers.append(("retry-after", "1"))
        return response
    }
}
