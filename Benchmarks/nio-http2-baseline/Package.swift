// swift-tools-version: 6.0
// A swift-nio-http2 server built only to compare against Weft's nghttp2 engine (see ../h2-compare.sh).
// Kept out of the main package so the main build never compiles swift-nio-http2.
import PackageDescription

let package = Package(
    name: "nio-http2-baseline",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        .executableTarget(
            name: "nio-http2-baseline",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
    ]
)
