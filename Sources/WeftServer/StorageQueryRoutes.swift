import NIOCore
import NIOPosix
import Synchronization
import WeftCluster
import WeftClusterService
import WeftHTTP2
import WeftModel
import WeftQuery
import WeftQueryService
import WeftStorageEngine
import WeftRuntime

/// Holds the query API once this node's WAL is replayed (the internal port opens before that), and
/// the threads node requests run on: apart from the query API's own, which wait for node requests
/// while they coordinate, so coordinating nodes never wait on each other's busy threads.
final class NodeQueryReference: Sendable {
    private let state = Mutex<QueryAPI?>(nil)
    private let pool: NIOThreadPool
    let scheduler: QueryScheduler

    /// - Parameter threads: threads that run node requests.
    init(threads: Int, maxQueuedPerOrg: Int) {
        self.pool = NIOThreadPool(numberOfThreads: max(1, threads))
        self.pool.start()
        self.scheduler = QueryScheduler(pool: self.pool, maxRunning: max(1, threads), maxRunningPerOrg: max(1, threads), maxQueuedPerOrg: maxQueuedPerOrg)
    }

    var api: QueryAPI? { self.state.withLock { $0 } }

    func set(_ api: QueryAPI) { self.state.withLock { $0 = api } }

    func shutdown() async { try? await self.pool.shutdownGracefully() }
}

/// The storage side of cluster queries on the internal port: `GET /internal/v1/catalog` and
/// `POST /internal/v1/query` (org and placements in headers, the encoded node request as the body).
enum StorageQueryRoutes {
    /// Adds both routes. A node without the storage role answers 503 naming its roles; a storage
    /// node answers 503 until `reference` holds its query API.
    /// `health` gives what the catalog marks: placements this node lacks spans of, hints it holds pending.
    static func install(
        into router: inout HTTP2Router, roles: NodeRoles, secret: String?, query reference: NodeQueryReference,
        health: @escaping @Sendable () -> (lacking: Set<PartitionKey>, pendingHints: [PlacementCatalog.PendingHints]) = { ([], []) }
    ) {
        /// The query API, or the 503 to answer while there is none.
        @Sendable func ready() -> (api: QueryAPI?, refusal: HTTP2Response?) {
            guard roles.contains(.storage) else { return (nil, Self.retryLater("this node (roles: \(roles)) has no storage role and stores no spans\n")) }
            guard let api = reference.api else { return (nil, Self.retryLater("recovering the write-ahead log; retry shortly\n")) }
            return (api, nil)
        }
        router.on("GET", NodeQueryRoute.catalogPath, InternalAPI.guarded(secret) { _, loop in
            let (api, refusal) = ready()
            guard let api else { return loop.makeSucceededFuture(refusal!) }
            let (lacking, pendingHints) = health()
            return loop.makeSucceededFuture(Self.bytes(200, api.catalog(lacking: lacking, pendingHints: pendingHints)))
        })
        router.on("POST", NodeQueryRoute.queryPath, InternalAPI.guarded(secret) { request, loop in
            let (ready, refusal) = ready()
            guard let api = ready else { return loop.makeSucceededFuture(refusal!) }
            let org: String
            switch OrgID.parse(request.headers.first { $0.name == NodeQueryRoute.orgHeader }?.value) {
            case .success(let parsed): org = parsed
            case .failure(let invalid): return loop.makeSucceededFuture(InternalAPI.text(400, "bad \(NodeQueryRoute.orgHeader): \(invalid)\n"))
            }
            guard let list = request.headers.first(where: { $0.name == NodeQueryRoute.placementsHeader })?.value, !list.isEmpty else {
                return loop.makeSucceededFuture(InternalAPI.text(400, "\(NodeQueryRoute.placementsHeader) must name the placements to read\n"))
            }
            let placements = Set(list.split(separator: ",").map(String.init))
            var planned: (fingerprint: CatalogFingerprint, lacking: Set<PartitionKey>, pendingHints: [PlacementCatalog.PendingHints])?
            if let text = request.headers.first(where: { $0.name == NodeQueryRoute.catalogHeader })?.value {
                guard let fingerprint = CatalogFingerprint(text) else {
                    return loop.makeSucceededFuture(InternalAPI.text(400, "bad \(NodeQueryRoute.catalogHeader): \(text)\n"))
                }
                let (lacking, pendingHints) = health()
                planned = (fingerprint, lacking, pendingHints)
            }
            let checked = planned != nil
            let summarize = request.headers.contains { $0.name == NodeQueryRoute.summariesHeader }
            return api.answerNodeQuery(
                org: org, placements: placements, body: Array(request.body.readableBytesView), summarizeLatest: summarize, scheduler: reference.scheduler,
                on: loop, planned: planned
            ).map { answer in
                switch answer.status {
                case 200:
                    var response = Self.bytes(200, answer.body)
                    if checked { response.headers.append((NodeQueryRoute.catalogCheckedHeader, "1")) }
                    return response
                case NodeQueryRoute.staleCatalogStatus: return Self.bytes(answer.status, answer.body)
                default: return InternalAPI.text(answer.status, String(decoding: answer.body, as: UTF8.self))
                }
            }
        })
    }

    static func bytes(_ status: Int, _ body: [UInt8]) -> HTTP2Response {
        HTTP2Response(status: status, headers: [("content-type", "application/octet-stream")], body: ByteBuffer(bytes: body))
    }

    static func retryLater(_ text: String) -> HTTP2Response {
        var response = InternalAPI.text(503, text)
        response.headers.append(("retry-after", "1"))
        return response
    }
}

/// Sends a coordinator's reads to storage nodes over the internal HTTP/2 port.
struct HTTP2StorageNodeClient: StorageNodeClient {
    struct Unreachable: Error, CustomStringConvertible {
        let description: String
    }

    let pool: HTTP2ClientPool
    let secret: (name: String, value: String)?
    /// The internal address of each node that may hold data.
    let addresses: [String: NodeAddress]
    /// How long one node may take before its placements go to another holder.
    let timeout: Duration
    /// Counts the bytes of each node's partials.
    let metrics: FanoutMetrics?

    func catalog(of node: String) async throws -> PlacementCatalog {
        let response = try await self.send("GET", NodeQueryRoute.catalogPath, to: node, headers: [], body: [])
        guard response.status == 200 else { throw Unreachable(description: "\(node): HTTP \(response.status)") }
        return try PlacementCatalog.decode(Array(response.body.readableBytesView))
    }

    func query(_ request: NodeQueryRequest, org: String, placements: [String], on node: String) async throws -> NodePartial {
        try await self.query(request, org: org, placements: placements, on: node, check: nil)
    }

    func query(
        _ request: NodeQueryRequest, org: String, placements: [String], on node: String, planned: CatalogFingerprint
    ) async throws -> NodePartial {
        try await self.query(request, org: org, placements: placements, on: node, check: planned)
    }

    /// One round trip when the node checks the fingerprint; a node that does not say it checked
    /// (an older version) is asked for its catalog after its answer.
    private func query(
        _ request: NodeQueryRequest, org: String, placements: [String], on node: String, check: CatalogFingerprint?
    ) async throws -> NodePartial {
        var headers = [(NodeQueryRoute.orgHeader, org), (NodeQueryRoute.placementsHeader, placements.joined(separator: ","))]
        if let check { headers.append((NodeQueryRoute.catalogHeader, check.description)) }
        if request.summarizeLatest { headers.append((NodeQueryRoute.summariesHeader, "1")) }
        let response = try await self.send("POST", NodeQueryRoute.queryPath, to: node, headers: headers, body: request.encoded())
        let body = Array(response.body.readableBytesView)
        self.metrics?.partialBytes(node: node, body.count)
        switch response.status {
        case 200:
            let partial = try NodePartial.decode(body, for: request.operation)
            if let check, !response.headers.contains(where: { $0.name == NodeQueryRoute.catalogCheckedHeader }) {
                let catalog = try await self.catalog(of: node)
                guard catalog.fingerprint(for: request.operation, org: org) == check else { throw StaleCatalog(node: node, catalog: catalog) }
            }
            return partial
        case NodeQueryRoute.staleCatalogStatus where check != nil:
            throw StaleCatalog(node: node, catalog: try PlacementCatalog.decode(body))
        case 400, 422: throw NodeRefusal(status: response.status, message: String(decoding: body, as: UTF8.self))
        default: throw Unreachable(description: "\(node): HTTP \(response.status)")
        }
    }

    private func send(_ method: String, _ path: String, to node: String, headers: [(String, String)], body: [UInt8]) async throws -> HTTP2ClientResponse {
        guard let address = self.addresses[node] else { throw Unreachable(description: "\(node): no address") }
        var all: [(name: String, value: String)] = headers.map { (name: $0.0, value: $0.1) }
        if let secret = self.secret { all.append(secret) }
        let request = HTTP2ClientRequest(method: method, path: path, authority: address.description, headers: all, body: ByteBuffer(bytes: body))
        return try await self.pool.send(request, to: .init(host: address.host, port: Int(address.port)), deadline: ContinuousClock.now.advanced(by: self.timeout))
    }
}

extension ClusterMembership {
    /// A coordinator over the storage nodes that hold data to read (active or leaving), or nil when
    /// this node is the only one: then its own data is the whole answer.
    /// - Parameters:
    ///   - timeout: how long one node may take before its placements go to another holder.
    ///   - health: recent node latencies (for hedging) and the fan-out metrics, kept across queries.
    ///   - catalogs: the storage nodes' catalogs, kept across queries.
    func readCoordinator(timeout: Duration, health: FanoutHealth?, catalogs: CatalogCache? = nil) -> Coordinator? {
        let ring = self.shell.ring
        let holders = ring.state.entries.values.filter { $0.placesTokens && $0.state.ownsReads }
        let local = self.settings.nodeID.rawValue
        guard holders.contains(where: { $0.nodeID.rawValue != local }) else { return nil }
        let client = HTTP2StorageNodeClient(
            pool: self.queryPool, secret: self.settings.secret.map { (ClusterSettings.secretHeader, $0) },
            addresses: Dictionary(uniqueKeysWithValues: holders.map { ($0.nodeID.rawValue, $0.address) }), timeout: timeout,
            metrics: health?.metrics
        )
        let shell = self.shell
        return Coordinator(
            local: self.settings.roles.contains(.storage) ? local : nil, nodes: holders.map(\.nodeID.rawValue),
            replicationFactor: ring.requestedReplicationFactor, client: client, health: health, catalogs: catalogs,
            traceCandidates: { traceID in
                let (ring, history) = shell.writeRings
                let placements = TracePlacements(traceID: traceID, history: history, reads: ring.reads, now: WallClock.nowNanos())
                return TraceCandidates(
                    placements: Set(placements.candidates.map(\.rawValue)), covers: { placements.covers(spanStarts: $0) },
                    coversRange: { placements.covers(startsFrom: $0, to: $1) }
                )
            }
        )
    }
}
