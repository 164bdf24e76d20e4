import Foundation
import Testing

/// The module map in `docs/architecture.md` names exactly the package's targets, and its pure (layer 0)
/// modules are the ones ``PurityTests`` checks.
@Suite struct ModuleMapTests {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Names of the non-test targets declared in Package.swift (system libraries and C targets included).
    static func packageTargets() throws -> Set<String> {
        let text = try String(contentsOf: self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let regex = try NSRegularExpression(pattern: #"\.(target|executableTarget|systemLibrary)\(\s*name:\s*"([^"]+)""#)
        let matches = regex.matches(in: text, range: NSRange(text.startIndex..., in: text))
        return Set(matches.compactMap { Range($0.range(at: 2), in: text).map { String(text[$0]) } })
    }

    /// (module names, layer) of each row of the doc's module map table (`| \`A\` (+ \`B\`) | layer | …`).
    static func mapRows() throws -> [(names: [String], layer: String)] {
        let text = try String(contentsOf: self.root.appendingPathComponent("docs/architecture.md"), encoding: .utf8)
        guard let start = text.range(of: "## 2. Module map"), let end = text.range(of: "\n## 3.", range: start.upperBound..<text.endIndex) else {
            Issue.record("docs/architecture.md has no '## 2. Module map' section followed by '## 3.'")
            return []
        }
        let names = try NSRegularExpression(pattern: #"`([A-Za-z][A-Za-z0-9-]*)`"#)
        var rows: [(names: [String], layer: String)] = []
        for line in text[start.upperBound..<end.lowerBound].split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > 3 else { continue }
            let first = cells[1]
            let found = names.matches(in: first, range: NSRange(first.startIndex..., in: first)).compactMap { Range($0.range(at: 1), in: first).map { String(first[$0]) } }
            rows.append((found, cells[2]))
        }
        return rows
    }

    @Test func test_moduleMap_namesEveryTargetOfThePackage_andNoOther() throws {
        let targets = try Self.packageTargets()
        let mapped = Set(try Self.mapRows().flatMap(\.names))
        #expect(targets.count >= 20)
        // C shims and system libraries are named beside the module that wraps them, or not at all.
        let shims: Set<String> = ["CWeftCRC", "CZstd", "CZlib", "CNGHTTP2"]
        #expect(targets.subtracting(mapped).subtracting(shims).sorted() == [], "targets missing from docs/architecture.md")
        #expect(mapped.subtracting(targets).sorted() == [], "modules in docs/architecture.md that Package.swift does not declare")
    }

    @Test func test_layerZeroModulesOfTheMap_areTheOnesCheckedForPurity() throws {
        let pure = Set(try Self.mapRows().filter { $0.layer == "0" }.flatMap(\.names))
        #expect(pure == Set(PurityTests.pureTargets))
    }
}
