import NIOCore
import WeftQuery
import WeftStorageEngine

/// The storage side of cluster queries on the internal port: a node's catalog, and node requests
/// over chosen placements of its data.
package enum NodeQueryRoute {
    package static let catalogPath = "/internal/v1/catalog"
    package static let queryPath = "/internal/v1/query"
    /// The org a node request reads.
    package static let orgHeader = "x-weft-org"
    /// The placements a node request reads, comma-separated.
    package static let placementsHeader = "x-weft-placements"
    /// Present on a search request whose answer carries summaries of its traces
    /// (``NodeQueryRequest/summarizeLatest``).
    package static let summariesHeader = "x-weft-summaries"
    /// The fingerprint of the node's catalog the request was planned with
    /// (``CatalogFingerprint/description``): the node answers 409 with its catalog when its own
    /// differs, and says it checked with ``catalogCheckedHeader`` on a 200.
    package static let catalogHeader = "x-weft-catalog"
    package static let catalogCheckedHeader = "x-weft-catalog-checked"
    /// The status of an answer refused because the plan's catalog is not the node's.
    package static let staleCatalogStatus = 409

    /// A node's answer: the partial's bytes (200), or a plain-text message (the same as the HTTP
    /// API's for 400 and 422).
    package struct Answer: Sendable {
        package var status: Int
        package var body: [UInt8]

        package init(status: Int, body: [UInt8]) {
            self.status = status
            self.body = body
        }

        static func text(_ status: Int, _ message: String) -> Answer { Answer(status: status, body: Array(message.utf8)) }
    }

    /// What a node sends back for `request` over `snapshot`: ``trimmed(_:for:)``, and a TraceQL
    /// search's round 1 is found newest data first (``SearchExecutor/latestPartial(_:snapshot:store:limits:)``),
    /// which gives the same traces with the same counts without reading what cannot change them.
    /// With ``NodeQueryRequest/summarizeLatest``, a search's traces come with their summaries over
    /// `snapshot` (``TraceMatchesPartial/summaries``).
    package static func partial(_ request: NodeQueryRequest, snapshot: StorageEngine.Snapshot, store: BlockStore) throws -> NodePartial {
        guard case .search(let search) = request.operation else {
            return try NodeQuery.run(request, snapshot: snapshot, store: store, context: .live)
        }
        let limits = request.limits(.live)
        try limits.check()
        var answer: NodePartial
        if let latest = try SearchExecutor.latestPartial(search, snapshot: snapshot, store: store, limits: limits) {
            answer = .traceMatches(latest)
        } else {
            answer = self.trimmed(try NodeQuery.run(request, snapshot: snapshot, store: store, context: .live), for: request.operation)
        }
        guard request.summarizeLatest, search.limit > 0, case .traceMatches(var matches) = answer, !matches.traces.isEmpty else { return answer }
        // Summarised over the same data, as round 2 would: the coordinator takes a summary as it is
        // for a trace whose spans all lie in the placements read here.
        // Summaries only spare the coordinator a round: when making them hits a limit, the matches go
        // without them (the coordinator then asks round 2), as a node that was not asked answers.
        guard let summaries = try? SummariesPartial.of(search, matches.latest(search.limit), snapshot: snapshot, store: store, limits: limits) else {
            return answer
        }
        matches.summaries = summaries.traces
        matches.spansPerSpanSet = search.spansPerSpanSet
        return .traceMatches(matches)
    }

    /// What a node sends back for `operation`: a search's round 1 keeps only the node's `limit`
    /// traces with the latest matches (the cluster's `limit` latest are among the union of every
    /// node's, since a trace's latest match lies in one placement), so its size does not grow with
    /// the traces that match.
    package static func trimmed(_ partial: NodePartial, for operation: NodeQueryRequest.Operation) -> NodePartial {
        guard case .search(let search) = operation, search.limit > 0, case .traceMatches(var matches) = partial,
            matches.traces.count > search.limit
        else { return partial }
        let kept = matches.latest(search.limit)
        matches.traces = Dictionary(uniqueKeysWithValues: kept.map { ($0.traceID, TraceMatchesPartial.Entry(latestStart: $0.latestStart, matched: $0.matched)) })
        return .traceMatches(matches)
    }
}

extension QueryAPI {
    /// Runs the encoded node request `body` over `placements` of `org` on `scheduler`'s threads. The
    /// deadline restarts here from the request's timeout (clocks differ between nodes).
    /// - Parameter summarizeLatest: ``NodeQueryRequest/summarizeLatest`` (not in the body).
    /// - Parameter planned: the fingerprint of this node's catalog the request was planned with, and
    ///   what this node's catalog marks (placements it lacks spans of, hints it holds): when its
    ///   catalog's fingerprint differs, the answer is 409 with the catalog, and nothing is read.
    package func answerNodeQuery(
        org: String, placements: Set<String>, body: [UInt8], summarizeLatest: Bool = false, scheduler: QueryScheduler, on loop: any EventLoop,
        planned: (fingerprint: CatalogFingerprint, lacking: Set<PartitionKey>, pendingHints: [PlacementCatalog.PendingHints])? = nil
    ) -> EventLoopFuture<NodeQueryRoute.Answer> {
        var decoded: NodeQueryRequest
        do {
            decoded = try NodeQueryRequest.decode(body)
        } catch {
            return loop.makeSucceededFuture(.text(400, "bad node query: \(error)"))
        }
        decoded.summarizeLatest = summarizeLatest
        decoded.deadline = QueryContext.live.now() + UInt64(min(max(0, decoded.timeoutSeconds), 1e9) * 1e9)
        decoded.parallelism = min(decoded.parallelism, self.parallelism)
        let request = decoded
        let engine = self.engine
        let metrics = self.metrics
        return scheduler.submit(org: org, cancellation: nil, on: loop) { () -> NodeQueryRoute.Answer in
            if let planned {
                let mine = PlacementCatalog.of(engine, lacking: planned.lacking, pendingHints: planned.pendingHints, only: org)
                guard mine.fingerprint(for: request.operation, org: org) == planned.fingerprint else {
                    let all = PlacementCatalog.of(engine, lacking: planned.lacking, pendingHints: planned.pendingHints)
                    return NodeQueryRoute.Answer(status: NodeQueryRoute.staleCatalogStatus, body: all.encoded())
                }
            }
            do {
                let partial = try NodeQueryRoute.partial(request, snapshot: engine.snapshot(org: org, placements: placements), store: engine.store)
                return NodeQueryRoute.Answer(status: 200, body: partial.encoded())
            } catch let error as AggregationError {
                switch error {
                case .invalid(let message): return .text(400, message)
                case .tooManySeries, .timeout, .tooMuchMemory, .cancelled: return .text(422, error.description)
                }
            } catch {
                return .text(500, "storage error: \(error)")
            }
        }.flatMapErrorThrowing { error in
            guard error is QueryScheduler.Refusal else { throw error }
            metrics.queriesThrottled.increment()
            return .text(503, "org '\(org)' has too many queries waiting; retry shortly")
        }
    }

    /// This node's catalog, encoded.
    package func catalog(lacking: Set<PartitionKey> = [], pendingHints: [PlacementCatalog.PendingHints] = []) -> [UInt8] {
        PlacementCatalog.of(self.engine, lacking: lacking, pendingHints: pendingHints).encoded()
    }
}
