/// The org (isolation tenant) named by a request's `X-Scope-OrgID` header.
///
/// Org IDs follow the rules of Cortex and Tempo: 1 to 150 bytes of ASCII letters, digits and
/// `! - _ . * ' ( )`, and neither `.` nor `..`. Because every accepted ID is ASCII, two IDs are the
/// same org exactly when their bytes are equal: no Unicode normalisation, no replacement of invalid
/// UTF-8, no truncation can make two different headers read each other's data.
public enum OrgID {
    /// The org of requests that send no header.
    public static let defaultOrg = "single-tenant"
    /// Longest org ID, in bytes.
    public static let maxBytes = 150

    /// Why a header is not an org ID.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// The org a header names: the default org when the header is absent or empty, else the header
    /// itself if it is a valid org ID.
    public static func parse(_ header: String?) -> Result<String, Invalid> {
        guard let header, !header.isEmpty else { return .success(self.defaultOrg) }
        var count = 0
        for byte in header.utf8 {
            count += 1
            guard count <= self.maxBytes else {
                return .failure(Invalid(description: "X-Scope-OrgID is longer than \(self.maxBytes) bytes"))
            }
            guard Self.allowed(byte) else {
                return .failure(Invalid(description:
                    "X-Scope-OrgID may hold only ASCII letters, digits and ! - _ . * ' ( ) (found byte 0x\(String(byte, radix: 16)))"
                ))
            }
        }
        if header == "." || header == ".." {
            return .failure(Invalid(description: "X-Scope-OrgID may not be '.' or '..'"))
        }
        return .success(header)
    }

    @inline(__always)
    static func allowed(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "*"),
             UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"):
            return true
        default:
            return false
        }
    }
}
