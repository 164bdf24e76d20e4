import ArgumentParser
import Foundation
import WeftClient
import WeftModel

/// `weftctl trace <id>`: fetches a trace from the Tempo-compatible API and prints its span tree.
struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Print a trace as a span tree (GET /api/traces/<id>).",
        discussion: "Shows per span: offset from the trace start, duration, service, name, kind, errors and the key gen_ai attributes."
    )

    @Argument(help: "Trace ID (up to 32 hex digits).")
    var traceID: String

    @Option(help: "Query API base URL.")
    var url = "http://127.0.0.1:3200"

    @Option(help: "Org sent as X-Scope-OrgID.")
    var org: String?

    @Flag(help: "Print the raw JSON response instead of the tree.")
    var raw = false

    func validate() throws {
        guard TraceID(hex: self.traceID) != nil else {
            throw ValidationError("'\(self.traceID)' is not a trace ID (1–32 hex digits)")
        }
        _ = try CLI.url(self.url)
    }

    func run() async throws {
        let id = TraceID(hex: self.traceID)!
        let response = try await CLI.getOK("trace", baseURL: self.url, path: "/api/traces/\(id)", org: self.org, notFound: "trace not found: \(id)")
        if self.raw {
            print(response.bodyString)
            return
        }
        let spans: [TraceSpan]
        do {
            spans = try TraceSpan.parse(json: response.body)
        } catch {
            CLI.printError("weftctl trace: cannot parse the response: \(error)")
            throw Exit.failure
        }
        if spans.isEmpty {
            CLI.printError("trace not found: \(id) (empty trace)")
            throw Exit.failure
        }
        for line in TraceSpan.render(spans, traceID: id.description) { print(line) }
    }
}

/// One span of a Tempo/OTLP JSON trace, flattened for printing.
struct TraceSpan {
    var spanID: String
    var parentID: String
    var service: String
    var name: String
    var kind: String
    var start: UInt64
    var end: UInt64
    var isError: Bool
    var statusMessage: String
    var attributes: [String: String]

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses `{"batches":[ResourceSpans…]}` (Tempo v1), `{"resourceSpans":[…]}` or `{"trace":{"resourceSpans":[…]}}`.
    static func parse(json: [UInt8]) throws -> [TraceSpan] {
        let object = try JSONSerialization.jsonObject(with: Data(json))
        guard let root = object as? [String: Any] else { throw ParseError(description: "top level is not an object") }
        let batches = (root["batches"] ?? root["resourceSpans"] ?? (root["trace"] as? [String: Any])?["resourceSpans"]) as? [Any] ?? []
        var spans: [TraceSpan] = []
        for case let batch as [String: Any] in batches {
            let resource = Self.attributes((batch["resource"] as? [String: Any])?["attributes"])
            let service = resource["service.name"] ?? "?"
            let scopes = (batch["scopeSpans"] ?? batch["scope_spans"] ?? batch["instrumentationLibrarySpans"]) as? [Any] ?? []
            for case let scope as [String: Any] in scopes {
                for case let span as [String: Any] in scope["spans"] as? [Any] ?? [] {
                    let status = span["status"] as? [String: Any] ?? [:]
                    let code = status["code"]
                    let isError = (code as? String).map { $0.uppercased().contains("ERROR") || $0 == "2" } ?? (Self.int(code) == 2)
                    spans.append(TraceSpan(
                        spanID: Self.id(span["spanId"] ?? span["span_id"]),
                        parentID: Self.id(span["parentSpanId"] ?? span["parent_span_id"]),
                        service: service,
                        name: span["name"] as? String ?? "",
                        kind: Self.kind(span["kind"]),
                        start: Self.uint(span["startTimeUnixNano"] ?? span["start_time_unix_nano"]) ?? 0,
                        end: Self.uint(span["endTimeUnixNano"] ?? span["end_time_unix_nano"]) ?? 0,
                        isError: isError,
                        statusMessage: status["message"] as? String ?? "",
                        attributes: Self.attributes(span["attributes"])
                    ))
                }
            }
        }
        return spans
    }

    // MARK: Rendering

    static func render(_ spans: [TraceSpan], traceID: String) -> [String] {
        let byID = Dictionary(spans.enumerated().map { ($0.element.spanID, $0.offset) }, uniquingKeysWith: { a, _ in a })
        var children = [[Int]](repeating: [], count: spans.count)
        var roots: [Int] = []
        for (i, s) in spans.enumerated() {
            if !s.parentID.isEmpty, let p = byID[s.parentID], p != i {
                children[p].append(i)
            } else {
                roots.append(i)
            }
        }
        let order: (Int, Int) -> Bool = { spans[$0].start < spans[$1].start || (spans[$0].start == spans[$1].start && $0 < $1) }
        roots.sort(by: order)
        for i in children.indices { children[i].sort(by: order) }
        let traceStart = spans.map(\.start).min() ?? 0
        let traceEnd = spans.map(\.end).max() ?? 0
        let services = Set(spans.map(\.service)).count
        let errors = spans.filter(\.isError).count
        var lines = [
            "trace \(traceID)  \(spans.count) spans  \(services) services  \(CLI.fixed(Double(traceEnd &- traceStart) / 1e6, 3)) ms"
                + (errors > 0 ? "  \(errors) error\(errors == 1 ? "" : "s")" : ""),
            "\(CLI.padLeft("start ms", 10)) \(CLI.padLeft("duration ms", 12))  span",
        ]
        var visited = [Bool](repeating: false, count: spans.count)
        func walk(_ i: Int, _ prefix: String, _ branch: String) {
            guard !visited[i] else { return }
            visited[i] = true
            let s = spans[i]
            var line = CLI.padLeft(CLI.fixed(Double(s.start &- traceStart) / 1e6, 3), 10) + " "
            line += CLI.padLeft(CLI.fixed(Double(s.end &- s.start) / 1e6, 3), 12) + "  "
            line += prefix + branch + "\(s.service): \(s.name) [\(s.kind)]"
            if s.isError { line += "  ✗ ERROR" + (s.statusMessage.isEmpty ? "" : ": \(s.statusMessage)") }
            let details = s.details
            if !details.isEmpty { line += "  " + details }
            lines.append(line)
            let kids = children[i]
            let childPrefix = prefix + (branch.isEmpty ? "" : (branch == "└─ " ? "   " : "│  "))
            for (n, k) in kids.enumerated() { walk(k, childPrefix, n == kids.count - 1 ? "└─ " : "├─ ") }
        }
        for r in roots { walk(r, "", "") }
        return lines
    }

    /// The key gen_ai (and error/db) attributes as `k=v` pairs.
    var details: String {
        let a = self.attributes
        var parts: [String] = []
        if let m = a["gen_ai.request.model"] { parts.append("model=\(m)") }
        if let m = a["gen_ai.response.model"], m != a["gen_ai.request.model"] { parts.append("response_model=\(m)") }
        if let p = a["gen_ai.provider.name"] ?? a["gen_ai.system"] { parts.append("provider=\(p)") }
        let input = a["gen_ai.usage.input_tokens"] ?? a["gen_ai.usage.prompt_tokens"]
        let output = a["gen_ai.usage.output_tokens"] ?? a["gen_ai.usage.completion_tokens"]
        if input != nil || output != nil { parts.append("tokens=\(input ?? "?")→\(output ?? "?")") }
        if let c = a["gen_ai.usage.cost"], let v = Double(c) { parts.append("cost=$\(CLI.fixed(v, 6))") }
        if let t = a["tenant_id"] { parts.append("tenant=\(t)") }
        if let e = a["error.type"] { parts.append("error.type=\(e)") }
        if let d = a["db.system"] ?? a["db.system.name"] { parts.append("db=\(d)") }
        return parts.joined(separator: " ")
    }

    // MARK: JSON helpers

    static func attributes(_ value: Any?) -> [String: String] {
        var out: [String: String] = [:]
        for case let kv as [String: Any] in value as? [Any] ?? [] {
            guard let key = kv["key"] as? String else { continue }
            out[key] = Self.render(value: kv["value"])
        }
        return out
    }

    static func render(value: Any?) -> String {
        guard let v = value as? [String: Any] else { return "" }
        if let s = v["stringValue"] as? String { return s }
        if let i = v["intValue"] { return Self.int(i).map(String.init) ?? "\(i)" }
        if let d = v["doubleValue"] {
            if let n = d as? NSNumber { return "\(n.doubleValue)" }
            return "\(d)"
        }
        if let b = v["boolValue"] {
            if let n = b as? NSNumber { return n.boolValue ? "true" : "false" }
            return "\(b)"
        }
        if let arr = (v["arrayValue"] as? [String: Any])?["values"] as? [Any] {
            return "[" + arr.map { Self.render(value: $0) }.joined(separator: ",") + "]"
        }
        if let kvs = (v["kvlistValue"] as? [String: Any])?["values"] as? [Any] {
            let pairs = Self.attributes(kvs).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return "{" + pairs.joined(separator: ",") + "}"
        }
        if let b = v["bytesValue"] as? String { return b }
        return ""
    }

    static func int(_ value: Any?) -> Int64? {
        if let s = value as? String { return Int64(s) }
        if let n = value as? NSNumber { return n.int64Value }
        return nil
    }

    static func uint(_ value: Any?) -> UInt64? {
        if let s = value as? String { return UInt64(s) }
        if let n = value as? NSNumber { return n.uint64Value }
        return nil
    }

    static func kind(_ value: Any?) -> String {
        let names = ["unspecified", "internal", "server", "client", "producer", "consumer"]
        if let s = value as? String {
            if let i = Int(s), names.indices.contains(i) { return names[i] }
            let lower = s.lowercased()
            return lower.hasPrefix("span_kind_") ? String(lower.dropFirst("span_kind_".count)) : lower
        }
        if let i = Self.int(value), names.indices.contains(Int(i)) { return names[Int(i)] }
        return "unspecified"
    }

    /// Hex form of an ID given as hex (OTLP/JSON) or base64 (Tempo's encoding).
    static func id(_ value: Any?) -> String {
        guard let s = value as? String, !s.isEmpty else { return "" }
        let isHex = s.utf8.allSatisfy { Hex.value($0) != nil }
        if isHex && (s.count == 16 || s.count == 32) { return s.lowercased() }
        if let data = Data(base64Encoded: s) {
            if data.allSatisfy({ $0 == 0 }) { return "" }
            return Hex.encode(Array(data))
        }
        return s.lowercased()
    }
}
