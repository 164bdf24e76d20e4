import ArgumentParser
import Foundation
import WeftStorageEngine

/// `weftctl block inspect|verify <path>`: offline tools for block files.
struct BlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "block",
        abstract: "Inspect or verify a block file (<id>.block) offline.",
        subcommands: [Inspect.self, Verify.self]
    )

    static func load(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            CLI.printError("weftctl block: cannot read \(path)")
            throw Exit.usage
        }
        return [UInt8](data)
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print metadata, rows, and per-section encoding and bytes.")
        @Argument(help: "Path of a .block file.") var path: String

        func run() throws {
            let bytes = try BlockCommand.load(self.path)
            let metaPath = self.path.hasSuffix(".block") ? String(self.path.dropLast(6)) + ".meta" : ""
            if let meta = FileManager.default.contents(atPath: metaPath), let m = try? BlockMeta.parse([UInt8](meta)) {
                print("block \(m.id)  org=\(m.org)  placement=\(m.placement)  format=v\(m.formatVersion)  level=\(m.level)")
                print("spans \(m.spans)  traces \(m.traces)  start \(m.minStart)...\(m.maxStart)  bytes \(m.bytes)")
                print("sources (WAL segments) \(m.sources)  replaces \(m.replaces)")
            }
            let reader = try BlockReader(bytes: bytes)
            let layout = try BlockCodec.layout(bytes)
            let spans = reader.spanCount
            let groups = reader.groups
            print("rows \(spans)  row groups \(groups.count)  traces \(groups.traces.reduce(0, +))  dictionary \(reader.dictionary.count) strings  file \(bytes.count) bytes (\(String(format: "%.2f", Double(bytes.count) / Double(max(1, spans)))) B/span)")
            struct Column { var stored = 0, raw = 0, sections = 0, compressed = 0 }
            var columns: [String: Column] = [:]
            for s in layout {
                let name = s.name.hasPrefix("dict") ? "dictionary" : s.name.firstIndex(of: "/").map { String(s.name[s.name.index(after: $0)...]) } ?? s.name
                columns[name, default: Column()].stored += s.bytes
                columns[name, default: Column()].raw += s.rawBytes
                columns[name, default: Column()].sections += 1
                if s.compressed { columns[name, default: Column()].compressed += 1 }
            }
            print("COLUMN                       SECTIONS  ZSTD   STORED B     RAW B    B/SPAN")
            for (name, c) in columns.sorted(by: { $0.value.stored > $1.value.stored }) {
                print(
                    name.padding(toLength: 28, withPad: " ", startingAt: 0)
                        + String(c.sections).leftPadded(9) + String(c.compressed).leftPadded(6)
                        + String(c.stored).leftPadded(11) + String(c.raw).leftPadded(10)
                        + String(format: "%10.2f", Double(c.stored) / Double(max(1, spans)))
                )
            }
            let overhead = bytes.count - layout.reduce(0) { $0 + $1.bytes }
            print("(directory, footer, magic)".padding(toLength: 28, withPad: " ", startingAt: 0) + String(overhead).leftPadded(26)
                + String(format: "%20.2f", Double(overhead) / Double(max(1, spans))))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every checksum and that the block decodes.")
        @Argument(help: "Path of a .block file.") var path: String

        func run() throws {
            let bytes = try BlockCommand.load(self.path)
            do {
                let result = try BlockCodec.verify(bytes)
                print("ok: \(result.sections) sections, \(result.spans) spans, all checksums match")
            } catch {
                CLI.printError("corrupt: \(error)")
                throw Exit.failure
            }
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
