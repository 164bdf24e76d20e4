import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftCluster
import WeftClusterService
import WeftHTTP2
import WeftIngest
import WeftModel

struct PushAPITests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func router(roles: NodeRoles, store: ReplicaStoreReference) -> HTTP2Router {
        var router = HTTP2Router()
        PushAPI.install(into: &router, roles: roles, secret: "s3cret", store: store)
        return router
    }

    static func push(_ router: HTTP2Router, placement: String = "a+b+c", secret: String = "s3cret", body: ByteBuffer) async throws -> HTTP2Response {
        let request = HTTP2Request(
            method: "POST", path: ReplicaPush.path, scheme: "http", authority: "x",
            headers: [(ReplicaPush.orgHeader, "acme"), (ReplicaPush.placementHeader, placement), ("x-weft-cluster-secret", secret)], body: body
        )
        return try await router.respond(request, on: Self.group.next()).get()
    }

    @Test func test_push_storesTheDecodedBatch_underItsOrgAndPlacement() async throws {
        let batch = try generatedBatch(spans: 40, seed: 1)
        let stored = StoredParts()
        let store = ReplicaStoreReference()
        store.set { batch, org, placement, loop in
            stored.add(org: org, placement: placement.rawValue, spans: batch.spanCount)
            return loop.makeSucceededFuture(.durable)
        }
        let response = try await Self.push(Self.router(roles: .all, store: store), body: ReplicaPlan.encode(batch))
        #expect(response.status == 204)
        #expect(stored.all == ["acme a+b+c \(batch.spanCount)"])
    }

    @Test func test_push_refusesBadInput_andAnswersUnavailableWhenItCannotStore() async throws {
        let store = ReplicaStoreReference()
        let router = Self.router(roles: .all, store: store)
        let body = ReplicaPlan.encode(try generatedBatch(spans: 5, seed: 2))
        #expect(try await Self.push(router, body: body).status == 503, "before recovery")
        store.set { _, _, _, loop in loop.makeSucceededFuture(.unavailable("WAL overloaded")) }
        let refused = try await Self.push(router, body: body)
        #expect(refused.status == 503)
        #expect(refused.headers.contains { $0.name == "retry-after" })
        #expect(try await Self.push(router, placement: "c+a", body: body).status == 400)
        let garbage = try await Self.push(router, body: ByteBuffer(bytes: [9, 9, 9]))
        #expect(garbage.status == 400)
        #expect(String(buffer: garbage.body).contains("bad span batch payload"))
        #expect(try await Self.push(router, secret: "wrong", body: body).status == 401)
        let ingestOnly = try await Self.push(Self.router(roles: .ingest, store: store), body: body)
        #expect(ingestOnly.status == 503)
        #expect(String(buffer: ingestOnly.body).contains("no storage role"))
    }
}

final class StoredParts: Sendable {
    private let parts = Mutex<[String]>([])
    func add(org: String, placement: String, spans: Int) { self.parts.withLock { $0.append("\(org) \(placement) \(spans)") } }
    var all: [String] { self.parts.withLock { $0 } }
}
