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
    @usableFromInline static let minIndexable = 1e-9

    /// Counts per bucket index, for positive values and (separately) for the magnitudes of negative ones.
    @usableFromInline
    struct Store: Sendable, Equatable {
        @usableFromInline var offset: Int32 = 0
        @usableFromInline var bins: [UInt64] = []

        @usableFromInline init() {}

        init(offset: Int32, bins: [UInt64]) {
            self.offset = offset
            self.bins = bins
        }

        @inlinable
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
        @usableFromInline
        mutating func grow(toInclude index: Int32) {
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
                // Widened once to the union of both ranges, copied in bulk.
                let old = self.bins
                self.bins = [UInt64](unsafeUninitializedCapacity: Int(hi - lo)) { buffer, count in
                    buffer.initialize(repeating: 0)
                    old.withUnsafeBufferPointer { o in
                        _ = UnsafeMutableBufferPointer(rebasing: buffer[Int(self.offset - lo)...]).initialize(fromContentsOf: o)
                    }
                    count = buffer.count
                }
                self.offset = lo
            }
            let at = Int(other.offset - self.offset)
            self.bins.withUnsafeMutableBufferPointer { into in
                other.bins.withUnsafeBufferPointer { from in
                    for i in from.indices { into[at + i] &+= from[i] }
                }
            }
        }

        var total: UInt64 { self.bins.reduce(0, +) }

        /// Without empty bins at either end (so equal contents compare equal).
        var trimmed: Store {
            guard let first = self.bins.firstIndex(where: { $0 != 0 }), let last = self.bins.lastIndex(where: { $0 != 0 }) else { return Store() }
            return Store(offset: self.offset + Int32(first), bins: Array(self.bins[first...last]))
        }
    }

    @usableFromInline var _count: UInt64 = 0
    @usableFromInline var _zeroCount: UInt64 = 0
    @usableFromInline var _min = Double.infinity
    @usableFromInline var _max = -Double.infinity
    @usableFromInline var positive = Store()
    @usableFromInline var negative = Store()

    public var count: UInt64 { self._count }
    public var zeroCount: UInt64 { self._zeroCount }
    public var min: Double { self._min }
    public var max: Double { self._max }

    public init() {}

    public var isEmpty: Bool { self._count == 0 }

    static let log2Gamma = log2(gamma)
    @usableFromInline static let inverseLog2Gamma = 1 / log2Gamma

    /// log2(1 + i/1024) for i in 0...1024: with linear interpolation between entries, log2 of any
    /// double within 2e-7, far inside a bucket's width (log2 γ ≈ 0.0144). Allocated once, never freed.
    /// Written once before first use and only read afterwards.
    @usableFromInline nonisolated(unsafe) static let log2Table: UnsafePointer<Double> = {
        let table = UnsafeMutablePointer<Double>.allocate(capacity: 1025)
        for i in 0...1024 { table[i] = log2(1 + Double(i) / 1024) }
        return UnsafePointer(table)
    }()

    /// log2 by exponent and interpolated mantissa table: a few nanoseconds instead of a libm call.
    @inlinable @inline(__always) static func fastLog2(_ x: Double) -> Double {
        let bits = x.bitPattern
        let exponent = Int((bits >> 52) & 0x7FF) - 1023
        let mantissa = bits & ((1 << 52) - 1)
        let top = Int(mantissa >> 42)
        let fraction = Double(mantissa & ((1 << 42) - 1)) * 0x1p-42
        let t = Self.log2Table
        return Double(exponent) + t[top] + (t[top + 1] - t[top]) * fraction
    }

    /// The bucket of a magnitude (≥ ``minIndexable``, finite and normal): ⌈log_γ(magnitude)⌉.
    @inlinable @inline(__always) static func index(_ magnitude: Double) -> Int32 {
        let x = fastLog2(magnitude) * inverseLog2Gamma
        // Ceiling without a libm call: truncation rounds toward zero, so only positive fractions step up.
        let t = Int32(x)
        return Double(t) < x ? t + 1 : t
    }

    /// Adds a non-negative integer (a duration in nanoseconds, a token count).
    @inlinable @inline(__always)
    public mutating func add(_ value: UInt64) {
        self._count += 1
        let v = Double(value)
        if v < self._min { self._min = v }
        if v > self._max { self._max = v }
        if value == 0 {
            self._zeroCount += 1
        } else {
            self.positive.add(Self.index(v), 1)
        }
    }

    /// The representative value of bucket `index` (the point of least relative error in it).
    static func value(_ index: Int32) -> Double {
        2 * pow(gamma, Double(index)) / (gamma + 1)
    }

    /// Adds `value` (`n` times). NaN is ignored.
    @inlinable
    public mutating func add(_ value: Double, count n: UInt64 = 1) {
        guard !value.isNaN, n > 0 else { return }
        self._count += n
        if value < self._min { self._min = value }
        if value > self._max { self._max = value }
        let magnitude = abs(value)
        if magnitude < Self.minIndexable {
            self._zeroCount += n
        } else if value > 0 {
            self.positive.add(Self.index(Swift.min(magnitude, Double.greatestFiniteMagnitude)), n)
        } else {
            self.negative.add(Self.index(Swift.min(magnitude, Double.greatestFiniteMagnitude)), n)
        }
    }

    public mutating func merge(_ other: QuantileSketch) {
        guard other.count > 0 else { return }
        self._count += other.count
        self._zeroCount += other.zeroCount
        self._min = Swift.min(self._min, other.min)
        self._max = Swift.max(self._max, other.max)
        self.positive.merge(other.positive)
        self.negative.merge(other.negative)
    }

    /// The nearest-rank quantile: the value at 0-based rank ⌈q·count⌉ − 1 (at least 0) of the sorted
    /// input, within the relative accuracy; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard self._count > 0, q >= 0, q <= 1 else { return nil }
        let rank = Self.rank(q, self._count)
        var seen: UInt64 = 0
        // Negative values, most negative first (largest magnitude index first).
        for i in stride(from: self.negative.bins.count - 1, through: 0, by: -1) {
            seen += self.negative.bins[i]
            if seen > rank { return self.clamp(-Self.value(self.negative.offset + Int32(i))) }
        }
        seen += self._zeroCount
        if seen > rank { return self.clamp(0) }
        for (i, c) in self.positive.bins.enumerated() {
            seen += c
            if seen > rank { return self.clamp(Self.value(self.positive.offset + Int32(i))) }
        }
        return self._max
    }

    /// 0-based nearest rank of quantile `q` among `n` values: ⌈q·n⌉ − 1, at least 0.
    public static func rank(_ q: Double, _ n: UInt64) -> UInt64 {
        let r = (q * Double(n)).rounded(.up)
        return r < 1 ? 0 : Swift.min(n - 1, UInt64(r) - 1)
    }

    private func clamp(_ v: Double) -> Double { Swift.min(Swift.max(v, self._min), self._max) }

    public static func == (a: QuantileSketch, b: QuantileSketch) -> Bool {
        a.count == b.count && a.zeroCount == b.zeroCount && (a.count == 0 || (a.min == b.min && a.max == b.max))
            && a.positive.trimmed == b.positive.trimmed && a.negative.trimmed == b.negative.trimmed
    }

    // MARK: Wire form

    /// `[version][count][zero][min][max]` then each store as `[offset: zigzag][bins: packed]`.
    public func encode(into w: inout ByteWriter) {
        w.varint(1)
        w.varint(self._count)
        w.varint(self._zeroCount)
        w.fixed64(self._min.bitPattern)
        w.fixed64(self._max.bitPattern)
        for store in [self.positive.trimmed, self.negative.trimmed] {
            w.varint(zigzag(Int64(store.offset)))
            w.packed(store.bins.lazy.map { $0 })
        }
    }

    public static func decode(_ r: inout ByteReader) throws(BlockFormatError) -> QuantileSketch {
        guard try r.varint() == 1 else { throw BlockFormatError("unknown quantile sketch version") }
        var s = QuantileSketch()
        s._count = try r.varint()
        s._zeroCount = try r.varint()
        s._min = Double(bitPattern: try r.fixed64())
        s._max = Double(bitPattern: try r.fixed64())
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
