import NIOCore
import Synchronization
import WeftCluster
import WeftHTTP2
import WeftModel

/// What a storage node answers for anti-entropy (see ``SyncAPI``): the bucket digests of one
/// (org, placement), and the span keys of one bucket, both as their byte forms. The closures block
/// (they scan the placement), so they are called off the event loops.
public struct ReplicaSyncAnswers: Sendable {
    public var digest: @Sendable (_ org: String, _ placement: String) -> [UInt8]
    public var keys: @Sendable (_ org: String, _ placement: String, _ bucket: UInt64) -> [UInt8]

    public init(
        digest: @escaping @Sendable (_ org: String, _ placement: String) -> [UInt8],
        keys: @escaping @Sendable (_ org: String, _ placement: String, _ bucket: UInt64) -> [UInt8]
    ) {
        self.digest = digest
        self.keys = keys
    }
}

/// Holds this node's sync answers once its WAL is replayed (the internal port opens before that).
public final class ReplicaSyncReference: Sendable {
    private let state = Mutex<ReplicaSyncAnswers?>(nil)

    public init() {}

    public var answers: ReplicaSyncAnswers? { self.state.withLock { $0 } }

    public func set(_ answers: ReplicaSyncAnswers) { self.state.withLock { $0 = answers } }
}

/// The storage side of anti-entropy between the replicas of a placement:
///
/// - `POST /internal/v1/digest`: the org and placement in the push headers; answers the placement's
///   bucket digests (`SpanDigest` byte form).
/// - `POST /internal/v1/digest/keys`: the same headers and the bucket in ``bucketHeader`` (decimal);
///   answers the keys of the spans held in that bucket.
///
/// Spans a peer lacks are then sent with the ordinary push route (idempotent on the receiver).
public enum SyncAPI {
    public static let digestPath = "/internal/v1/digest"
    public static let keysPath = "/internal/v1/digest/keys"
    public static let bucketHeader = "x-weft-bucket"

    /// Adds both routes; a node without the storage role, or still replaying its WAL, answers 503.
    public static func install(into router: inout HTTP2Router, roles: NodeRoles, secret: String?, answers reference: ReplicaSyncReference) {
        for path in [Self.digestPath, Self.keysPath] {
            router.on("POST", path, InternalAPI.guarded(secret) { request, loop in
                guard roles.contains(.storage) else {
                    return loop.makeSucceededFuture(PushAPI.retryLater("this node (roles: \(roles)) has no storage role and stores no spans\n"))
                }
                guard let answers = reference.answers else {
                    return loop.makeSucceededFuture(PushAPI.retryLater("recovering the write-ahead log; retry shortly\n"))
                }
                let org: String, placement: PlacementKey
                switch PushAPI.orgAndPlacement(of: request) {
                case .success(let parsed): (org, placement) = parsed
                case .failure(let refusal): return loop.makeSucceededFuture(refusal.response)
                }
                var bucket: UInt64? = nil
                if path == Self.keysPath {
                    guard let value = PushAPI.header(Self.bucketHeader, of: request).flatMap({ UInt64($0) }) else {
                        return loop.makeSucceededFuture(InternalAPI.text(400, "\(Self.bucketHeader) must be a bucket number\n"))
                    }
                    bucket = value
                }
                let promise = loop.makePromise(of: HTTP2Response.self)
                promise.completeWithTask {
                    let bytes = bucket.map { answers.keys(org, placement.rawValue, $0) } ?? answers.digest(org, placement.rawValue)
                    return HTTP2Response(status: 200, headers: [("content-type", "application/octet-stream")], body: ByteBuffer(bytes: bytes))
                }
                return promise.futureResult
            })
        }
    }
}
