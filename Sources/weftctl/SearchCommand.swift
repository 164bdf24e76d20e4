import ArgumentParser
import Foundation
import WeftClient

/// `weftctl search 'k=v k2="v 2"'`: Tempo tag search (or TraceQL with `--traceql`).
struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search traces (GET /api/search) and print them as a table.",
        discussion: """
            TAGS is logfmt, e.g. 'service.name=checkout tenant_id=tenant-0042 http.route="/api/x y"'. \
            Durations are Go-style (100ms, 2s); --start/--end are unix epoch seconds.
            """
    )

    @Argument(help: "Tags to match, logfmt (key=value pairs separated by spaces; quote values with spaces).")
    var tags: String?

    @Option(help: "Query API base URL.")
    var url = "http://127.0.0.1:3200"

    @Option(help: "TraceQL query instead of tags, e.g. '{ status = error }'.")
    var traceql: String?

    @Option(help: "Maximum traces returned.")
    var limit = 20

    @Option(help: "Minimum trace duration, e.g. 100ms.")
    var minDuration: String?

    @Option(help: "Maximum trace duration, e.g. 5s.")
    var maxDuration: String?

    @Option(help: "Start of the time range (unix epoch seconds).")
    var start: Int64?

    @Option(help: "End of the time range (unix epoch seconds).")
    var end: Int64?

    @Option(help: "Org sent as X-Scope-OrgID.")
    var org: String?

    @Flag(help: "Print the raw JSON response instead of the table.")
    var raw = false

    func validate() throws {
        guard self.limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        for (name, value) in [("--min-duration", self.minDuration), ("--max-duration", self.maxDuration)] {
            if let v = value, CLI.parseDuration(v) == nil { throw ValidationError("bad \(name) '\(v)' (use e.g. 100ms, 2s)") }
        }
        if let s = self.start, let e = self.end, e < s { throw ValidationError("--end is before --start") }
        if let t = self.tags { try Self.checkLogfmt(t) }
        _ = try CLI.url(self.url)
    }

    /// Rejects obviously malformed logfmt (a pair without `=`, an unterminated quote).
    static func checkLogfmt(_ text: String) throws {
        var inQuote = false
        var escaped = false
        var token = ""
        var tokens: [String] = []
        for c in text {
            if escaped { escaped = false; token.append(c); continue }
            if c == "\\" && inQuote { escaped = true; token.append(c); continue }
            if c == "\"" { inQuote.toggle(); token.append(c); continue }
            if c == " " && !inQuote {
                if !token.isEmpty { tokens.append(token) }
                token = ""
                continue
            }
            token.append(c)
        }
        if inQuote { throw ValidationError("unterminated quote in tags '\(text)'") }
        if !token.isEmpty { tokens.append(token) }
        for t in tokens where !t.contains("=") || t.hasPrefix("=") {
            throw ValidationError("'\(t)' is not a key=value pair")
        }
    }

    var query: String {
        var items: [String] = []
        if let t = self.tags, !t.isEmpty { items.append("tags=" + CLI.percentEncode(t)) }
        if let q = self.traceql { items.append("q=" + CLI.percentEncode(q)) }
        items.append("limit=\(self.limit)")
        if let v = self.minDuration { items.append("minDuration=" + CLI.percentEncode(v)) }
        if let v = self.maxDuration { items.append("maxDuration=" + CLI.percentEncode(v)) }
        if let v = self.start { items.append("start=\(v)") }
        if let v = self.end { items.append("end=\(v)") }
        return items.joined(separator: "&")
    }

    func run() async throws {
        let response = try await CLI.getOK("search", baseURL: self.url, path: "/api/search?\(self.query)", org: self.org)
        if self.raw {
            print(response.bodyString)
            return
        }
        guard let root = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] else {
            CLI.printError("weftctl search: the response is not a JSON object: \(response.bodyString.prefix(300))")
            throw Exit.failure
        }
        for line in Self.render(root) { print(line) }
    }

    static func render(_ root: [String: Any]) -> [String] {
        var rows: [[String]] = [["TRACE ID", "START (UTC)", "ROOT SERVICE", "ROOT NAME", "DURATION ms"]]
        for case let t as [String: Any] in root["traces"] as? [Any] ?? [] {
            let start = TraceSpan.uint(t["startTimeUnixNano"]).map { CLI.utcTimestamp(nanos: $0) } ?? "-"
            let duration = TraceSpan.int(t["durationMs"]).map { CLI.grouped(Int($0)) } ?? "<1"
            rows.append([
                t["traceID"] as? String ?? "?",
                start,
                t["rootServiceName"] as? String ?? "<root span not yet received>",
                t["rootTraceName"] as? String ?? "",
                duration,
            ])
        }
        var widths = [Int](repeating: 0, count: 5)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = min(max(widths[i], c.count), 48) } }
        var lines = rows.map { r in
            r.enumerated().map { i, c in i == 4 ? CLI.padLeft(c, widths[i]) : CLI.padRight(c, widths[i]) }.joined(separator: "  ")
        }
        lines.append("\(rows.count - 1) trace\(rows.count == 2 ? "" : "s")")
        if let metrics = root["metrics"] as? [String: Any], !metrics.isEmpty {
            let pairs = metrics.keys.sorted().map { key -> String in
                let v = metrics[key]!
                if let s = v as? String { return "\(key)=\(s)" }
                if let n = v as? NSNumber { return "\(key)=\(n.int64Value)" }
                return "\(key)=\(v)"
            }
            lines.append("metrics: " + pairs.joined(separator: " "))
        }
        if let partial = root["partial"] as? Bool, partial {
            lines.append("warning: partial results (some data was unavailable)")
        }
        return lines
    }
}
