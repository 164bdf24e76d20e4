import Foundation
import Testing

/// WeftCluster is pure: no I/O, no clocks, no threads, no unseeded randomness.
struct ArchitectureTests {
    static let forbidden = [
        "import NIO", "import Dispatch", "import Foundation", "import Glibc", "import Musl", "import Darwin",
        "ContinuousClock.now", "SuspendingClock.now", "Date()", "Task.sleep", "DispatchQueue",
    ]

    static var sourceFiles: [URL] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("Sources/WeftCluster")
        let enumerator = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)
        return (enumerator?.allObjects as? [URL] ?? []).filter { $0.pathExtension == "swift" }
    }

    @Test func test_weftClusterSources_useNoIOClocksOrUnseededRandomness() throws {
        let files = Self.sourceFiles
        #expect(files.count >= 10)
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                for pattern in Self.forbidden where code.contains(pattern) {
                    Issue.record("\(file.lastPathComponent):\(number + 1) uses \(pattern)")
                }
                // `.random(in:)`, `.shuffled()` and friends must take a generator.
                for call in [".random(", ".shuffled(", ".shuffle(", ".randomElement("] where code.contains(call) && !code.contains("using:") {
                    Issue.record("\(file.lastPathComponent):\(number + 1) draws randomness without a generator")
                }
            }
        }
    }
}
