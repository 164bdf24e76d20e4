#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import WeftCluster

/// A node's ID: given by `--node-id`, or read from (and written to) `node-id` in a storage node's data
/// directory, so a restarted storage node is the same node with the same ring tokens.
public enum NodeIdentity {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The ID to run as. With `dataDir`, a stored ID wins over none given and must match one given.
    public static func resolve(requested: String?, dataDir: String?) throws -> NodeID {
        var wanted: NodeID? = nil
        if let requested, !requested.isEmpty {
            guard let id = NodeID(requested) else {
                throw Failure(description: "--node-id '\(requested)' must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
            }
            wanted = id
        }
        guard let dataDir else { return wanted ?? Self.generated() }
        let path = dataDir + "/node-id"
        if let stored = Self.read(path) {
            let text = stored.trimmingWhitespace()
            guard let id = NodeID(text) else { throw Failure(description: "\(path) holds no valid node ID ('\(text.prefix(80))')") }
            if let wanted, wanted != id {
                throw Failure(description: "data directory \(dataDir) belongs to node '\(id)', not '\(wanted)'")
            }
            return id
        }
        let id = wanted ?? Self.generated()
        try Self.write(path, id.rawValue + "\n")
        return id
    }

    /// `node-` and 8 random hex digits.
    static func generated() -> NodeID {
        var rng = SystemRandomNumberGenerator()
        let hex = String(rng.next() as UInt32, radix: 16)
        return NodeID("node-" + String(repeating: "0", count: 8 - hex.count) + hex)!
    }

    private static func read(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            bytes += buffer[0..<n]
            if bytes.count > 4096 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes atomically: a temporary file, fsync, rename.
    private static func write(_ path: String, _ text: String) throws {
        // mkdir -p of the directory.
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        var prefix = ""
        for part in directory.split(separator: "/", omittingEmptySubsequences: false) {
            prefix += (prefix.isEmpty && !directory.hasPrefix("/") ? "" : "/") + part
            if !part.isEmpty && part != "." { mkdir(prefix, 0o755) }
        }
        let temp = path + ".tmp"
        guard let f = fopen(temp, "w") else { throw Failure(description: "cannot write \(temp): errno \(errno)") }
        let bytes = Array(text.utf8)
        let written = fwrite(bytes, 1, bytes.count, f)
        fflush(f)
        fsync(fileno(f))
        fclose(f)
        guard written == bytes.count, rename(temp, path) == 0 else { throw Failure(description: "cannot write \(path): errno \(errno)") }
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
