import WeftModel
import WeftOTLP

/// One logged write.
///
/// Version 2 (written today) holds the decoded batch: `[2][org length: UInt16 LE][org][placement
/// length: UInt16 LE][placement][SpanBatchCodec payload]`. Version 1 (still replayed) held the OTLP
/// request body as accepted: `[1][encoding][org length: UInt16 LE][org][body]`; this struct and
/// ``encode(org:encoding:body:)`` write that form. ``decode(_:decoder:legacyPlacement:)`` reads both.
public struct WALEntry: Sendable, Equatable {
    public var org: String
    public var encoding: OTLPEncoding
    public var body: [UInt8]

    public init(org: String, encoding: OTLPEncoding, body: [UInt8]) {
        self.org = org
        self.encoding = encoding
        self.body = body
    }

    /// Longest org an entry can name (its length is a `UInt16`).
    public static let maxOrgBytes = Int(UInt16.max)

    /// Longest placement a version-2 entry can name (its length is a `UInt16`).
    public static let maxPlacementBytes = Int(UInt16.max)

    /// The org's bytes, refused (never truncated) when its length does not fit the entry.
    private static func orgBytes(_ org: String) throws(DiskError) -> [UInt8] {
        try Self.fieldBytes(org, "org ID", limit: Self.maxOrgBytes)
    }

    private static func fieldBytes(_ text: String, _ name: String, limit: Int) throws(DiskError) -> [UInt8] {
        let bytes = Array(text.utf8)
        guard bytes.count <= limit else {
            throw DiskError("\(name) of \(bytes.count) bytes does not fit a WAL entry (at most \(limit))")
        }
        return bytes
    }

    /// Encodes an entry without first copying the body into a struct.
    public static func encode(org: String, encoding: OTLPEncoding, body: UnsafeRawBufferPointer) throws(DiskError) -> [UInt8] {
        let orgBytes = try Self.orgBytes(org)
        var out = [UInt8]()
        out.reserveCapacity(4 + orgBytes.count + body.count)
        out.append(1)
        out.append(encoding == .protobuf ? 1 : 2)
        out.append(UInt8(orgBytes.count & 0xFF))
        out.append(UInt8(orgBytes.count >> 8))
        out.append(contentsOf: orgBytes)
        out.append(contentsOf: body)
        return out
    }

    /// The entry framed for ``WAL/append(framed:)``, built in one buffer.
    public static func framed(org: String, encoding: OTLPEncoding, body: UnsafeRawBufferPointer) throws(DiskError) -> [UInt8] {
        let orgBytes = try Self.orgBytes(org)
        let payloadCount = 4 + orgBytes.count + body.count
        return [UInt8](unsafeUninitializedCapacity: WAL.frameOverhead + payloadCount) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            var at = WAL.frameOverhead
            raw[at] = 1
            raw[at + 1] = encoding == .protobuf ? 1 : 2
            raw[at + 2] = UInt8(orgBytes.count & 0xFF)
            raw[at + 3] = UInt8(orgBytes.count >> 8)
            at += 4
            for b in orgBytes {
                raw[at] = b
                at += 1
            }
            if let base = body.baseAddress, body.count > 0 {
                (raw.baseAddress! + at).copyMemory(from: base, byteCount: body.count)
            }
            let payload = UnsafeRawBufferPointer(rebasing: raw[WAL.frameOverhead..<(WAL.frameOverhead + payloadCount)])
            raw.storeBytes(of: UInt32(payloadCount).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: CRC32C.checksum(payload).littleEndian, toByteOffset: 4, as: UInt32.self)
            count = WAL.frameOverhead + payloadCount
        }
    }

    public func encoded() throws -> [UInt8] {
        try self.body.withUnsafeBytes { try WALEntry.encode(org: self.org, encoding: self.encoding, body: $0) }
    }

    /// Parses an entry; the body is a view into `raw`.
    public static func parse(_ raw: UnsafeRawBufferPointer) throws(DiskError) -> (org: String, encoding: OTLPEncoding, body: UnsafeRawBufferPointer) {
        guard raw.count >= 4, raw[0] == 1 else { throw DiskError("WAL entry has an unknown version") }
        let encoding: OTLPEncoding
        switch raw[1] {
        case 1: encoding = .protobuf
        case 2: encoding = .json
        default: throw DiskError("WAL entry has an unknown encoding \(raw[1])")
        }
        let orgLength = Int(raw[2]) | Int(raw[3]) << 8
        guard raw.count >= 4 + orgLength else { throw DiskError("WAL entry is shorter than its org") }
        let org = String(decoding: UnsafeRawBufferPointer(rebasing: raw[4..<(4 + orgLength)]), as: UTF8.self)
        return (org, encoding, UnsafeRawBufferPointer(rebasing: raw[(4 + orgLength)...]))
    }

    // MARK: Version 2

    /// A version-2 entry (unframed): the batch of `org` for `placement`.
    public static func encode(org: String, placement: String, batch: SpanBatch) throws(DiskError) -> [UInt8] {
        let framed = try Self.framed(org: org, placement: placement, batch: batch)
        return Array(framed[WAL.frameOverhead...])
    }

    /// A version-2 entry framed for ``WAL/append(framed:)``, encoded straight into one buffer. Org and
    /// placement longer than their `UInt16` length prefix are refused, never truncated.
    public static func framed(org: String, placement: String, batch: SpanBatch) throws(DiskError) -> [UInt8] {
        let orgBytes = try Self.orgBytes(org)
        let placementBytes = try Self.fieldBytes(placement, "placement", limit: Self.maxPlacementBytes)
        let headerCount = 5 + orgBytes.count + placementBytes.count
        let bound = headerCount + SpanBatchCodec.encodedSizeBound(batch)
        var tooLarge = false
        let framed = [UInt8](unsafeUninitializedCapacity: WAL.frameOverhead + bound) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            var at = WAL.frameOverhead
            raw[at] = 2
            at += 1
            for field in [orgBytes, placementBytes] {
                raw.storeBytes(of: UInt16(field.count).littleEndian, toByteOffset: at, as: UInt16.self)
                at += 2
                field.withUnsafeBytes { source in
                    if let base = source.baseAddress { (raw.baseAddress! + at).copyMemory(from: base, byteCount: source.count) }
                }
                at += field.count
            }
            at += SpanBatchCodec.encode(batch, into: UnsafeMutableRawBufferPointer(rebasing: raw[at...]))
            let payloadCount = at - WAL.frameOverhead
            guard payloadCount <= WAL.maxRecordSize else {
                tooLarge = true
                count = 0
                return
            }
            let payload = UnsafeRawBufferPointer(rebasing: raw[WAL.frameOverhead..<at])
            raw.storeBytes(of: UInt32(payloadCount).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: CRC32C.checksum(payload).littleEndian, toByteOffset: 4, as: UInt32.self)
            count = at
        }
        if tooLarge { throw DiskError("batch of \(batch.spanCount) spans does not fit a WAL record (at most \(WAL.maxRecordSize) bytes)") }
        return framed
    }

    /// Decodes a record of either version: version 2 carries its batch; a version-1 record's OTLP body is
    /// decoded again with `decoder` and is given `legacyPlacement` (it predates placements).
    public static func decode(
        _ raw: UnsafeRawBufferPointer, decoder: inout OTLPRequestDecoder, legacyPlacement: String
    ) throws(DiskError) -> (org: String, placement: String, batch: SpanBatch) {
        guard let version = raw.first else { throw DiskError("WAL entry is empty") }
        switch version {
        case 1:
            let entry = try Self.parse(raw)
            var batch = SpanBatch()
            do {
                _ = try decoder.decode(entry.body, encoding: entry.encoding, into: &batch)
            } catch {
                throw DiskError("WAL entry (version 1) holds malformed OTLP: \(error.message)")
            }
            return (entry.org, legacyPlacement, batch)
        case 2:
            var at = 1
            let org = try Self.field(raw, at: &at, "org")
            let placement = try Self.field(raw, at: &at, "placement")
            do {
                let batch = try SpanBatchCodec.decode(UnsafeRawBufferPointer(rebasing: raw[at...]))
                return (org, placement, batch)
            } catch {
                throw DiskError("WAL entry (version 2) holds an undecodable batch: \(error)")
            }
        default:
            throw DiskError("WAL entry has unknown version \(version)")
        }
    }

    /// A `UInt16`-length-prefixed UTF-8 field of a version-2 entry.
    private static func field(_ raw: UnsafeRawBufferPointer, at: inout Int, _ name: String) throws(DiskError) -> String {
        guard raw.count - at >= 2 else { throw DiskError("WAL entry (version 2) ends before its \(name) length") }
        let length = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
        at += 2
        guard raw.count - at >= length else { throw DiskError("WAL entry (version 2) is shorter than its \(name)") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: raw[at..<(at + length)]), as: UTF8.self)
        at += length
        return text
    }
}
