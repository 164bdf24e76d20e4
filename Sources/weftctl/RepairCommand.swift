import ArgumentParser

/// `weftctl repair [NODE]`: storage nodes deliver the hints they hold now (POST /api/cluster/repair).
struct RepairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Ask the storage nodes to deliver the hints they hold (writes a replica missed) now.",
        discussion: "With NODE, only hints for that node. 'weftctl status' shows the hints still pending."
    )

    @Argument(help: "Only hints for this node (see 'weftctl members').")
    var node: String?

    @OptionGroup var options: ClusterOptions

    func run() async throws {
        let client = try ClusterClient(command: "repair", url: self.options.url)
        let query = self.node.map { "?node=" + CLI.percentEncode($0) } ?? ""
        let body = try await client.call("POST", "/api/cluster/repair" + query)
        if self.options.json { return ClusterClient.printRaw(body) }
        print(try client.decode(NodeAction.Answer.self, body).message)
    }
}
