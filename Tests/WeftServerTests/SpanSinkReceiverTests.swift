import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
import WeftHTTP2
import WeftModel
import WeftOTLP
import WeftStorageEngine
import WeftTestSupport
@testable import WeftIngest
@testable import WeftRuntime
@testable import WeftStorage

/// A sink that records what it was given and answers as told.
final class RecordingSink: SpanSink {
    struct Write: Sendable {
        var org: String
        var spanNames: [String]
    }

    private let state = Mutex<(writes: [Write], answer: Result<Void, IngestFailure>, refusal: IngestFailure?)>(([], .success(()), nil))

    var writes: [Write] { self.state.withLock { $0.writes } }

    func answer(_ answer: Result<Void, IngestFailure>) { self.state.withLock { $0.answer = answer } }

    func refuse(_ refusal: IngestFailure?) { self.state.withLock { $0.refusal = refusal } }

    var refusal: IngestFailure? { self.state.withLock { $0.refusal } }

    func write(_ batch: SpanBatch, org: String, on loop: any EventLoop) -> EventLoopFuture<Result<Void, IngestFailure>> {
        let names = (0..<batch.spanCount).map { batch.strings.string(batch.name[$0]) }
        let answer = self.state.withLock { state in
            state.writes.append(Write(org: org, spanNames: names))
            return state.answer
        }
        return loop.makeSucceededFuture(answer)
    }
}

/// The OTLP receivers (HTTP and gRPC) over a sink: what reaches the sink, and how its answers map.
struct SpanSinkReceiverTests {
    static let group = MultiThreadedEventLoopGroup.singleton

    static func receiver(_ sink: RecordingSink, retentionNanos: UInt64 = .max) -> OTLPReceiver {
        OTLPReceiver(
            sink: sink, metrics: NodeMetrics(), options: DecodeOptions(), maxDecodedBytes: 1 << 20,
            retentionNanos: { _ in retentionNanos }
        )
    }

    static func body(spans: Int, start: UInt64 = UInt64(Date().timeIntervalSince1970 * 1e9)) -> [UInt8] {
        RequestBuilder.request([("svc", (0..<spans).map { i in
            TestSpan(traceID: TraceID(high: 1, low: 2), spanID: UInt64(i + 1), name: "op-\(i)", start: start + UInt64(i), end: start + 1_000)
        })])
    }

    static func post(_ receiver: OTLPReceiver, _ body: [UInt8], org: String = "acme") async throws -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/x-protobuf")
        headers.add(name: "x-scope-orgid", value: org)
        let request = HTTPRequest(method: .POST, uri: "/v1/traces", headers: headers, body: ByteBuffer(bytes: body))
        let loop = Self.group.next()
        return try await loop.flatSubmit { receiver.handle(request, on: loop) }.get()
    }

    static func export(_ receiver: OTLPReceiver, _ body: [UInt8]) async throws -> HTTP2Response {
        let request = HTTP2Request(
            method: "POST", path: OTLPGRPC.exportPath, scheme: "http", authority: "localhost",
            headers: [("content-type", "application/grpc"), ("x-scope-orgid", "acme")], body: GRPCFraming.frame(body)
        )
        let loop = Self.group.next()
        return try await loop.flatSubmit { OTLPGRPC.respond(request, receiver: receiver, on: loop) }.get()
    }

    static func grpcStatus(_ response: HTTP2Response) -> String? {
        response.trailers.first { $0.name == "grpc-status" }?.value
    }

    @Test func test_http_handsTheDecodedBatchToTheSink() async throws {
        let sink = RecordingSink()
        let response = try await Self.post(Self.receiver(sink), Self.body(spans: 3), org: "globex")
        #expect(response.status == .ok)
        #expect(sink.writes.map(\.org) == ["globex"])
        #expect(sink.writes.first?.spanNames == ["op-0", "op-1", "op-2"])
    }

    @Test func test_http_sinkUnavailable_answers503WithRetryAfter() async throws {
        let sink = RecordingSink()
        sink.answer(.failure(.unavailable("2 of 3 replicas unreachable")))
        let response = try await Self.post(Self.receiver(sink), Self.body(spans: 2))
        #expect(response.status == .serviceUnavailable)
        #expect(response.headers.first(name: "retry-after") == "1")
        #expect(String(decoding: response.body, as: UTF8.self).contains("2 of 3 replicas unreachable"))
        #expect(sink.writes.count == 1)
    }

    @Test func test_http_sinkRefusal_answers503_beforeDecoding() async throws {
        let sink = RecordingSink()
        sink.refuse(.unavailable("head full"))
        let response = try await Self.post(Self.receiver(sink), Self.body(spans: 2))
        #expect(response.status == .serviceUnavailable)
        #expect(sink.writes.isEmpty)
    }

    @Test func test_retention_isEnforcedBeforeTheSink() async throws {
        let sink = RecordingSink()
        let hourAgo = UInt64(Date().timeIntervalSince1970 * 1e9) - 3_600_000_000_000
        // Retention of one minute: every span is too old, so nothing reaches the sink.
        let response = try await Self.post(Self.receiver(sink, retentionNanos: 60_000_000_000), Self.body(spans: 2, start: hourAgo))
        #expect(response.status == .ok)
        #expect(sink.writes.isEmpty)
    }

    @Test func test_grpc_goesThroughTheSink_andMapsUnavailable() async throws {
        let sink = RecordingSink()
        let receiver = Self.receiver(sink)
        let ok = try await Self.export(receiver, Self.body(spans: 4))
        #expect(Self.grpcStatus(ok) == "0")
        #expect(sink.writes.first?.spanNames.count == 4)

        sink.answer(.failure(.unavailable("write-ahead log is overloaded")))
        let refused = try await Self.export(receiver, Self.body(spans: 1))
        #expect(Self.grpcStatus(refused) == String(GRPCStatusCode.unavailable.rawValue))
        #expect(refused.trailers.contains { $0.name == "grpc-status-details-bin" })
        #expect(sink.writes.count == 2)
    }
}

/// The single-node sink: what it logs is a version-2 record naming org and placement, and what it
/// acknowledges is in the head.
struct LocalSpanSinkTests {
    @Test func test_write_logsAVersion2Record_thenAppendsToTheHead() async throws {
        let disk = SimulatedDisk()
        let wal = WAL(disk: disk, directory: "/n/wal")
        _ = try wal.replay { _ in }
        let head = Head()
        let committer = WALCommitter(wal: wal, head: head, metrics: NodeMetrics())
        let sink = LocalSpanSink(head: head, committer: committer, placement: "zone-b", stripes: [:])
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try SpanSinkReceiverTests.body(spans: 3).withUnsafeBytes { try decoder.decode($0, into: &batch) }
        let loop = SpanSinkReceiverTests.group.next()
        let outcome = try await loop.flatSubmit { sink.write(batch, org: "acme", on: loop) }.get()
        #expect(throws: Never.self) { try outcome.get() }
        #expect(head.snapshot(org: "acme").reduce(0) { $0 + $1.spanCount } == 3)
        await committer.shutdown()

        var entries: [(org: String, placement: String, spans: Int)] = []
        var replayDecoder = OTLPRequestDecoder(options: DecodeOptions())
        _ = try WAL(disk: disk, directory: "/n/wal").replay { record in
            #expect(record.first == 2)
            let entry = try WALEntry.decode(record, decoder: &replayDecoder, legacyPlacement: "")
            entries.append((entry.org, entry.placement, entry.batch.spanCount))
        }
        #expect(entries.count == 1)
        #expect(entries.first?.org == "acme" && entries.first?.placement == "zone-b" && entries.first?.spans == 3)
    }

    @Test func test_refusal_whileTheHeadIsFull() async throws {
        let head = Head()
        let wal = WAL(disk: SimulatedDisk(), directory: "/n/wal")
        _ = try wal.replay { _ in }
        let committer = WALCommitter(wal: wal, head: head, metrics: NodeMetrics())
        let sink = LocalSpanSink(head: head, committer: committer, placement: "p", stripes: [:], headMaxSpans: 2)
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try SpanSinkReceiverTests.body(spans: 2).withUnsafeBytes { try decoder.decode($0, into: &batch) }
        #expect(sink.refusal == nil)
        head.append(batch, org: "o")
        #expect(sink.refusal == .unavailable("the in-memory head holds 2 spans (limit 2) while blocks are written; retry shortly"))
        // Writes that never ask first (replicated and pushed ones) are refused too, before the WAL.
        let pushed = try await sink.write(batch, org: "o", placement: "q", on: MultiThreadedEventLoopGroup.singleton.next()).get()
        guard case .failure(let failure) = pushed else {
            Issue.record("a write to a full head was taken")
            return
        }
        #expect(failure == .unavailable("the in-memory head holds 2 spans (limit 2) while blocks are written; retry shortly"))
        #expect(head.spanCount == 2)
        await committer.shutdown()
    }
}
