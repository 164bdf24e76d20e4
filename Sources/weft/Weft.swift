import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import WeftServer

@main
struct Weft: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weft",
        abstract: "Weft: a store for OpenTelemetry traces, built for high-cardinality LLM-gateway traffic.",
        subcommands: [Serve.self, Dev.self]
    )
}

struct ServerOptions: ParsableArguments {
    @Option(help: "JSON config file for everything else (see README).")
    var config: String?
    @Option(help: "Data directory (WAL). Default ./weft-data.")
    var dataDir: String?
    @Option(help: "Address to bind. Default 127.0.0.1.")
    var host: String?
    @Option(help: "OTLP/HTTP port; 0 picks a free port. Default 4318.")
    var otlpPort: Int?
    @Option(help: "Query API port; 0 picks a free port. Default 3200.")
    var queryPort: Int?
    @Option(help: "OTLP/gRPC port (HTTP/2 only); 0 picks a free port. Default 4317.")
    var otlpGrpcPort: Int?
    @Option(help: "Roles: all (default), or a comma-separated list of ingest, storage, query.")
    var roles: String?
    @Option(help: "This node's cluster ID (a storage node keeps it in its data directory). Default: generated once.")
    var nodeId: String?
    @Option(help: "Node-to-node HTTP/2 port; 0 picks a free port. Default 9400.")
    var internalPort: Int?
    @Option(help: "Host other nodes use to reach this one. Default: --host (or the machine's name for 0.0.0.0).")
    var advertiseHost: String?
    @Option(help: "Comma-separated HOST:PORT of cluster members to join (a DNS name may resolve to several).")
    var join: String?
    @Option(help: "Failure domain of this node (replica sets prefer distinct zones).")
    var zone: String?
    @Option(help: "Copies of each trace. Default 3 (capped by the number of storage nodes).")
    var replicationFactor: Int?
    @Option(help: "Seconds between anti-entropy sync rounds with the other replicas. Default 300.")
    var antiEntropyIntervalSeconds: Double?
    @Option(help: "Seconds a storage node may be dead before its placements are copied to replacement nodes. Default 600.")
    var replicaReplaceAfterSeconds: Double?
    @Option(help: "Shared secret required on node-to-node requests.")
    var clusterSecret: String?
    @Option(help: "File holding the cluster secret.")
    var clusterSecretFile: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func nodeConfiguration() throws -> NodeConfiguration {
        var c: NodeConfiguration
        if let path = self.config {
            c = try NodeConfiguration.load(from: path)
        } else {
            c = NodeConfiguration()
            c.otlpGrpcPort = NodeConfiguration.defaultOTLPGrpcPort
            c.internalPort = NodeConfiguration.defaultInternalPort
        }
        if let v = self.dataDir { c.dataDir = v }
        if let v = self.host { c.host = v }
        if let v = self.otlpPort { c.otlpPort = v }
        if let v = self.queryPort { c.queryPort = v }
        if let v = self.otlpGrpcPort { c.otlpGrpcPort = v }
        if let v = self.roles { c.roles = v }
        if let v = self.nodeId { c.nodeId = v }
        if let v = self.internalPort { c.internalPort = v }
        if let v = self.advertiseHost { c.advertiseHost = v }
        if let v = self.join { c.join = v.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        if let v = self.zone { c.zone = v }
        if let v = self.replicationFactor { c.replicationFactor = v }
        if let v = self.antiEntropyIntervalSeconds { c.antiEntropyIntervalSeconds = v }
        if let v = self.replicaReplaceAfterSeconds { c.replicaReplaceAfterSeconds = v }
        if let v = self.clusterSecret { c.clusterSecret = v }
        if let v = self.clusterSecretFile { c.clusterSecretFile = v }
        return c
    }
}

/// Runs a node until SIGTERM/SIGINT; prints the bound addresses on one line for scripts.
func runNode(_ configuration: NodeConfiguration, logLevel: String, banner: (@Sendable (NodeAddresses) -> Void)? = nil) async throws {
    let level = Logger.Level(rawValue: logLevel) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    let logger = Logger(label: "weft")
    let node = WeftNode(configuration: configuration, logger: logger, listening: { addresses in
        // `otlp=` and `query=` come first and keep their form; scripts parse this line. A node
        // without the ingest role has no OTLP listener: `otlp=none`, never an empty field.
        print(
            "listening otlp=\(addresses.otlp.isEmpty ? "none" : addresses.otlp) query=\(addresses.query)" + (addresses.otlpGrpc.map { " grpc=\($0)" } ?? "")
                + (addresses.internal.map { " internal=\($0)" } ?? "") + (addresses.nodeID.map { " node=\($0)" } ?? "")
        )
        banner?(addresses)
        fflush(nil)
    })
    let group = ServiceGroup(configuration: .init(
        services: [.init(service: node)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    ))
    try await group.run()
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a node.")
    @OptionGroup var options: ServerOptions

    func run() async throws {
        try await runNode(try self.options.nodeConfiguration(), logLevel: self.options.logLevel)
    }
}

struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a ready-to-use local node (or, with --nodes N, a local cluster) with data under ./weft-data."
    )
    @OptionGroup var options: ServerOptions
    @Option(help: "Start a cluster of this many nodes on this machine: node 1 runs every role, the rest are storage nodes.")
    var nodes: Int = 1

    func validate() throws {
        guard (1...64).contains(self.nodes) else { throw ValidationError("--nodes must be between 1 and 64") }
    }

    func run() async throws {
        let config = try self.options.nodeConfiguration()
        if self.nodes > 1 {
            try await DevCluster(
                nodes: self.nodes, base: config.dataDir, host: config.host, otlpPort: config.otlpPort, queryPort: config.queryPort,
                grpcPort: config.otlpGrpcPort ?? NodeConfiguration.defaultOTLPGrpcPort, logLevel: self.options.logLevel,
                replicationFactor: self.options.replicationFactor
            ).run()
        }
        try await runNode(config, logLevel: self.options.logLevel) { addresses in
            let (otlp, query) = (addresses.otlp, addresses.query)
            let grpc = addresses.otlpGrpc.map {
                "\n  Or OTLP/gRPC: OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://\($0)"
            } ?? ""
            print("""

            Weft is running (data in \(config.dataDir)).
              Send traces (OTLP/HTTP, protobuf or JSON):
                export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://\(otlp)/v1/traces
                export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\(grpc)
              Generate LLM-gateway traffic:   swift run -c release weftctl load --url http://\(otlp)/v1/traces
              Search:                          curl 'http://\(query)/api/search?tags=service.name=tfy-llm-gateway'
              Grafana: add a Tempo data source with URL http://\(query)
              Stop with Ctrl-C.

            """)
        }
    }
}
