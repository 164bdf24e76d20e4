import ArgumentParser

/// The exit codes every `weftctl` subcommand uses (listed in `weftctl --help`).
enum Exit {
    /// The server answered with an error (HTTP 4xx/5xx, unknown node, unreadable answer), or the work
    /// failed (a corrupt block, no span acknowledged).
    static let failure = ExitCode(1)
    /// Bad arguments or options (one line on stderr; `--help` shows the usage).
    static let usage = ExitCode(2)
    /// The server could not be reached: connection refused, connect or request timeout.
    static let connection = ExitCode(3)

    /// The text `weftctl --help` shows about them.
    static let summary = """
        Exit codes: 0 success, 1 the server reported an error (or the work failed), \
        2 bad arguments, 3 the server could not be reached (connection refused, timeout).
        """
}
