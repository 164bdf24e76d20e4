import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import WeftHTTP2
import WeftModel
import WeftOTLP
import WeftQuery
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
    /// WAL segment size before rolling to a new file; each closed segment becomes blocks (one per org).
    public var walSegmentBytes: Int = 64 << 20
    /// Close the open WAL segment (cutting the head into blocks) once it is this many seconds old.
    public var blockMaxAgeSeconds: Double = 300
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
    public var queryColumnCacheBytes: Int = 1 << 30

    public init() {}

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
    }
}

/// Where a running node listens, each as `host:port`.
public struct NodeAddresses: Sendable, Equatable {
    public var otlp: String
    public var query: String
    /// Nil when the node has no gRPC listener.
    public var otlpGrpc: String?
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
        let cores = System.coreCount
        let metrics = NodeMetrics()
        let options = DecodeOptions(genAI: GenAINormalizer(costAliases: config.costAliases))

        let loops = config.eventLoopThreads ?? cores
        let head = Head(configuration: .init(chunkSpans: config.headChunkSpans, stripes: loops))
        let nanosPerDay = 86_400.0 * 1e9
        let engine = StorageEngine(
            head: head,
            store: BlockStore(disk: PosixDisk(), directory: config.dataDir + "/blocks", columnCacheBytes: config.queryColumnCacheBytes),
            configuration: .init(
                placement: config.placement,
                blockOptions: .init(zstdLevel: 3, groupSpans: config.blockGroupSpans),
                compactedOptions: .init(zstdLevel: 9, groupSpans: config.blockGroupSpans),
                compactionMaxSpans: config.compactionMaxSpans,
                retentionNanos: UInt64(config.retentionDays * nanosPerDay),
                orgRetentionNanos: config.orgRetentionDays.mapValues { UInt64($0 * nanosPerDay) }
            )
        )
        let maintainerBox = Mutex<BlockMaintainer?>(nil)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        var stripes: [ObjectIdentifier: Int] = [:]
        for (i, loop) in group.makeIterator().enumerated() { stripes[ObjectIdentifier(loop)] = i }
        let queryThreadCount = config.queryThreads ?? cores
        let pool = NIOThreadPool(numberOfThreads: queryThreadCount)
        pool.start()
        let query = QueryAPI(engine: engine, metrics: metrics, pool: pool, limits: config.queryLimits, parallelism: queryThreadCount)
        // Until the WAL is replayed, data endpoints answer 503 and /ready says so; /healthz and /metrics work.
        let gate = ReadinessGate()
        let responder: HTTPResponder = { request, loop in
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
        do {
            let otlp = try await HTTPServer.start(host: config.host, port: config.otlpPort, group: group, maxBodyBytes: config.maxBodyBytes, responder: responder)
            servers.append(otlp)
            let api = try await HTTPServer.start(host: config.host, port: config.queryPort, group: group, maxBodyBytes: 1 << 20, responder: responder)
            servers.append(api)
            var addresses = NodeAddresses(otlp: "\(config.host):\(otlp.port)", query: "\(config.host):\(api.port)", otlpGrpc: nil)
            if let grpcPort = config.otlpGrpcPort {
                // Until the gate opens, Export answers UNAVAILABLE with RetryInfo.
                let grpc = try await HTTPServer.startHTTP2(
                    // The body is the message plus its 5-byte length prefix.
                    host: config.host, port: grpcPort, group: group, maxBodyBytes: config.maxBodyBytes + GRPCFraming.prefixBytes,
                    service: OTLPGRPC.service(receiver: { gate.receiver })
                )
                servers.append(grpc)
                addresses.otlpGrpc = "\(config.host):\(grpc.port)"
            }
            logger.info("recovering", metadata: Self.metadata(addresses))

            // Open the blocks and rebuild the head from the WAL (off the cooperative pool), then take traffic.
            let walCommitter = try await pool.runIfActive { () throws -> WALCommitter in
                let disk = PosixDisk()
                try disk.makeDirectory(config.dataDir)
                let wal = WAL(disk: disk, directory: config.dataDir + "/wal", configuration: .init(segmentSize: config.walSegmentBytes))
                let started = ContinuousClock.now
                let report = try engine.open(wal: wal, options: options)
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
                if report.undecodable > 0 {
                    logger.error("WAL records that no longer decode were skipped", metadata: ["records": "\(report.undecodable)"])
                }
                logger.info("recovered", metadata: [
                    "blocks": "\(report.blocks.blocks.count)", "blockSpans": "\(report.blocks.blocks.reduce(0) { $0 + $1.spans })",
                    "segments": "\(report.wal.segments)", "records": "\(report.wal.records)", "spans": "\(report.spans)",
                    "skippedRecords": "\(report.skippedRecords)", "ms": "\(Int((ContinuousClock.now - started) / .milliseconds(1)))",
                ])
                // The committer takes ownership of the replayed log.
                return WALCommitter(wal: wal, head: head, maxPendingBytes: config.walMaxPendingBytes, metrics: metrics)
            }
            committer = walCommitter
            let blockMaintainer = BlockMaintainer(
                engine: engine, committer: walCommitter, metrics: metrics, logger: logger,
                settings: .init(
                    maxSegmentAge: .milliseconds(Int64(config.blockMaxAgeSeconds * 1000)),
                    interval: .milliseconds(Int64(max(0.01, config.maintenanceIntervalSeconds) * 1000)),
                    retiredGrace: .seconds(60)
                )
            )
            maintainer = blockMaintainer
            maintainerBox.withLock { $0 = blockMaintainer }
            gate.open(OTLPReceiver(
                head: head, committer: walCommitter, metrics: metrics, options: options,
                maxDecodedBytes: config.maxBodyBytes, stripes: stripes, headMaxSpans: config.headMaxSpans
            ))
            logger.info("listening", metadata: Self.metadata(addresses))
            self.onReady(addresses)
            // Serve until SIGTERM/SIGINT (or the group is cancelled).
            try? await gracefulShutdown()
        } catch {
            logger.error("cannot start: \(error)")
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
        return m
    }
}

/// Holds the OTLP receiver once recovery has finished; before that, the node is not ready.
final class ReadinessGate: Sendable {
    private let state = Mutex<OTLPReceiver?>(nil)

    var receiver: OTLPReceiver? { self.state.withLock { $0 } }

    func open(_ receiver: OTLPReceiver) { self.state.withLock { $0 = receiver } }
}
