import NIOCore
import Synchronization
import WeftCluster
import WeftHTTP2

/// The routes of the internal HTTP/2 port (node to node): membership messages, a node's own status
/// for `weftctl status`, and drain. Every request must carry the cluster secret when one is set.
public enum InternalAPI {
    public static let statusPath = "/internal/v1/status"
    public static let drainPath = "/internal/v1/drain"

    /// Adds the routes to `router`. `localStatus` renders this node's status as a JSON object. Until
    /// `shell` holds the running shell, requests get 503.
    public static func install(
        into router: inout HTTP2Router, shell reference: ShellReference, secret: String?, localStatus: @escaping @Sendable () async -> [UInt8]
    ) {
        router.on("POST", MembershipShell.swimPath, Self.guarded(secret) { request, loop in
            guard let shell = reference.shell else { return loop.makeSucceededFuture(Self.text(503, "starting\n")) }
            let bytes = Array(request.body.readableBytesView)
            let promise = loop.makePromise(of: HTTP2Response.self)
            promise.completeWithTask {
                do {
                    try await shell.receive(bytes)
                    return HTTP2Response(status: 204, headers: [])
                } catch {
                    return Self.text(400, "bad membership message: \(error)")
                }
            }
            return promise.futureResult
        })
        router.on("GET", Self.statusPath, Self.guarded(secret) { _, loop in
            let promise = loop.makePromise(of: HTTP2Response.self)
            promise.completeWithTask {
                HTTP2Response(status: 200, headers: [("content-type", "application/json")], body: ByteBuffer(bytes: await localStatus()))
            }
            return promise.futureResult
        })
        router.on("POST", Self.drainPath, Self.guarded(secret) { _, loop in
            guard let shell = reference.shell else { return loop.makeSucceededFuture(Self.text(503, "starting\n")) }
            let promise = loop.makePromise(of: HTTP2Response.self)
            promise.completeWithTask {
                await shell.setOwnState(.leaving)
                return Self.text(200, "leaving\n")
            }
            return promise.futureResult
        })
    }

    /// Refuses requests without the secret (compared in constant time) when one is set.
    public static func guarded(_ secret: String?, _ handler: @escaping HTTP2Router.Handler) -> HTTP2Router.Handler {
        guard let secret else { return handler }
        let expected = Array(secret.utf8)
        return { request, loop in
            let given = request.headers.first { $0.name == ClusterSettings.secretHeader }.map { Array($0.value.utf8) } ?? []
            guard Self.constantTimeEqual(given, expected) else {
                return loop.makeSucceededFuture(Self.text(401, "node-to-node requests need the cluster secret (\(ClusterSettings.secretHeader))\n"))
            }
            return handler(request, loop)
        }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }

    /// A plain-text answer.
    public static func text(_ status: Int, _ text: String) -> HTTP2Response {
        HTTP2Response(status: status, headers: [("content-type", "text/plain; charset=utf-8")], body: ByteBuffer(string: text))
    }
}

/// Holds the membership shell once it runs (the internal port is bound before the shell exists,
/// because the shell needs the port it advertises).
public final class ShellReference: Sendable {
    private let state = Mutex<MembershipShell?>(nil)

    public init() {}

    public var shell: MembershipShell? { self.state.withLock { $0 } }

    public func set(_ shell: MembershipShell) { self.state.withLock { $0 = shell } }
}
