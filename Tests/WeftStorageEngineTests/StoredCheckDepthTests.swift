import Foundation
import Testing
import WeftModel
import WeftStorageEngine

/// The head runs its stored check on every append of traces new to it. Installing and reading the
/// check must not make later calls deeper: a closure held directly in a `Mutex` is re-wrapped in
/// reabstraction thunks on every `withLock` in debug builds, one more layer per append.
struct StoredCheckDepthTests {
    @Test func test_storedCheck_runsAtTheSameDepth_onEveryAppend() throws {
        var h = try EngineHarness(SimulatedDisk())
        let depths = DepthLog()
        h.engine.head.setStoredCheck { _, _, _ in
            depths.record(Thread.callStackSymbols.count)
            return ([], [])
        }
        for trace in 1...2_000 { _ = try h.write(org: "acme", trace: UInt64(trace), count: 1) }
        let seen = depths.depths
        #expect(seen.count == 2_000)
        #expect(Set(seen).count == 1, "depths from \(seen.min() ?? 0) to \(seen.max() ?? 0)")
    }
}

private final class DepthLog: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    var depths: [Int] { self.lock.withLock { self.values } }
    func record(_ depth: Int) { self.lock.withLock { self.values.append(depth) } }
}
