import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization
import WeftCluster
import WeftClusterService
import WeftHTTP2
import WeftIngest
import WeftModel
import WeftOTLP
import WeftQuery
import WeftQueryService
import WeftRuntime
import WeftStorage
import WeftStorageEngine

/// Everything a single node needs; every field has a default. Read from JSON with ``load(from:)``.
public struct NodeConfiguration: Sendable, Codable, Equatable {
    /// Where the WAL (and later the blocks) live.
    public var dataDir: String = "./weft-data"
    public var host: String = "127.0.0.1"
    /// OTLP/HTTP port (0 picks a free port).
    public var otlpPort: Int = 4318
    /// Query API port (0 picks a free port).
    public var queryPort: Int = 3200
    /// OTLP/gRPC port, HTTP/2 only (0 picks a free port; nil: no gRPC listener). Config files and
    /// `weft serve` default to ``defaultOTLPGrpcPort``; a configuration built in code starts without one,
    /// so nodes embedded in tests never contend for the fixed port. In JSON, `null` turns it off.
    public var otlpGrpcPort: Int? = nil
    public static let defaultOTLPGrpcPort = 4317
    /// Largest request body, both as received and after decompression (OTLP recommends 64 MiB).
    public var maxBodyBytes: Int = 64 << 20
    /// WAL segment size before rolling to a new file; a closed segment is deleted once none of its
    /// spans remain in the head.
    public var walSegmentBytes: Int = 64 << 20
    /// Close the open WAL segment once it is this many seconds old; idle traces are cut to blocks at
    /// least this often (sooner once they fill a head chunk).
    public var blockMaxAgeSeconds: Double = 300
    /// A trace stays in the head, whole, until nothing was written to it for this many seconds…
    public var traceIdleSeconds: Double = 5
    /// …or until its first span arrived this many seconds ago.
    public var traceMaxAgeSeconds: Double = 60
    /// Spans per row group inside a block.
    public var blockGroupSpans: Int = 16_384
    /// Compaction merges small blocks of an org up to this many spans.
    public var compactionMaxSpans: Int = 1_000_000
    /// Days of data kept per org (blocks whose newest span is older are deleted), and per-org overrides.
    public var retentionDays: Double = 14
    public var orgRetentionDays: [String: Double] = [:]
    /// The replica set this node stores for (kept in every block's metadata).
    public var placement: String = "local"
    /// Seconds between background passes (flush, compaction, retention).
    public var maintenanceIntervalSeconds: Double = 1
    /// Bytes waiting for the WAL beyond which writes get 503 + Retry-After.
    public var walMaxPendingBytes: Int = 512 << 20
    /// Spans per head chunk.
    public var headChunkSpans: Int = 65_536
    /// Spans the head may hold while blocks are being written (about 270 bytes each); above it, writes
    /// get 503 + Retry-After until flushes catch up.
    public var headMaxSpans: Int = 8_000_000
    /// Extra attribute keys read as GenAI cost.
    public var costAliases: [String] = []
    /// Event-loop threads (default: one per core).
    public var eventLoopThreads: Int? = nil
    /// Query worker threads (default: one per core).
    public var queryThreads: Int? = nil
    /// Longest time range of a metrics or aggregation query.
    public var queryMaxRangeDays: Double = 31
    /// Most series (groups) one query may produce (422 beyond).
    public var queryMaxSeries: Int = 10_000
    /// Queries running longer are stopped (422).
    public var queryTimeoutSeconds: Double = 30
    /// Memory one query's aggregate state may take (its groups × steps × aggregate cells, over all its
    /// threads); queries that would need more are refused (422).
    public var queryMaxMemoryBytes: Int = QueryLimits.defaultMaxMemoryBytes
    /// Memory for decoded block columns shared by queries.
    public var queryColumnCacheBytes: Int = ColumnCache.defaultCapacityBytes
    /// Most spans in one export request (400 beyond).
    public var maxSpansPerRequest: Int = SpanLimits().maxSpansPerRequest
    /// Most attributes on one span, resource, scope, event or link (the span is refused beyond).
    public var maxAttributesPerSpan: Int = SpanLimits().maxAttributesPerSpan
    /// Most events and links on one span (the span is refused beyond).
    public var maxEventsPerSpan: Int = SpanLimits().maxEventsPerSpan
    public var maxLinksPerSpan: Int = SpanLimits().maxLinksPerSpan
    /// Longest attribute key or value, name or status message of a span (the span is refused beyond).
    public var maxAttributeValueBytes: Int = SpanLimits().maxValueBytes

    // Cluster.
    /// `all` (the default: one node does everything) or a comma-separated list of `ingest`, `storage`, `query`.
    public var roles: String = "all"
    /// This node's ID (a storage node keeps it in its data directory; default: generated once).
    public var nodeId: String? = nil
    /// Node-to-node HTTP/2 port (0 picks a free port; nil: no cluster membership). Config files and
    /// `weft serve` default to ``defaultInternalPort``; a configuration built in code starts without one.
    public var internalPort: Int? = nil
    public static let defaultInternalPort = 9400
    /// The host peers use to reach this node (default: `host`, or the machine's name when `host` is a wildcard).
    public var advertiseHost: String? = nil
    /// `HOST:PORT` of cluster members to join through; a name with several addresses names them all.
    public var join: [String] = []
    /// Failure domain: replica sets spread over distinct zones when there are enough.
    public var zone: String = ""
    /// Copies of each trace (capped by the number of storage nodes).
    public var replicationFactor: Int = 3
    /// Shared secret of node-to-node requests (or read from `clusterSecretFile`); none: not checked.
    public var clusterSecret: String? = nil
    public var clusterSecretFile: String? = nil
    /// How long an ingest node waits for one replica to make a pushed part durable before counting it
    /// as failed for the write quorum.
    public var replicationPushTimeoutSeconds: Double = 5
    /// How long a replica may stay silent after the write quorum is reached before its part is left as
    /// a hint with a replica that stored it (and the client answered).
    public var replicationHintAfterSeconds: Double = 0.5
    /// Bytes an ingest node may have on their way to one replica; a replica with more in flight gets
    /// no new pushes (a failed replica for the quorum) until its pushes are answered or time out.
    public var replicationMaxInFlightBytesPerPeer: Int = 64 << 20
    /// Bytes an ingest node may have on their way to all replicas; beyond it, writes get 503 + Retry-After.
    public var replicationMaxInFlightBytes: Int = 256 << 20
    /// Payload bytes of hints a storage node holds for replicas that missed writes; beyond it, new hints
    /// are refused (and counted as dropped).
    public var hintsMaxBytes: Int = 256 << 20
    /// Seconds between anti-entropy sync rounds of a storage node with the other holders of its placements.
    public var antiEntropyIntervalSeconds: Double = 300
    /// Seconds a storage node may be dead before the surviving holders copy its placements to replacements.
    public var replicaReplaceAfterSeconds: Double = 600

    /// Queries of one org running at once (default: half the query threads, at least one), so one org
    /// never holds every query thread; the rest of its queries wait, and orgs take turns.
    public var queryMaxConcurrentPerOrg: Int? = nil
    /// Queries of one org waiting to run; beyond it, 429 + Retry-After.
    public var queryMaxQueuedPerOrg: Int = 100
    /// Request-body bytes the node holds at once, over all connections and protocols; a request whose
    /// body does not fit gets 503 + Retry-After (gRPC: UNAVAILABLE). At least `maxBodyBytes`.
    public var maxInFlightBodyBytes: Int = 256 << 20
    /// HTTP/1.1: a connection with no request in progress is closed after this long.
    public var httpIdleTimeoutSeconds: Double = 60
    /// HTTP/1.1: a request's head must arrive within this long of its first byte, and its body may pause
    /// no longer than this (408, then the connection closes).
    public var httpRequestReadTimeoutSeconds: Double = 30
    /// HTTP/1.1: a response the client does not read for this long closes the connection.
    public var httpWriteTimeoutSeconds: Double = 30

    public init() {}

    /// The span limits this configuration sets.
    public var spanLimits: SpanLimits {
        SpanLimits(
            maxSpansPerRequest: self.maxSpansPerRequest, maxAttributesPerSpan: self.maxAttributesPerSpan,
            maxEventsPerSpan: self.maxEventsPerSpan, maxLinksPerSpan: self.maxLinksPerSpan, maxValueBytes: self.maxAttributeValueBytes
        )
    }

    /// The HTTP/1.1 timeouts this configuration sets, with `budget` shared by every connection.
    func httpLimits(budget: RequestBodyBudget) -> HTTPConnectionLimits {
        var limits = HTTPConnectionLimits()
        limits.idleTimeout = .nanoseconds(Int64(self.httpIdleTimeoutSeconds * 1e9))
        limits.requestReadTimeout = .nanoseconds(Int64(self.httpRequestReadTimeoutSeconds * 1e9))
        limits.writeTimeout = .nanoseconds(Int64(self.httpWriteTimeoutSeconds * 1e9))
        limits.bodyBudget = budget
        return limits
    }

    /// The query limits this configuration sets.
    public var queryLimits: QueryLimits {
        QueryLimits(
            maxRangeNanos: UInt64(self.queryMaxRangeDays * 86_400e9), maxSeries: self.queryMaxSeries, timeoutSeconds: self.queryTimeoutSeconds,
            maxMemoryBytes: self.queryMaxMemoryBytes
        )
    }

    /// Reads a JSON config file; keys that are absent keep their defaults.
    public static func load(from path: String) throws -> NodeConfiguration {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(NodeConfiguration.self, from: data)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = NodeConfiguration()
        self.dataDir = try c.decodeIfPresent(String.self, forKey: .dataDir) ?? d.dataDir
        self.host = try c.decodeIfPresent(String.self, forKey: .host) ?? d.host
        self.otlpPort = try c.decodeIfPresent(Int.self, forKey: .otlpPort) ?? d.otlpPort
        self.queryPort = try c.decodeIfPresent(Int.self, forKey: .queryPort) ?? d.queryPort
        self.otlpGrpcPort = c.contains(.otlpGrpcPort)
            ? try c.decodeIfPresent(Int.self, forKey: .otlpGrpcPort)
            : NodeConfiguration.defaultOTLPGrpcPort
        self.maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? d.maxBodyBytes
        self.walSegmentBytes = try c.decodeIfPresent(Int.self, forKey: .walSegmentBytes) ?? d.walSegmentBytes
        self.blockMaxAgeSeconds = try c.decodeIfPresent(Double.self, forKey: .blockMaxAgeSeconds) ?? d.blockMaxAgeSeconds
        self.traceIdleSeconds = try c.decodeIfPresent(Double.self, forKey: .traceIdleSeconds) ?? d.traceIdleSeconds
        self.traceMaxAgeSeconds = try c.decodeIfPresent(Double.self, forKey: .traceMaxAgeSeconds) ?? d.traceMaxAgeSeconds
        self.blockGroupSpans = try c.decodeIfPresent(Int.self, forKey: .blockGroupSpans) ?? d.blockGroupSpans
        self.compactionMaxSpans = try c.decodeIfPresent(Int.self, forKey: .compactionMaxSpans) ?? d.compactionMaxSpans
        self.retentionDays = try c.decodeIfPresent(Double.self, forKey: .retentionDays) ?? d.retentionDays
        self.orgRetentionDays = try c.decodeIfPresent([String: Double].self, forKey: .orgRetentionDays) ?? d.orgRetentionDays
        self.placement = try c.decodeIfPresent(String.self, forKey: .placement) ?? d.placement
        self.maintenanceIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .maintenanceIntervalSeconds) ?? d.maintenanceIntervalSeconds
        self.walMaxPendingBytes = try c.decodeIfPresent(Int.self, forKey: .walMaxPendingBytes) ?? d.walMaxPendingBytes
        self.headChunkSpans = try c.decodeIfPresent(Int.self, forKey: .headChunkSpans) ?? d.headChunkSpans
        self.headMaxSpans = try c.decodeIfPresent(Int.self, forKey: .headMaxSpans) ?? d.headMaxSpans
        self.costAliases = try c.decodeIfPresent([String].self, forKey: .costAliases) ?? d.costAliases
        self.eventLoopThreads = try c.decodeIfPresent(Int.self, forKey: .eventLoopThreads)
        self.queryThreads = try c.decodeIfPresent(Int.self, forKey: .queryThreads)
        self.queryMaxRangeDays = try c.decodeIfPresent(Double.self, forKey: .queryMaxRangeDays) ?? d.queryMaxRangeDays
        self.queryMaxSeries = try c.decodeIfPresent(Int.self, forKey: .queryMaxSeries) ?? d.queryMaxSeries
        self.queryTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .queryTimeoutSeconds) ?? d.queryTimeoutSeconds
        self.queryMaxMemoryBytes = try c.decodeIfPresent(Int.self, forKey: .queryMaxMemoryBytes) ?? d.queryMaxMemoryBytes
        self.queryColumnCacheBytes = try c.decodeIfPresent(Int.self, forKey: .queryColumnCacheBytes) ?? d.queryColumnCacheBytes
        self.maxSpansPerRequest = try c.decodeIfPresent(Int.self, forKey: .maxSpansPerRequest) ?? d.maxSpansPerRequest
        self.maxAttributesPerSpan = try c.decodeIfPresent(Int.self, forKey: .maxAttributesPerSpan) ?? d.maxAttributesPerSpan
        self.maxEventsPerSpan = try c.decodeIfPresent(Int.self, forKey: .maxEventsPerSpan) ?? d.maxEventsPerSpan
        self.maxLinksPerSpan = try c.decodeIfPresent(Int.self, forKey: .maxLinksPerSpan) ?? d.maxLinksPerSpan
        self.maxAttributeValueBytes = try c.decodeIfPresent(Int.self, forKey: .maxAttributeValueBytes) ?? d.maxAttributeValueBytes
        self.roles = try c.decodeIfPresent(String.self, forKey: .roles) ?? d.roles
        self.nodeId = try c.decodeIfPresent(String.self, forKey: .nodeId)
        self.internalPort = c.contains(.internalPort)
            ? try c.decodeIfPresent(Int.self, forKey: .internalPort)
            : NodeConfiguration.defaultInternalPort
        self.advertiseHost = try c.decodeIfPresent(String.self, forKey: .advertiseHost)
        self.join = try c.decodeIfPresent([String].self, forKey: .join) ?? d.join
        self.zone = try c.decodeIfPresent(String.self, forKey: .zone) ?? d.zone
        self.replicationFactor = try c.decodeIfPresent(Int.self, forKey: .replicationFactor) ?? d.replicationFactor
        self.clusterSecret = try c.decodeIfPresent(String.self, forKey: .clusterSecret)
        self.clusterSecretFile = try c.decodeIfPresent(String.self, forKey: .clusterSecretFile)
        self.replicationPushTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .replicationPushTimeoutSeconds) ?? d.replicationPushTimeoutSeconds
        self.replicationHintAfterSeconds = try c.decodeIfPresent(Double.self, forKey: .replicationHintAfterSeconds) ?? d.replicationHintAfterSeconds
        self.replicationMaxInFlightBytesPerPeer = try c.decodeIfPresent(Int.self, forKey: .replicationMaxInFlightBytesPerPeer) ?? d.replicationMaxInFlightBytesPerPeer
        self.replicationMaxInFlightBytes = try c.decodeIfPresent(Int.self, forKey: .replicationMaxInFlightBytes) ?? d.replicationMaxInFlightBytes
        self.hintsMaxBytes = try c.decodeIfPresent(Int.self, forKey: .hintsMaxBytes) ?? d.hintsMaxBytes
        self.antiEntropyIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .antiEntropyIntervalSeconds) ?? d.antiEntropyIntervalSeconds
        self.replicaReplaceAfterSeconds = try c.decodeIfPresent(Double.self, forKey: .replicaReplaceAfterSeconds) ?? d.replicaReplaceAfterSeconds
        self.queryMaxConcurrentPerOrg = try c.decodeIfPresent(Int.self, forKey: .queryMaxConcurrentPerOrg)
        self.queryMaxQueuedPerOrg = try c.decodeIfPresent(Int.self, forKey: .queryMaxQueuedPerOrg) ?? d.queryMaxQueuedPerOrg
        self.maxInFlightBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxInFlightBodyBytes) ?? d.maxInFlightBodyBytes
        self.httpIdleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .httpIdleTimeoutSeconds) ?? d.httpIdleTimeoutSeconds
        self.httpRequestReadTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .httpRequestReadTimeoutSeconds) ?? d.httpRequestReadTimeoutSeconds
        self.httpWriteTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .httpWriteTimeoutSeconds) ?? d.httpWriteTimeoutSeconds
    }
}

/// Where a running node listens, each as `host:port`.
public struct NodeAddresses: Sendable, Equatable {
    public var otlp: String
    public var query: String
    /// Nil when the node has no gRPC listener.
    public var otlpGrpc: String?
    /// Node-to-node HTTP/2 port; nil without cluster membership.
    public var `internal`: String? = nil
    /// This node's cluster ID (nil without cluster membership).
    public var nodeID: String? = nil
}

/// A single Weft node: OTLP receiver (HTTP and gRPC), WAL, head and query API, run as one `Service`.
public final class WeftNode: Service {
    public let configuration: NodeConfiguration
    private let logger: Logger
    private let onReady: @Sendable (NodeAddresses) -> Void

    /// - Parameter onListening: called once the node is ready, with `host:port` of the OTLP/HTTP and query ports.
    public convenience init(
        configuration: NodeConfiguration,
        logger: Logger,
        onListening: @escaping @Sendable (_ otlp: String, _ query: String) -> Void = { _, _ in }
    ) {
        self.init(configuration: configuration, logger: logger, listening: { onListening($0.otlp, $0.query) })
    }

    /// - Parameter listening: called once the node is ready, with the address of every port.
    public init(configuration: NodeConfiguration, logger: Logger, listening: @escaping @Sendable (NodeAddresses) -> Void) {
        self.configuration = configuration
        self.logger = logger
        self.onReady = listening
    }

    public func run() async throws {
        let config = self.configuration
        let logger = self.logger
        guard let roles = ClusterSettings.parseRoles(config.roles) else {
            throw ClusterMembership.Failure(description: "roles '\(config.roles.prefix(80))' must be 'all' or a comma-separated list of ingest, storage, query")
        }
        let cores = System.coreCount
        let metrics = NodeMetrics()
        let options = DecodeOptions(genAI: GenAINormalizer(costAliases: config.costAliases))

        let loops = config.eventLoopThreads ?? cores
        let head = Head(configuration: .init(chunkSpans: config.headChunkSpans, stripes: loops, placement: config.placement))
        let nanosPerDay = 86_400.0 * 1e9
        let engine = StorageEngine(
            head: head,
            store: BlockStore(disk: PosixDisk(), directory: config.dataDir + "/blocks", columnCacheBytes: config.queryColumnCacheBytes),
            configuration: .init(
                placement: config.placement,
                blockOptions: BlockCodec.flushOptions(groupSpans: config.blockGroupSpans),
                compactedOptions: BlockCodec.compactionOptions(groupSpans: config.blockGroupSpans),
                compactionMaxSpans: config.compactionMaxSpans,
                retentionNanos: UInt64(config.retentionDays * nanosPerDay),
                orgRetentionNanos: config.orgRetentionDays.mapValues { UInt64($0 * nanosPerDay) },
                traceIdleNanos: UInt64(max(0, config.traceIdleSeconds) * 1e9),
                traceMaxAgeNanos: UInt64(max(0, config.traceMaxAgeSeconds) * 1e9),
                headCutSpans: config.headMaxSpans / 2
            )
        )
        let maintainerBox = Mutex<BlockMaintainer?>(nil)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        var stripes: [ObjectIdentifier: Int] = [:]
        for (i, loop) in group.makeIterator().enumerated() { stripes[ObjectIdentifier(loop)] = i }
        let queryThreadCount = config.queryThreads ?? cores
        let pool = NIOThreadPool(numberOfThreads: queryThreadCount)
        pool.start()
        let scheduler = QueryScheduler(
            pool: pool, maxRunning: queryThreadCount,
            maxRunningPerOrg: config.queryMaxConcurrentPerOrg ?? max(1, queryThreadCount / 2), maxQueuedPerOrg: config.queryMaxQueuedPerOrg
        )
        let query = QueryAPI(engine: engine, metrics: metrics, scheduler: scheduler, limits: config.queryLimits, parallelism: queryThreadCount)
        // Until the WAL is replayed, data endpoints answer 503 and /ready says so; /healthz and /metrics work.
        let gate = ReadinessGate()
        let membershipBox = Mutex<ClusterMembership?>(nil)
        let hintsBox = Mutex<HintDelivery?>(nil)
        let repairBox = Mutex<AntiEntropy?>(nil)
        // In a cluster, an ingest node replicates its writes (a node without storage has no local sink).
        let replicates = config.internalPort != nil && roles.contains(.ingest)
        // In a cluster, a query node reads the storage nodes' data (a node without storage has none of its own).
        let coordinates = config.internalPort != nil && roles.contains(.query)
        let responder: HTTPResponder = { request, loop in
            if request.path.hasPrefix("/api/cluster/") {
                return Self.admin(request, membershipBox.withLock { $0 }, on: loop)
            }
            switch Self.routing(request, roles: roles, replicates: replicates, coordinates: coordinates) {
            case .serve: break
            case .queryAPI: return query.handle(request, on: loop)
            case .answer(let response): return loop.makeSucceededFuture(response)
            }
            guard let receiver = gate.receiver else {
                switch request.path {
                case "/healthz", "/metrics": return query.handle(request, on: loop)
                case "/v1/traces":
                    return loop.makeSucceededFuture(OTLPErrors.response(
                        .serviceUnavailable, code: 14, "recovering the write-ahead log; retry shortly",
                        contentType: request.headers.first(name: "content-type"), retryAfter: 1
                    ))
                default:
                    var response = HTTPResponse.text(.serviceUnavailable, "recovering the write-ahead log\n")
                    response.headers.add(name: "retry-after", value: "1")
                    return loop.makeSucceededFuture(response)
                }
            }
            if request.path == "/flush" {
                guard request.method == .POST else {
                    return loop.makeSucceededFuture(.text(.methodNotAllowed, "use POST for /flush\n"))
                }
                guard let maintainer = maintainerBox.withLock({ $0 }) else {
                    return loop.makeSucceededFuture(.text(.serviceUnavailable, "not ready\n"))
                }
                return pool.runIfActive(eventLoop: loop) { QueryAPI.flushed(maintainer.flushNow()) }
            }
            if request.path == "/v1/traces" {
                guard request.method == .POST else {
                    return loop.makeSucceededFuture(.text(.methodNotAllowed, "use POST for /v1/traces\n"))
                }
                return receiver.handle(request, on: loop)
            }
            return query.handle(request, on: loop)
        }

        var servers: [HTTPServer] = []
        var committer: WALCommitter? = nil
        var maintainer: BlockMaintainer? = nil
        var membership: ClusterMembership? = nil
        do {
            // One budget of request-body bytes for every port and protocol.
            let budget = RequestBodyBudget(limit: max(config.maxInFlightBodyBytes, config.maxBodyBytes + GRPCFraming.prefixBytes))
            var limits = config.httpLimits(budget: budget)
            limits.onTimeout = { metrics.timedOut($0) }
            var otlpAddress = ""
            if roles.contains(.ingest) {
                let otlp = try await HTTPServer.start(
                    host: config.host, port: config.otlpPort, group: group, maxBodyBytes: config.maxBodyBytes, limits: limits, responder: responder
                )
                servers.append(otlp)
                otlpAddress = "\(config.host):\(otlp.port)"
            }
            // Grafana's streaming queries (Tempo's gRPC StreamingQuerier) arrive on the query port too;
            // a query node without storage answers them through the coordinator.
            let streaming = StreamingQuerier(query: query)
            let streamingQueries: @Sendable (HTTP2Request, any EventLoop) -> EventLoopFuture<HTTP2Response> = { request, loop in
                guard gate.receiver != nil || !roles.contains(.storage) else {
                    return loop.makeSucceededFuture(GRPCAnswers.unavailable("recovering the write-ahead log; retry shortly"))
                }
                return streaming.respond(request, on: loop)
            }
            let api = try await HTTPServer.start(
                host: config.host, port: config.queryPort, group: group, maxBodyBytes: 1 << 20, limits: limits,
                grpc: roles.contains(.query) && (roles.contains(.storage) || coordinates) ? streamingQueries : nil, responder: responder
            )
            servers.append(api)
            var addresses = NodeAddresses(otlp: otlpAddress, query: "\(config.host):\(api.port)", otlpGrpc: nil)
            let replicaStore = ReplicaStoreReference()
            // Node requests from query nodes (cluster members only).
            let nodeQueries = config.internalPort.map { _ in NodeQueryReference(threads: queryThreadCount, maxQueuedPerOrg: config.queryMaxQueuedPerOrg) }
            let hintStore = HintStoreReference()
            let syncAnswers = ReplicaSyncReference()
            if let internalPort = config.internalPort, let nodeQueries {
                let cluster = try await ClusterMembership.start(
                    configuration: config, roles: roles, port: internalPort, group: group, metrics: metrics, logger: logger, store: replicaStore,
                    queries: nodeQueries, hints: hintStore, sync: syncAnswers,
                    // Until anti-entropy runs, nothing this node holds has been compared with the other holders.
                    health: { (repairBox.withLock { $0 }?.notInSync() ?? Set(engine.heldPartitions()), hintsBox.withLock { $0 }?.log.pendingPlacements() ?? []) }
                ) { id, address in
                    await Self.localStatus(
                        id: id, address: address, roles: roles, zone: config.zone, engine: engine, ready: gate.receiver != nil || !roles.contains(.storage),
                        membership: membershipBox.withLock { $0 }, hints: hintsBox.withLock { $0 }?.log.status,
                        repair: repairBox.withLock { $0 }?.progress
                    )
                }
                membership = cluster
                membershipBox.withLock { $0 = cluster }
                Self.coordinateQueries(query, cluster: cluster, config: config, storesSpans: roles.contains(.storage))
                addresses.internal = cluster.address
                addresses.nodeID = cluster.settings.nodeID.rawValue
            }
            if roles.contains(.ingest), let grpcPort = config.otlpGrpcPort {
                // Until the gate opens, Export answers UNAVAILABLE with RetryInfo.
                let grpc = try await HTTPServer.startHTTP2(
                    // The body is the message plus its 5-byte length prefix.
                    host: config.host, port: grpcPort, group: group, maxBodyBytes: config.maxBodyBytes + GRPCFraming.prefixBytes, bodyBudget: budget,
                    writeTimeout: limits.writeTimeout, onWriteTimeout: { metrics.timedOut(.write) },
                    service: OTLPGRPC.service(receiver: { gate.receiver })
                )
                servers.append(grpc)
                addresses.otlpGrpc = "\(config.host):\(grpc.port)"
            }
            logger.info("recovering", metadata: Self.metadata(addresses))
            var localSink: LocalSpanSink? = nil

            if roles.contains(.storage) {
                // Open the blocks and rebuild the head from the WAL (off the cooperative pool), then take traffic.
                let walCommitter = try await pool.runIfActive { () throws -> WALCommitter in
                    let disk = PosixDisk()
                    try disk.makeDirectory(config.dataDir)
                    let wal = WAL(disk: disk, directory: config.dataDir + "/wal", configuration: .init(segmentSize: config.walSegmentBytes))
                    let started = ContinuousClock.now
                    let report = try engine.open(wal: wal, options: options, limits: config.spanLimits, nowNanos: WallClock.nowNanos())
                    if !report.blocks.removedFiles.isEmpty {
                        logger.info("removed leftovers of interrupted block writes and compactions", metadata: ["files": "\(report.blocks.removedFiles)"])
                    }
                    if !report.blocks.corrupt.isEmpty {
                        logger.error("block metadata failed verification; those blocks are not served", metadata: ["files": "\(report.blocks.corrupt)"])
                    }
                    if let tail = report.wal.truncatedTail {
                        logger.warning("dropped a torn or corrupt WAL tail", metadata: [
                            "segment": "\(tail.segment)", "offset": "\(tail.offset)", "bytes": "\(tail.droppedBytes)",
                        ])
                    }
                    for record in report.quarantined {
                        metrics.walQuarantined.increment()
                        logger.error("a WAL record could not be replayed; it was set aside and the rest replayed", metadata: [
                            "segment": "\(record.segment)", "record": "\(record.index)", "reason": "\(record.reason)",
                            "copy": "\(record.path ?? "none")",
                        ])
                    }
                    if report.refusedSpans > 0 {
                        logger.warning("replayed spans over the span limits or past retention were dropped", metadata: ["spans": "\(report.refusedSpans)"])
                    }
                    logger.info("recovered", metadata: [
                        "blocks": "\(report.blocks.blocks.count)", "blockSpans": "\(report.blocks.blocks.reduce(0) { $0 + $1.spans })",
                        "segments": "\(report.wal.segments)", "records": "\(report.wal.records)", "spans": "\(report.spans)",
                        "skippedRecords": "\(report.skippedRecords)", "duplicateSpans": "\(report.duplicateSpans)", "ms": "\(Int((ContinuousClock.now - started) / .milliseconds(1)))",
                    ])
                    // The committer takes ownership of the replayed log.
                    return WALCommitter(wal: wal, head: head, maxPendingBytes: config.walMaxPendingBytes, metrics: metrics)
                }
                committer = walCommitter
                let blockMaintainer = BlockMaintainer(
                    engine: engine, committer: walCommitter, metrics: metrics, logger: logger,
                    settings: .init(
                        maxSegmentAge: .milliseconds(Int64(config.blockMaxAgeSeconds * 1000)),
                        cutMinSpans: config.headChunkSpans,
                        interval: .milliseconds(Int64(max(0.01, config.maintenanceIntervalSeconds) * 1000)),
                        retiredGrace: .seconds(60)
                    )
                )
                maintainer = blockMaintainer
                maintainerBox.withLock { $0 = blockMaintainer }
                let sink = LocalSpanSink(
                    head: head, committer: walCommitter, placement: engine.configuration.placement, stripes: stripes,
                    headMaxSpans: config.headMaxSpans
                )
                replicaStore.set(sink.replicaStore)
                nodeQueries?.set(query)
                localSink = sink
                if let membership {
                    syncAnswers.set(AntiEntropy.answers(engine, threads: pool))
                    let antiEntropy = AntiEntropy(
                        engine: engine, shell: membership.shell, me: membership.settings.nodeID, pool: membership.replicationPool,
                        secret: membership.settings.secret,
                        pushTimeout: .milliseconds(Int64(max(1, config.replicationPushTimeoutSeconds * 2) * 1000)), threads: pool, loop: group.next(),
                        registry: metrics.registry, logger: logger,
                        settings: .init(
                            interval: .milliseconds(Int64(max(0.2, config.antiEntropyIntervalSeconds) * 1000)),
                            replaceAfterNanos: UInt64(max(0, config.replicaReplaceAfterSeconds) * 1_000_000_000),
                            expectsPeers: !membership.settings.seeds.isEmpty
                        )
                    )
                    repairBox.withLock { $0 = antiEntropy }
                    replicaStore.onRepair { org, placement in antiEntropy.received(repairOf: PartitionKey(org: org, placement: placement.rawValue)) }
                    let delivery = try await Self.startHintDelivery(
                        config: config, membership: membership, store: hintStore, pool: pool, group: group, metrics: metrics, logger: logger,
                        alsoRepair: { antiEntropy.repairNow() }
                    )
                    hintsBox.withLock { $0 = delivery }
                }
            }
            let sink: (any SpanSink)?
            if let membership, roles.contains(.ingest) {
                sink = ReplicatedSpanSink(
                    localNode: membership.settings.nodeID, rings: { [shell = membership.shell] in shell.writeRings },
                    transport: HTTP2ReplicaTransport(
                        pool: membership.replicationPool, secret: membership.settings.secret.map { (ClusterSettings.secretHeader, $0) },
                        timeout: .milliseconds(Int64(max(0.05, config.replicationPushTimeoutSeconds) * 1000))
                    ),
                    local: localSink.map(\.replicaWrite),
                    budget: PushBudget(maxBytes: config.replicationMaxInFlightBytes, maxBytesPerPeer: config.replicationMaxInFlightBytesPerPeer),
                    metrics: ReplicationMetrics(registry: metrics.registry, logger: logger),
                    hintAfter: .milliseconds(Int64(max(0, config.replicationHintAfterSeconds) * 1000))
                )
            } else {
                sink = localSink
            }
            if let sink {
                gate.open(OTLPReceiver(
                    sink: sink, metrics: metrics, options: options, maxDecodedBytes: config.maxBodyBytes,
                    limits: config.spanLimits, retentionNanos: { [engineConfiguration = engine.configuration] in engineConfiguration.retention(of: $0) }
                ))
            }
            // A storage node takes ring ownership once its data is back; other roles own nothing.
            await membership?.shell.activate()
            repairBox.withLock { $0 }?.start()
            logger.info("listening", metadata: Self.metadata(addresses))
            self.onReady(addresses)
            // Serve until SIGTERM/SIGINT (or the group is cancelled).
            try? await gracefulShutdown()
        } catch {
            logger.error("cannot start: \(error)")
            await membership?.shutdown()
            for s in servers { await s.shutdown() }
            // Servers hold promises of the event loops: release them while the loops still run.
            servers.removeAll()
            await maintainer?.shutdown()
            await committer?.shutdown()
            try? await pool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }

        logger.info("shutting down: finishing in-flight requests")
        await repairBox.withLock { $0 }?.shutdown()
        await hintsBox.withLock { $0 }?.shutdown()
        await membership?.shutdown()
        for s in servers { await s.shutdown() }
        // Servers hold promises of the event loops: release them while the loops still run.
        servers.removeAll()
        await maintainer?.shutdown()
        await committer?.shutdown()
        try? await pool.shutdownGracefully()
        try? await group.shutdownGracefully()
        logger.info("stopped", metadata: ["spans": "\(head.stats.spans)"])
    }

    private static func metadata(_ a: NodeAddresses) -> Logger.Metadata {
        var m: Logger.Metadata = ["otlp": "\(a.otlp)", "query": "\(a.query)"]
        if let grpc = a.otlpGrpc { m["grpc"] = "\(grpc)" }
        if let i = a.internal { m["internal"] = "\(i)" }
        if let id = a.nodeID { m["node"] = "\(id)" }
        return m
    }

    /// Sends the queries of `query` to every storage node of `cluster`. Each node is given half the
    /// query API's timeout before its placements go to another holder (so a retry still fits in
    /// the query's deadline); a node slower than its recent p95 is hedged.
    /// - Parameter storesSpans: whether this node has the storage role.
    private static func coordinateQueries(_ query: QueryAPI, cluster: ClusterMembership, config: NodeConfiguration, storesSpans: Bool) {
        let timeout = Duration.milliseconds(Int64(min(max(1, config.queryLimits.timeoutSeconds), 86_400) * 500))
        let health = FanoutHealth(metrics: FanoutMetrics(registry: query.metrics.registry))
        let catalogs = CatalogCache()
        query.coordinators.set({ cluster.readCoordinator(timeout: timeout, health: health, catalogs: catalogs) }, storesSpans: storesSpans)
    }

    /// Answers `/api/cluster/...` from the admin API (404 on a node without cluster membership).
    static func admin(_ request: HTTPRequest, _ membership: ClusterMembership?, on loop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        guard let membership else {
            return loop.makeSucceededFuture(QueryAPI.json(.notFound, QueryResponses.error("this node runs without cluster membership (no internal port)")))
        }
        let promise = loop.makePromise(of: HTTPResponse.self)
        let (method, path, query) = (request.method.rawValue, request.path, request.query)
        promise.completeWithTask {
            guard let answer = await membership.admin.handle(method: method, path: path, query: query) else {
                return QueryAPI.json(.notFound, QueryResponses.error("no such endpoint: \(path)"))
            }
            return QueryAPI.json(HTTPResponseStatus(statusCode: answer.status), answer.body)
        }
        return promise.futureResult
    }

    /// How a request is served given the node's roles.
    enum RoleRouting {
        /// As on a full node.
        case serve
        /// By the query API directly (health, metrics, build info on a node without storage).
        case queryAPI
        /// Refused or answered here.
        case answer(HTTPResponse)
    }

    /// - Parameters:
    ///   - replicates: whether this node's writes go to the replicas of a cluster (then an ingest
    ///     node without storage takes them too).
    ///   - coordinates: whether this node's queries read the cluster's storage nodes (then a query
    ///     node without storage answers them too).
    static func routing(_ request: HTTPRequest, roles: NodeRoles, replicates: Bool = false, coordinates: Bool = false) -> RoleRouting {
        let path = request.path
        switch path {
        case "/healthz", "/metrics", "/api/echo", "/api/status/buildinfo":
            return roles.contains(.storage) ? .serve : .queryAPI
        case "/ready":
            // Nodes without storage have nothing to recover: ready once they listen.
            return roles.contains(.storage) ? .serve : .answer(.text(.ok, "ready\n"))
        case "/v1/traces":
            guard roles.contains(.ingest) else {
                return .answer(OTLPErrors.response(
                    .notFound, code: 12, "this node does not run the ingest role (roles: \(roles))", contentType: request.headers.first(name: "content-type")
                ))
            }
            if replicates { return .serve }
        case "/flush":
            break
        default:
            guard roles.contains(.query) else {
                return .answer(QueryAPI.json(.notFound, QueryResponses.error("this node does not run the query role (roles: \(roles))")))
            }
            if coordinates && !roles.contains(.storage) { return .queryAPI }
        }
        guard !roles.contains(.storage) else { return .serve }
        let message = "this node (roles: \(roles)) stores no spans; writes and queries need a node with the storage role"
        if path == "/v1/traces" {
            return .answer(OTLPErrors.response(
                .serviceUnavailable, code: 14, message, contentType: request.headers.first(name: "content-type"), retryAfter: 1
            ))
        }
        return .answer(QueryAPI.json(.serviceUnavailable, QueryResponses.error(message)))
    }

    /// Opens the hints log (`<data-dir>/hints/`), takes hints for other replicas into it, and starts delivering them.
    static func startHintDelivery(
        config: NodeConfiguration, membership: ClusterMembership, store: HintStoreReference, pool: NIOThreadPool, group: any EventLoopGroup, metrics: NodeMetrics,
        logger: Logger, alsoRepair: @escaping @Sendable () -> Void
    ) async throws -> HintDelivery {
        let log = try await pool.runIfActive {
            try HintLog(
                disk: PosixDisk(), directory: config.dataDir + "/hints", segmentBytes: min(config.walSegmentBytes, 16 << 20),
                settings: HintQueue.Settings(maxBytes: config.hintsMaxBytes)
            )
        }
        let pending = log.status
        if pending.pending > 0 { logger.info("hints to deliver", metadata: ["hints": "\(pending.pending)", "bytes": "\(pending.pendingBytes)"]) }
        let delivery = HintDelivery(
            log: log, transport: HTTP2ReplicaTransport(
                pool: membership.replicationPool, secret: membership.settings.secret.map { (ClusterSettings.secretHeader, $0) },
                timeout: .milliseconds(Int64(max(0.05, config.replicationPushTimeoutSeconds) * 1000))
            ), ring: { [shell = membership.shell] in shell.ring }, loop: group.next(), registry: metrics.registry, logger: logger
        )
        store.set(store: { hint, loop in
            pool.runIfActive(eventLoop: loop) {
                try log.append(hint) ? ReplicaStoreOutcome.durable : .full("the hints log is full (hintsMaxBytes \(config.hintsMaxBytes))")
            }.flatMapErrorThrowing { error in .unavailable("cannot write the hints log: \(error)") }
        }, repair: { target in
            delivery.repair(target)
            alsoRepair()
        })
        delivery.start(interval: .milliseconds(250))
        return delivery
    }

    /// One node's status for `weftctl status`, as a JSON object.
    static func localStatus(
        id: NodeID, address: NodeAddress, roles: NodeRoles, zone: String, engine: StorageEngine, ready: Bool, membership: ClusterMembership?,
        hints: HintStatus? = nil, repair: AntiEntropy.Progress? = nil
    ) async -> [UInt8] {
        let view = await membership?.shell.view()
        let stats = engine.head.stats
        let blocks = engine.blocks
        var w = JSONWriter()
        w.object { o in
            o.key("id")
            o.string(id.rawValue)
            o.key("address")
            o.string(address.description)
            o.key("roles")
            o.array { a in for r in roles.names { a.string(r) } }
            o.key("zone")
            o.string(zone)
            o.key("ringVersion")
            o.number(membership?.shell.ring.version ?? 0)
            o.key("ready")
            o.bool(ready)
            o.key("headSpans")
            o.number(stats.spans)
            o.key("blocks")
            o.number(blocks.count)
            o.key("blockSpans")
            o.number(blocks.reduce(0) { $0 + $1.spans })
            o.key("diskBytes")
            o.number(blocks.reduce(0) { $0 + $1.bytes })
            o.key("walBacklogSegments")
            o.number(max(0, engine.head.segments().count - 1))
            if let hints { HintDelivery.write(hints, into: &o) }
            if let repair { AntiEntropy.write(repair, into: &o) }
            o.key("unreachable")
            o.array { a in
                for m in view?.members ?? [] where !m.isSelf && (m.update.status == .dead || m.update.status == .suspect) {
                    a.string(m.update.node.rawValue)
                }
            }
        }
        return w.bytes
    }
}

/// Holds the OTLP receiver once recovery has finished; before that, the node is not ready.
final class ReadinessGate: Sendable {
    private let state = Mutex<OTLPReceiver?>(nil)

    var receiver: OTLPReceiver? { self.state.withLock { $0 } }

    func open(_ receiver: OTLPReceiver) { self.state.withLock { $0 = receiver } }
}
