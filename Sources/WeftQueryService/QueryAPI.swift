import NIOCore
import NIOHTTP1
import NIOPosix
import WeftModel
import WeftQuery
import WeftRuntime
import WeftStorageEngine

/// The read side: Tempo-compatible query endpoints plus health and metrics. Queries run on a
/// thread pool so they never stall ingest on the event loops, scheduled fairly between orgs.
package struct QueryAPI: Sendable {
    package static let version = "0.1.0"

    package let engine: StorageEngine
    package let metrics: NodeMetrics
    package let scheduler: QueryScheduler
    package let limits: QueryLimits
    /// Threads one aggregation scans with.
    package let parallelism: Int
    /// Fans queries out to the storage nodes while in a cluster.
    package let coordinators: CoordinatorReference

    package init(
        engine: StorageEngine, metrics: NodeMetrics, scheduler: QueryScheduler, limits: QueryLimits, parallelism: Int,
        coordinators: CoordinatorReference = CoordinatorReference()
    ) {
        self.engine = engine
        self.metrics = metrics
        self.scheduler = scheduler
        self.limits = limits
        self.parallelism = parallelism
        self.coordinators = coordinators
    }

    package static func json(_ status: HTTPResponseStatus, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: body)
    }

    package static func badRequest(_ message: String) -> HTTPResponse {
        json(.badRequest, QueryResponses.error(message))
    }

    /// A block that could not be read (corrupt, or removed under the query): 500 naming the cause.
    package static func storageError(_ error: any Error) -> HTTPResponse {
        json(.internalServerError, QueryResponses.error("storage error: \(error)"))
    }

    /// The answer of `POST /flush`: the blocks written.
    package static func flushed(_ metas: [BlockMeta]) -> HTTPResponse {
        var w = JSONWriter()
        w.object { o in
            o.key("blocks")
            o.array { a in
                for m in metas {
                    a.object { b in
                        b.key("id")
                        b.number(Int(m.id))
                        b.key("org")
                        b.string(m.org)
                        b.key("spans")
                        b.number(m.spans)
                        b.key("bytes")
                        b.number(m.bytes)
                    }
                }
            }
        }
        return json(.ok, w.bytes)
    }

    /// The limits of one request's scan: its deadline starts now, and it stops when the request is cancelled.
    package func aggregationLimits(_ request: HTTPRequest) -> AggregationLimits {
        AggregationLimits(
            maxSeries: self.limits.maxSeries, timeoutSeconds: self.limits.timeoutSeconds, parallelism: self.parallelism,
            maxMemoryBytes: self.limits.maxMemoryBytes, cancellation: request.cancellation, context: .live
        )
    }

    /// 400 for a bad query, 422 for a limit hit or a cancelled query.
    package static func refused(_ error: AggregationError) -> HTTPResponse {
        switch error {
        case .invalid(let m): return badRequest(m)
        case .tooManySeries, .timeout, .tooMuchMemory, .cancelled: return json(.unprocessableEntity, QueryResponses.error(error.description))
        }
    }

    package static func nowNanos() -> UInt64 { WallClock.nowNanos() }

    /// `stats` with the time since `start` as its elapsed time.
    package static func timed(_ stats: ScanStats, since start: ContinuousClock.Instant) -> ScanStats {
        let d = ContinuousClock.now - start
        var timed = stats
        timed.elapsedNanos = UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
        return timed
    }

    /// Runs an aggregation over `reads`: 400 for a bad query, 422 for a limit hit, 500 for storage
    /// errors; a cluster answer that misses data says so in the object and the `x-weft-partial` header.
    /// - Parameter fanout: whether a cluster answer carries the `fanout` object (Weft's own answers).
    package static func aggregate(reads: QueryReads, fanout: Bool = true, _ body: () throws -> [UInt8]) -> HTTPResponse {
        answering { reads.flagged(json(.ok, reads.flaggedObject(try body(), fanout: fanout))) }
    }

    /// `body`'s response, or the answer to what it threw: 400 for a bad query, 422 for a limit hit or a
    /// cancelled query (also when a storage node refused), 500 for a storage error.
    static func answering(_ body: () throws -> HTTPResponse) -> HTTPResponse {
        do {
            return try body()
        } catch let error as AggregationError {
            return refused(error)
        } catch let error as NodeRefusal {
            return refused(error)
        } catch let error as QueryError {
            return badRequest(error.message)
        } catch is FanoutOverloaded {
            var response = json(.tooManyRequests, QueryResponses.error("this node coordinates too many cluster queries; retry shortly"))
            response.headers.add(name: "retry-after", value: "1")
            return response
        } catch is CancellationError {
            return refused(AggregationError.cancelled)
        } catch {
            return storageError(error)
        }
    }

    /// A Tempo-shaped answer with Weft's scan figures in the `x-weft-scan` header.
    static func scanned(_ body: [UInt8], _ stats: ScanStats) -> HTTPResponse {
        var response = json(.ok, body)
        response.headers.add(name: "x-weft-scan", value: QueryResponses.scanSummary(stats))
        return response
    }

    /// ``aggregate(reads:_:)`` for Tempo-shaped answers: `body` also gives the scan's figures, which
    /// go to the `x-weft-scan` header; missing cluster data goes to the `x-weft-partial` header only.
    static func aggregateScanned(reads: QueryReads, _ body: () throws -> ([UInt8], ScanStats)) -> HTTPResponse {
        answering {
            let (bytes, stats) = try body()
            return reads.flagged(scanned(bytes, stats))
        }
    }

    /// A request header: `node` answers from this node's own data instead of fanning out.
    package static let readScopeHeader = "x-weft-read"

    /// Paths that serve no org's data.
    package static let orgFreePaths: Set<String> = ["/ready", "/healthz", "/metrics", "/api/echo", "/api/status/buildinfo"]
    /// 429 for an org with too many queries waiting.
    package static func tooManyQueued(org: String) -> HTTPResponse {
        var response = json(.tooManyRequests, QueryResponses.error("org '\(org)' has too many queries waiting; retry shortly"))
        response.headers.add(name: "retry-after", value: "1")
        return response
    }

    /// Block spans read (newest first) for tag names and values, on top of the head.
    package static let tagScanSpans = 1_000_000

    package func handle(_ request: HTTPRequest, on loop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        let path = request.path
        let endpoint = Endpoint(path)
        guard request.method == .GET || request.method == .HEAD else {
            // Another method on an endpoint is 405; on no endpoint at all 404, as with GET.
            guard endpoint != nil else {
                return loop.makeSucceededFuture(QueryAPI.json(.notFound, QueryResponses.error("no such endpoint: \(path)")))
            }
            var response = HTTPResponse.text(.methodNotAllowed, "method \(request.method) not allowed on \(path)\n")
            response.headers.add(name: "allow", value: "GET, HEAD")
            return loop.makeSucceededFuture(response)
        }
        // Health, metrics and build info read no org data, so any header is fine there.
        let org: String
        switch Self.orgFreePaths.contains(path) ? .success(OrgID.defaultOrg) : OrgID.parse(request.headers.first(name: "x-scope-orgid")) {
        case .success(let o): org = o
        case .failure(let invalid): return loop.makeSucceededFuture(QueryAPI.badRequest(invalid.description))
        }
        let started = ContinuousClock.now
        self.metrics.queryRequests.increment()
        let engine = self.engine
        let metrics = self.metrics
        let coordinators = self.coordinators
        // `x-weft-read: node` asks for this node's own data only (what it holds), even in a cluster.
        let nodeOnly = request.headers.first(name: QueryAPI.readScopeHeader)?.lowercased() == "node"
        /// Where this query reads; the cluster is looked at when the query starts running.
        @Sendable func reads() -> QueryReads { QueryReads(engine: engine, org: org, coordinator: nodeOnly ? nil : coordinators.current, reference: coordinators) }
        func run(_ work: @escaping @Sendable () -> HTTPResponse) -> EventLoopFuture<HTTPResponse> {
            self.scheduler.submit(org: org, cancellation: request.cancellation, on: loop) {
                if !nodeOnly, let why = coordinators.refusesLocalReads {
                    var refusal = QueryAPI.json(.serviceUnavailable, QueryResponses.error(why))
                    refusal.headers.add(name: "retry-after", value: "1")
                    return refusal
                }
                let response = work()
                metrics.queryLatency.record(ContinuousClock.now - started)
                return response
            }.flatMapErrorThrowing { error in
                guard error is QueryScheduler.Refusal else { throw error }
                metrics.queriesThrottled.increment()
                return QueryAPI.tooManyQueued(org: org)
            }
        }

        guard let endpoint else {
            return loop.makeSucceededFuture(QueryAPI.json(.notFound, QueryResponses.error("no such endpoint: \(path)")))
        }
        switch endpoint {
        case .echo:
            return loop.makeSucceededFuture(.text(.ok, "echo"))
        case .ready:
            return loop.makeSucceededFuture(.text(.ok, "ready\n"))
        case .healthz:
            return loop.makeSucceededFuture(.text(.ok, "ok\n"))
        case .prometheus:
            return loop.makeSucceededFuture(HTTPResponse(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render(engine: engine)
            ))
        case .buildInfo:
            return loop.makeSucceededFuture(QueryAPI.json(.ok, TempoBuildInfo.json(weftVersion: QueryAPI.version)))
        case .trace(let idText, let v2):
            let shape: TraceRenderer.Shape = v2 ? .v2 : .v1
            guard let id = TraceID(hex: idText), id.isValid else {
                return loop.makeSucceededFuture(QueryAPI.badRequest("trace ID '\(idText)' is not 1 to 32 hex digits (and not all zero)"))
            }
            let byID: TraceByIDRequest
            do {
                byID = try TraceByIDRequest(request)
            } catch {
                return loop.makeSucceededFuture(QueryAPI.badRequest(error.message))
            }
            let lookup = self.nodeRequest(.trace(id), request)
            return run {
                let reads = reads()
                return QueryAPI.answering {
                    let chunks: [HeadChunk]
                    if reads.isDistributed {
                        // The trace's candidate placements first (on each node only the blocks with spans in the range).
                        var ranged = lookup
                        ranged.operation = .traces([id], startNanos: byID.startNanos, endNanos: byID.endNanos)
                        guard case .traces(let traces) = try reads.runTrace(ranged) else { return QueryAPI.storageError(QueryError("not traces")) }
                        chunks = TraceLookup.deduplicated(id, traces.chunks)
                    } else {
                        var snapshot = engine.snapshot(org: org)
                        snapshot.blocks = byID.blocks(of: snapshot)
                        guard case .trace(let trace) = try NodeQuery.run(lookup, snapshot: snapshot, store: engine.store, context: .live) else {
                            return QueryAPI.storageError(QueryError("not a trace"))
                        }
                        chunks = trace.chunks
                    }
                    guard let response = byID.answer(id, in: chunks, shape: shape) else {
                        return reads.flagged(QueryAPI.json(.notFound, QueryResponses.error("trace not found")))
                    }
                    return reads.flagged(response)
                }
            }
        case .search:
            let search: SearchRequest
            do {
                search = try SearchRequest(parameters: request.query)
                try self.limits.check(start: search.startNanos, end: search.endNanos, now: Self.nowNanos())
            } catch {
                return loop.makeSucceededFuture(QueryAPI.badRequest(error.message))
            }
            let limits = self.aggregationLimits(request)
            // TraceQL alone runs on the columnar engine (which also answers trace-level intrinsics).
            if !SearchExecutor.isColumnar(search), let filter = search.traceQL, let why = CompiledTraceQLFilter.unsupported(filter) {
                return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'q': \(why) together with 'tags', 'minDuration' or 'maxDuration'"))
            }
            var summarized = self.nodeRequest(.search(search), request)
            summarized.summarizeLatest = search.limit > 0 && search.limit <= QueryAPI.maxLimitSummarizedInRoundOne
            let lookup = summarized
            return run {
                let reads = reads()
                return QueryAPI.answering {
                    var answered: SearchResult
                    if reads.isDistributed {
                        // In a cluster the nodes holding the chosen traces summarise them.
                        guard case .traceMatches(let matches) = try reads.run(lookup) else { throw AggregationError.invalid("not trace matches") }
                        answered = try QueryAPI.clusterSearch(search, matches, reads: reads, like: lookup)
                    } else if SearchExecutor.isColumnar(search) {
                        // One node: newest data first, stopping once the latest `limit` traces are known.
                        answered = try SearchExecutor.columnar(search, snapshot: engine.snapshot(org: org), store: engine.store, limits: lookup.limits(.live))
                    } else {
                        let snapshot = engine.snapshot(org: org)
                        guard case .traceMatches(let matches) = try NodeQuery.run(lookup, snapshot: snapshot, store: engine.store, context: .live) else {
                            throw AggregationError.invalid("not trace matches")
                        }
                        answered = try SearchExecutor.result(search, matches, snapshot: snapshot, store: engine.store, limits: limits)
                    }
                    answered.stats = QueryAPI.timed(answered.stats, since: started)
                    return reads.flagged(QueryAPI.scanned(QueryResponses.search(answered), answered.stats))
                }
            }
        case .tagNames(let v2):
            let lookup = self.nodeRequest(.tagNames(scope: request.query["scope"], blockSpans: QueryAPI.tagScanSpans), request)
            return run {
                let reads = reads()
                return QueryAPI.answering {
                    guard case .tagNames(let partial) = try reads.run(lookup) else { return QueryAPI.storageError(QueryError("not tag names")) }
                    var names = partial.names
                    names.stats = QueryAPI.timed(names.stats, since: started)
                    return reads.flagged(QueryAPI.scanned(v2 ? QueryResponses.tagNamesV2(names) : QueryResponses.tagNames(names), names.stats))
                }
            }
        case .tagValues(let tag, let v2):
            var limit = 1000
            if let text = request.query["limit"], !text.isEmpty {
                guard let l = Int(text), l > 0, l <= 100_000 else {
                    return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'limit': '\(text)' is not an integer between 1 and 100000"))
                }
                limit = l
            }
            let valueLimit = limit
            // Distinct values over everything in range (not a sample), optionally among spans matching `q`.
            let field: TraceQLField
            var filter = TraceQLFilter.all
            do {
                guard let f = try TraceQLField.list(parsing: tag).first else { throw QueryError("empty tag") }
                field = f
                if let q = request.query["q"], !q.isEmpty {
                    let parsed = try TraceQLQuery(parsing: q)
                    guard parsed.metrics == nil else { throw QueryError("parameter 'q': a spanset filter only") }
                    filter = parsed.filter
                }
            } catch let error as TraceQLError {
                return loop.makeSucceededFuture(QueryAPI.badRequest("tag '\(tag)' or parameter 'q': \(error)"))
            } catch {
                return loop.makeSucceededFuture(QueryAPI.badRequest("\(error)"))
            }
            var start: UInt64 = 0, end = UInt64.max
            for (name, isStart) in [("start", true), ("end", false)] {
                guard let v = request.query[name], !v.isEmpty else { continue }
                let t: UInt64
                do {
                    t = try QueryTime.parse(v, parameter: name)
                } catch {
                    return loop.makeSucceededFuture(QueryAPI.badRequest(error.message))
                }
                // A whole second as the end takes in all of that second.
                if isStart { start = t } else { end = t % 1_000_000_000 == 0 ? t.addingReportingOverflow(999_999_999).partialValue : t }
            }
            guard end >= start else { return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'end' must not be before 'start'")) }
            do {
                // As for a search: from `start` to `end`, or to now without one.
                try self.limits.check(start: start > 0 ? start : nil, end: end == .max ? nil : end, now: Self.nowNanos())
            } catch {
                return loop.makeSucceededFuture(QueryAPI.badRequest(error.message))
            }
            let lookup = self.nodeRequest(.tagValues(field: field, filter: filter, startNanos: start, endNanos: end, limit: valueLimit), request)
            return run {
                let reads = reads()
                return QueryAPI.aggregateScanned(reads: reads) {
                    guard case .tagValues(let partial) = try reads.run(lookup) else {
                        throw AggregationError.invalid("not tag values")
                    }
                    var result = NodeQuery.typedValues(partial, field: field)
                    result.stats = QueryAPI.timed(result.stats, since: started)
                    return (QueryResponses.tagValues(result, typed: v2), result.stats)
                }
            }
        case .metricsQuery(let instant):
            let metricsRequest: MetricsRequest
            do {
                metricsRequest = try MetricsRequest(parameters: request.query, instant: instant, now: Self.nowNanos(), limits: self.limits)
            } catch {
                return loop.makeSucceededFuture(QueryAPI.badRequest(error.message))
            }
            let limits = self.aggregationLimits(request)
            let round = self.nodeRequest(.aggregate(metricsRequest.aggregation), request)
            return run {
                let reads = reads()
                return QueryAPI.aggregateScanned(reads: reads) {
                    let (series, scanned) = try QueryAPI.series(metricsRequest, round: round, reads: reads, engine: engine, org: org, limits: limits)
                    let stats = QueryAPI.timed(scanned, since: started)
                    return (instant ? QueryResponses.metricsInstant(series, stats) : QueryResponses.metricsRange(series, stats), stats)
                }
            }
        case .aggregate:
            let table: AggregateRequest
            do {
                table = try AggregateRequest(parameters: request.query, now: Self.nowNanos(), limits: self.limits)
            } catch {
                return loop.makeSucceededFuture(QueryAPI.badRequest(error.message))
            }
            let round = self.nodeRequest(.aggregate(table.aggregation), request, maxSeries: self.limits.maxGroups)
            return run {
                let reads = reads()
                return QueryAPI.aggregate(reads: reads) {
                    let q = table.aggregation
                    let (rows, groups, stats) = try NodeQuery.table(
                        q, orderBy: table.orderBy, descending: table.descending, limit: table.limit, request: round
                    ) { try reads.run($0) }
                    return QueryResponses.aggregateTable(q, rows, groups: groups, QueryAPI.timed(stats, since: started))
                }
            }
        case .dependencies:
            // Jaeger's parameters: endTs and lookback in milliseconds.
            let now = Self.nowNanos()
            var end = now, lookback: UInt64 = 86_400_000_000_000
            // Milliseconds whose nanoseconds fit in a UInt64 (before 2554-07-21).
            let maxMillis = UInt64.max / 1_000_000
            if let v = request.query["endTs"], !v.isEmpty {
                guard let ms = UInt64(v) else { return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'endTs': '\(v)' is not unix milliseconds")) }
                guard ms <= maxMillis else { return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'endTs': '\(v)' is out of range (times must be before 2554-07-21)")) }
                end = ms * 1_000_000
            }
            if let v = request.query["lookback"], !v.isEmpty {
                guard let ms = UInt64(v), ms > 0 else { return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'lookback': '\(v)' is not a positive number of milliseconds")) }
                guard ms <= maxMillis else {
                    return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'lookback': the range exceeds the maximum of \(self.limits.maxRangeNanos / 3_600_000_000_000) h"))
                }
                lookback = ms * 1_000_000
            }
            guard lookback <= self.limits.maxRangeNanos else {
                return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'lookback': the range exceeds the maximum of \(self.limits.maxRangeNanos / 3_600_000_000_000) h"))
            }
            let lookup = self.nodeRequest(.serviceMap(startNanos: end >= lookback ? end - lookback : 0, endNanos: end), request)
            return run {
                let reads = reads()
                return QueryAPI.aggregate(reads: reads, fanout: false) {
                    guard case .serviceMap(let partial) = try reads.run(lookup) else {
                        throw AggregationError.invalid("not a service map")
                    }
                    return QueryResponses.dependencies(partial.sorted, QueryAPI.timed(partial.stats, since: started))
                }
            }
        }
    }

    /// The endpoints ``handle(_:on:)`` answers, read from a request path.
    enum Endpoint: Equatable {
        case echo, ready, healthz, prometheus, buildInfo, search, aggregate, dependencies
        case trace(id: String, v2: Bool)
        case tagNames(v2: Bool)
        case tagValues(tag: String, v2: Bool)
        case metricsQuery(instant: Bool)

        /// Nil for a path that names no endpoint.
        init?(_ path: String) {
            switch path.split(separator: "/", omittingEmptySubsequences: true).map(String.init) {
            case ["api", "echo"]: self = .echo
            case ["ready"]: self = .ready
            case ["healthz"]: self = .healthz
            case ["metrics"]: self = .prometheus
            case ["api", "status", "buildinfo"]: self = .buildInfo
            case ["api", "search"]: self = .search
            case ["api", "weft", "aggregate"]: self = .aggregate
            case ["api", "dependencies"]: self = .dependencies
            case ["api", "search", "tags"]: self = .tagNames(v2: false)
            case ["api", "v2", "search", "tags"]: self = .tagNames(v2: true)
            case ["api", "metrics", "query_range"]: self = .metricsQuery(instant: false)
            case ["api", "metrics", "query"]: self = .metricsQuery(instant: true)
            case let s where s.count == 3 && s[0] == "api" && s[1] == "traces": self = .trace(id: s[2], v2: false)
            case let s where s.count == 4 && s[0] == "api" && s[1] == "v2" && s[2] == "traces": self = .trace(id: s[3], v2: true)
            case let s where s.count == 5 && s[0] == "api" && s[1] == "search" && s[2] == "tag" && s[4] == "values": self = .tagValues(tag: s[3], v2: false)
            case let s where s.count == 6 && s[0] == "api" && s[1] == "v2" && s[2] == "search" && s[3] == "tag" && s[5] == "values":
                self = .tagValues(tag: s[4], v2: true)
            default: return nil
            }
        }
    }
}
