import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftCluster
import WeftClusterService
import WeftHTTP2
import WeftIngest
import WeftModel

struct HintAPITests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func router(roles: NodeRoles = .all, hints: HintStoreReference) -> HTTP2Router {
        var router = HTTP2Router()
        HintAPI.install(into: &router, roles: roles, secret: "s3cret", hints: hints)
        return router
    }

    static func send(_ router: HTTP2Router, path: String = ReplicaHint.path, headers extra: [(name: String, value: String)], body: ByteBuffer = ByteBuffer()) async throws -> HTTP2Response {
        let request = HTTP2Request(
            method: "POST", path: path, scheme: "http", authority: "x",
            headers: [(ReplicaPush.orgHeader, "acme"), (ReplicaPush.placementHeader, "a+b+c"), ("x-weft-cluster-secret", "s3cret")] + extra, body: body
        )
        return try await router.respond(request, on: Self.group.next()).get()
    }

    @Test func test_hint_isKeptForItsTarget_withOrgPlacementAndPayload() async throws {
        let kept = Mutex<[HintRecord]>([])
        let hints = HintStoreReference()
        hints.set(store: { hint, loop in
            kept.withLock { $0.append(hint) }
            return loop.makeSucceededFuture(.durable)
        }, repair: { _ in })
        let body = ReplicaPlan.encode(try generatedBatch(spans: 20, seed: 7))
        let response = try await Self.send(Self.router(hints: hints), headers: [(ReplicaHint.targetHeader, "c")], body: body)
        #expect(response.status == 204)
        let records = kept.withLock { $0 }
        #expect(records.map(\.target) == [NodeID("c")!])
        #expect(records.map(\.org) == ["acme"])
        #expect(records.map(\.placement.rawValue) == ["a+b+c"])
        #expect(records.first?.payload == Array(body.readableBytesView))
    }

    @Test func test_hint_refusesBadInput_andAFullLog() async throws {
        let hints = HintStoreReference()
        let router = Self.router(hints: hints)
        let body = ReplicaPlan.encode(try generatedBatch(spans: 5, seed: 8))
        #expect(try await Self.send(router, headers: [(ReplicaHint.targetHeader, "c")], body: body).status == 503, "before the log is open")
        hints.set(store: { _, loop in loop.makeSucceededFuture(.unavailable("the hints log is full")) }, repair: { _ in })
        #expect(try await Self.send(router, headers: [(ReplicaHint.targetHeader, "c")], body: body).status == 503)
        #expect(try await Self.send(router, headers: [], body: body).status == 400)
        #expect(try await Self.send(router, headers: [(ReplicaHint.targetHeader, "c")], body: ByteBuffer(bytes: [9, 9])).status == 400)
        #expect(try await Self.send(Self.router(roles: .ingest, hints: hints), headers: [(ReplicaHint.targetHeader, "c")], body: body).status == 503)
    }

    @Test func test_repair_expeditesOneTargetOrAll() async throws {
        let asked = Mutex<[String]>([])
        let hints = HintStoreReference()
        let router = Self.router(hints: hints)
        #expect(try await Self.send(router, path: HintAPI.repairPath, headers: []).status == 409, "no hints log")
        hints.set(store: { _, loop in loop.makeSucceededFuture(.durable) }, repair: { target in asked.withLock { $0.append(target?.rawValue ?? "*") } })
        #expect(try await Self.send(router, path: HintAPI.repairPath, headers: []).status == 200)
        #expect(try await Self.send(router, path: HintAPI.repairPath, headers: [(HintAPI.repairTargetHeader, "b")]).status == 200)
        #expect(try await Self.send(router, path: HintAPI.repairPath, headers: [(HintAPI.repairTargetHeader, "not a node!")]).status == 400)
        #expect(asked.withLock { $0 } == ["*", "b"])
    }
}
