import ArgumentParser

/// `weftctl ring`: the token ring and how evenly it spreads the data (GET /api/cluster/ring).
struct RingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "Show the token ring: each node's state, tokens and share of the data.",
        discussion: """
            PRIMARY is the share of the hash space a node is first replica for (the column sums to 100%); \
            REPLICA the share it holds a copy of (sums to RF × 100%). The balance line compares the \
            smallest and largest replica share with the ideal RF / storage nodes.
            """
    )

    @OptionGroup var options: ClusterOptions

    struct Answer: Decodable {
        struct Node: Decodable {
            var id: String
            var state: String
            var zone: String
            var tokens: Int
            var primaryShare: Double
            var replicaShare: Double
        }

        struct Balance: Decodable {
            var idealReplicaShare: Double
            var minReplicaShare: Double
            var maxReplicaShare: Double
        }

        var version: UInt64
        var replicationFactor: Int
        var requestedReplicationFactor: Int
        var placements: Int
        var nodes: [Node]
        var balance: Balance
    }

    func run() async throws {
        let client = try ClusterClient(command: "ring", url: self.options.url)
        let body = try await client.call("GET", "/api/cluster/ring")
        if self.options.json { return ClusterClient.printRaw(body) }
        for line in Self.render(try client.decode(Answer.self, body)) { print(line) }
    }

    static func render(_ answer: Answer) -> [String] {
        var table = TextTable([
            ("ID", .left), ("STATE", .left), ("ZONE", .left), ("TOKENS", .right), ("PRIMARY", .right), ("REPLICA", .right),
        ])
        for n in answer.nodes {
            table.append([
                n.id, n.state, n.zone.isEmpty ? "-" : n.zone, String(n.tokens), CLI.percent(n.primaryShare), CLI.percent(n.replicaShare),
            ])
        }
        let b = answer.balance
        let rf = answer.replicationFactor == answer.requestedReplicationFactor
            ? "RF \(answer.replicationFactor)"
            : "RF \(answer.replicationFactor) (requested \(answer.requestedReplicationFactor), capped by the storage nodes)"
        return table.lines + [
            "balance: ideal replica share \(CLI.percent(b.idealReplicaShare)), min \(CLI.percent(b.minReplicaShare)), max \(CLI.percent(b.maxReplicaShare))",
            "\(rf), ring version \(answer.version), \(answer.placements) distinct replica sets",
        ]
    }
}
