import Prometheus
import WeftStorageEngine

/// The node's Prometheus metrics, served on `/metrics`.
public final class NodeMetrics: Sendable {
    /// Why spans or requests were turned away.
    public enum RejectReason: String, CaseIterable, Sendable {
        case invalidSpan = "invalid_span"
        case malformed
        case tooLarge = "too_large"
        case unsupportedMediaType = "unsupported_media_type"
        case unavailable
        /// Over a span limit (attributes, events, links, string length) or older than the org's retention.
        case overLimit = "over_limit"
        /// An `X-Scope-OrgID` that is not a valid org ID.
        case badOrg = "bad_org"
    }

    public let registry = PrometheusCollectorRegistry()
    public let spansAccepted: Counter
    private let spansRejected: [RejectReason: Counter]
    private let requestsRejected: [RejectReason: Counter]
    public let bytesReceived: Counter
    public let bytesDecoded: Counter
    public let otlpRequests: Counter
    public let otlpLatency: DurationHistogram
    public let queryRequests: Counter
    public let queryLatency: DurationHistogram
    public let queriesThrottled: Counter
    private let httpTimeouts: [HTTPTimeout: Counter]
    public let walFsync: DurationHistogram
    public let walBytes: Counter
    public let walBatchRecords: ValueHistogram
    public let walErrors: Counter
    /// WAL records set aside on replay because they could not be applied.
    public let walQuarantined: Counter
    private let headSpans: Gauge
    private let headBytes: Gauge
    private let headChunks: Gauge
    public let walSegmentsRemoved: Counter
    public let flushes: Counter
    public let flushedSpans: Counter
    public let flushDuration: DurationHistogram
    public let compactions: Counter
    public let compactedSpans: Counter
    public let compactionDuration: DurationHistogram
    public let retentionDeleted: Counter
    public let maintenanceErrors: Counter
    private let blocks: Gauge
    private let blockBytes: Gauge
    private let blockSpans: Gauge
    private let headSegments: Gauge
    private let blocksQuarantined: Gauge

    public init() {
        let latencyBuckets: [Duration] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        let r = self.registry
        self.spansAccepted = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "otlp_spans_received", unitName: "total", helpText: "Spans accepted and made durable."))
        var rejected: [RejectReason: Counter] = [:]
        var requests: [RejectReason: Counter] = [:]
        for reason in RejectReason.allCases {
            rejected[reason] = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "otlp_spans_rejected", unitName: "total", helpText: "Spans rejected, by reason (malformed requests count their spans as unknown: see requests)."), labels: [("reason", reason.rawValue)])
            requests[reason] = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "otlp_requests_rejected", unitName: "total", helpText: "OTLP requests answered with an error status, by reason."), labels: [("reason", reason.rawValue)])
        }
        self.spansRejected = rejected
        self.requestsRejected = requests
        self.bytesReceived = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "otlp_received_bytes", unitName: "total", helpText: "OTLP request body bytes as received (compressed)."))
        self.bytesDecoded = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "otlp_decoded_bytes", unitName: "total", helpText: "OTLP request body bytes after decompression."))
        self.otlpRequests = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "otlp_requests", unitName: "total", helpText: "OTLP export requests received."))
        self.otlpLatency = r.makeDurationHistogram(descriptor: .init(namespace: "weft", metricName: "otlp_request_duration", unitName: "seconds", helpText: "Time from a complete OTLP request to its response (includes the WAL fsync)."), buckets: latencyBuckets)
        self.queryRequests = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "query_requests", unitName: "total", helpText: "Query API requests."))
        self.queriesThrottled = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "query_requests_throttled", unitName: "total", helpText: "Queries refused with 429 because their org had queryMaxQueuedPerOrg waiting."))
        var timeouts: [HTTPTimeout: Counter] = [:]
        for kind in HTTPTimeout.allCases {
            timeouts[kind] = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "http_timeouts", unitName: "total", helpText: "Connections closed for stalling: idle or a request not read in time (HTTP/1.1), or output the client does not read (HTTP/1.1, h2c, gRPC)."), labels: [("kind", kind.rawValue)])
        }
        self.httpTimeouts = timeouts
        self.queryLatency = r.makeDurationHistogram(descriptor: .init(namespace: "weft", metricName: "query_request_duration", unitName: "seconds", helpText: "Query API latency."), buckets: latencyBuckets)
        self.walFsync = r.makeDurationHistogram(descriptor: .init(namespace: "weft", metricName: "wal_fsync_duration", unitName: "seconds", helpText: "WAL fdatasync latency."), buckets: latencyBuckets)
        self.walBytes = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "wal_written_bytes", unitName: "total", helpText: "Record bytes written to the WAL."))
        self.walBatchRecords = r.makeValueHistogram(
            descriptor: .init(namespace: "weft", metricName: "wal_group_commit", unitName: "records", helpText: "Records made durable per group commit."),
            buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256]
        )
        self.walErrors = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "wal_errors", unitName: "total", helpText: "Failed WAL writes or syncs."))
        self.walQuarantined = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "wal_quarantined_records", unitName: "total", helpText: "WAL records that could not be replayed, copied to wal/quarantine/ and skipped (see the log)."))
        self.headSpans = r.makeGauge(descriptor: .init(namespace: "weft", metricName: "head", unitName: "spans", helpText: "Spans held in the in-memory head."))
        self.headBytes = r.makeGauge(descriptor: .init(namespace: "weft", metricName: "head", unitName: "bytes", helpText: "Approximate heap bytes of the in-memory head."))
        self.headChunks = r.makeGauge(descriptor: .init(namespace: "weft", metricName: "head", unitName: "chunks", helpText: "Chunks in the in-memory head."))
        let slowBuckets: [Duration] = [.milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60)]
        self.walSegmentsRemoved = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "wal_segments_removed", unitName: "total", helpText: "WAL segments removed after their records reached durable blocks."))
        self.flushes = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "block_flushes", unitName: "total", helpText: "WAL segments flushed from the head to blocks."))
        self.flushedSpans = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "block_flushed_spans", unitName: "total", helpText: "Spans written to blocks by flushes."))
        self.flushDuration = r.makeDurationHistogram(descriptor: .init(namespace: "weft", metricName: "block_flush_duration", unitName: "seconds", helpText: "Time to write one segment's blocks."), buckets: slowBuckets)
        self.compactions = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "block_compactions", unitName: "total", helpText: "Compactions (blocks merged into one)."))
        self.compactedSpans = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "block_compacted_spans", unitName: "total", helpText: "Spans rewritten by compaction."))
        self.compactionDuration = r.makeDurationHistogram(descriptor: .init(namespace: "weft", metricName: "block_compaction_duration", unitName: "seconds", helpText: "Time per compaction."), buckets: slowBuckets)
        self.retentionDeleted = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "block_retention_deleted", unitName: "total", helpText: "Blocks deleted by retention."))
        self.maintenanceErrors = r.makeCounter(descriptor: .init(namespace: "weft", metricName: "block_maintenance_errors", unitName: "total", helpText: "Failed flushes, compactions or deletions (retried)."))
        self.blocks = r.makeGauge(descriptor: .init(namespace: "weft", metricName: "blocks", unitName: "count", helpText: "Live blocks."))
        self.blockBytes = r.makeGauge(descriptor: .init(namespace: "weft", metricName: "blocks", unitName: "bytes", helpText: "Bytes of live block data files."))
        self.blockSpans = r.makeGauge(descriptor: .init(namespace: "weft", metricName: "blocks", unitName: "spans", helpText: "Spans in live blocks."))
        self.blocksQuarantined = r.makeGauge(descriptor: .init(namespace: "weft", metricName: "blocks_quarantined", unitName: "count", helpText: "Blocks taken out of service after failing a checksum or decode (files kept; see the log)."))
        self.headSegments = r.makeGauge(descriptor: .init(namespace: "weft", metricName: "head_wal_segments", unitName: "count", helpText: "WAL segments with data in the head (one is open; the rest wait for a flush)."))
    }

    public func rejectSpans(_ n: Int, _ reason: RejectReason) {
        if n > 0 { self.spansRejected[reason]!.increment(by: Int64(n)) }
    }

    public func timedOut(_ kind: HTTPTimeout) {
        self.httpTimeouts[kind]!.increment()
    }

    public func rejectRequest(_ reason: RejectReason) {
        self.requestsRejected[reason]!.increment()
    }

    /// The text exposition, with head and block gauges refreshed.
    public func render(engine: StorageEngine) -> [UInt8] {
        let stats = engine.head.stats
        self.headSpans.set(Double(stats.spans))
        self.headBytes.set(Double(stats.bytes))
        self.headChunks.set(Double(stats.chunks))
        self.headSegments.set(Double(engine.head.segments().count))
        let blocks = engine.blocks
        self.blocks.set(Double(blocks.count))
        self.blockBytes.set(Double(blocks.reduce(0) { $0 + $1.bytes }))
        self.blockSpans.set(Double(blocks.reduce(0) { $0 + $1.spans }))
        self.blocksQuarantined.set(Double(engine.store.quarantined.count))
        return self.registry.emitToBuffer()
    }
}
