import NIOCore
import Synchronization
import WeftCluster
import WeftHTTP2
import WeftModel

/// Keeps a hint durably for later delivery, completing on the loop.
public typealias HintStore = @Sendable (_ hint: HintRecord, _ loop: any EventLoop) -> EventLoopFuture<ReplicaStoreOutcome>

/// Makes the hints for a node (all when nil) due at once.
public typealias HintRepair = @Sendable (_ target: NodeID?) -> Void

/// Holds this node's hints log once it is open (the internal port opens before that).
public final class HintStoreReference: Sendable {
    /// A struct, not a tuple of closures: closures held directly in a `Mutex` are re-wrapped in
    /// reabstraction thunks on every `withLock` in unoptimised builds (see ``ReplicaStoreReference``).
    private struct Held: Sendable {
        let store: HintStore
        let repair: HintRepair
    }
    private let state = Mutex<Held?>(nil)

    public init() {}

    public var store: HintStore? { self.state.withLock { $0 }?.store }

    /// Asks for delivery now; false when this node holds no hints log.
    public func repair(_ target: NodeID?) -> Bool {
        guard let repair = self.state.withLock({ $0 })?.repair else { return false }
        repair(target)
        return true
    }

    public func set(store: @escaping HintStore, repair: @escaping HintRepair) {
        self.state.withLock { $0 = Held(store: store, repair: repair) }
    }
}

/// The hint holder's side of hinted handoff: `POST /internal/v1/hint` (see ``ReplicaHint``), and
/// `POST /internal/v1/repair` (deliver hints now; only those for the node in ``repairTargetHeader`` when given).
public enum HintAPI {
    public static let repairPath = "/internal/v1/repair"
    public static let repairTargetHeader = "x-weft-repair-target"

    /// Adds the hint route to `router`; a node without the storage role, or whose hints log is not open
    /// yet, answers 503.
    public static func install(into router: inout HTTP2Router, roles: NodeRoles, secret: String?, hints reference: HintStoreReference) {
        router.on("POST", Self.repairPath, InternalAPI.guarded(secret) { request, loop in
            let target = PushAPI.header(Self.repairTargetHeader, of: request)
            if let target, NodeID(target) == nil { return loop.makeSucceededFuture(InternalAPI.text(400, "\(Self.repairTargetHeader) must be a node ID\n")) }
            guard reference.repair(target.flatMap(NodeID.init)) else {
                return loop.makeSucceededFuture(InternalAPI.text(409, "this node (roles: \(roles)) holds no hints log\n"))
            }
            return loop.makeSucceededFuture(InternalAPI.text(200, "delivering\n"))
        })
        router.on("POST", ReplicaHint.path, InternalAPI.guarded(secret) { request, loop in
            guard roles.contains(.storage) else {
                return loop.makeSucceededFuture(PushAPI.retryLater("this node (roles: \(roles)) has no storage role and keeps no hints\n"))
            }
            guard let store = reference.store else {
                return loop.makeSucceededFuture(PushAPI.retryLater("opening the hints log; retry shortly\n"))
            }
            guard let target = PushAPI.header(ReplicaHint.targetHeader, of: request).flatMap(NodeID.init) else {
                return loop.makeSucceededFuture(InternalAPI.text(400, "\(ReplicaHint.targetHeader) must be a node ID\n"))
            }
            let org: String, placement: PlacementKey
            switch PushAPI.orgAndPlacement(of: request) {
            case .success(let parsed): (org, placement) = parsed
            case .failure(let refusal): return loop.makeSucceededFuture(refusal.response)
            }
            let payload = Array(request.body.readableBytesView)
            let readable = payload.withUnsafeBytes { bytes in (try? SpanBatchCodec.decode(bytes)) != nil }
            guard readable else { return loop.makeSucceededFuture(InternalAPI.text(400, "bad span batch payload\n")) }
            return store(HintRecord(target: target, org: org, placement: placement, payload: payload), loop).map { outcome in
                switch outcome {
                case .durable: return HTTP2Response(status: 204, headers: [])
                case .unavailable(let why): return PushAPI.retryLater(why + "\n")
                case .full(let why): return PushAPI.full(why)
                case .rejected(let why): return InternalAPI.text(400, why + "\n")
                }
            }
        })
    }
}
