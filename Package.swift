// swift-tools-version: 6.0
import PackageDescription

let nio = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")

let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "weft",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "weft", targets: ["weft"]),
        .executable(name: "weftctl", targets: ["weftctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        // Layer 0: pure (no sockets, clocks, threads or unseeded randomness).
        .target(name: "WeftModel", swiftSettings: settings),
        .target(name: "WeftOTLP", dependencies: ["WeftModel"], swiftSettings: settings),
        .target(name: "CWeftCRC", cSettings: [.unsafeFlags(["-gdwarf-4"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Mergeable partial aggregates (quantile sketch, summaries) and their byte codec: what a coordinator merges.
        .target(name: "WeftAggregates", dependencies: ["WeftModel"], swiftSettings: settings),
        .target(name: "WeftStorageEngine", dependencies: ["WeftModel", "WeftOTLP", "WeftAggregates", "CWeftCRC", "CZstd"], swiftSettings: settings),
        .target(name: "WeftQuery", dependencies: ["WeftModel", "WeftOTLP", "WeftAggregates", "WeftStorageEngine"], swiftSettings: settings),
        .target(name: "WeftLoad", dependencies: ["WeftModel", "WeftOTLP"], swiftSettings: settings),
        // Cluster membership: the ring CRDT, replica lookup and the SWIM state machine.
        .target(name: "WeftCluster", dependencies: ["WeftModel"], swiftSettings: settings),
        // Layer 1: shells.
        // The runtime every role shares: HTTP/1.1 + h2c serving, the WAL commit thread, PosixDisk, metrics.
        .target(
            name: "WeftRuntime",
            dependencies: [
                "WeftModel", "WeftOTLP", "WeftStorageEngine", "WeftQuery", "WeftHTTP2",
                nio, nioPosix, nioHTTP1, logging,
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: settings
        ),
        // The ingest role: OTLP/HTTP and OTLP/gRPC receivers.
        .target(
            name: "WeftIngest",
            dependencies: [
                "WeftRuntime", "WeftModel", "WeftOTLP", "WeftStorageEngine", "WeftHTTP2", "WeftCluster", "CZlib",
                nio, nioHTTP1, logging, .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: settings
        ),
        // The storage role's shell: flush, compaction and retention scheduling around the engine.
        .target(name: "WeftStorage", dependencies: ["WeftRuntime", "WeftStorageEngine", "WeftModel", logging], swiftSettings: settings),
        // The query role: routes, fair scheduling, rendering.
        .target(
            name: "WeftQueryService",
            dependencies: ["WeftRuntime", "WeftQuery", "WeftAggregates", "WeftStorageEngine", "WeftModel", "WeftOTLP", "WeftHTTP2", nio, nioPosix, nioHTTP1],
            swiftSettings: settings
        ),
        // The node composer: configuration, the roles chosen at start-up wired into one service.
        .target(
            name: "WeftServer",
            dependencies: [
                "WeftRuntime", "WeftIngest", "WeftStorage", "WeftQueryService",
                "WeftModel", "WeftOTLP", "WeftStorageEngine", "WeftQuery", "WeftHTTP2", "WeftCluster", "WeftClusterService",
                nio, nioPosix, nioHTTP1, logging,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        .target(name: "WeftClient", dependencies: [nio, nioPosix, nioHTTP1], swiftSettings: settings),
        // Membership over the internal HTTP/2 port, and the cluster admin API.
        .target(
            name: "WeftClusterService",
            dependencies: ["WeftCluster", "WeftHTTP2", "WeftModel", nio, logging, .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: settings
        ),
        // HTTP/2 on libnghttp2 (apt: libnghttp2-dev).
        .systemLibrary(
            name: "CNGHTTP2", pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"]), .brew(["nghttp2"])]
        ),
        .target(name: "WeftHTTP2", dependencies: ["CNGHTTP2", nio, nioPosix], swiftSettings: settings + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
        // Executables.
        .executableTarget(
            name: "weft",
            dependencies: ["WeftServer", logging, .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "weftctl",
            dependencies: [
                "WeftClient", "WeftLoad", "WeftOTLP", "WeftModel", "WeftStorageEngine", "WeftHTTP2",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "weft-bench",
            dependencies: [
                "WeftLoad", "WeftOTLP", "WeftModel", "WeftStorageEngine", "WeftRuntime", "WeftQuery", "WeftQueryService", "WeftIngest", "WeftCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: settings
        ),
        // WeftModel calls libm's `round` without linking it; the other executables get libm through Foundation.
        .executableTarget(name: "weft-ringbench", dependencies: ["WeftCluster", "WeftModel"], swiftSettings: settings, linkerSettings: [.linkedLibrary("m")]),
        .executableTarget(
            name: "weft-sim",
            dependencies: ["WeftClusterSim", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: settings
        ),
        .executableTarget(name: "weft-h2bench", dependencies: ["WeftRuntime", "WeftHTTP2", nio, nioPosix], swiftSettings: settings),
        // Test support (no product).
        .target(name: "WeftTestSupport", dependencies: ["WeftModel", "WeftOTLP"], swiftSettings: settings),
        // The deterministic cluster simulator (SWIM instances over a simulated network, one seed).
        .target(name: "WeftClusterSim", dependencies: ["WeftCluster", "WeftModel"], swiftSettings: settings),
        // Tests.
        .testTarget(name: "WeftOTLPTests", dependencies: ["WeftOTLP", "WeftModel", "WeftLoad", "WeftTestSupport"], resources: [.copy("Fixtures")], swiftSettings: settings),
        .testTarget(name: "WeftStorageEngineTests", dependencies: ["WeftStorageEngine", "WeftTestSupport", "WeftOTLP", "WeftModel", "WeftLoad"], swiftSettings: settings),
        .testTarget(name: "WeftQueryTests", dependencies: ["WeftQuery", "WeftTestSupport", "WeftStorageEngine", "WeftOTLP", "WeftModel", "WeftLoad"], swiftSettings: settings),
        .testTarget(
            name: "WeftQueryServiceTests",
            dependencies: ["WeftQueryService", "WeftRuntime", "WeftQuery", "WeftStorageEngine", "WeftModel", "WeftOTLP", "WeftLoad", "WeftTestSupport"],
            swiftSettings: settings
        ),
        .testTarget(name: "WeftAggregatesTests", dependencies: ["WeftAggregates"], swiftSettings: settings),
        // Reads the sources of the pure targets and fails on imports or calls that break their purity.
        .testTarget(name: "ArchitectureTests", swiftSettings: settings),
        .testTarget(name: "WeftClusterTests", dependencies: ["WeftCluster", "WeftClusterSim", "WeftModel"], swiftSettings: settings),
        .testTarget(name: "WeftHTTP2Tests", dependencies: ["WeftHTTP2", "WeftRuntime", "WeftIngest", "WeftServer", "WeftClient", "WeftTestSupport", nio, nioPosix], swiftSettings: settings),
        .testTarget(
            name: "WeftIngestTests",
            dependencies: ["WeftIngest", "WeftCluster", "WeftClusterService", "WeftHTTP2", "WeftRuntime", "WeftModel", "WeftOTLP", "WeftLoad", nio, nioPosix, logging],
            swiftSettings: settings
        ),
        .testTarget(
            name: "WeftClusterServiceTests",
            dependencies: ["WeftClusterService", "WeftCluster", "WeftModel", nio, .product(name: "NIOEmbedded", package: "swift-nio")],
            swiftSettings: settings
        ),
        .testTarget(
            name: "WeftServerTests",
            dependencies: [
                "WeftServer", "WeftRuntime", "WeftIngest", "WeftStorage", "WeftQueryService", "WeftQuery", "WeftStorageEngine", "WeftOTLP", "WeftTestSupport", "WeftClient", "WeftModel",
                "WeftCluster", nio, nioPosix, logging,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
    ]
)
