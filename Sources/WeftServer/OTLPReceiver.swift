import CompressNIO
import NIOCore
import NIOHTTP1
import WeftModel
import WeftOTLP
import WeftStorageEngine

/// Error responses of the OTLP endpoint: a `google.rpc.Status` in the request's encoding.
enum OTLPErrors {
    static func response(_ status: HTTPResponseStatus, code: Int, _ message: String, contentType: String?, retryAfter: Int? = nil) -> HTTPResponse {
        let encoding = contentType.flatMap(OTLPEncoding.init(contentType:)) ?? .json
        var response = HTTPResponse(
            status: status,
            contentType: encoding.contentType,
            body: OTLPResponse.status(code: code, message: message, encoding: encoding)
        )
        if let retryAfter { response.headers.add(name: "retry-after", value: String(retryAfter)) }
        return response
    }
}

/// `POST /v1/traces`: decode, log durably, add to the head, answer per the OTLP/HTTP spec.
struct OTLPReceiver: Sendable {
    /// Default org when no `X-Scope-OrgID` header is sent.
    static let defaultOrg = "single-tenant"

    let head: Head
    let committer: WALCommitter
    let metrics: NodeMetrics
    let options: DecodeOptions
    /// Largest body after decompression.
    let maxDecodedBytes: Int
    /// The head stripe of each event loop, so loops never contend on head appends.
    let stripes: [ObjectIdentifier: Int]

    func handle(_ request: HTTPRequest, on loop: any EventLoop) -> EventLoopFuture<HTTPResponse> {
        let started = ContinuousClock.now
        self.metrics.otlpRequests.increment()
        self.metrics.bytesReceived.increment(by: Int64(request.body.readableBytes))
        let contentType = request.headers.first(name: "content-type")
        guard let contentType, let encoding = OTLPEncoding(contentType: contentType) else {
            self.metrics.rejectRequest(.unsupportedMediaType)
            return loop.makeSucceededFuture(OTLPErrors.response(
                .unsupportedMediaType, code: 3,
                "unsupported Content-Type '\(contentType ?? "")': use application/x-protobuf or application/json",
                contentType: nil
            ))
        }
        var body = request.body
        switch request.headers.first(name: "content-encoding")?.lowercased() {
        case nil, "", "identity", "none":
            break
        case "gzip", "x-gzip":
            do {
                body = try body.decompress(with: .gzip, maxSize: self.maxDecodedBytes)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                self.metrics.rejectRequest(.tooLarge)
                return loop.makeSucceededFuture(OTLPErrors.response(
                    .payloadTooLarge, code: 8,
                    "decompressed body exceeds the limit of \(self.maxDecodedBytes) bytes", contentType: contentType
                ))
            } catch {
                self.metrics.rejectRequest(.malformed)
                return loop.makeSucceededFuture(OTLPErrors.response(
                    .badRequest, code: 3, "body is not valid gzip: \(error)", contentType: contentType
                ))
            }
        case let other?:
            self.metrics.rejectRequest(.unsupportedMediaType)
            return loop.makeSucceededFuture(OTLPErrors.response(
                .unsupportedMediaType, code: 3, "unsupported Content-Encoding '\(other)': use gzip or none",
                contentType: contentType
            ))
        }
        if body.readableBytes > self.maxDecodedBytes {
            self.metrics.rejectRequest(.tooLarge)
            return loop.makeSucceededFuture(OTLPErrors.response(
                .payloadTooLarge, code: 8, "body exceeds the limit of \(self.maxDecodedBytes) bytes", contentType: contentType
            ))
        }
        self.metrics.bytesDecoded.increment(by: Int64(body.readableBytes))
        let org = request.headers.first(name: "x-scope-orgid").flatMap { $0.isEmpty ? nil : $0 } ?? OTLPReceiver.defaultOrg

        // Decode straight from the request bytes.
        var batch = SpanBatch()
        let outcome: DecodeOutcome
        do {
            outcome = try body.withUnsafeReadableBytes { raw throws(OTLPDecodeError) -> DecodeOutcome in
                switch encoding {
                case .protobuf:
                    var decoder = OTLPProtobufDecoder(options: self.options)
                    return try decoder.decode(raw, into: &batch)
                case .json:
                    var decoder = OTLPJSONDecoder(options: self.options)
                    return try decoder.decode(raw, into: &batch)
                }
            }
        } catch {
            self.metrics.rejectRequest(.malformed)
            return loop.makeSucceededFuture(OTLPErrors.response(
                .badRequest, code: 3, "malformed OTLP \(encoding == .protobuf ? "protobuf" : "JSON"): \(error.message)",
                contentType: contentType
            ))
        }
        self.metrics.rejectSpans(outcome.rejectedSpans, .invalidSpan)
        let success = HTTPResponse(
            status: .ok,
            contentType: encoding.contentType,
            body: OTLPResponse.export(
                rejected: outcome.rejectedSpans,
                message: outcome.rejectedSpans > 0 ? "\(outcome.rejectedSpans) span(s) rejected; first: \(outcome.rejectionMessage)" : "",
                encoding: encoding
            )
        )
        guard outcome.acceptedSpans > 0 else {
            self.metrics.otlpLatency.record(ContinuousClock.now - started)
            return loop.makeSucceededFuture(success)
        }

        // Durable first, then visible, then acknowledged.
        let record = body.withUnsafeReadableBytes { WALEntry.framed(org: org, encoding: encoding, body: $0) }
        let promise = loop.makePromise(of: HTTPResponse.self)
        let head = self.head
        let metrics = self.metrics
        let accepted = outcome.acceptedSpans
        let decoded = batch
        let stripe = self.stripes[ObjectIdentifier(loop)] ?? 0
        self.committer.submit(record) { result in
            switch result {
            case .success:
                // Back on the event loop: the WAL thread only writes and syncs.
                loop.execute {
                    head.append(decoded, org: org, stripe: stripe)
                    metrics.spansAccepted.increment(by: Int64(accepted))
                    metrics.otlpLatency.record(ContinuousClock.now - started)
                    promise.succeed(success)
                }
            case .failure(let error):
                metrics.rejectRequest(.unavailable)
                metrics.rejectSpans(accepted, .unavailable)
                promise.succeed(OTLPErrors.response(
                    .serviceUnavailable, code: 14, "spans not stored: \(error)", contentType: contentType, retryAfter: 1
                ))
            }
        }
        return promise.futureResult
    }
}
