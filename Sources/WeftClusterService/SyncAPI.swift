import NIOCore
import Synchronization
import WeftCluster
import WeftHTTP2
import WeftModel

/// What a storage node answers for anti-entropy (see ``SyncAPI``): the bucket digests of one
/// (org, placement), and the span keys of some of its buckets, both as their byte forms. The
/// closures read the placement, so they run their work on a thread pool, never the caller's.
public struct ReplicaSyncAnswers: Sendable {
    public var digest: @Sendable (_ org: String, _ placement: String) async throws -> [UInt8]
    public var keys: @Sendable (_ org: String, _ placement: String, _ buckets: Set<UInt64>) async throws -> [UInt8]

    public init(
        digest: @escaping @Sendable (_ org: String, _ placement: String) async throws -> [UInt8],
        keys: @escaping @Sendable (_ org: String, _ placement: String, _ buckets: Set<UInt64>) async throws -> [UInt8]
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
/// - `POST /internal/v1/digest/keys`: the same headers and the buckets in ``bucketHeader`` (decimal,
///   comma-separated, at most ``maxBucketsPerRequest``); answers the keys of the spans held in them, sorted.
///
/// Spans a peer lacks are then sent with the ordinary push route (idempotent on the receiver).
public enum SyncAPI {
    public static let digestPath = "/internal/v1/digest"
    public static let keysPath = "/internal/v1/digest/keys"
    public static let bucketHeader = "x-weft-bucket"
    /// The most buckets one keys request may name.
    public static let maxBucketsPerRequest = 256

    /// The buckets of a ``bucketHeader`` value, or nil when it is not 1…``maxBucketsPerRequest`` numbers.
    public static func buckets(_ text: String?) -> Set<UInt64>? {
        guard let text else { return nil }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard (1...Self.maxBucketsPerRequest).contains(parts.count) else { return nil }
        var out = Set<UInt64>()
        for part in parts {
            guard let value = UInt64(part.trimmingPrefix(" ")) else { return nil }
            out.insert(value)
        }
        return out
    }

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
                var buckets: Set<UInt64>? = nil
                if path == Self.keysPath {
                    guard let value = Self.buckets(PushAPI.header(Self.bucketHeader, of: request)) else {
                        return loop.makeSucceededFuture(InternalAPI.text(
                            400, "\(Self.bucketHeader) must be 1 to \(Self.maxBucketsPerRequest) bucket numbers, comma-separated\n"
                        ))
                    }
                    buckets = value
                }
                let promise = loop.makePromise(of: HTTP2Response.self)
                promise.completeWithTask {
                    do {
                        let bytes: [UInt8]
                        if let buckets {
                            bytes = try await answers.keys(org, placement.rawValue, buckets)
                        } else {
                            bytes = try await answers.digest(org, placement.rawValue)
                        }
                        return HTTP2Response(status: 200, headers: [("content-type", "application/octet-stream")], body: ByteBuffer(bytes: bytes))
                    } catch {
                        return PushAPI.retryLater("cannot read the placement now: \(error)\n")
                    }
                }
                return promise.futureResult
            })
        }
    }
}
