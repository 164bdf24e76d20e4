import ArgumentParser

/// `weftctl status`: every member's own status, gathered by the asked node (GET /api/cluster/status).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show every node's status: ring version, readiness, data held, WAL backlog.",
        discussion: """
            The asked node collects each member's status over the internal port. RING V is the ring \
            version the node has; WAL is the number of write-ahead log segments not yet in blocks beyond \
            the one being written; HINTS the writes other replicas missed that the node holds for them, not \
            delivered yet (see 'weftctl repair'); REPAIR the node's anti-entropy state: 'in sync', the number of \
            placements out of sync, 'drained' once a drain has finished, or '-' before its first round; \
            UNREACHABLE the members that node suspects or believes dead. Members that did not answer are listed \
            below the table.
            """
    )

    @OptionGroup var options: ClusterOptions

    struct Answer: Decodable {
        /// One node's own report; every field but the ID is optional so that a node of another version still shows.
        struct Node: Decodable {
            var id: String
            var roles: [String]?
            var ringVersion: UInt64?
            var ready: Bool?
            var headSpans: Int?
            var blocks: Int?
            var blockSpans: Int?
            var diskBytes: Int?
            var walBacklogSegments: Int?
            var unreachable: [String]?
            var hintsPending: Int?
            var hintsPendingBytes: Int?
            var hintsByTarget: [String: PendingHints]?
            var repair: Repair?
        }

        struct Repair: Decodable {
            var rounds: Int
            var inSync: Bool
            var placementsOutOfSync: Int
            var drained: Bool

            /// The REPAIR cell.
            var summary: String {
                if self.drained { return "drained" }
                if self.rounds == 0 { return "-" }
                return self.inSync ? "in sync" : "\(CLI.grouped(self.placementsOutOfSync)) out of sync"
            }
        }

        struct PendingHints: Decodable {
            var hints: Int
            var bytes: Int
        }

        struct Silent: Decodable {
            var id: String
            var address: String
            var status: String
            var error: String
        }

        var nodes: [Node]
        var unreachable: [Silent]
    }

    func run() async throws {
        let client = try ClusterClient(command: "status", url: self.options.url)
        let body = try await client.call("GET", "/api/cluster/status")
        if self.options.json { return ClusterClient.printRaw(body) }
        for line in Self.render(try client.decode(Answer.self, body)) { print(line) }
    }

    static func render(_ answer: Answer) -> [String] {
        var table = TextTable([
            ("ID", .left), ("ROLES", .left), ("RING V", .right), ("READY", .left), ("HEAD SPANS", .right), ("BLOCKS", .right),
            ("BLOCK SPANS", .right), ("DISK", .right), ("WAL", .right), ("HINTS", .right), ("REPAIR", .left), ("UNREACHABLE", .left),
        ])
        func count(_ n: Int?) -> String { n.map(CLI.grouped) ?? "?" }
        for n in answer.nodes {
            table.append([
                n.id, n.roles?.joined(separator: ",") ?? "?", n.ringVersion.map { String($0) } ?? "?",
                n.ready.map { $0 ? "yes" : "no" } ?? "?", count(n.headSpans), count(n.blocks), count(n.blockSpans),
                n.diskBytes.map(CLI.bytes) ?? "?", count(n.walBacklogSegments), n.hintsPending.map(CLI.grouped) ?? "-",
                n.repair?.summary ?? "-", n.unreachable.map { $0.isEmpty ? "-" : $0.joined(separator: ",") } ?? "?",
            ])
        }
        var lines = table.lines
        for n in answer.nodes {
            for (target, pending) in (n.hintsByTarget ?? [:]).sorted(by: { $0.key < $1.key }) {
                lines.append("\(n.id) holds \(CLI.grouped(pending.hints)) hints (\(CLI.bytes(pending.bytes))) for \(target)")
            }
        }
        if answer.unreachable.isEmpty {
            lines.append("\(answer.nodes.count) nodes answered")
        } else {
            lines.append("\(answer.nodes.count) nodes answered; \(answer.unreachable.count) did not:")
            for s in answer.unreachable {
                lines.append("  \(s.id) at \(s.address) (\(s.status)): \(s.error)")
            }
        }
        return lines
    }
}
