import ArgumentParser

/// `weftctl`: Weft's admin and benchmark CLI.
@main
struct WeftCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weftctl",
        abstract: "Admin and benchmark CLI for Weft, the OpenTelemetry trace store.",
        discussion: """
            Cluster admin: members, ring, status, drain NODE, forget NODE (--url of any node's query port, \
            --json for the API's answer as it is).
            \(Exit.summary)
            """,
        subcommands: [
            LoadCommand.self, TraceCommand.self, SearchCommand.self, QueryCommand.self, BlockCommand.self,
            MembersCommand.self, RingCommand.self, StatusCommand.self, DrainCommand.self, ForgetCommand.self, RepairCommand.self,
        ]
    )

    /// Parses and runs the command like ArgumentParser does, except that a usage error is one line on
    /// stderr (`weftctl members: …`) and exits with ``Exit/usage``.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                let message = message(for: error).split(whereSeparator: \.isNewline).joined(separator: "; ")
                CLI.printError("weftctl\(Self.commandPath(CommandLine.arguments)): \(message) (see --help)")
                exit(withError: Exit.usage)
            }
            exit(withError: error)
        }
    }

    /// The subcommand names at the start of `arguments` (after the program), e.g. ` block verify`.
    static func commandPath(_ arguments: [String]) -> String {
        var path = ""
        var commands = Self.configuration.subcommands
        for argument in arguments.dropFirst() {
            guard let next = commands.first(where: { $0._commandName == argument }) else { break }
            path += " " + argument
            commands = next.configuration.subcommands
        }
        return path
    }
}
