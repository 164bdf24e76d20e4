import ArgumentParser
import Foundation
import WeftClient

/// `weftctl query '<TraceQL>'`: runs a TraceQL query and prints a table. A spanset filter searches
/// traces; a metrics query (`| rate() by (…)`) gives series; `--by`/`--select` give an aggregation
/// table (several aggregates per group).
struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Run a TraceQL query and print the answer as a table.",
        discussion: """
            Examples:
              weftctl query '{ span.tenant_id = "acme" && status = error }'
              weftctl query '{ } | quantile_over_time(duration, .5, .99) by (span.gen_ai.request.model)' --since 24h
              weftctl query '{ span.gen_ai.request.model != "" }' --by span.tenant_id --select 'count, sum(span.gen_ai.usage.cost), p95(duration)' --limit 20
            Times (--start, --end) are unix seconds, unix nanoseconds or RFC 3339; --since and --step are durations (15m, 24h).
            """
    )

    @Argument(help: "TraceQL: a spanset filter, optionally with a metrics stage.")
    var traceql: String

    @Option(help: "Group-by fields for an aggregation table, comma-separated (e.g. span.tenant_id,resource.service.name).")
    var by: String?

    @Option(help: "Aggregates for an aggregation table (count, sum(f), avg(f), min(f), max(f), quantile(f, q…), p95(f), histogram(f)).")
    var select: String?

    @Option(help: "Aggregate to order the table by (as written in --select, or its 1-based position).")
    var orderBy: String?

    @Flag(help: "Order the table ascending (default descending).")
    var ascending = false

    @Flag(help: "Metrics over time (/api/metrics/query_range) instead of one value per series.")
    var range = false

    @Option(help: "Step of a --range query, e.g. 1m.")
    var step: String?

    @Option(help: "How far back the range reaches (default 1h).")
    var since: String?

    @Option(help: "Start of the time range.")
    var start: String?

    @Option(help: "End of the time range (default now).")
    var end: String?

    @Option(help: "Maximum rows or traces.")
    var limit: Int?

    @Option(help: "Query API base URL.")
    var url = "http://127.0.0.1:3200"

    @Option(help: "Org sent as X-Scope-OrgID.")
    var org: String?

    @Flag(help: "Print the raw JSON response.")
    var json = false

    var isMetrics: Bool { self.traceql.contains("|") }
    var isTable: Bool { self.by != nil || self.select != nil }

    func validate() throws {
        if self.isTable && self.isMetrics { throw ValidationError("--by/--select take a spanset filter, not a metrics query") }
        if let l = self.limit, l < 1 { throw ValidationError("--limit must be at least 1") }
        if self.step != nil && !self.range { throw ValidationError("--step needs --range") }
        _ = try CLI.url(self.url)
    }

    var path: String {
        var items = ["q=" + CLI.percentEncode(self.traceql)]
        for (name, value) in [("since", self.since), ("start", self.start), ("end", self.end)] {
            if let v = value { items.append("\(name)=" + CLI.percentEncode(v)) }
        }
        if self.isTable {
            if let v = self.by { items.append("by=" + CLI.percentEncode(v)) }
            if let v = self.select { items.append("select=" + CLI.percentEncode(v)) }
            if let v = self.orderBy { items.append("order_by=" + CLI.percentEncode(v)) }
            if self.ascending { items.append("order=asc") }
            if let l = self.limit { items.append("limit=\(l)") }
            return "/api/weft/aggregate?" + items.joined(separator: "&")
        }
        if self.isMetrics {
            if let v = self.step { items.append("step=" + CLI.percentEncode(v)) }
            return (self.range ? "/api/metrics/query_range?" : "/api/metrics/query?") + items.joined(separator: "&")
        }
        if let l = self.limit { items.append("limit=\(l)") }
        return "/api/search?" + items.joined(separator: "&")
    }

    func run() async throws {
        let response = try await CLI.getOK("query", baseURL: self.url, path: self.path, org: self.org)
        if self.json {
            print(response.bodyString)
            return
        }
        guard let root = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] else {
            CLI.printError("weftctl query: the response is not a JSON object: \(response.bodyString.prefix(300))")
            throw Exit.failure
        }
        let lines: [String]
        if self.isTable {
            lines = Self.renderTable(root)
        } else if self.isMetrics {
            lines = Self.renderSeries(root, range: self.range)
        } else {
            lines = SearchCommand.render(root)
        }
        for line in lines { print(line) }
    }

    /// A cell of the aggregation table: whole numbers (and any from 10,000 up, rounded) grouped in
    /// thousands, others with up to 6 significant digits; arrays joined.
    static func cell(_ v: Any) -> String {
        switch v {
        case is NSNull: return "-"
        case let s as String: return s
        case let n as NSNumber:
            let d = n.doubleValue
            if (d == d.rounded() || abs(d) >= 10_000) && abs(d) < 1e15 { return CLI.grouped(Int(d.rounded())) }
            return String(format: "%.6g", d)
        case let a as [Any]: return a.map(cell).joined(separator: " ")
        default: return "\(v)"
        }
    }

    /// A cell of a column of durations (nanoseconds): whole, grouped in thousands, like every row of
    /// the column (an average of 9,774.1 ns prints as 9,774, not in another form than 12,345).
    static func durationCell(_ v: Any) -> String {
        switch v {
        case let n as NSNumber where abs(n.doubleValue) < 1e15: return CLI.grouped(Int(n.doubleValue.rounded()))
        case let a as [Any]: return a.map(durationCell).joined(separator: " ")
        default: return cell(v)
        }
    }

    static func renderTable(_ root: [String: Any]) -> [String] {
        let columns = (root["columns"] as? [String]) ?? []
        var rows: [[String]] = [columns.map { $0.uppercased() }]
        // Aggregates of a span's or trace's duration (`avg(duration)`, `quantile(duration, 0.95)`).
        let durations = columns.map { c in
            let name = c.lowercased().replacingOccurrences(of: " ", with: "")
            return name.contains("(duration") || name.contains("(traceduration")
        }
        for case let r as [Any] in root["rows"] as? [Any] ?? [] {
            rows.append(r.enumerated().map { i, v in i < durations.count && durations[i] ? durationCell(v) : cell(v) })
        }
        var lines = Self.align(rows)
        lines.append("\(rows.count - 1) of \((root["groups"] as? NSNumber)?.intValue ?? rows.count - 1) groups")
        lines.append(contentsOf: Self.metrics(root))
        return lines
    }

    static func label(_ l: [String: Any]) -> String {
        let value = l["value"] as? [String: Any] ?? [:]
        return value.values.first.map(cell) ?? ""
    }

    static func renderSeries(_ root: [String: Any], range: Bool) -> [String] {
        let series = root["series"] as? [[String: Any]] ?? []
        let names = (series.first?["labels"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String }
        var rows: [[String]] = [names.map { $0.uppercased() } + (range ? ["TIME (UTC)"] : []) + ["VALUE"]]
        for s in series {
            let labels = (s["labels"] as? [[String: Any]] ?? []).map(label)
            if range {
                for case let p as [String: Any] in s["samples"] as? [Any] ?? [] {
                    let ms = UInt64((p["timestampMs"] as? String) ?? "") ?? 0
                    rows.append(labels + [CLI.utcTimestamp(nanos: ms * 1_000_000), cell(p["value"] ?? NSNull())])
                }
            } else {
                rows.append(labels + [cell(s["value"] ?? NSNull())])
            }
        }
        var lines = Self.align(rows)
        lines.append("\(series.count) series")
        lines.append(contentsOf: Self.metrics(root))
        return lines
    }

    static func align(_ rows: [[String]]) -> [String] {
        let width = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: width)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = min(max(widths[i], c.count), 48) } }
        return rows.map { r in r.enumerated().map { i, c in CLI.padRight(c, widths[i]) }.joined(separator: "  ") }
    }

    static func metrics(_ root: [String: Any]) -> [String] {
        guard let m = root["metrics"] as? [String: Any], !m.isEmpty else { return [] }
        return ["metrics: " + m.keys.sorted().map { "\($0)=\(cell(m[$0]!))" }.joined(separator: " ")]
    }
}
