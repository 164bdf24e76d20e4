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

    let head: Head
    let metrics: NodeMetrics
    let pool: NIOThreadPool

    static func json(_ status: HTTPResponseStatus, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: body)
    }

    static func badRequest(_ message: String) -> HTTPResponse {
        json(.badRequest, QueryResponses.error(message))
    }

    func handle(_ request: HTTPRequest, on loop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        guard request.method == .GET || request.method == .HEAD else {
            return loop.makeSucceededFuture(.text(.methodNotAllowed, "method \(request.method) not allowed on \(request.path)\n"))
        }
        let org = request.headers.first(name: "x-scope-orgid").flatMap { $0.isEmpty ? nil : $0 } ?? OTLPReceiver.defaultOrg
        let path = request.path
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let started = ContinuousClock.now
        self.metrics.queryRequests.increment()
        let head = self.head
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
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render(head: head)
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
                guard let body = TraceRenderer.json(id, in: head.snapshot(org: org), shape: shape) else {
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
                let result = SearchExecutor.search(search, in: head.snapshot(org: org))
                return QueryAPI.json(.ok, QueryResponses.search(result))
            }
        case ["api", "search", "tags"], ["api", "v2", "search", "tags"]:
            let v2 = segments.count == 4
            let scope = request.query["scope"]
            return run {
                do {
                    let names = try TagCatalog.names(in: head.snapshot(org: org), scope: scope)
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
                let values = TagCatalog.values(of: tag, in: head.snapshot(org: org), limit: valueLimit)
                return QueryAPI.json(.ok, QueryResponses.tagValues(values, typed: v2))
            }
        default:
            return loop.makeSucceededFuture(QueryAPI.json(.notFound, QueryResponses.error("no such endpoint: \(path)")))
        }
    }
}
