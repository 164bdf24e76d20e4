import ArgumentParser

/// `weftctl drain NODE`: the node gives up its ring ownership and leaves (POST /api/cluster/drain).
struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Mark a running node LEAVING so that it hands its ring ownership over.",
        discussion: "The node must be running; a node that is dead is removed with 'weftctl forget'."
    )

    @Argument(help: "The ID of the node (see 'weftctl members').")
    var node: String

    @OptionGroup var options: ClusterOptions

    func run() async throws {
        try await NodeAction.run(command: "drain", node: self.node, options: self.options)
    }
}

/// `weftctl forget NODE`: a dead node is taken out of the ring for good (POST /api/cluster/forget).
struct ForgetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Remove a dead or departed node from the ring (it becomes LEFT).",
        discussion: "A live node cannot be forgotten (HTTP 409): drain it, or stop it and wait until it is dead."
    )

    @Argument(help: "The ID of the node (see 'weftctl members').")
    var node: String

    @OptionGroup var options: ClusterOptions

    func run() async throws {
        try await NodeAction.run(command: "forget", node: self.node, options: self.options)
    }
}

/// What drain and forget share: a POST naming the node, whose answer is a message.
enum NodeAction {
    struct Answer: Decodable {
        var message: String
    }

    static func run(command: String, node: String, options: ClusterOptions) async throws {
        let client = try ClusterClient(command: command, url: options.url)
        guard !node.isEmpty else {
            CLI.printError("weftctl \(command): the node ID is empty (see 'weftctl members')")
            throw Exit.usage
        }
        let body = try await client.call("POST", "/api/cluster/\(command)?node=" + CLI.percentEncode(node))
        if options.json { return ClusterClient.printRaw(body) }
        print(try client.decode(Answer.self, body).message)
    }
}
