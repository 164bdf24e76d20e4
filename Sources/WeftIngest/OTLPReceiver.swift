import CompressNIO
import NIOCore
import NIOHTTP1
import WeftModel
import WeftOTLP
import WeftRuntime

/// What became of the spans of one export that was not refused as a whole.
package struct IngestResult: Sendable, Equatable {
    /// Spans rejected as invalid (partial success), and the explanation.
    package var rejectedSpans: Int
    package var message: String
}

/// Takes OTLP exports (from OTLP/HTTP or OTLP/gRPC): decode, check limits and retention, then hand the
/// batch to the sink (durable and queryable) and answer.
package struct OTLPReceiver: Sendable {

    package let sink: any SpanSink
    package let metrics: NodeMetrics
    package let options: DecodeOptions
    /// Largest body after decompression.
    package let maxDecodedBytes: Int
    /// Limits checked on every decoded batch before anything is written.
    package var limits = SpanLimits()
    /// Retention of an org in nanoseconds: spans that start earlier than now minus it are refused.
    package var retentionNanos: @Sendable (String) -> UInt64 = { _ in .max }
    /// Unix time in nanoseconds (a parameter so tests can move it).
    package var nowNanos: @Sendable () -> UInt64 = { WallClock.nowNanos() }

    package init(
        sink: any SpanSink, metrics: NodeMetrics, options: DecodeOptions, maxDecodedBytes: Int, limits: SpanLimits = SpanLimits(),
        retentionNanos: @escaping @Sendable (String) -> UInt64 = { _ in .max }
    ) {
        self.sink = sink
        self.metrics = metrics
        self.options = options
        self.maxDecodedBytes = maxDecodedBytes
        self.limits = limits
        self.retentionNanos = retentionNanos
    }

    /// Counts a request as it arrives (bytes as received, still compressed).
    package func received(bytes: Int) {
        self.metrics.otlpRequests.increment()
        self.metrics.bytesReceived.increment(by: Int64(bytes))
    }

    /// Undoes gzip (nil `encoding`, "identity" and "none" mean none), enforcing the decoded-size limit.
    package func decompress(_ body: ByteBuffer, encoding: String?) -> Result<ByteBuffer, IngestFailure> {
        switch encoding?.lowercased() {
        case nil, "", "identity", "none":
            return .success(body)
        case "gzip", "x-gzip":
            do {
                var compressed = body
                let decompressed = try compressed.decompress(with: .gzip, maxSize: self.maxDecodedBytes)
                if let problem = GzipTrailer.problem(compressed: body, decompressed: decompressed) {
                    self.metrics.rejectRequest(.malformed)
                    return .failure(.malformed("body is not valid gzip: \(problem)"))
                }
                return .success(decompressed)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                self.metrics.rejectRequest(.tooLarge)
                return .failure(.tooLarge("decompressed body exceeds the limit of \(self.maxDecodedBytes) bytes"))
            } catch {
                self.metrics.rejectRequest(.malformed)
                return .failure(.malformed("body is not valid gzip: \(error)"))
            }
        case let other?:
            self.metrics.rejectRequest(.unsupportedMediaType)
            return .failure(.unsupportedEncoding(other))
        }
    }

    /// The shared core: decoded (decompressed) `ExportTraceServiceRequest` bytes of `org` → decode →
    /// limits → sink (durable, visible) → outcome. The future always succeeds.
    package func ingest(
        _ body: ByteBuffer, encoding: OTLPEncoding, org: String, started: ContinuousClock.Instant, on loop: any EventLoop
    ) -> EventLoopFuture<Result<IngestResult, IngestFailure>> {
        if body.readableBytes > self.maxDecodedBytes {
            self.metrics.rejectRequest(.tooLarge)
            return loop.makeSucceededFuture(.failure(.tooLarge("body exceeds the limit of \(self.maxDecodedBytes) bytes")))
        }
        if let refusal = self.sink.refusal {
            self.metrics.rejectRequest(Self.rejectReason(refusal))
            return loop.makeSucceededFuture(.failure(refusal))
        }
        self.metrics.bytesDecoded.increment(by: Int64(body.readableBytes))

        // Decode straight from the request bytes.
        var batch = SpanBatch()
        let outcome: DecodeOutcome
        do {
            outcome = try body.withUnsafeReadableBytes { raw throws(OTLPDecodeError) -> DecodeOutcome in
                var decoder = OTLPRequestDecoder(options: self.options)
                return try decoder.decode(raw, encoding: encoding, into: &batch)
            }
        } catch {
            self.metrics.rejectRequest(.malformed)
            return loop.makeSucceededFuture(.failure(.malformed(
                "malformed OTLP \(encoding == .protobuf ? "protobuf" : "JSON"): \(error.message)"
            )))
        }
        if outcome.acceptedSpans > self.limits.maxSpansPerRequest {
            self.metrics.rejectRequest(.malformed)
            return loop.makeSucceededFuture(.failure(.malformed(
                "request holds \(outcome.acceptedSpans) spans; the limit is \(self.limits.maxSpansPerRequest) per request (maxSpansPerRequest): send smaller batches"
            )))
        }
        // Limits and retention are checked before anything is written; WAL replay applies the same.
        let now = self.nowNanos()
        let retention = self.retentionNanos(org)
        let limited = self.limits.enforce(on: &batch, minStartNanos: now > retention ? now - retention : 0)
        self.metrics.rejectSpans(outcome.rejectedSpans, .invalidSpan)
        self.metrics.rejectSpans(limited.rejectedSpans, .overLimit)
        let rejected = outcome.rejectedSpans + limited.rejectedSpans
        let result = IngestResult(
            rejectedSpans: rejected,
            message: rejected > 0
                ? "\(rejected) span(s) rejected; first: \(outcome.rejectedSpans > 0 ? outcome.rejectionMessage : limited.message)" : ""
        )
        let accepted = batch.spanCount
        guard accepted > 0 else {
            self.metrics.otlpLatency.record(ContinuousClock.now - started)
            return loop.makeSucceededFuture(.success(result))
        }

        // Durable first, then visible, then acknowledged.
        let metrics = self.metrics
        return self.sink.write(batch, org: org, on: loop).map { stored in
            switch stored {
            case .success:
                metrics.spansAccepted.increment(by: Int64(accepted))
                metrics.otlpLatency.record(ContinuousClock.now - started)
                return .success(result)
            case .failure(let failure):
                metrics.rejectRequest(Self.rejectReason(failure))
                if case .unavailable = failure { metrics.rejectSpans(accepted, .unavailable) }
                return .failure(failure)
            }
        }
    }

    /// The metrics label of a refusal.
    package static func rejectReason(_ failure: IngestFailure) -> NodeMetrics.RejectReason {
        switch failure {
        case .unsupportedEncoding: return .unsupportedMediaType
        case .malformed: return .malformed
        case .tooLarge: return .tooLarge
        case .unavailable: return .unavailable
        }
    }

    /// `POST /v1/traces` (OTLP/HTTP): answers per PROTOCOLS §1.2.
    package func handle(_ request: HTTPRequest, on loop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        let started = ContinuousClock.now
        self.received(bytes: request.body.readableBytes)
        let contentType = request.headers.first(name: "content-type")
        guard let contentType, let encoding = OTLPEncoding(contentType: contentType) else {
            self.metrics.rejectRequest(.unsupportedMediaType)
            return loop.makeSucceededFuture(OTLPErrors.response(
                .unsupportedMediaType, code: 3,
                "unsupported Content-Type '\(contentType ?? "")': use application/x-protobuf or application/json",
                contentType: nil
            ))
        }
        let org: String
        switch OrgID.parse(request.headers.first(name: "x-scope-orgid")) {
        case .success(let o): org = o
        case .failure(let invalid):
            self.metrics.rejectRequest(.badOrg)
            return loop.makeSucceededFuture(OTLPErrors.response(.badRequest, code: 3, invalid.description, contentType: contentType))
        }
        let body: ByteBuffer
        switch self.decompress(request.body, encoding: request.headers.first(name: "content-encoding")) {
        case .success(let b): body = b
        case .failure(let failure): return loop.makeSucceededFuture(Self.httpResponse(failure, contentType: contentType))
        }
        return self.ingest(body, encoding: encoding, org: org, started: started, on: loop).map { outcome in
            switch outcome {
            case .success(let result):
                return HTTPResponse(
                    status: .ok,
                    contentType: encoding.contentType,
                    body: OTLPResponse.export(rejected: result.rejectedSpans, message: result.message, encoding: encoding)
                )
            case .failure(let failure):
                return Self.httpResponse(failure, contentType: contentType)
            }
        }
    }

    package static func httpResponse(_ failure: IngestFailure, contentType: String) -> HTTPResponse {
        switch failure {
        case .unsupportedEncoding(let name):
            return OTLPErrors.response(
                .unsupportedMediaType, code: 3, "unsupported Content-Encoding '\(name)': use gzip or none", contentType: contentType
            )
        case .malformed(let text):
            return OTLPErrors.response(.badRequest, code: 3, text, contentType: contentType)
        case .tooLarge(let text):
            return OTLPErrors.response(.payloadTooLarge, code: 8, text, contentType: contentType)
        case .unavailable(let text):
            return OTLPErrors.response(.serviceUnavailable, code: 14, text, contentType: contentType, retryAfter: 1)
        }
    }
}
