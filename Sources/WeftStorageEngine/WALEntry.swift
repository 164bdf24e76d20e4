import WeftOTLP

/// One logged write: the org and the OTLP request body exactly as accepted (after decompression).
///
/// Logging the request rather than a re-encoding keeps the acknowledgement path a single copy; replay
/// decodes it again with the same decoder. Layout: `[version=1][encoding][org length: UInt16 LE][org][body]`.
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

    /// The org's bytes, refused (never truncated) when its length does not fit the entry.
    private static func orgBytes(_ org: String) throws(DiskError) -> [UInt8] {
        let bytes = Array(org.utf8)
        guard bytes.count <= Self.maxOrgBytes else {
            throw DiskError("org ID of \(bytes.count) bytes does not fit a WAL entry (at most \(Self.maxOrgBytes))")
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
    public static func parse(_ raw: UnsafeRawBufferPointer) throws -> (org: String, encoding: OTLPEncoding, body: UnsafeRawBufferPointer) {
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
}
