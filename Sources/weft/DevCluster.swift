import Foundation

/// `weft dev --nodes N`: N `weft serve` processes on loopback that form one cluster. Node 1 runs every
/// role on the usual ports; nodes 2…N are storage nodes on free ports. Each keeps its data under
/// `<data dir>/node-i/` and its log in `<data dir>/node-i/log`. Ctrl-C (or SIGTERM) stops them all.
struct DevCluster {
    let nodes: Int
    let base: String
    let host: String
    let otlpPort: Int
    let queryPort: Int
    let grpcPort: Int
    let logLevel: String
    let replicationFactor: Int?

    struct Child {
        var index: Int
        var process: Process
        var fields: [String: String]
    }

    func run() async throws -> Never {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        try FileManager.default.createDirectory(atPath: self.base, withIntermediateDirectories: true)
        // One secret per dev cluster, so nothing else on the machine can talk to its internal ports. It
        // goes in a file only the owner reads, not on the command lines `ps` shows.
        let secret = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
        let secretFile = "\(self.base)/cluster-secret"
        // A file from an earlier run would keep its mode: the new one is created 0600 before it holds the secret.
        try? FileManager.default.removeItem(atPath: secretFile)
        guard FileManager.default.createFile(atPath: secretFile, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw DevClusterError("cannot write \(secretFile)")
        }
        var children: [Child] = []
        let stop = { (children: [Child]) in
            for c in children { c.process.terminationHandler = nil }
            for c in children where c.process.isRunning { kill(c.process.processIdentifier, SIGTERM) }
            for c in children { c.process.waitUntilExit() }
        }
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        for i in 1...self.nodes {
            var arguments = [
                "serve", "--node-id", "node-\(i)", "--data-dir", "\(self.base)/node-\(i)", "--host", self.host,
                "--internal-port", "0", "--cluster-secret-file", secretFile, "--log-level", self.logLevel,
            ]
            if let rf = self.replicationFactor { arguments += ["--replication-factor", String(rf)] }
            if i == 1 {
                arguments += ["--roles", "all", "--otlp-port", String(self.otlpPort), "--query-port", String(self.queryPort), "--otlp-grpc-port", String(self.grpcPort)]
            } else {
                arguments += ["--roles", "storage", "--otlp-port", "0", "--query-port", "0", "--otlp-grpc-port", "0", "--join", children[0].fields["internal"]!]
            }
            do {
                children.append(try self.launch(executable, arguments, index: i))
            } catch {
                stop(children)
                throw error
            }
        }
        let first = children[0].fields
        print("""

        A Weft cluster of \(self.nodes) nodes is running on \(self.host) (data and logs in \(self.base)/node-*).
          node-1 (ingest, storage, query):  OTLP/HTTP http://\(first["otlp"] ?? "")/v1/traces   OTLP/gRPC \(first["grpc"] ?? "")   query http://\(first["query"] ?? "")
        """)
        for c in children.dropFirst() {
            print("  node-\(c.index) (storage):                admin http://\(c.fields["query"] ?? "")   internal \(c.fields["internal"] ?? "")")
        }
        print("""
          Members:  weftctl members --url http://\(first["query"] ?? "")
          Stop with Ctrl-C.

        """)
        fflush(nil)

        let queue = DispatchQueue(label: "weft.dev.signals")
        let signals = [SIGINT, SIGTERM].map { signal -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
            source.setEventHandler {
                print("stopping \(children.count) nodes")
                stop(children)
                exit(0)
            }
            source.resume()
            return source
        }
        // Report nodes that exit on their own; the others keep running.
        for c in children {
            c.process.terminationHandler = { p in
                FileHandle.standardError.write(Data("node-\(c.index) exited with status \(p.terminationStatus) (log: \(self.base)/node-\(c.index)/log)\n".utf8))
            }
        }
        // The signal handlers end the process; until then there is nothing to do here.
        while true {
            try? await Task.sleep(for: .seconds(3600))
            withExtendedLifetime(signals) {}
        }
    }

    /// Starts one `weft serve` and waits for its `listening` line.
    private func launch(_ executable: String, _ arguments: [String], index: Int) throws -> Child {
        let directory = "\(self.base)/node-\(index)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: directory + "/log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/log"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = log
        try process.run()
        var line = Data()
        let reader = out.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening ") else {
            process.waitUntilExit()
            throw DevClusterError("node-\(index) did not start (exit \(process.terminationStatus)); see \(directory)/log")
        }
        // Keep draining its standard output so it never blocks on a full pipe.
        reader.readabilityHandler = { handle in _ = handle.availableData }
        let firstLine = text.split(separator: "\n").first.map(String.init) ?? ""
        try (firstLine + "\n").write(toFile: directory + "/listening", atomically: true, encoding: .utf8)
        var fields: [String: String] = [:]
        for part in firstLine.split(separator: " ").dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        return Child(index: index, process: process, fields: fields)
    }
}

struct DevClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
