import NIOCore

/// gRPC status codes (grpc/doc/statuscodes.md).
public enum GRPCStatusCode: Int, Sendable {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16
}

/// Why a gRPC request body is not one well-formed length-prefixed message.
public enum GRPCFrameError: Error, Sendable, Equatable {
    /// Fewer bytes than the 5-byte prefix, or than the length it declares.
    case truncated
    /// The compressed flag is neither 0 nor 1.
    case badFlag(UInt8)
    /// The declared length is over the limit.
    case tooLarge(length: Int, limit: Int)
    /// Bytes after the message (a unary call carries exactly one).
    case trailingData(Int)
    /// No message at all.
    case empty
}

/// gRPC over HTTP/2 message framing (grpc/doc/PROTOCOL-HTTP2.md): each message is a 1-byte compressed
/// flag, a 4-byte big-endian length, then the bytes.
public enum GRPCFraming {
    public static let prefixBytes = 5

    /// Whether a `content-type` is gRPC's (`application/grpc`, optionally `+proto`, with any parameters).
    public static func isGRPC(contentType: String) -> Bool {
        var base = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        while base.first == " " || base.first == "\t" { base.removeFirst() }
        while base.last == " " || base.last == "\t" { base.removeLast() }
        let lower = base.lowercased()
        return lower == "application/grpc" || lower == "application/grpc+proto"
    }

    /// Parses one message from the front of `buffer` (advancing it). Returns nil when the buffer does not
    /// yet hold a whole message (nothing is consumed then).
    public static func next(from buffer: inout ByteBuffer, maxMessageBytes: Int) throws(GRPCFrameError) -> (compressed: Bool, message: ByteBuffer)? {
        guard buffer.readableBytes >= Self.prefixBytes,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, endianness: .big, as: UInt32.self)
        else { return nil }
        guard flag <= 1 else { throw .badFlag(flag) }
        guard Int(length) <= maxMessageBytes else { throw .tooLarge(length: Int(length), limit: maxMessageBytes) }
        guard buffer.readableBytes - Self.prefixBytes >= Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: Self.prefixBytes)
        let message = buffer.readSlice(length: Int(length))!
        return (flag == 1, message)
    }

    /// The single message of a unary request body.
    public static func unary(_ body: ByteBuffer, maxMessageBytes: Int) throws(GRPCFrameError) -> (compressed: Bool, message: ByteBuffer) {
        var body = body
        guard body.readableBytes > 0 else { throw .empty }
        guard let first = try Self.next(from: &body, maxMessageBytes: maxMessageBytes) else { throw .truncated }
        guard body.readableBytes == 0 else { throw .trailingData(body.readableBytes) }
        return first
    }

    /// Appends one framed message.
    public static func write(_ message: some Collection<UInt8>, compressed: Bool = false, to buffer: inout ByteBuffer) {
        buffer.writeInteger(compressed ? UInt8(1) : UInt8(0))
        buffer.writeInteger(UInt32(message.count), endianness: .big)
        buffer.writeBytes(message)
    }

    public static func frame(_ message: some Collection<UInt8>, compressed: Bool = false) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(Self.prefixBytes + message.count)
        Self.write(message, compressed: compressed, to: &buffer)
        return buffer
    }

    /// `grpc-message` encoding: bytes outside printable ASCII (0x20–0x7E), and `%`, become `%XX`.
    public static func percentEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for b in text.utf8 {
            if b >= 0x20 && b <= 0x7E && b != UInt8(ascii: "%") {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Inverse of ``percentEncode(_:)``; malformed escapes are kept as they are (as the spec asks).
    public static func percentDecode(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let h = hexDigit(bytes[i + 1]), let l = hexDigit(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
