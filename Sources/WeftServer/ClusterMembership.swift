#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Logging
import Foundation
import WeftRuntime
import NIOCore
import Synchronization
import WeftCluster
import WeftClusterService
import WeftHTTP2
import WeftQueryService
import WeftStorageEngine

/// A node's part in the cluster: the internal HTTP/2 port, the membership shell that runs SWIM over
/// it, and the admin API served under `/api/cluster/` on the query port.
final class ClusterMembership: Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let shell: MembershipShell
    let admin: AdminAPI
    let settings: ClusterSettings
    private let pool: HTTP2ClientPool
    /// Connections that carry replicated writes, apart from membership traffic so pushes never delay probes.
    let replicationPool: HTTP2ClientPool
    /// Connections that carry cluster queries to storage nodes.
    let queryPool: HTTP2ClientPool
    private let queries: NodeQueryReference
    private let server: HTTPServer

    private init(
        shell: MembershipShell, admin: AdminAPI, settings: ClusterSettings, pool: HTTP2ClientPool, replicationPool: HTTP2ClientPool, queryPool: HTTP2ClientPool,
        queries: NodeQueryReference, server: HTTPServer
    ) {
        self.shell = shell
        self.admin = admin
        self.settings = settings
        self.pool = pool
        self.replicationPool = replicationPool
        self.queryPool = queryPool
        self.queries = queries
        self.server = server
    }

    /// `host:port` of the internal port.
    var address: String { self.settings.address.description }

    /// Binds the internal port, then starts membership (joining through the seeds).
    /// - Parameters:
    ///   - store: where pushed parts are stored once this node's WAL is replayed (storage role).
    ///   - queries: this node's query API once its WAL is replayed (storage role), for cluster queries.
    ///   - hints: where hints for other replicas are kept once the hints log is open (storage role).
    ///   - sync: this node's anti-entropy answers once its WAL is replayed (storage role).
    ///   - health: what its catalog marks (placements it lacks spans of, hints pending for others).
    ///   - localStatus: this node's status as a JSON object (for `weftctl status`).
    static func start(
        configuration config: NodeConfiguration, roles: NodeRoles, port: Int, group: any EventLoopGroup, metrics: NodeMetrics,
        logger: Logger, store: ReplicaStoreReference, queries: NodeQueryReference, hints: HintStoreReference, sync: ReplicaSyncReference,
        health: @escaping @Sendable () -> (lacking: Set<PartitionKey>, pendingHints: [PlacementCatalog.PendingHints]),
        localStatus: @escaping @Sendable (NodeID, NodeAddress) async -> [UInt8]
    ) async throws -> ClusterMembership {
        let nodeID = try NodeIdentity.resolve(requested: config.nodeId, dataDir: roles.contains(.storage) ? config.dataDir : nil)
        guard let zone = Zone(config.zone) else { throw Failure(description: "zone '\(config.zone.prefix(80))' must be at most 64 printable characters") }
        guard config.replicationFactor >= 1 else { throw Failure(description: "replicationFactor must be at least 1") }
        let secret = try Self.secret(config)
        let reference = ShellReference()
        let identity = Mutex<(NodeID, NodeAddress)?>(nil)
        var router = HTTP2Router()
        InternalAPI.install(into: &router, shell: reference, secret: secret) {
            guard let (id, address) = identity.withLock({ $0 }) else { return Array("{}".utf8) }
            return await localStatus(id, address)
        }
        PushAPI.install(into: &router, roles: roles, secret: secret, store: store)
        StorageQueryRoutes.install(into: &router, roles: roles, secret: secret, query: queries, health: health)
        HintAPI.install(into: &router, roles: roles, secret: secret, hints: hints)
        SyncAPI.install(into: &router, roles: roles, secret: secret, answers: sync)
        // A pushed part is at most about as large as the export it came from.
        let maxBodyBytes = max(8 << 20, config.maxBodyBytes + (config.maxBodyBytes >> 2))
        let server: HTTPServer
        do {
            server = try await HTTPServer.startHTTP2(host: config.host, port: port, group: group, maxBodyBytes: maxBodyBytes, service: router.service)
        } catch where port == NodeConfiguration.defaultInternalPort && config.join.isEmpty {
            // The default port is taken (another node on this machine): a lone node can use any port.
            logger.warning("internal port \(port) is in use; using a free port instead (pass --internal-port to choose)")
            server = try await HTTPServer.startHTTP2(host: config.host, port: 0, group: group, maxBodyBytes: maxBodyBytes, service: router.service)
        }
        let advertised = config.advertiseHost ?? (["0.0.0.0", "::", ""].contains(config.host) ? Self.hostName() : config.host)
        guard let address = NodeAddress(host: advertised, port: UInt16(server.port)) else {
            await server.shutdown()
            throw Failure(description: "cannot advertise host '\(advertised.prefix(80))'")
        }
        let settings = ClusterSettings(
            nodeID: nodeID, roles: roles, address: address, seeds: config.join, zone: zone,
            replicationFactor: config.replicationFactor, secret: secret
        )
        var clientConfiguration = HTTP2ClientConfiguration()
        clientConfiguration.connectTimeout = .seconds(1)
        clientConfiguration.pingInterval = .seconds(2)
        clientConfiguration.pingTimeout = .seconds(2)
        let pool = HTTP2ClientPool(group: group, configuration: clientConfiguration)
        let seeds = try Self.resolve(config.join, logger: logger)
        let shell = MembershipShell(
            settings: settings, pool: pool, metrics: ClusterMetrics(registry: metrics.registry), logger: logger, seeds: seeds,
            wallClock: { WallClock.nowNanos() }
        )
        identity.withLock { $0 = (nodeID, address) }
        reference.set(shell)
        await shell.start()
        let admin = AdminAPI(shell: shell, pool: pool, secret: secret, hints: hints) { await localStatus(nodeID, address) }
        var replicationConfiguration = clientConfiguration
        replicationConfiguration.maxConcurrentStreams = 256
        let replicationPool = HTTP2ClientPool(group: group, configuration: replicationConfiguration)
        let queryPool = HTTP2ClientPool(group: group, configuration: replicationConfiguration)
        return ClusterMembership(
            shell: shell, admin: admin, settings: settings, pool: pool, replicationPool: replicationPool, queryPool: queryPool, queries: queries, server: server
        )
    }

    /// Leaves the membership, then closes the internal port and the peer connections.
    func shutdown() async {
        await self.shell.stop()
        await self.server.shutdown()
        await self.pool.shutdown()
        await self.replicationPool.shutdown()
        await self.queryPool.shutdown()
        await self.queries.shutdown()
    }

    static func secret(_ config: NodeConfiguration) throws -> String? {
        if let secret = config.clusterSecret, !secret.isEmpty { return secret }
        guard let path = config.clusterSecretFile else { return nil }
        guard let f = fopen(path, "r") else { throw Failure(description: "cannot read the cluster secret file \(path)") }
        defer { fclose(f) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = fread(&buffer, 1, buffer.count, f)
        let text = String(decoding: buffer[0..<max(0, n)], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw Failure(description: "the cluster secret file \(path) is empty") }
        return text
    }

    /// Each seed `HOST:PORT` becomes one address per IP the host resolves to (a Kubernetes headless
    /// service names every pod); a name that does not resolve yet is kept as it is.
    static func resolve(_ seeds: [String], logger: Logger) throws -> [NodeAddress] {
        var out: [NodeAddress] = []
        for seed in seeds {
            guard let (host, port) = ClusterSettings.splitHostPort(seed) else {
                throw Failure(description: "--join '\(seed.prefix(80))' is not HOST:PORT")
            }
            let ips = Self.lookup(host)
            if ips.isEmpty { logger.warning("seed \(seed) does not resolve yet; will keep trying it by name") }
            for ip in ips.isEmpty ? [host] : ips {
                if let address = NodeAddress(host: ip, port: port), !out.contains(address) { out.append(address) }
            }
        }
        return out
    }

    /// The IPv4 and IPv6 addresses of `host` (getaddrinfo), in the resolver's order.
    static func lookup(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var ips: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let ip = String(cString: buffer)
                if !ips.contains(ip) { ips.append(ip) }
            }
            cursor = info.pointee.ai_next
        }
        return ips
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(cString: buffer)
    }
}
