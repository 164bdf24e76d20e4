import ArgumentParser

/// `weftctl`: Weft's admin and benchmark CLI.
@main
struct WeftCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weftctl",
        abstract: "Admin and benchmark CLI for Weft, the OpenTelemetry trace store.",
        subcommands: [LoadCommand.self, TraceCommand.self, SearchCommand.self, QueryCommand.self, BlockCommand.self]
    )
}
