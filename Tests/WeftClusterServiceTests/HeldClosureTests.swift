import Foundation
import NIOCore
import NIOEmbedded
import Testing
import WeftCluster
import WeftClusterService
import WeftModel

/// The references that hand a node's store and hints to its internal routes are read on every request.
/// A read must not change what a later call costs: a closure held directly in a `Mutex` gets re-wrapped
/// in reabstraction thunks on each `withLock` in debug builds, and after some thousands of pushes a
/// storage node died of a stack overflow (SIGSEGV, nothing in its log) inside the push route.
struct HeldClosureTests {
    /// Frames on the stack where the held closure runs.
    private static func depth() -> Int { Thread.callStackSymbols.count }

    @Test func test_replicaStoreReference_readManyTimes_callsTheStoreAtTheSameDepth() throws {
        let reference = ReplicaStoreReference()
        let seen = DepthLog()
        reference.set { _, _, _, loop in
            seen.record(Self.depth())
            return loop.makeSucceededFuture(.durable)
        }
        let loop = EmbeddedEventLoop()
        let placement = try #require(PlacementKey(parsing: "a+b+c"))
        let call = { () throws in
            let store = try #require(reference.store)
            _ = try store(SpanBatch(), "org", placement, loop).wait()
        }
        try call()
        for _ in 0..<5_000 { _ = reference.store }
        try call()
        #expect(seen.depths.count == 2)
        #expect(seen.depths.first == seen.depths.last, "depths \(seen.depths)")
    }

    @Test func test_hintStoreReference_repairManyTimes_runsAtTheSameDepth() {
        let reference = HintStoreReference()
        let seen = DepthLog()
        reference.set(store: { _, loop in loop.makeSucceededFuture(.durable) }, repair: { _ in seen.record(Self.depth()) })
        for _ in 0..<5_000 { #expect(reference.repair(nil)) }
        _ = reference.store
        #expect(seen.depths.count == 5_000)
        #expect(Set(seen.depths).count == 1, "depths from \(seen.depths.min() ?? 0) to \(seen.depths.max() ?? 0)")
    }
}

private final class DepthLog: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    var depths: [Int] { self.lock.withLock { self.values } }
    func record(_ depth: Int) { self.lock.withLock { self.values.append(depth) } }
}
