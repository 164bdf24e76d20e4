/// A set of Unicode scalar values as sorted, disjoint, non-adjacent closed ranges, with a bitmap for
/// ASCII so the common test is two shifts.
struct ScalarSet: Equatable, Sendable {
    private(set) var ranges: [ClosedRange<UInt32>] = []
    /// Members below 64 and from 64 to 127.
    private var asciiLow: UInt64 = 0
    private var asciiHigh: UInt64 = 0

    static let maxScalar: UInt32 = 0x10FFFF

    init() {}

    init(_ ranges: [ClosedRange<UInt32>]) {
        self.ranges = Self.normalized(ranges)
        self.fillASCII()
    }

    static func scalar(_ v: UInt32) -> ScalarSet { ScalarSet([v...v]) }

    /// Every scalar (`.` with the `s` flag).
    static let any = ScalarSet([0...maxScalar])
    /// Every scalar but `\n` (`.`).
    static let anyButNewline = ScalarSet([0...9, 11...maxScalar])
    static let digit = ScalarSet([48...57])
    /// `\w`: ASCII letters, digits and `_`.
    static let word = ScalarSet([48...57, 65...90, 95...95, 97...122])
    /// `\s`: tab, newline, form feed, carriage return, space (RE2's Perl class; no vertical tab).
    static let space = ScalarSet([9...10, 12...13, 32...32])

    @inline(__always) func contains(_ v: UInt32) -> Bool {
        if v < 64 { return self.asciiLow & (1 << UInt64(v)) != 0 }
        if v < 128 { return self.asciiHigh & (1 << UInt64(v - 64)) != 0 }
        var lo = 0, hi = self.ranges.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            let r = self.ranges[mid]
            if v < r.lowerBound {
                hi = mid - 1
            } else if v > r.upperBound {
                lo = mid + 1
            } else {
                return true
            }
        }
        return false
    }

    func union(_ other: ScalarSet) -> ScalarSet { ScalarSet(self.ranges + other.ranges) }

    /// Every scalar not in the set.
    func inverted() -> ScalarSet {
        var out: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for r in self.ranges {
            if r.lowerBound > next { out.append(next...(r.lowerBound - 1)) }
            next = r.upperBound + 1
        }
        if next <= Self.maxScalar { out.append(next...Self.maxScalar) }
        return ScalarSet(out)
    }

    /// The set with the other case of its letters added (simple one-scalar case mappings). Ranges of
    /// non-ASCII scalars larger than ``foldLimit`` are taken as they are.
    func caseFolded() -> ScalarSet {
        var extra: [ClosedRange<UInt32>] = []
        for r in self.ranges {
            // ASCII letters: whole ranges at once.
            for (lower, upper) in [(UInt32(97), UInt32(122)), (UInt32(65), UInt32(90))] {
                let lo = max(r.lowerBound, lower), hi = min(r.upperBound, upper)
                if lo <= hi { extra.append((lo ^ 0x20)...(hi ^ 0x20)) }
            }
            let lo = max(r.lowerBound, 128)
            guard lo <= r.upperBound, r.upperBound - lo < Self.foldLimit else { continue }
            for v in lo...r.upperBound {
                guard let s = Unicode.Scalar(v) else { continue }
                for mapped in [s.properties.lowercaseMapping, s.properties.uppercaseMapping] {
                    let scalars = mapped.unicodeScalars
                    if scalars.count == 1, let m = scalars.first, m.value != v { extra.append(m.value...m.value) }
                }
            }
        }
        return extra.isEmpty ? self : ScalarSet(self.ranges + extra)
    }

    static let foldLimit: UInt32 = 4096

    private static func normalized(_ input: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        let sorted = input.sorted { $0.lowerBound < $1.lowerBound }
        var out: [ClosedRange<UInt32>] = []
        for r in sorted {
            if let last = out.last, r.lowerBound <= last.upperBound &+ 1 {
                out[out.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    private mutating func fillASCII() {
        for r in self.ranges where r.lowerBound < 128 {
            for v in r.lowerBound...min(r.upperBound, 127) {
                if v < 64 { self.asciiLow |= 1 << UInt64(v) } else { self.asciiHigh |= 1 << UInt64(v - 64) }
            }
        }
    }
}
