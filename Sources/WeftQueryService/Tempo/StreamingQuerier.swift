import WeftRuntime
import NIOCore
import WeftHTTP2
import WeftModel
import WeftQuery
import WeftStorageEngine

/// Tempo's `tempopb.StreamingQuerier` gRPC service on the query port (HTTP/2 without TLS), as
/// Grafana's Tempo data source calls it with streaming on: `Search`, `MetricsQueryRange` and
/// `MetricsQueryInstant`. The scan runs in steps (the head, then more and more of the blocks, newest
/// first) and a message goes out after each: search messages carry the traces found or changed since
/// the previous one, metrics messages the whole result so far; the last message is the final answer.
/// The status (`grpc-status`, `grpc-message`) follows in the trailers.
package struct StreamingQuerier: Sendable {
    package static let servicePrefix = "/tempopb.StreamingQuerier/"

    package enum Method: String, Sendable {
        case search = "Search"
        case metricsQueryRange = "MetricsQueryRange"
        case metricsQueryInstant = "MetricsQueryInstant"
    }

    package let query: QueryAPI

    package init(query: QueryAPI) { self.query = query }

    package func respond(_ request: HTTP2Request, on loop: any EventLoop) -> EventLoopFuture<HTTP2Response> {
        loop.makeSucceededFuture(self.answer(request, on: loop))
    }

    private func answer(_ request: HTTP2Request, on loop: any EventLoop) -> HTTP2Response {
        guard request.method == "POST" else { return GRPCAnswers.status(.unimplemented, "gRPC calls use POST") }
        guard request.path.hasPrefix(Self.servicePrefix), let method = Method(rawValue: String(request.path.dropFirst(Self.servicePrefix.count))) else {
            return GRPCAnswers.status(.unimplemented, "unknown method \(request.path)")
        }
        let org: String
        switch OrgID.parse(request.headers.first(where: { $0.name == "x-scope-orgid" })?.value) {
        case .success(let o): org = o
        case .failure(let invalid): return GRPCAnswers.status(.invalidArgument, invalid.description)
        }
        let message: [UInt8]
        do {
            let framed = try GRPCFraming.unary(request.body, maxMessageBytes: 1 << 20)
            guard !framed.compressed else { return GRPCAnswers.status(.unimplemented, "compressed request messages are not supported; send them uncompressed") }
            message = Array(framed.message.readableBytesView)
        } catch {
            return GRPCAnswers.status(.invalidArgument, "bad gRPC message framing: \(error)")
        }
        let job: Job
        do {
            job = try self.job(method, message)
        } catch {
            return GRPCAnswers.status(.invalidArgument, error.message)
        }
        let cancellation = QueryCancellation()
        let limits = AggregationLimits(
            maxSeries: self.query.limits.maxSeries, timeoutSeconds: self.query.limits.timeoutSeconds, parallelism: self.query.parallelism,
            maxMemoryBytes: self.query.limits.maxMemoryBytes, cancellation: cancellation
        )
        let (engine, scheduler, metrics, coordinators) = (self.query.engine, self.query.scheduler, self.query.metrics, self.query.coordinators)
        let queryLimits = self.query.limits
        let parallelism = self.query.parallelism
        /// The node request a cluster answer fans out (its operation set per round).
        @Sendable func nodeRequest() -> NodeQueryRequest {
            let timeout = queryLimits.timeoutSeconds
            return NodeQueryRequest(
                .tagNames(scope: nil, blockSpans: 0), deadline: QueryContext.live.now() + UInt64(min(max(0, timeout), 1e9) * 1e9), timeoutSeconds: timeout,
                maxSeries: queryLimits.maxSeries, maxMemoryBytes: queryLimits.maxMemoryBytes, parallelism: parallelism, cancellation: cancellation
            )
        }
        metrics.queryRequests.increment()
        let started = ContinuousClock.now
        return HTTP2Response(
            status: 200, headers: GRPCAnswers.responseHeaders, trailers: [("grpc-status", "0")],
            bodyStream: { writer in
                // Grafana cancels a query the user replaced: the scan in progress stops too.
                writer.onClose { cancellation.cancel() }
                // In a cluster the coordinator answers in one message: the merged answer of every placement.
                if let coordinator = coordinators.current {
                    let outcome: Result<[UInt8], StreamFailure>
                    do {
                        outcome = try await scheduler.submit(org: org, cancellation: cancellation, on: loop) {
                            let reads = QueryReads(engine: engine, org: org, coordinator: coordinator, reference: coordinators)
                            return Self.runInCluster(job, reads: reads, request: nodeRequest(), engine: engine, org: org, limits: limits)
                        }.get()
                    } catch {
                        outcome = .failure(Self.failure(error, org: org, metrics: metrics))
                    }
                    guard try await Self.send(outcome, to: writer, cancellation: cancellation) else { return }
                    metrics.queryLatency.record(ContinuousClock.now - started)
                    return
                }
                // A node without spans of its own that knows no storage node has nothing to stream.
                if let why = coordinators.refusesLocalReads {
                    _ = try await Self.send(.failure(StreamFailure(.unavailable, why)), to: writer, cancellation: cancellation)
                    return
                }
                let steps = Self.steps(engine.snapshot(org: org))
                var sent: [TraceID: TraceDigest] = [:]
                for (i, step) in steps.enumerated() {
                    let outcome: Result<[UInt8], StreamFailure>
                    let known = sent
                    do {
                        outcome = try await scheduler.submit(org: org, cancellation: cancellation, on: loop) {
                            Self.run(job, step, store: engine.store, limits: limits, completed: i + 1, of: steps.count, sent: known)
                        }.get().map { bytes, found in
                            for (id, digest) in found { sent[id] = digest }
                            return bytes
                        }
                    } catch {
                        outcome = .failure(Self.failure(error, org: org, metrics: metrics))
                    }
                    guard try await Self.send(outcome, to: writer, cancellation: cancellation) else { return }
                }
                metrics.queryLatency.record(ContinuousClock.now - started)
            }
        )
    }

    /// A validated request, ready to run over each step.
    package enum Job: Sendable {
        case search(SearchRequest, columnar: Bool)
        case metrics(MetricsRequest, instant: Bool)
    }

    private func job(_ method: Method, _ message: [UInt8]) throws(QueryError) -> Job {
        switch method {
        case .search:
            let search = try SearchRequest(parameters: try TempoRequests.search(message))
            try self.query.limits.check(start: search.startNanos, end: search.endNanos, now: WallClock.nowNanos())
            let columnar = search.traceQL != nil && search.conditions.isEmpty && search.minDurationNanos == nil && search.maxDurationNanos == nil
            if !columnar, let filter = search.traceQL, let why = CompiledTraceQLFilter.unsupported(filter) {
                throw QueryError("Query: \(why) together with tags or durations")
            }
            return .search(search, columnar: columnar)
        case .metricsQueryRange, .metricsQueryInstant:
            let instant = method == .metricsQueryInstant
            let request = try MetricsRequest(
                parameters: try TempoRequests.metrics(message), instant: instant, now: WallClock.nowNanos(), limits: self.query.limits
            )
            return .metrics(request, instant: instant)
        }
    }

    /// The snapshots scanned one after the other: the head alone, then the head with the newest quarter,
    /// half and all of the blocks (fewer steps with fewer blocks; always at least two).
    package static func steps(_ snapshot: StorageEngine.Snapshot) -> [StorageEngine.Snapshot] {
        let blocks = snapshot.blocks.sorted { $0.maxStart > $1.maxStart }
        var ends = blocks.count >= 4 ? [(blocks.count + 3) / 4, (blocks.count + 1) / 2] : []
        ends.append(blocks.count)
        var steps = [StorageEngine.Snapshot(chunks: snapshot.chunks, blocks: [])]
        for end in ends {
            guard steps.count == 1 || end > steps[steps.count - 1].blocks.count else { continue }
            steps.append(StorageEngine.Snapshot(chunks: snapshot.chunks, blocks: Array(blocks[..<end])))
        }
        return steps
    }

    /// What a search message told of a trace, to send it again only when it changed.
    package struct TraceDigest: Sendable, Equatable {
        var matched: Int
        var durationNanos: UInt64
        var spans: Int
    }

    /// The gRPC status for a step the scheduler refused or that was cancelled.
    static func failure(_ error: any Error, org: String, metrics: NodeMetrics) -> StreamFailure {
        guard error is QueryScheduler.Refusal else { return StreamFailure(.cancelled, "the query was cancelled") }
        metrics.queriesThrottled.increment()
        return StreamFailure(.resourceExhausted, "org '\(org)' has too many queries waiting; retry shortly")
    }

    /// Writes one step's answer as a gRPC message, or ends the stream with the step's failure status.
    /// - Returns: false when the stream ended here.
    /// - Throws: when the client stopped reading (the query is cancelled first).
    static func send(_ outcome: Result<[UInt8], StreamFailure>, to writer: HTTP2BodyWriter, cancellation: QueryCancellation) async throws -> Bool {
        switch outcome {
        case .success(let bytes):
            do {
                try await writer.write(GRPCFraming.frame(bytes))
            } catch {
                cancellation.cancel()
                throw error
            }
            return true
        case .failure(let failure):
            writer.setTrailers(GRPCAnswers.status(failure.code, failure.message).trailers)
            return false
        }
    }

    package struct StreamFailure: Error {
        let code: GRPCStatusCode
        let message: String
        init(_ code: GRPCStatusCode, _ message: String) {
            self.code = code
            self.message = message
        }
    }

    /// The one message of a cluster answer: the job fanned out through `reads` and merged.
    package static func runInCluster(
        _ job: Job, reads: QueryReads, request: NodeQueryRequest, engine: StorageEngine, org: String, limits: AggregationLimits
    ) -> Result<[UInt8], StreamFailure> {
        Self.failures {
            switch job {
            case .search(let search, _):
                var round = request
                round.operation = .search(search)
                round.summarizeLatest = search.limit > 0 && search.limit <= QueryAPI.maxLimitSummarizedInRoundOne
                guard case .traceMatches(let matches) = try reads.run(round) else { throw AggregationError.invalid("not trace matches") }
                let result = try QueryAPI.clusterSearch(search, matches, reads: reads, like: request)
                return TempoResponses.search(result.traces, result.stats, completedJobs: 1, totalJobs: 1)
            case .metrics(let metrics, let instant):
                var round = request
                round.operation = .aggregate(metrics.aggregation)
                let (series, stats) = try QueryAPI.series(metrics, round: round, reads: reads, engine: engine, org: org, limits: limits)
                return instant
                    ? TempoResponses.queryInstant(series, stats, completedJobs: 1, totalJobs: 1)
                    : TempoResponses.queryRange(series, stats, completedJobs: 1, totalJobs: 1)
            }
        }
    }

    /// `body`'s message, or the gRPC status for what it threw.
    static func failures(_ body: () throws -> [UInt8]) -> Result<[UInt8], StreamFailure> {
        do {
            return .success(try body())
        } catch let error as AggregationError {
            switch error {
            case .invalid(let m): return .failure(StreamFailure(.invalidArgument, m))
            case .tooManySeries, .tooMuchMemory: return .failure(StreamFailure(.resourceExhausted, error.description))
            case .timeout: return .failure(StreamFailure(.deadlineExceeded, error.description))
            case .cancelled: return .failure(StreamFailure(.cancelled, error.description))
            }
        } catch let refusal as NodeRefusal {
            return .failure(StreamFailure(refusal.status == 400 ? .invalidArgument : .resourceExhausted, refusal.message))
        } catch is FanoutOverloaded {
            return .failure(StreamFailure(.resourceExhausted, "this node coordinates too many cluster queries; retry shortly"))
        } catch is CancellationError {
            return .failure(StreamFailure(.cancelled, "the query was cancelled"))
        } catch {
            return .failure(StreamFailure(.internal, "storage error: \(error)"))
        }
    }

    /// One step's message (and, for search, the digests of the traces it carries).
    package static func run(
        _ job: Job, _ snapshot: StorageEngine.Snapshot, store: BlockStore, limits: AggregationLimits, completed: Int, of total: Int,
        sent: [TraceID: TraceDigest]
    ) -> Result<([UInt8], [TraceID: TraceDigest]), StreamFailure> {
        do {
            switch job {
            case .search(let search, let columnar):
                let result = columnar
                    ? try SearchExecutor.columnar(search, snapshot: snapshot, store: store, limits: limits)
                    : try SearchExecutor.search(search, snapshot: snapshot, store: store, limits: limits)
                var changed: [TraceSummary] = []
                var digests: [TraceID: TraceDigest] = [:]
                for t in result.traces {
                    let digest = TraceDigest(matched: t.matched, durationNanos: t.durationNanos, spans: t.serviceStats.reduce(0) { $0 + $1.spans })
                    if sent[t.traceID] != digest {
                        changed.append(t)
                        digests[t.traceID] = digest
                    }
                }
                return .success((TempoResponses.search(changed, result.stats, completedJobs: completed, totalJobs: total), digests))
            case .metrics(let request, let instant):
                let q = request.aggregation
                let (series, stats) = try AggregationExecutor.series(
                    q, metrics: request.query.metrics, limit: request.query.limit, snapshot: snapshot, store: store, limits: limits
                )
                let bytes = instant
                    ? TempoResponses.queryInstant(series, stats, completedJobs: completed, totalJobs: total)
                    : TempoResponses.queryRange(series, stats, completedJobs: completed, totalJobs: total)
                return .success((bytes, [:]))
            }
        } catch let error as AggregationError {
            switch error {
            case .invalid(let m): return .failure(StreamFailure(.invalidArgument, m))
            case .tooManySeries, .tooMuchMemory: return .failure(StreamFailure(.resourceExhausted, error.description))
            case .timeout: return .failure(StreamFailure(.deadlineExceeded, error.description))
            case .cancelled: return .failure(StreamFailure(.cancelled, error.description))
            }
        } catch {
            return .failure(StreamFailure(.internal, "storage error: \(error)"))
        }
    }
}
