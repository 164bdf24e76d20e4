import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import WeftClient
import WeftLoad
import WeftModel
import WeftOTLP

/// `weftctl load`: generates LLM-gateway traffic and pushes it over OTLP/HTTP, or only measures the
/// generator (`--dry-run`).
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Send generated LLM-gateway traces over OTLP (HTTP/1.1, h2c or gRPC; protobuf) and report throughput and latency.",
        discussion: """
            Data is deterministic for a given --seed, --batch-size and start time: request n always holds \
            the same traces whichever connection sends it. Without --spans or --duration, 1,000,000 spans \
            are sent. Retries 429/502/503/504 (honouring Retry-After) and reconnects after connection loss.
            """
    )

    @Option(help: "OTLP/HTTP traces endpoint (for grpc: the gRPC port, e.g. http://127.0.0.1:4317; the path is ignored).")
    var url = "http://127.0.0.1:4318/v1/traces"

    @Option(name: .customLong("protocol"), help: "http1 (OTLP/HTTP over HTTP/1.1), h2c (OTLP/HTTP over cleartext HTTP/2) or grpc (OTLP/gRPC).")
    var transport: LoadProtocol = .http1

    @Option(help: "Org sent as X-Scope-OrgID.")
    var org: String?

    @Option(help: "Seed of the generated data.")
    var seed: UInt64 = 1

    @Option(help: "Target spans per second (0 = as fast as possible).")
    var rate: Double = 0

    @Option(help: "Run time, e.g. 30, 30s, 5m (seconds when no unit).")
    var duration: String?

    @Option(help: "Total spans to send, in whole traces, so a few more (default 1,000,000 when --duration is not given).")
    var spans: Int?

    @Option(help: "Concurrent connections.")
    var concurrency = 8

    @Option(help: "Spans per request (whole traces, so requests may hold a few more).")
    var batchSize = 1000

    @Option(help: "Number of distinct tenant_id values (default 5,000).")
    var tenants: Int?

    @Option(help: "Number of distinct user_id values (default 110,000).")
    var users: Int?

    @Option(help: "Spread span timestamps over this window ending now (e.g. 24h) instead of following --rate.")
    var backfill: String?

    @Option(help: "Per-request timeout in seconds.")
    var timeout: Double = 60

    @Option(help: "Retries per request before it counts as failed.")
    var maxRetries = 10

    @Flag(help: "Only generate (one core) and report spans/s and MB/s; send nothing.")
    var dryRun = false

    @Flag(help: "With --dry-run: also time Weft's OTLP protobuf decoder on the same requests, for comparison.")
    var compareDecoder = false

    @Option(help: ArgumentHelp("With --dry-run: write the first request's protobuf bytes to this file.", valueName: "file"))
    var dumpRequest: String?

    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    func validate() throws {
        guard self.concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard self.batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard self.rate >= 0, self.rate.isFinite else { throw ValidationError("--rate must be >= 0") }
        guard self.timeout > 0, self.timeout.isFinite else { throw ValidationError("--timeout must be > 0") }
        guard self.maxRetries >= 0 else { throw ValidationError("--max-retries must be >= 0") }
        if let spans = self.spans, spans < 1 { throw ValidationError("--spans must be at least 1") }
        if let d = self.duration, CLI.parseDuration(d) == nil { throw ValidationError("bad --duration '\(d)'") }
        if let b = self.backfill, CLI.parseDuration(b) == nil { throw ValidationError("bad --backfill '\(b)'") }
        if let t = self.tenants, t < 1 { throw ValidationError("--tenants must be at least 1") }
        if let u = self.users, u < 1 { throw ValidationError("--users must be at least 1") }
        _ = try CLI.url(self.url)
    }

    var profile: LoadProfile {
        var p = LoadProfile(seed: self.seed)
        if let t = self.tenants { p.tenants = t }
        if let u = self.users { p.users = u }
        return p
    }

    func run() async throws {
        let durationSeconds = self.duration.flatMap(CLI.parseDuration)
        var totalSpans: Int? = self.spans
        if totalSpans == nil {
            if let d = durationSeconds {
                if self.rate > 0 { totalSpans = Int(self.rate * d) }
            } else {
                totalSpans = 1_000_000
            }
        }
        let tablesStart = ContinuousClock.now
        let tables = TrafficTables(profile: self.profile)
        let tablesTime = ContinuousClock.now - tablesStart
        if self.dryRun {
            self.dryRunReport(tables: tables, totalSpans: totalSpans ?? 1_000_000, tablesTime: tablesTime)
            return
        }
        try await self.sendLoad(tables: tables, totalSpans: totalSpans, durationSeconds: durationSeconds)
    }

    // MARK: - Dry run

    func dryRunReport(tables: TrafficTables, totalSpans: Int, tablesTime: Duration) {
        var generator = TrafficGenerator(tables: tables)
        var buffer: [UInt8] = []
        let base = CLI.wallClockNanos()
        let spacing: UInt64 = self.rate > 0 ? UInt64(1e9 / self.rate) : 1000
        var spans = 0
        var bytes = 0
        var traces = 0
        var errors = 0
        var index: UInt64 = 0
        let start = ContinuousClock.now
        while spans < totalSpans {
            let info = generator.request(
                index: index, spans: self.batchSize,
                startTimeNanos: base &+ index &* UInt64(self.batchSize) &* spacing,
                spacingNanos: spacing, into: &buffer
            )
            if index == 0, let path = self.dumpRequest {
                do {
                    try Data(buffer).write(to: URL(fileURLWithPath: path))
                } catch {
                    CLI.printError("weftctl load: cannot write \(path): \(error)")
                }
            }
            spans += info.spans
            bytes += info.bytes
            traces += info.traces
            errors += info.errorSpans
            index += 1
        }
        let elapsed = Self.seconds(ContinuousClock.now - start)
        print("weftctl load --dry-run: generator only, one core, seed \(self.seed), batch \(self.batchSize)")
        print("tables built in     \(CLI.fixed(Self.seconds(tablesTime) * 1000, 1)) ms")
        print("spans generated     \(CLI.grouped(spans)) in \(CLI.grouped(traces)) traces, \(CLI.grouped(Int(index))) requests")
        print("error spans         \(CLI.fixed(100 * Double(errors) / Double(max(1, spans)), 2)) %")
        print("bytes               \(CLI.grouped(bytes)) (\(CLI.fixed(Double(bytes) / Double(max(1, spans)), 1)) bytes/span)")
        print("elapsed             \(CLI.fixed(elapsed, 3)) s")
        print("throughput          \(CLI.grouped(Int(Double(spans) / elapsed))) spans/s, \(CLI.fixed(Double(bytes) / elapsed / 1e6, 1)) MB/s")
        if self.compareDecoder { self.compareWithDecoder(tables: tables, generatorSeconds: elapsed, requests: Int(index), base: base, spacing: spacing) }
    }

    /// Decodes the same requests with `OTLPProtobufDecoder` (regenerated one at a time, decode timed alone).
    func compareWithDecoder(tables: TrafficTables, generatorSeconds: Double, requests: Int, base: UInt64, spacing: UInt64) {
        var generator = TrafficGenerator(tables: tables)
        var buffer: [UInt8] = []
        var decoder = OTLPProtobufDecoder()
        var batch = SpanBatch()
        var decoded = 0
        var rejected = 0
        var decodeTime = Duration.zero
        for index in 0..<requests {
            generator.request(
                index: UInt64(index), spans: self.batchSize,
                startTimeNanos: base &+ UInt64(index) &* UInt64(self.batchSize) &* spacing,
                spacingNanos: spacing, into: &buffer
            )
            batch = SpanBatch()
            let start = ContinuousClock.now
            let outcome = try? buffer.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            decodeTime += ContinuousClock.now - start
            decoded += outcome?.acceptedSpans ?? 0
            rejected += outcome.map { $0.rejectedSpans } ?? batch.spanCount
        }
        let seconds = Self.seconds(decodeTime)
        print("decoder             \(CLI.grouped(Int(Double(decoded) / seconds))) spans/s (OTLPProtobufDecoder, \(CLI.grouped(rejected)) rejected); generator/decoder time ratio \(CLI.fixed(generatorSeconds / seconds, 2))")
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    // MARK: - Sending

    func sendLoad(tables: TrafficTables, totalSpans: Int?, durationSeconds: Double?) async throws {
        let url = try CLI.url(self.url)
        let group = MultiThreadedEventLoopGroup.singleton
        let batch = self.batchSize
        let totalRequests: Int? = totalSpans.map { ($0 + batch - 1) / batch }
        let now = CLI.wallClockNanos()
        let base: UInt64
        let spacing: UInt64
        if let window = self.backfill.flatMap(CLI.parseDuration) {
            let windowNanos = UInt64(window * 1e9)
            base = now - min(now, windowNanos)
            let expected = totalSpans ?? Int((durationSeconds ?? 60) * max(self.rate, 100_000))
            spacing = max(1, windowNanos / UInt64(max(1, expected)))
        } else {
            base = now
            spacing = self.rate > 0 ? max(1, UInt64(1e9 / self.rate)) : 1000
        }
        var headers = [("Content-Type", "application/x-protobuf")]
        if let org = self.org { headers.append(("X-Scope-OrgID", org)) }
        let plan = LoadPlan(
            url: url, transport: self.transport, headers: headers, batch: batch, totalRequests: totalRequests,
            durationNanos: durationSeconds.map { UInt64($0 * 1e9) }, rate: self.rate,
            baseNanos: base, spacingNanos: spacing, endsByNow: self.backfill == nil, timeout: .nanoseconds(Int64(self.timeout * 1e9)),
            maxRetries: self.maxRetries
        )

        // Open every connection first, so a refused connection fails fast with a clear message.
        var connections: [any LoadConnection] = []
        do {
            for _ in 0..<self.concurrency {
                connections.append(try await self.transport.connect(url, group: group))
            }
        } catch {
            for c in connections { c.close() }
            CLI.printError("weftctl load: \(error)")
            throw Exit.connection
        }

        let counters = LoadCounters()
        let runStart = NIODeadline.now()
        if !self.quiet {
            let target = totalSpans.map { " of \(CLI.grouped($0))" } ?? ""
            CLI.printError("weftctl load: \(url) over \(self.transport.rawValue) — \(self.concurrency) connections, batch \(batch), seed \(self.seed)\(target)")
        }
        let quiet = self.quiet
        let results = await withTaskGroup(of: WorkerStats.self, returning: [WorkerStats].self) { group in
            for connection in connections {
                group.addTask {
                    var worker = LoadWorker(plan: plan, tables: tables, counters: counters, runStart: runStart, connection: connection)
                    return await worker.run()
                }
            }
            let progress = Task {
                await Self.reportProgress(counters: counters, runStart: runStart, quiet: quiet)
            }
            var all: [WorkerStats] = []
            for await stats in group { all.append(stats) }
            progress.cancel()
            return all
        }
        let elapsedNanos = (NIODeadline.now() - runStart).nanoseconds
        for c in connections { c.close() }
        let stats = results.reduce(into: WorkerStats()) { $0.merge($1) }
        self.printSummary(stats, url: url, elapsed: Double(elapsedNanos) / 1e9)
        if stats.ackedSpans == 0 { throw Exit.failure }
    }

    static func reportProgress(counters: LoadCounters, runStart: NIODeadline, quiet: Bool) async {
        var lastAcked = 0
        var lastTime = runStart
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            if Task.isCancelled || quiet { continue }
            let now = NIODeadline.now()
            let acked = counters.ackedSpans.load(ordering: .relaxed)
            let dt = Double((now - lastTime).nanoseconds) / 1e9
            let rate = dt > 0 ? Double(acked - lastAcked) / dt : 0
            lastAcked = acked
            lastTime = now
            let elapsed = Double((now - runStart).nanoseconds) / 1e9
            CLI.printError(
                "[\(CLI.padLeft(CLI.fixed(elapsed, 0), 4))s] sent \(CLI.grouped(counters.sentSpans.load(ordering: .relaxed))) spans"
                    + "  acked \(CLI.grouped(acked))  errors \(CLI.grouped(counters.errors.load(ordering: .relaxed)))"
                    + "  \(CLI.grouped(Int(rate))) spans/s"
            )
        }
    }

    func printSummary(_ s: WorkerStats, url: URLParts, elapsed: Double) {
        let latencies = s.latenciesNanos.sorted()
        func percentile(_ q: Double) -> String {
            guard !latencies.isEmpty else { return "-" }
            // Nearest-rank percentile over the exact samples.
            let rank = max(1, Int((q * Double(latencies.count)).rounded(.up)))
            return CLI.fixed(Double(latencies[min(rank, latencies.count) - 1]) / 1e6, 2)
        }
        let statuses = s.statusCounts.keys.sorted().map { "\($0): \(CLI.grouped(s.statusCounts[$0]!))" }.joined(separator: ", ")
        print("weftctl load → \(url)  (seed \(self.seed), \(self.concurrency) connections, batch \(self.batchSize))")
        print("spans sent          \(CLI.grouped(s.sentSpans))")
        print("spans acknowledged  \(CLI.grouped(s.ackedSpans))  (rejected by partial_success: \(CLI.grouped(s.rejectedSpans)))")
        print("elapsed             \(CLI.fixed(elapsed, 3)) s")
        print("throughput          \(CLI.grouped(Int(Double(s.ackedSpans) / max(elapsed, 1e-9)))) spans/s acknowledged, \(CLI.fixed(Double(s.bytes) / max(elapsed, 1e-9) / 1e6, 1)) MB/s sent")
        print("requests            \(CLI.grouped(s.requests))  [\(statuses.isEmpty ? "no responses" : statuses)]  retries \(CLI.grouped(s.retries))  failed \(CLI.grouped(s.failedRequests))  connection errors \(CLI.grouped(s.connectionErrors))")
        print("latency ms          p50 \(percentile(0.5))  p95 \(percentile(0.95))  p99 \(percentile(0.99))  max \(latencies.last.map { CLI.fixed(Double($0) / 1e6, 2) } ?? "-")")
        if let id = s.exampleTraceID { print("example trace       \(id)") }
        for sample in s.errorSamples { print("error sample        \(sample)") }
    }
}

// MARK: - Shared state

/// What every worker needs to know about the run.
struct LoadPlan: Sendable {
    var url: URLParts
    var transport: LoadProtocol
    var headers: [(String, String)]
    var batch: Int
    var totalRequests: Int?
    var durationNanos: UInt64?
    var rate: Double
    var baseNanos: UInt64
    var spacingNanos: UInt64
    /// Whether no span may end after the moment its request is generated (live traffic, as a
    /// gateway sends a trace once it is done): a request running ahead of the clock is moved back.
    var endsByNow = false
    var timeout: TimeAmount
    var maxRetries: Int
}

/// Counters read by the progress reporter (workers keep exact stats locally).
final class LoadCounters: Sendable {
    let nextRequest = Atomic<Int>(0)
    let sentSpans = Atomic<Int>(0)
    let ackedSpans = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
}

/// One worker's results.
struct WorkerStats: Sendable {
    var sentSpans = 0
    var ackedSpans = 0
    var rejectedSpans = 0
    var bytes = 0
    var requests = 0
    var retries = 0
    var failedRequests = 0
    var connectionErrors = 0
    var statusCounts: [Int: Int] = [:]
    var latenciesNanos: [UInt64] = []
    /// First trace of the lowest-numbered acknowledged request.
    var exampleTraceID: String?
    var exampleIndex = Int.max
    var errorSamples: [String] = []

    mutating func merge(_ o: WorkerStats) {
        self.sentSpans += o.sentSpans
        self.ackedSpans += o.ackedSpans
        self.rejectedSpans += o.rejectedSpans
        self.bytes += o.bytes
        self.requests += o.requests
        self.retries += o.retries
        self.failedRequests += o.failedRequests
        self.connectionErrors += o.connectionErrors
        for (k, v) in o.statusCounts { self.statusCounts[k, default: 0] += v }
        self.latenciesNanos.append(contentsOf: o.latenciesNanos)
        if o.exampleIndex < self.exampleIndex {
            self.exampleIndex = o.exampleIndex
            self.exampleTraceID = o.exampleTraceID
        }
        for e in o.errorSamples where self.errorSamples.count < 3 && !self.errorSamples.contains(e) { self.errorSamples.append(e) }
    }
}

/// A generated request ready to send.
struct PreparedRequest {
    var index: Int
    var body: ByteBuffer
    var spans: Int
    var firstTraceID: TraceID
}

/// One connection's loop: claim request n, generate it, send it, and generate the next one while
/// the previous is in flight.
struct LoadWorker {
    let plan: LoadPlan
    let counters: LoadCounters
    let runStart: NIODeadline
    var connection: (any LoadConnection)?
    var generator: TrafficGenerator
    var scratch: [UInt8] = []
    var stats = WorkerStats()
    /// How far this worker moves its requests back so that their spans end by the time they are sent
    /// (``LoadPlan/endsByNow``): the most any request has needed so far, so that later ones are
    /// seldom generated twice.
    var shiftNanos: UInt64 = 0

    init(plan: LoadPlan, tables: TrafficTables, counters: LoadCounters, runStart: NIODeadline, connection: any LoadConnection) {
        self.plan = plan
        self.counters = counters
        self.runStart = runStart
        self.connection = connection
        self.generator = TrafficGenerator(tables: tables)
    }

    /// Claims and generates the next request, or nil when the run is over.
    mutating func prepareNext() -> PreparedRequest? {
        if let limit = self.plan.durationNanos, (NIODeadline.now() - self.runStart).nanoseconds >= Int64(limit) { return nil }
        let index = self.counters.nextRequest.wrappingAdd(1, ordering: .relaxed).oldValue
        if let total = self.plan.totalRequests, index >= total { return nil }
        let nominal = self.plan.baseNanos &+ UInt64(index) &* UInt64(self.plan.batch) &* self.plan.spacingNanos
        let start = self.plan.endsByNow ? nominal - min(nominal, self.shiftNanos) : nominal
        var info = self.generator.request(
            index: UInt64(index), spans: self.plan.batch, startTimeNanos: start,
            spacingNanos: self.plan.spacingNanos, into: &self.scratch
        )
        if self.plan.endsByNow, case let now = CLI.wallClockNanos(), info.maxEndNanos > now {
            // The same traces, earlier: every span over by now.
            self.shiftNanos += info.maxEndNanos - now
            info = self.generator.request(
                index: UInt64(index), spans: self.plan.batch, startTimeNanos: nominal - min(nominal, self.shiftNanos),
                spacingNanos: self.plan.spacingNanos, into: &self.scratch
            )
        }
        let body = ByteBuffer(bytes: self.scratch)
        return PreparedRequest(index: index, body: body, spans: info.spans, firstTraceID: info.firstTraceID)
    }

    /// Waits until request `index` is due under `--rate`.
    func pace(_ index: Int) async {
        guard self.plan.rate > 0 else { return }
        let due = Int64(Double(index * self.plan.batch) / self.plan.rate * 1e9)
        let wait = due - (NIODeadline.now() - self.runStart).nanoseconds
        if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait)) }
    }

    typealias Timed = (response: HTTPResponse, nanos: Int64)

    func start(_ request: PreparedRequest, on connection: any LoadConnection) -> EventLoopFuture<Timed> {
        let sent = NIODeadline.now()
        return connection.export(request.body, plan: self.plan).map { response in (response, (NIODeadline.now() - sent).nanoseconds) }
    }

    mutating func run() async -> WorkerStats {
        var next = self.prepareNext()
        while let request = next {
            await self.pace(request.index)
            var inFlight: EventLoopFuture<Timed>? = nil
            if let c = self.connection, c.isActive { inFlight = self.start(request, on: c) }
            // Generate the next request while this one is on the wire.
            next = self.prepareNext()
            guard await self.complete(request, firstAttempt: inFlight) else {
                // The server is unreachable: give up on this connection's share of the work.
                if let request = next { self.fail(request, "not sent: \(self.plan.url.hostHeader) unreachable") }
                break
            }
        }
        return self.stats
    }

    /// Waits for a request, retrying on 429/502/503/504 and on connection loss.
    /// - Returns: false if the server can no longer be reached (the worker should stop).
    mutating func complete(_ request: PreparedRequest, firstAttempt: EventLoopFuture<Timed>?) async -> Bool {
        var attempt = firstAttempt
        var tries = 0
        self.stats.sentSpans += request.spans
        self.counters.sentSpans.wrappingAdd(request.spans, ordering: .relaxed)
        while true {
            if attempt == nil {
                guard let c = await self.usableConnection() else {
                    self.fail(request, "cannot reconnect to \(self.plan.url.hostHeader)")
                    return false
                }
                attempt = self.start(request, on: c)
            }
            self.stats.bytes += request.body.readableBytes
            self.stats.requests += 1
            do {
                let (response, nanos) = try await attempt!.get()
                attempt = nil
                self.stats.latenciesNanos.append(UInt64(max(0, nanos)))
                self.stats.statusCounts[response.status, default: 0] += 1
                switch response.status {
                case 200..<300:
                    let rejected = min(request.spans, Self.rejectedSpans(response))
                    self.stats.ackedSpans += request.spans - rejected
                    self.stats.rejectedSpans += rejected
                    self.counters.ackedSpans.wrappingAdd(request.spans - rejected, ordering: .relaxed)
                    if request.index < self.stats.exampleIndex {
                        self.stats.exampleIndex = request.index
                        self.stats.exampleTraceID = request.firstTraceID.description
                    }
                    return true
                case 429, 502, 503, 504:
                    tries += 1
                    if tries > self.plan.maxRetries {
                        self.fail(request, "HTTP \(response.status) after \(self.plan.maxRetries) retries: \(Self.snippet(response))")
                        return true
                    }
                    self.stats.retries += 1
                    let delay = Self.retryAfter(response) ?? Self.backoff(tries)
                    try? await Task.sleep(nanoseconds: UInt64(delay * 1e9))
                default:
                    self.fail(request, "HTTP \(response.status): \(Self.snippet(response))")
                    return true
                }
            } catch {
                attempt = nil
                self.stats.connectionErrors += 1
                self.counters.errors.wrappingAdd(1, ordering: .relaxed)
                self.connection?.close()
                self.connection = nil
                tries += 1
                if tries > self.plan.maxRetries {
                    self.fail(request, "\(error)")
                    return true
                }
                self.stats.retries += 1
                try? await Task.sleep(nanoseconds: UInt64(Self.backoff(tries) * 1e9))
            }
        }
    }

    mutating func fail(_ request: PreparedRequest, _ message: String) {
        self.stats.failedRequests += 1
        self.counters.errors.wrappingAdd(1, ordering: .relaxed)
        if self.stats.errorSamples.count < 3 && !self.stats.errorSamples.contains(message) {
            self.stats.errorSamples.append(message)
        }
    }

    /// The current connection, or a new one (nil if reconnecting fails a few times).
    mutating func usableConnection() async -> (any LoadConnection)? {
        if let c = self.connection, c.isActive { return c }
        self.connection?.close()
        self.connection = nil
        for attempt in 1...5 {
            do {
                let c = try await self.plan.transport.connect(self.plan.url, group: MultiThreadedEventLoopGroup.singleton)
                self.connection = c
                return c
            } catch {
                self.stats.connectionErrors += 1
                self.counters.errors.wrappingAdd(1, ordering: .relaxed)
                try? await Task.sleep(nanoseconds: UInt64(Self.backoff(attempt) * 1e9))
            }
        }
        return nil
    }

    /// Exponential backoff in seconds: 0.1, 0.2, 0.4 … capped at 5.
    static func backoff(_ attempt: Int) -> Double {
        min(5, 0.1 * Double(1 << min(attempt - 1, 10)))
    }

    /// `Retry-After` in seconds (delta-seconds form; HTTP dates fall back to backoff).
    static func retryAfter(_ response: HTTPResponse) -> Double? {
        guard let value = response.header("retry-after"), let seconds = Double(value.trimmingCharacters(in: " ")), seconds >= 0 else {
            return nil
        }
        return min(seconds, 60)
    }

    static func snippet(_ response: HTTPResponse) -> String {
        let text = response.bodyString
        let printable = text.unicodeScalars.allSatisfy { $0.value >= 0x20 || $0 == "\n" || $0 == "\t" }
        if !printable { return "\(response.body.count) bytes (\(response.header("content-type") ?? "binary"))" }
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }

    /// `partial_success.rejected_spans` of an `ExportTraceServiceResponse` (protobuf, or JSON as a fallback).
    static func rejectedSpans(_ response: HTTPResponse) -> Int {
        if response.body.isEmpty { return 0 }
        if let type = response.header("content-type"), type.contains("json") {
            return Self.jsonRejectedSpans(response.bodyString)
        }
        var reader = MiniProtoReader(response.body)
        while let (field, wire) = reader.tag() {
            if field == 1 && wire == 2, var inner = reader.message() {
                while let (f, w) = inner.tag() {
                    if f == 1 && w == 0 { return Int(truncatingIfNeeded: inner.varint() ?? 0) }
                    if !inner.skip(w) { return 0 }
                }
                return 0
            }
            if !reader.skip(wire) { return 0 }
        }
        return 0
    }

    static func jsonRejectedSpans(_ text: String) -> Int {
        guard let r = text.firstRange(of: "\"rejectedSpans\"") else { return 0 }
        let digits = text[r.upperBound...].drop { !$0.isNumber && $0 != "}" }.prefix { $0.isNumber }
        return Int(digits) ?? 0
    }
}

/// Just enough protobuf reading for `ExportTraceServiceResponse`.
struct MiniProtoReader {
    let bytes: [UInt8]
    var index: Int
    let end: Int

    init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        self.bytes = bytes
        self.index = range?.lowerBound ?? 0
        self.end = range?.upperBound ?? bytes.count
    }

    mutating func varint() -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while self.index < self.end && shift < 64 {
            let b = self.bytes[self.index]
            self.index += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        return nil
    }

    mutating func tag() -> (UInt64, UInt64)? {
        guard self.index < self.end, let t = self.varint() else { return nil }
        return (t >> 3, t & 7)
    }

    mutating func message() -> MiniProtoReader? {
        guard let n = self.varint(), Int(n) <= self.end - self.index else { return nil }
        let sub = MiniProtoReader(self.bytes, range: self.index..<(self.index + Int(n)))
        self.index += Int(n)
        return sub
    }

    mutating func skip(_ wire: UInt64) -> Bool {
        switch wire {
        case 0: return self.varint() != nil
        case 1: self.index += 8
        case 2:
            guard let n = self.varint() else { return false }
            self.index += Int(n)
        case 5: self.index += 4
        default: return false
        }
        return self.index <= self.end
    }
}
