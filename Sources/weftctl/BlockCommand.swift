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
            throw ExitCode(2)
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
                print("block \(m.id)  org=\(m.org)  placement=\(m.placement)  format=v\(m.formatVersion)")
                print("spans \(m.spans)  start \(m.minStart)...\(m.maxStart)  bytes \(m.bytes)")
            }
            let batch = try bytes.withUnsafeBytes { try BlockCodec.decode($0) }
            let layout = try bytes.withUnsafeBytes { try BlockCodec.layout($0) }
            print("rows \(batch.spanCount)  traces \(Set((0..<batch.spanCount).map { batch.traceID($0) }).count)  dictionary \(batch.strings.count) strings  file \(bytes.count) bytes (\(String(format: "%.1f", Double(bytes.count) / Double(max(1, batch.spanCount)))) B/span)")
            print("SECTION                      CODEC  STORED B   RAW B     B/SPAN")
            for s in layout.sorted(by: { $0.bytes > $1.bytes }) {
                print(
                    s.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                        + (s.compressed ? " zstd " : " raw  ")
                        + String(s.bytes).leftPadded(10) + String(s.rawBytes).leftPadded(10)
                        + String(format: "%10.2f", Double(s.bytes) / Double(max(1, batch.spanCount)))
                )
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every checksum and that the block decodes.")
        @Argument(help: "Path of a .block file.") var path: String

        func run() throws {
            let bytes = try BlockCommand.load(self.path)
            do {
                let result = try bytes.withUnsafeBytes { try BlockCodec.verify($0) }
                print("ok: \(result.sections.count) sections, \(result.spans) spans, all checksums match")
            } catch {
                CLI.printError("corrupt: \(error)")
                throw ExitCode(1)
            }
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
