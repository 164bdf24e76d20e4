import WeftModel

/// A decoder of `ExportTraceServiceRequest` bodies into a ``SpanBatch``.
public protocol OTLPBatchDecoder {
    mutating func decode(_ bytes: UnsafeRawBufferPointer, into batch: inout SpanBatch) throws(OTLPDecodeError) -> DecodeOutcome
}

extension OTLPProtobufDecoder: OTLPBatchDecoder {}
extension OTLPJSONDecoder: OTLPBatchDecoder {}

/// Decodes request bodies of either OTLP encoding with the same options (ingest and WAL replay).
public struct OTLPRequestDecoder {
    private var protobuf: OTLPProtobufDecoder
    private var json: OTLPJSONDecoder

    public init(options: DecodeOptions) {
        self.protobuf = OTLPProtobufDecoder(options: options)
        self.json = OTLPJSONDecoder(options: options)
    }

    public mutating func decode(
        _ bytes: UnsafeRawBufferPointer, encoding: OTLPEncoding, into batch: inout SpanBatch
    ) throws(OTLPDecodeError) -> DecodeOutcome {
        switch encoding {
        case .protobuf: return try self.protobuf.decode(bytes, into: &batch)
        case .json: return try self.json.decode(bytes, into: &batch)
        }
    }
}
