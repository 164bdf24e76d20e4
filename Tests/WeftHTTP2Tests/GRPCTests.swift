import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import WeftHTTP2
import WeftServer
import WeftIngest

/// gRPC message framing (length prefix, compressed flag) and its failure modes.
struct GRPCFramingTests {
    @Test func test_frame_roundTrips_withBigEndianLengthAndFlag() throws {
        let payload: [UInt8] = Array(0..<200).map { UInt8($0) }
        let framed = GRPCFraming.frame(payload)
        #expect(Array(framed.readableBytesView.prefix(5)) == [0, 0, 0, 0, 200])
        let (compressed, message) = try GRPCFraming.unary(framed, maxMessageBytes: 1 << 20)
        #expect(!compressed)
        #expect(Array(message.readableBytesView) == payload)

        let big = [UInt8](repeating: 9, count: 0x01_02_03)
        let zipped = GRPCFraming.frame(big, compressed: true)
        #expect(Array(zipped.readableBytesView.prefix(5)) == [1, 0, 0x01, 0x02, 0x03])
        let out = try GRPCFraming.unary(zipped, maxMessageBytes: 1 << 20)
        #expect(out.compressed)
        #expect(out.message.readableBytes == big.count)
    }

    @Test func test_emptyMessage_isValid() throws {
        let (compressed, message) = try GRPCFraming.unary(ByteBuffer(bytes: [0, 0, 0, 0, 0]), maxMessageBytes: 16)
        #expect(!compressed)
        #expect(message.readableBytes == 0)
    }

    @Test func test_incrementalParsing_waitsForWholeMessages() throws {
        var stream = ByteBuffer()
        GRPCFraming.write([1, 2, 3], to: &stream)
        GRPCFraming.write([4], compressed: true, to: &stream)
        var partial = stream.getSlice(at: 0, length: 6)!
        #expect(try GRPCFraming.next(from: &partial, maxMessageBytes: 16) == nil)
        #expect(partial.readableBytes == 6)  // nothing consumed
        let first = try #require(try GRPCFraming.next(from: &stream, maxMessageBytes: 16))
        #expect(Array(first.message.readableBytesView) == [1, 2, 3])
        let second = try #require(try GRPCFraming.next(from: &stream, maxMessageBytes: 16))
        #expect(second.compressed && Array(second.message.readableBytesView) == [4])
        #expect(try GRPCFraming.next(from: &stream, maxMessageBytes: 16) == nil)
    }

    @Test func test_truncatedAndGarbageInput_areErrors() {
        func error(_ bytes: [UInt8], limit: Int = 1 << 20) -> GRPCFrameError? {
            do {
                _ = try GRPCFraming.unary(ByteBuffer(bytes: bytes), maxMessageBytes: limit)
                return nil
            } catch {
                return error
            }
        }
        #expect(error([]) == .empty)
        #expect(error([0, 0, 0]) == .truncated)  // short prefix
        #expect(error([0, 0, 0, 0, 10, 1, 2, 3, 4]) == .truncated)  // short body
        #expect(error([7, 0, 0, 0, 1, 1]) == .badFlag(7))
        #expect(error([0, 0, 0, 0, 1, 1, 0xFF]) == .trailingData(1))
        #expect(error([0, 0x7F, 0xFF, 0xFF, 0xFF]) == .tooLarge(length: 0x7FFF_FFFF, limit: 1 << 20))
        #expect(error([0, 0, 0, 0, 17] + [UInt8](repeating: 0, count: 17), limit: 16) == .tooLarge(length: 17, limit: 16))
        // Plain text (say, an HTTP/1 body) is not a frame.
        #expect(error(Array("hello, world".utf8)) != nil)
    }

    @Test func test_grpcMessage_percentEncoding() {
        #expect(GRPCFraming.percentEncode("plain text: ok") == "plain text: ok")
        #expect(GRPCFraming.percentEncode("100% bad\nline é") == "100%25 bad%0Aline %C3%A9")
        #expect(GRPCFraming.percentDecode("100%25 bad%0Aline %C3%A9") == "100% bad\nline é")
        #expect(GRPCFraming.percentDecode("broken %G1 and %4") == "broken %G1 and %4")
    }
}

/// Trailers through the session wrapper, in memory.
struct NGSessionTrailerTests {
    @Test func test_responseWithTrailers_bodyThenTrailingHeaders() throws {
        let pair = try SessionPair()
        pair.onRequest = { pair, id, m in
            let body: ByteBuffer? = m.path == "/empty" ? nil : ByteBuffer(bytes: [UInt8](repeating: 5, count: 100_000))
            pair.server.submitResponse(
                streamID: id, status: 200, headers: [("content-type", "application/grpc")], body: body,
                trailers: [("grpc-status", "0"), ("grpc-message", "fine")]
            )
        }
        let withBody = try pair.post("/body", [1, 2, 3])
        let empty = try pair.post("/empty", [1])
        try pair.run()
        let r = try #require(pair.responses[withBody])
        #expect(r.status == 200)
        #expect(r.body.readableBytes == 100_000)
        #expect(r.trailers.map { "\($0.name)=\($0.value)" } == ["grpc-status=0", "grpc-message=fine"])
        #expect(!r.headers.contains { $0.name == "grpc-status" })
        let e = try #require(pair.responses[empty])
        #expect(e.body.readableBytes == 0)
        #expect(e.trailers.first { $0.name == "grpc-status" }?.value == "0")
        #expect(pair.clientClosed[withBody] == 0 && pair.clientClosed[empty] == 0)
        #expect(pair.server.openStreams == 0)
    }
}

/// OTLP/gRPC Export against a live node (127.0.0.1, port 0) through the nghttp2 client session.
struct OTLPGRPCLiveTests {
    static let export = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

    /// Minimal protobuf writing for the request.
    static func len(_ field: UInt8, _ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [field << 3 | 2]
        var n = bytes.count
        while n >= 0x80 { out.append(UInt8(n & 0x7F) | 0x80); n >>= 7 }
        out.append(UInt8(n))
        return out + bytes
    }

    static func fixed64(_ field: UInt8, _ v: UInt64) -> [UInt8] {
        [field << 3 | 1] + (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
    }

    /// One span of service `grpc-svc` in trace `traceID`.
    static func exportRequest(traceID: [UInt8]) -> [UInt8] {
        let attribute = len(1, Array("service.name".utf8)) + len(2, len(1, Array("grpc-svc".utf8)))
        let resource = len(1, len(1, attribute))
        // Recent timestamps: spans older than the retention are refused.
        let start = UInt64(Date().timeIntervalSince1970 * 1e9)
        let span = len(1, traceID) + len(2, [0, 0, 0, 0, 0, 0, 0, 0xA1]) + len(5, Array("grpc export".utf8))
            + fixed64(7, start) + fixed64(8, start + 250_000_000)
        let scopeSpans = len(2, span)
        return len(1, resource + len(2, scopeSpans))
    }

    static let grpcHeaders: [(name: String, value: String)] = [("content-type", "application/grpc"), ("te", "trailers")]

    static func trailer(_ m: NGMessage, _ name: String) -> String? {
        m.trailers.first { $0.name == name }?.value
    }

    @Test func test_export_ok_invalidArgument_unimplemented_resourceExhausted() async throws {
        let dir = NSTemporaryDirectory() + "weft-grpc-test-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = NodeConfiguration()
        config.dataDir = dir
        config.otlpPort = 0
        config.queryPort = 0
        config.otlpGrpcPort = 0
        config.maxBodyBytes = 1 << 20
        config.eventLoopThreads = 1
        config.queryThreads = 1
        let (ready, continuation) = AsyncStream.makeStream(of: NodeAddresses.self)
        let node = WeftNode(configuration: config, logger: Logger(label: "test"), listening: { continuation.yield($0) })
        let running = Task { try await node.run() }
        defer { running.cancel() }
        var it = ready.makeAsyncIterator()
        let addresses = try #require(await it.next())
        let grpcPort = try #require(addresses.otlpGrpc.flatMap { Int($0.split(separator: ":").last!) })
        let queryPort = try #require(Int(addresses.query.split(separator: ":").last!))

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let h2 = try await TestH2Client.connect(port: grpcPort, group: group)

        // OK: framed response (an empty ExportTraceServiceResponse) and grpc-status 0 in the trailers.
        let traceID: [UInt8] = (0..<16).map { UInt8($0 + 1) }
        let ok = try await TestH2Client.send(
            h2, method: "POST", path: Self.export, headers: Self.grpcHeaders + [("x-scope-orgid", "grpc-org")],
            body: Array(GRPCFraming.frame(Self.exportRequest(traceID: traceID)).readableBytesView)
        )
        #expect(ok.status == 200)
        #expect(ok.headers.contains { $0.name == "content-type" && $0.value == "application/grpc" })
        #expect(Self.trailer(ok, "grpc-status") == "0", "\(ok.trailers)")
        let message = try GRPCFraming.unary(ok.body, maxMessageBytes: 1 << 20)
        #expect(!message.compressed && message.message.readableBytes == 0)

        // Garbage protobuf inside a valid frame: INVALID_ARGUMENT.
        let garbage = try await TestH2Client.send(
            h2, method: "POST", path: Self.export, headers: Self.grpcHeaders,
            body: Array(GRPCFraming.frame([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01]).readableBytesView)
        )
        #expect(Self.trailer(garbage, "grpc-status") == "3")
        #expect(garbage.body.readableBytes == 0)
        #expect(Self.trailer(garbage, "grpc-message").map(GRPCFraming.percentDecode)?.contains("malformed") == true)
        // Broken framing: INVALID_ARGUMENT too.
        let torn = try await TestH2Client.send(h2, method: "POST", path: Self.export, headers: Self.grpcHeaders, body: [0, 0, 0, 0, 9, 1])
        #expect(Self.trailer(torn, "grpc-status") == "3")
        // Another method: UNIMPLEMENTED.
        let other = try await TestH2Client.send(
            h2, method: "POST", path: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", headers: Self.grpcHeaders,
            body: Array(GRPCFraming.frame([]).readableBytesView)
        )
        #expect(Self.trailer(other, "grpc-status") == "12")
        // A message declared over the limit: RESOURCE_EXHAUSTED.
        let huge = try await TestH2Client.send(h2, method: "POST", path: Self.export, headers: Self.grpcHeaders, body: [0, 0, 0x20, 0, 0, 1])
        #expect(Self.trailer(huge, "grpc-status") == "8")
        // Not gRPC at all: HTTP 415.
        let plain = try await TestH2Client.send(h2, method: "POST", path: Self.export, body: [1])
        #expect(plain.status == 415)
        try await h2.close()

        // The exported span is queryable (h2c on the query port).
        let q = try await TestH2Client.connect(port: queryPort, group: group)
        let hex = traceID.map { String(format: "%02x", $0) }.joined()
        let found = try await TestH2Client.send(q, method: "GET", path: "/api/traces/" + hex, headers: [("x-scope-orgid", "grpc-org")])
        #expect(found.status == 200)
        #expect(String(buffer: found.body).contains("grpc export"))
        try await q.close()

        running.cancel()
        try await running.value
        try await group.shutdownGracefully()
    }
}
