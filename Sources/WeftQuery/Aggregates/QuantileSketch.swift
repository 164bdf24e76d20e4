#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WeftStorageEngine

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

        mutating func add(_ index: Int32, _ n: UInt64) {
            if self.bins.isEmpty {
                self.offset = index
                self.bins = [n]
                return
            }
            if index < self.offset {
                self.bins.insert(contentsOf: repeatElement(0, count: Int(self.offset - index)), at: 0)
                self.offset = index
            } else if Int(index - self.offset) >= self.bins.count {
                self.bins.append(contentsOf: repeatElement(0, count: Int(index - self.offset) - self.bins.count + 1))
            }
            self.bins[Int(index - self.offset)] += n
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

    @inline(__always) static func index(_ magnitude: Double) -> Int32 {
        Int32((log(magnitude) / logGamma).rounded(.up))
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

    /// The value at rank ⌊q·(count−1)⌋ of the sorted input, within the relative accuracy; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard self.count > 0, q >= 0, q <= 1 else { return nil }
        let rank = UInt64((q * Double(self.count - 1)).rounded(.down))
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
