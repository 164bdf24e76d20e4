import Foundation
import Testing

/// The pure targets (layer 0) import no networking, Dispatch or Foundation and read no clock: their
/// sources are read and searched for the imports and calls that would break that.
@Suite struct PurityTests {
    static let pureTargets = ["WeftModel", "WeftOTLP", "WeftStorageEngine", "WeftQuery", "WeftAggregates", "WeftCluster", "WeftLoad", "WeftClusterSim"]

    /// An import or call that has no place in a pure target, and why.
    struct Rule {
        var pattern: String
        var why: String
    }

    static let rules = [
        Rule(pattern: #"^\s*(@_exported\s+|@preconcurrency\s+)?import\s+(struct\s+|class\s+|enum\s+|func\s+)?NIO\w*"#, why: "imports NIO"),
        Rule(pattern: #"^\s*(@_exported\s+|@preconcurrency\s+)?import\s+(struct\s+|class\s+|enum\s+|func\s+)?Dispatch\b"#, why: "imports Dispatch"),
        Rule(pattern: #"^\s*(@_exported\s+|@preconcurrency\s+)?import\s+(struct\s+|class\s+|enum\s+|func\s+)?Foundation\w*"#, why: "imports Foundation"),
        Rule(pattern: #"ContinuousClock\s*\.\s*now|SuspendingClock\s*\.\s*now"#, why: "reads a clock"),
        Rule(pattern: #"\bDate\s*\(\s*\)"#, why: "reads the wall clock"),
        Rule(pattern: #"\bDispatch(Queue|Time|WallTime|Group|Semaphore)\b"#, why: "uses Dispatch"),
        Rule(pattern: #"\bTask\s*\.\s*sleep\b"#, why: "sleeps"),
    ]

    static var sourcesRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources")
    }

    /// `file:line: why` for each line of `text` breaking a rule (lines of comments are skipped).
    static func violations(in text: String, file: String) throws -> [String] {
        let compiled = try self.rules.map { (try NSRegularExpression(pattern: $0.pattern), $0.why) }
        var found: [String] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.hasPrefix("//") { continue }
            let s = String(line)
            for (regex, why) in compiled where regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil {
                found.append("\(file):\(n + 1): \(why): \(trimmed)")
            }
        }
        return found
    }

    @Test func test_pureTargets_importNoNetworkingDispatchOrFoundation_andReadNoClock() throws {
        var found: [String] = []
        var files = 0
        for target in Self.pureTargets {
            let root = Self.sourcesRoot.appendingPathComponent(target)
            let enumerator = try #require(FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil), "no sources for \(target)")
            for case let url as URL in enumerator where url.pathExtension == "swift" {
                files += 1
                found += try Self.violations(in: try String(contentsOf: url, encoding: .utf8), file: "\(target)/\(url.lastPathComponent)")
            }
        }
        #expect(files > 50)
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }

    @Test func test_rules_catchEachForbiddenImportAndCall() throws {
        let bad = """
            import NIOCore
            @preconcurrency import Dispatch
            import struct Foundation.Date
            let a = ContinuousClock.now
            let b = Date()
            DispatchQueue.main.async {}
            try await Task.sleep(for: .seconds(1))
            """
        #expect(try Self.violations(in: bad, file: "x").count == 7)
        let fine = """
            import Synchronization
            import WeftModel
            // import Dispatch is mentioned in a comment
            let m = Mutex(0)
            let updated = lastUpdate()
            """
        #expect(try Self.violations(in: fine, file: "x").isEmpty)
    }
}
