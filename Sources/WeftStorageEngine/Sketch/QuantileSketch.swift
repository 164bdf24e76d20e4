#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A relative-error quantile sketch (DDSketch): values fall into logarithmic buckets whose width is a
/// fixed fraction of their value, so any quantile is estimated within ``relativeAccuracy`` of the
/// true value at that rank, whatever the distribution. Merging adds bucket counts, so it is exact,
/// associative and commutative: a sketch of a union equals the merge of the sketches of its parts.
public struct QuantileSketch: Sendable, Equatable {
    /// α: the estimate of a quantile whose true value is v lies in [v(1−α), v(1+α)].
    public static let relativeAccuracy = 0.005
    static let gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy)
    static let logGamma = log(gamma)
    /// Magnitudes below this count as zero.
    static let minIndexable = 1e-9

    /// Counts per bucket index, for positive values and (separately) for the magnitudes of negative ones.
    struct Store: Sendable, Equatable {
        var offset: Int32 = 0
        var bins: [UInt64] = []

        @inline(__always)
        mutating func add(_ index: Int32, _ n: UInt64) {
            let at = Int(index) - Int(self.offset)
            if at >= 0 && at < self.bins.count {
                self.bins[at] &+= n
                return
            }
            self.grow(toInclude: index)
            self.bins[Int(index - self.offset)] &+= n
        }

        /// Widens the bins to include `index`, with slack (at least doubling) so that growing is amortized.
        private mutating func grow(toInclude index: Int32) {
            if self.bins.isEmpty {
                self.offset = index - 4
                self.bins = [UInt64](repeating: 0, count: 8)
                return
            }
            if index < self.offset {
                let extra = Swift.max(Int(self.offset - index), self.bins.count)
                self.bins.insert(contentsOf: repeatElement(0, count: extra), at: 0)
                self.offset -= Int32(extra)
            } else {
                let extra = Swift.max(Int(index - self.offset) - self.bins.count + 1, self.bins.count)
                self.bins.append(contentsOf: repeatElement(0, count: extra))
            }
        }

        mutating func merge(_ other: Store) {
            guard !other.bins.isEmpty else { return }
            if self.bins.isEmpty {
                self = other
                return
            }
            let lo = Swift.min(self.offset, other.offset)
            let hi = Swift.max(self.offset + Int32(self.bins.count), other.offset + Int32(other.bins.count))
            if lo < self.offset || hi > self.offset + Int32(self.bins.count) {
                var bins = [UInt64](repeating: 0, count: Int(hi - lo))
                for (i, c) in self.bins.enumerated() { bins[Int(self.offset - lo) + i] = c }
                self.bins = bins
                self.offset = lo
            }
            for (i, c) in other.bins.enumerated() { self.bins[Int(other.offset - self.offset) + i] += c }
        }

        var total: UInt64 { self.bins.reduce(0, +) }

        /// Without empty bins at either end (so equal contents compare equal).
        var trimmed: Store {
            guard let first = self.bins.firstIndex(where: { $0 != 0 }), let last = self.bins.lastIndex(where: { $0 != 0 }) else { return Store() }
            return Store(offset: self.offset + Int32(first), bins: Array(self.bins[first...last]))
        }
    }

    public private(set) var count: UInt64 = 0
    public private(set) var zeroCount: UInt64 = 0
    public private(set) var min = Double.infinity
    public private(set) var max = -Double.infinity
    var positive = Store()
    var negative = Store()

    public init() {}

    public var isEmpty: Bool { self.count == 0 }

    static let log2Gamma = log2(gamma)
    static let inverseLog2Gamma = 1 / log2Gamma

    /// log2(1 + i/4096) for i in 0...4096: with linear interpolation between entries, log2 of any
    /// double within 1e-8, which is far inside a bucket's width (log2 γ ≈ 0.0144).
    static let log2Table: [Double] = (0...4096).map { log2(1 + Double($0) / 4096) }

    /// log2 by exponent and interpolated mantissa table: a few nanoseconds instead of a libm call.
    @inline(__always) static func fastLog2(_ x: Double) -> Double {
        let bits = x.bitPattern
        let exponent = Int((bits >> 52) & 0x7FF) - 1023
        let mantissa = bits & ((1 << 52) - 1)
        let top = Int(mantissa >> 40)
        let fraction = Double(mantissa & ((1 << 40) - 1)) * 0x1p-40
        return Self.log2Table.withUnsafeBufferPointer { t in
            Double(exponent) + t[top] + (t[top + 1] - t[top]) * fraction
        }
    }

    /// The bucket of a magnitude (≥ ``minIndexable``, finite and normal): ⌈log_γ(magnitude)⌉.
    @inline(__always) static func index(_ magnitude: Double) -> Int32 {
        Int32((fastLog2(magnitude) * inverseLog2Gamma).rounded(.up))
    }

    /// Adds a non-negative integer (a duration in nanoseconds, a token count).
    @inline(__always)
    public mutating func add(_ value: UInt64) {
        self.count += 1
        let v = Double(value)
        if v < self.min { self.min = v }
        if v > self.max { self.max = v }
        if value == 0 {
            self.zeroCount += 1
        } else {
            self.positive.add(Self.index(v), 1)
        }
    }

    /// The representative value of bucket `index` (the point of least relative error in it).
    static func value(_ index: Int32) -> Double {
        2 * pow(gamma, Double(index)) / (gamma + 1)
    }

    /// Adds `value` (`n` times). NaN is ignored.
    public mutating func add(_ value: Double, count n: UInt64 = 1) {
        guard !value.isNaN, n > 0 else { return }
        self.count += n
        if value < self.min { self.min = value }
        if value > self.max { self.max = value }
        let magnitude = abs(value)
        if magnitude < Self.minIndexable {
            self.zeroCount += n
        } else if value > 0 {
            self.positive.add(Self.index(Swift.min(magnitude, Double.greatestFiniteMagnitude)), n)
        } else {
            self.negative.add(Self.index(Swift.min(magnitude, Double.greatestFiniteMagnitude)), n)
        }
    }

    public mutating func merge(_ other: QuantileSketch) {
        guard other.count > 0 else { return }
        self.count += other.count
        self.zeroCount += other.zeroCount
        self.min = Swift.min(self.min, other.min)
        self.max = Swift.max(self.max, other.max)
        self.positive.merge(other.positive)
        self.negative.merge(other.negative)
    }

    /// The nearest-rank quantile: the value at 0-based rank ⌈q·count⌉ − 1 (at least 0) of the sorted
    /// input, within the relative accuracy; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard self.count > 0, q >= 0, q <= 1 else { return nil }
        let rank = Self.rank(q, self.count)
        var seen: UInt64 = 0
        // Negative values, most negative first (largest magnitude index first).
        for i in stride(from: self.negative.bins.count - 1, through: 0, by: -1) {
            seen += self.negative.bins[i]
            if seen > rank { return self.clamp(-Self.value(self.negative.offset + Int32(i))) }
        }
        seen += self.zeroCount
        if seen > rank { return self.clamp(0) }
        for (i, c) in self.positive.bins.enumerated() {
            seen += c
            if seen > rank { return self.clamp(Self.value(self.positive.offset + Int32(i))) }
        }
        return self.max
    }

    /// 0-based nearest rank of quantile `q` among `n` values: ⌈q·n⌉ − 1, at least 0.
    public static func rank(_ q: Double, _ n: UInt64) -> UInt64 {
        let r = (q * Double(n)).rounded(.up)
        return r < 1 ? 0 : Swift.min(n - 1, UInt64(r) - 1)
    }

    private func clamp(_ v: Double) -> Double { Swift.min(Swift.max(v, self.min), self.max) }

    public static func == (a: QuantileSketch, b: QuantileSketch) -> Bool {
        a.count == b.count && a.zeroCount == b.zeroCount && (a.count == 0 || (a.min == b.min && a.max == b.max))
            && a.positive.trimmed == b.positive.trimmed && a.negative.trimmed == b.negative.trimmed
    }

    // MARK: Wire form

    /// `[version][count][zero][min][max]` then each store as `[offset: zigzag][bins: packed]`.
    public func encode(into w: inout ByteWriter) {
        w.varint(1)
        w.varint(self.count)
        w.varint(self.zeroCount)
        w.fixed64(self.min.bitPattern)
        w.fixed64(self.max.bitPattern)
        for store in [self.positive.trimmed, self.negative.trimmed] {
            w.varint(zigzag(Int64(store.offset)))
            w.packed(store.bins.lazy.map { $0 })
        }
    }

    public static func decode(_ r: inout ByteReader) throws(BlockFormatError) -> QuantileSketch {
        guard try r.varint() == 1 else { throw BlockFormatError("unknown quantile sketch version") }
        var s = QuantileSketch()
        s.count = try r.varint()
        s.zeroCount = try r.varint()
        s.min = Double(bitPattern: try r.fixed64())
        s.max = Double(bitPattern: try r.fixed64())
        for i in 0..<2 {
            let offset = unzigzag(try r.varint())
            guard offset >= Int64(Int32.min), offset <= Int64(Int32.max) else { throw BlockFormatError("sketch offset out of range") }
            let store = Store(offset: Int32(offset), bins: try r.packed())
            if i == 0 { s.positive = store } else { s.negative = store }
        }
        guard s.positive.total + s.negative.total + s.zeroCount == s.count else { throw BlockFormatError("sketch counts disagree") }
        return s
    }
}
