import ArgumentParser
import Foundation
import WeftModel
import WeftOTLP
import WeftQuery
import WeftQueryService
import WeftRuntime
import WeftStorageEngine

/// The query engine's side of the DuckDB comparison (Benchmarks/query/run.sh): loads the generated
/// spans into blocks (as `weft-bench storage` does), exports the same rows as TSV with the queries'
/// parameters, then times Q1–Q8 in process and writes their answers in the shape compare.py reads.
struct QueryBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Time Q1–Q8 over generated spans in blocks; export the same rows (TSV) for DuckDB."
    )
    @Option(help: "Spans to generate.") var spans = 10_000_000
    @Option(help: "Generator seed (as weftctl load --seed).") var seed: UInt64 = 1
    @Option(help: "Data directory.") var dir = "/tmp/weft-query-bench"
    @Option(help: "TSV export of the same rows (written when missing).") var tsv = "/tmp/weft-query-bench/spans.tsv"
    @Option(help: "Query parameters (written with the TSV).") var params = "/tmp/weft-query-bench/params.json"
    @Option(help: "Answers and timings (JSON).") var out = "/tmp/weft-query-bench/weft.json"
    @Option(help: "Timed runs per query, after one warm-up.") var runs = 5
    @Option(help: "Scan threads.") var threads = 2
    @Option(help: "Only these queries (comma-separated, e.g. Q3,Q7).") var queries: String?
    @Flag(help: "Reuse the blocks already in --dir.") var reuse = false

    static let base: UInt64 = 1_764_460_800_000_000_000
    static let day: UInt64 = 86_400_000_000_000

    func run() throws {
        let disk = PosixDisk()
        if !self.reuse {
            try? FileManager.default.removeItem(atPath: self.dir)
            var storage = try Storage.parse(["--spans", String(self.spans), "--seed", String(self.seed), "--dir", self.dir])
            storage.lookups = 0
            let configuration = StorageEngine.Configuration(
                blockOptions: BlockCodec.flushOptions(groupSpans: storage.groupSpans),
                compactedOptions: BlockCodec.compactionOptions(groupSpans: storage.groupSpans),
                compactionMaxSpans: storage.compactionSpans
            )
            try storage.load(disk, configuration)
        }
        let engine = StorageEngine(head: Head(), store: BlockStore(disk: disk, directory: self.dir + "/blocks", columnCacheBytes: ColumnCache.defaultCapacityBytes))
        _ = try engine.open(wal: WAL(disk: disk, directory: self.dir + "/wal"), options: DecodeOptions())
        let snapshot = engine.snapshot(org: "bench")
        if !FileManager.default.fileExists(atPath: self.tsv) || !FileManager.default.fileExists(atPath: self.params) || !self.reuse {
            try self.export(snapshot, engine.store)
        }
        let p = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: self.params))) as! [String: [String: Any]]
        func string(_ q: String, _ k: String) -> String { p[q]![k] as! String }
        func nanos(_ q: String, _ k: String) -> UInt64 { (p[q]![k] as! NSNumber).uint64Value }

        let limits = AggregationLimits(maxSeries: 10_000_000, timeoutSeconds: 600, parallelism: self.threads, context: .live)
        let store = engine.store
        func eq(_ scope: TraceQLField.Scope, _ key: String, _ value: String) -> TraceQLFilter {
            .comparison(.attribute(scope, key), .equal, .string(value))
        }
        func present(_ key: String) -> TraceQLFilter { .comparison(.attribute(.span, key), .notEqual, .string("")) }
        let model = TraceQLField.attribute(.span, "gen_ai.request.model")
        let (dayStart, dayEnd) = (Self.base, Self.base + Self.day - 1)
        // Q4–Q7 cover all the data, as DuckDB's queries (no time filter) do.
        let dataEnd = snapshot.blocks.map(\.maxStart).max() ?? dayEnd

        func latest(_ filter: TraceQLFilter, _ start: UInt64, _ end: UInt64) throws -> String {
            let m = try TraceMatchExecutor.latest(filter, startNanos: start, endNanos: end, limit: 20, snapshot: snapshot, store: store, limits: limits)
            return "{\"count\": \(m.spans), \"traces\": [\(m.traces.map { "\"\($0.traceID)\"" }.joined(separator: ", "))]}"
        }
        var all: [(String, () throws -> String)] = []
        all.append(("Q1", {
            let f = TraceQLFilter.and(.and(eq(.span, "tenant_id", string("q1", "tenant")), eq(.span, "gen_ai.request.model", string("q1", "model"))), eq(.span, "region", string("q1", "region")))
            return try latest(f, nanos("q1", "start_ns"), nanos("q1", "end_ns"))
        }))
        all.append(("Q2", {
            let id = TraceID(hex: string("q2", "trace_id"))!
            let batches = try store.findTrace(id, in: snapshot.blocks)
            let ids = batches.flatMap { b in b.spanID.map { Hex.encode($0) } }.sorted()
            return "{\"spans\": \(ids.count), \"span_ids\": [\(ids.map { "\"\($0)\"" }.joined(separator: ", "))]}"
        }))
        all.append(("Q3", {
            let q = AggregationQuery(filter: present("gen_ai.request.model"), groupBy: [model], aggregates: [.quantiles(.intrinsic(.duration), [0.5, 0.95, 0.99])], startNanos: nanos("q3", "start_ns"), endNanos: nanos("q3", "end_ns"))
            let rows = try AggregationExecutor.partial(q, snapshot: snapshot, store: store, limits: limits).rows(q)
            let groups = rows.map { row -> String in
                guard case .quantiles(let qs) = row.values[0] else { return "" }
                return "\(Self.json(row.key[0])): [\(qs.map { Self.json($0 ?? .nan) }.joined(separator: ", "))]"
            }
            return "{\"groups\": {\(groups.joined(separator: ", "))}}"
        }))
        all.append(("Q4", {
            let cost = TraceQLField.attribute(.span, "gen_ai.usage.cost")
            let f = TraceQLFilter.and(present("tenant_id"), .comparison(cost, .greaterOrEqual, .int(0)))
            let q = AggregationQuery(filter: f, groupBy: [.attribute(.span, "tenant_id")], aggregates: [.sum(cost), .sum(.attribute(.span, "gen_ai.usage.input_tokens")), .sum(.attribute(.span, "gen_ai.usage.output_tokens"))], startNanos: dayStart, endNanos: dataEnd)
            let rows = try AggregationExecutor.table(q, orderBy: 0, limit: 20, snapshot: snapshot, store: store, limits: limits).rows
            let groups = rows.map { row in
                "[\(Self.json(row.key[0])), \(Self.json(row.values[0].scalar ?? 0)), \(Int64(row.values[1].scalar ?? 0)), \(Int64(row.values[2].scalar ?? 0))]"
            }
            return "{\"groups\": [\(groups.joined(separator: ", "))]}"
        }))
        all.append(("Q5", {
            let step: UInt64 = 60_000_000_000
            let q = AggregationQuery(filter: eq(.resource, "service.name", string("q5", "service")), aggregates: [.histogram(.intrinsic(.duration))], startNanos: dayStart, endNanos: dataEnd, stepNanos: step)
            let partial = try AggregationExecutor.partial(q, snapshot: snapshot, store: store, limits: limits)
            var cells: [String] = []
            if partial.groupCount > 0 {
                let h = partial.columns[0].histograms
                let b = Heatmap.valueBuckets
                for s in 0..<partial.steps {
                    for bucket in 0..<b where h[s * b + bucket] > 0 {
                        cells.append("[\((dayStart + UInt64(s) * step) / step), \(bucket), \(h[s * b + bucket])]")
                    }
                }
            }
            return "{\"cells\": [\(cells.joined(separator: ", "))]}"
        }))
        all.append(("Q6", {
            let (edges, _) = try ServiceMapExecutor.edges(startNanos: dayStart, endNanos: dataEnd, snapshot: snapshot, store: store)
            return "{\"edges\": [\(edges.map { "[\(Self.json(.string($0.parent))), \(Self.json(.string($0.child))), \($0.calls), \($0.errors)]" }.joined(separator: ", "))]}"
        }))
        all.append(("Q7", {
            let f = TraceQLFilter.and(.and(present("tenant_id"), present("gen_ai.request.model")), present("region"))
            let q = AggregationQuery(filter: f, groupBy: [.attribute(.span, "tenant_id"), model, .attribute(.span, "region")], aggregates: [.count, .quantiles(.intrinsic(.duration), [0.95])], startNanos: dayStart, endNanos: dataEnd)
            let rows = try AggregationExecutor.table(q, orderBy: 0, limit: 50, snapshot: snapshot, store: store, limits: limits).rows
            let groups = rows.map { row -> String in
                guard case .quantiles(let qs) = row.values[1] else { return "" }
                return "[\(row.key.map(Self.json).joined(separator: ", ")), \(Int64(row.values[0].scalar ?? 0)), \(Self.json(qs[0] ?? .nan))]"
            }
            return "{\"groups\": [\(groups.joined(separator: ", "))]}"
        }))
        all.append(("Q8", {
            try latest(eq(.span, "user_id", string("q8", "user_id")), nanos("q8", "start_ns"), nanos("q8", "end_ns"))
        }))

        let wanted = self.queries.map { Set($0.split(separator: ",").map(String.init)) }
        let clock = ContinuousClock()
        var entries: [String] = []
        for (name, body) in all where wanted?.contains(name) ?? true {
            let t0 = clock.now
            var answer = try body()
            let cold = elapsedSeconds(clock.now - t0) * 1e3
            var times: [Double] = []
            for _ in 0..<self.runs {
                let t = clock.now
                answer = try body()
                times.append(elapsedSeconds(clock.now - t) * 1e3)
            }
            let median = times.sorted()[times.count / 2]
            print(String(format: "%@  median %8.2f ms  runs %@  (first run %.1f ms)", name, median, times.map { String(format: "%.2f", $0) }.joined(separator: " "), cold))
            entries.append("\"\(name)\": {\"median_ms\": \(median), \"runs_ms\": [\(times.map { String($0) }.joined(separator: ", "))], \"first_run_ms\": \(cold), \"answer\": \(answer)}")
        }
        let cache = store.columnCache.stats
        print(String(format: "column cache: %.1f MiB in %d columns; RSS %.1f MiB", Double(cache.bytes) / 1_048_576, cache.entries, Double(residentBytes()) / 1_048_576))
        let json = "{\"engine\": \"weft\", \"threads\": \(self.threads), \"rows\": \(snapshot.blocks.reduce(0) { $0 + $1.spans }), \"queries\": {\(entries.joined(separator: ", "))}}\n"
        try json.write(toFile: self.out, atomically: true, encoding: .utf8)
        print("wrote \(self.out)")
    }

    static func json(_ v: GroupValue) -> String {
        switch v {
        case .string(let s):
            var out = "\""
            for c in s.unicodeScalars {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                default: out.unicodeScalars.append(c)
                }
            }
            return out + "\""
        case .absent: return "null"
        case .int(let i): return String(i)
        case .double(let d): return Self.json(d)
        case .bool(let b): return String(b)
        }
    }

    /// A float that JSON readers keep as a float (always with a fraction or exponent).
    static func json(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        let s = String(d)
        return s.contains(".") || s.contains("e") ? s : s + ".0"
    }

    /// Writes every span of the blocks as one TSV row (the columns duckdb_queries.py reads) and picks
    /// the queries' parameters from the same data.
    func export(_ snapshot: StorageEngine.Snapshot, _ store: BlockStore) throws {
        let clock = ContinuousClock()
        let t0 = clock.now
        FileManager.default.createFile(atPath: self.tsv, contents: nil)
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: self.tsv))
        defer { try? file.close() }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8 << 20)
        buffer += Array("trace_id\tspan_id\tparent_span_id\tservice\tname\tkind\tstatus\tstart_ns\tduration_ns\ttenant_id\tuser_id\tregion\tmodel\tinput_tokens\toutput_tokens\tcost\n".utf8)
        let windowStart = Self.base + 12 * 3_600_000_000_000, windowEnd = windowStart + 3_600_000_000_000 - 1
        var combos: [String: Int] = [:]
        var users: [String: Int] = [:]
        var middleTrace: TraceID?
        var written = 0
        let total = snapshot.blocks.reduce(0) { $0 + $1.spans }
        for meta in snapshot.blocks {
            let b = try store.read(meta)
            let keys = ["tenant_id", "user_id", "region"].map { b.strings.lookup($0) }
            for row in 0..<b.spanCount {
                var values: [String] = ["", "", ""]
                for i in b.attrRange(row) {
                    for (k, key) in keys.enumerated() where key == b.attrs.keys[i] && b.attrs.types[i] == ValueType.string.rawValue {
                        values[k] = b.strings.string(UInt32(b.attrs.values[i]))
                    }
                }
                let model = b.genAIRequestModel[row] == 0 ? "" : b.strings.string(b.genAIRequestModel[row])
                let start = b.startTime[row], end = b.endTime[row]
                var line = "\(b.traceID(row))\t\(Hex.encode(b.spanID[row]))\t\(b.parentSpanID[row] == 0 ? "" : Hex.encode(b.parentSpanID[row]))\t"
                line += "\(b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])]))\t\(b.strings.string(b.name[row]))\t\(b.kind[row])\t\(b.statusCode[row])\t"
                line += "\(start)\t\(end > start ? end - start : 0)\t\(values[0])\t\(values[1])\t\(values[2])\t\(model)\t"
                line += "\(b.inputTokens[row] == SpanBatch.noTokens ? "" : String(b.inputTokens[row]))\t\(b.outputTokens[row] == SpanBatch.noTokens ? "" : String(b.outputTokens[row]))\t"
                line += "\(b.cost[row].isNaN ? "" : String(b.cost[row]))\n"
                buffer += Array(line.utf8)
                if buffer.count > 8 << 20 {
                    file.write(Data(buffer))
                    buffer.removeAll(keepingCapacity: true)
                }
                if start >= windowStart && start <= windowEnd && !values[0].isEmpty && !values[2].isEmpty && !model.isEmpty {
                    combos["\(values[0])\t\(model)\t\(values[2])", default: 0] += 1
                }
                if !values[1].isEmpty { users[values[1], default: 0] += 1 }
                written += 1
                if written == total / 2 { middleTrace = b.traceID(row) }
            }
        }
        file.write(Data(buffer))
        let combo = combos.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }!.key.split(separator: "\t").map(String.init)
        let rare = users.filter { $0.value >= 5 && $0.value <= 20 }.keys.sorted().first ?? users.keys.sorted().first!
        let params = """
            {"q1": {"tenant": "\(combo[0])", "model": "\(combo[1])", "region": "\(combo[2])", "start_ns": \(windowStart), "end_ns": \(windowEnd)},
             "q2": {"trace_id": "\(middleTrace!)"},
             "q3": {"start_ns": \(Self.base), "end_ns": \(Self.base + Self.day - 1)},
             "q5": {"service": "tfy-llm-gateway"},
             "q8": {"user_id": "\(rare)", "start_ns": \(Self.base), "end_ns": \(Self.base + Self.day - 1)}}

            """
        try params.write(toFile: self.params, atomically: true, encoding: .utf8)
        print(String(format: "exported %d spans to %@ in %.1f s; Q1 combination has %d spans in its hour; Q8 user has %d spans", written, self.tsv, elapsedSeconds(clock.now - t0), combos.values.max() ?? 0, users[rare] ?? 0))
    }
}
