import NIOCore
import NIOHTTP1
import NIOPosix
import WeftModel
import WeftQuery
import WeftStorageEngine

/// The read side: Tempo-compatible query endpoints plus health and metrics. Queries run on a
/// thread pool so they never stall ingest on the event loops.
struct QueryAPI: Sendable {
    static let version = "0.1.0"

    let engine: StorageEngine
    let metrics: NodeMetrics
    let pool: NIOThreadPool

    static func json(_ status: HTTPResponseStatus, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: body)
    }

    static func badRequest(_ message: String) -> HTTPResponse {
        json(.badRequest, QueryResponses.error(message))
    }

    /// A block that could not be read (corrupt, or removed under the query): 500 naming the cause.
    static func storageError(_ error: any Error) -> HTTPResponse {
        json(.internalServerError, QueryResponses.error("storage error: \(error)"))
    }

    /// The answer of `POST /flush`: the blocks written.
    static func flushed(_ metas: [BlockMeta]) -> HTTPResponse {
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

    /// Block spans read (newest first) for tag names and values, on top of the head.
    static let tagScanSpans = 1_000_000

    func handle(_ request: HTTPRequest, on loop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        guard request.method == .GET || request.method == .HEAD else {
            return loop.makeSucceededFuture(.text(.methodNotAllowed, "method \(request.method) not allowed on \(request.path)\n"))
        }
        let org = request.headers.first(name: "x-scope-orgid").flatMap { $0.isEmpty ? nil : $0 } ?? OTLPReceiver.defaultOrg
        let path = request.path
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let started = ContinuousClock.now
        self.metrics.queryRequests.increment()
        let engine = self.engine
        let metrics = self.metrics
        func run(_ work: @escaping @Sendable () -> HTTPResponse) -> EventLoopFuture<HTTPResponse> {
            self.pool.runIfActive(eventLoop: loop) {
                let response = work()
                metrics.queryLatency.record(ContinuousClock.now - started)
                return response
            }
        }

        switch segments {
        case ["api", "echo"]:
            return loop.makeSucceededFuture(.text(.ok, "echo"))
        case ["ready"]:
            return loop.makeSucceededFuture(.text(.ok, "ready\n"))
        case ["healthz"]:
            return loop.makeSucceededFuture(.text(.ok, "ok\n"))
        case ["metrics"]:
            return loop.makeSucceededFuture(HTTPResponse(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render(engine: engine)
            ))
        case ["api", "status", "buildinfo"]:
            var w = JSONWriter()
            w.object { o in
                o.key("version")
                o.string(QueryAPI.version)
                o.key("revision")
                o.string("")
                o.key("branch")
                o.string("")
            }
            return loop.makeSucceededFuture(QueryAPI.json(.ok, w.bytes))
        case let s where s.count == 3 && s[0] == "api" && s[1] == "traces",
            let s where s.count == 4 && s[0] == "api" && s[1] == "v2" && s[2] == "traces":
            let shape: TraceRenderer.Shape = s.count == 3 ? .v1 : .v2
            let idText = s.last!
            guard let id = TraceID(hex: idText), id.isValid else {
                return loop.makeSucceededFuture(QueryAPI.badRequest("trace ID '\(idText)' is not 1 to 32 hex digits (and not all zero)"))
            }
            return run {
                let snapshot = engine.snapshot(org: org)
                let fromBlocks: [HeadChunk]
                do {
                    fromBlocks = try engine.store.findTrace(id, in: snapshot.blocks).map { HeadChunk(org: org, batch: $0) }
                } catch {
                    return QueryAPI.storageError(error)
                }
                guard let body = TraceRenderer.json(id, in: snapshot.chunks + fromBlocks, shape: shape) else {
                    return QueryAPI.json(.notFound, QueryResponses.error("trace not found"))
                }
                return QueryAPI.json(.ok, body)
            }
        case ["api", "search"]:
            let search: SearchRequest
            do {
                search = try SearchRequest(parameters: request.query)
            } catch {
                return loop.makeSucceededFuture(QueryAPI.badRequest(error.message))
            }
            return run {
                do {
                    let result = try SearchExecutor.search(search, snapshot: engine.snapshot(org: org), store: engine.store)
                    return QueryAPI.json(.ok, QueryResponses.search(result))
                } catch {
                    return QueryAPI.storageError(error)
                }
            }
        case ["api", "search", "tags"], ["api", "v2", "search", "tags"]:
            let v2 = segments.count == 4
            let scope = request.query["scope"]
            return run {
                do {
                    let batches = TagCatalog.eachBatch(snapshot: engine.snapshot(org: org), store: engine.store, blockSpans: QueryAPI.tagScanSpans)
                    let names = try TagCatalog.names(scope: scope, forEach: batches)
                    return QueryAPI.json(.ok, v2 ? QueryResponses.tagNamesV2(names) : QueryResponses.tagNames(names))
                } catch let error as QueryError {
                    return QueryAPI.badRequest(error.message)
                } catch {
                    return QueryAPI.badRequest("\(error)")
                }
            }
        case let s where (s.count == 5 && s[0] == "api" && s[1] == "search" && s[2] == "tag" && s[4] == "values")
            || (s.count == 6 && s[0] == "api" && s[1] == "v2" && s[2] == "search" && s[3] == "tag" && s[5] == "values"):
            let v2 = s.count == 6
            let tag = s[s.count - 2]
            var limit = 1000
            if let text = request.query["limit"], !text.isEmpty {
                guard let l = Int(text), l > 0, l <= 100_000 else {
                    return loop.makeSucceededFuture(QueryAPI.badRequest("parameter 'limit': '\(text)' is not an integer between 1 and 100000"))
                }
                limit = l
            }
            let valueLimit = limit
            return run {
                do {
                    let batches = TagCatalog.eachBatch(snapshot: engine.snapshot(org: org), store: engine.store, blockSpans: QueryAPI.tagScanSpans)
                    let values = try TagCatalog.values(of: tag, limit: valueLimit, forEach: batches)
                    return QueryAPI.json(.ok, QueryResponses.tagValues(values, typed: v2))
                } catch {
                    return QueryAPI.storageError(error)
                }
            }
        default:
            return loop.makeSucceededFuture(QueryAPI.json(.notFound, QueryResponses.error("no such endpoint: \(path)")))
        }
    }
}
