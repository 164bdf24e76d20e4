import NIOCore
import WeftModel

/// Why an export was refused; each transport maps it to its own answer (HTTP status or gRPC code).
public enum IngestFailure: Error, Sendable, Equatable {
    /// Unknown content encoding (its name).
    case unsupportedEncoding(String)
    /// Not valid OTLP (or not valid gzip): permanent.
    case malformed(String)
    /// Over the size limit after decompression: permanent.
    case tooLarge(String)
    /// Not stored (WAL overloaded or failed, replicas out of reach, or the node is recovering): retry later.
    case unavailable(String)
}

/// Where a decoded, validated batch of one org goes to become durable and queryable.
///
/// The OTLP receivers (HTTP and gRPC) decode, enforce limits and retention, then hand the batch to a
/// sink and answer from its outcome: ``LocalSpanSink`` logs to this node's WAL and adds to its head; a
/// replicated sink sends to the replicas and waits for a write quorum.
public protocol SpanSink: Sendable {
    /// Why writes would be refused now (nil when they are accepted). Receivers ask before decoding, so an
    /// overloaded node spends nothing on requests it cannot store.
    var refusal: IngestFailure? { get }

    /// Makes `batch` (spans of `org`) durable and queryable. The future, completed on `loop`, always
    /// succeeds: with `.success` once the spans are durable, else with why not (`.unavailable`: retry).
    func write(_ batch: SpanBatch, org: String, on loop: any EventLoop) -> EventLoopFuture<Result<Void, IngestFailure>>
}
