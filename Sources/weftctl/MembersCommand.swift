import ArgumentParser

/// `weftctl members`: the cluster's members as one node sees them (GET /api/cluster/members).
struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members",
        abstract: "List the cluster's members as one node sees them.",
        discussion: """
            STATUS is the node's liveness (alive, suspect, dead, left); RING its state in the token ring \
            (JOINING, ACTIVE, LEAVING, LEFT); INC its incarnation; LAST HEARD when the asked node last had \
            a message from it ('-' for itself or never). '*' marks the node that answered.
            """
    )

    @OptionGroup var options: ClusterOptions

    struct Answer: Decodable {
        struct Member: Decodable {
            var id: String
            var address: String
            var roles: [String]
            var zone: String
            var status: String
            var state: String
            var incarnation: UInt64
            var lastHeardMs: Int?
            var isSelf: Bool

            enum CodingKeys: String, CodingKey {
                case id, address, roles, zone, status, state, incarnation, lastHeardMs
                case isSelf = "self"
            }
        }

        var members: [Member]
    }

    func run() async throws {
        let client = try ClusterClient(command: "members", url: self.options.url)
        let body = try await client.call("GET", "/api/cluster/members")
        if self.options.json { return ClusterClient.printRaw(body) }
        for line in Self.render(try client.decode(Answer.self, body)) { print(line) }
    }

    static func render(_ answer: Answer) -> [String] {
        var table = TextTable([
            ("", .left), ("ID", .left), ("ADDRESS", .left), ("ROLES", .left), ("ZONE", .left), ("STATUS", .left),
            ("RING", .left), ("INC", .right), ("LAST HEARD", .right),
        ])
        for m in answer.members {
            table.append([
                m.isSelf ? "*" : "", m.id, m.address, m.roles.joined(separator: ","), m.zone.isEmpty ? "-" : m.zone, m.status,
                m.state, String(m.incarnation), m.isSelf ? "-" : (m.lastHeardMs.map { CLI.ago(milliseconds: $0) } ?? "-"),
            ])
        }
        var counts: [String: Int] = [:]
        for m in answer.members { counts[m.status, default: 0] += 1 }
        let summary = ["alive", "suspect", "dead", "left"].compactMap { s in counts[s].map { "\($0) \(s)" } }
        return table.lines + ["\(answer.members.count) members: " + summary.joined(separator: ", ")]
    }
}
