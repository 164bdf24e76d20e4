import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import WeftClient

/// Options shared by the cluster admin subcommands.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Query API base URL of any node of the cluster.")
    var url = "http://127.0.0.1:3200"

    @Flag(help: "Print the API's JSON answer as it is.")
    var json = false
}

/// Calls the cluster admin API (`/api/cluster/…`) of one node. Failures print one line on stderr,
/// `weftctl <command>: …`, and exit with ``Exit/connection`` (unreachable) or ``Exit/failure``.
struct ClusterClient {
    /// The subcommand's name, for error lines.
    let command: String
    let base: URLParts

    /// Parses `--url`; a bad URL is a usage error.
    init(command: String, url: String) throws {
        self.command = command
        do {
            self.base = try URLParts(parsing: url)
        } catch {
            CLI.printError("weftctl \(command): \(error)")
            throw Exit.usage
        }
    }

    /// The URL of `path` under the base URL (whose own path, if any, is a prefix).
    func url(_ path: String) -> URLParts {
        var prefix = String(self.base.path.prefix { $0 != "?" })
        while prefix.hasSuffix("/") { prefix.removeLast() }
        return self.base.with(path: prefix + path)
    }

    /// Sends `method path` and returns the body of a 2xx answer.
    func call(_ method: String, _ path: String) async throws -> [UInt8] {
        let target = self.url(path)
        let response: HTTPResponse
        do {
            let connection = try await HTTPConnection.connect(
                host: target.host, port: target.port, group: MultiThreadedEventLoopGroup.singleton, connectTimeout: .seconds(5)
            )
            defer { connection.close() }
            // `status` waits up to 3 s for the members (asked in parallel); leave room for that.
            response = try await connection.request(method: method, path: target.path, headers: [("Accept", "application/json")], timeout: .seconds(20))
        } catch {
            CLI.printError("weftctl \(self.command): cannot reach \(target): \(error)")
            throw Exit.connection
        }
        guard (200..<300).contains(response.status) else {
            CLI.printError("weftctl \(self.command): \(Self.errorText(response)) (HTTP \(response.status) from \(target))")
            throw Exit.failure
        }
        return response.body
    }

    /// The `error` of a JSON error body, else the first line of the body.
    static func errorText(_ response: HTTPResponse) -> String {
        struct ErrorBody: Decodable { var error: String }
        if let body = try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body)) { return body.error }
        let firstLine = response.bodyString.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return firstLine.isEmpty ? "no error message" : String(firstLine.prefix(300))
    }

    /// Decodes an answer, or reports that it is not what the API sends.
    func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            CLI.printError("weftctl \(self.command): unexpected answer from \(self.base): \(error)")
            throw Exit.failure
        }
    }

    /// Writes the body as it came (and a newline).
    static func printRaw(_ body: [UInt8]) {
        print(String(decoding: body, as: UTF8.self))
    }
}
