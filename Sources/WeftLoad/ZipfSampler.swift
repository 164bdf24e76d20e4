/// Samples ranks `0..<count` with probability proportional to `1 / (rank + 1)^exponent`.
///
/// The cumulative distribution is computed once; each sample is one uniform draw and a binary search
/// over the CDF (O(log n)). Rank 0 is the most frequent.
public struct ZipfSampler: Sendable {
    /// Number of ranks.
    public let count: Int
    /// The skew exponent `s`.
    public let exponent: Double
    /// `cdf[i]` = P(rank ≤ i); the last entry is exactly 1.
    @usableFromInline let cdf: [Double]
    /// `guide[b]` = the first rank whose CDF exceeds `b / guideSize`: narrows the binary search.
    @usableFromInline let guide: [UInt32]
    @usableFromInline let guideSize: Double

    /// - Parameters:
    ///   - count: number of ranks (at least 1).
    ///   - exponent: skew `s` ≥ 0 (0 is uniform; about 1 is classic Zipf).
    public init(count: Int, exponent: Double) {
        precondition(count >= 1, "ZipfSampler needs at least one rank")
        precondition(exponent >= 0 && exponent.isFinite, "ZipfSampler exponent must be finite and >= 0")
        self.count = count
        self.exponent = exponent
        var cdf = [Double](repeating: 0, count: count)
        var sum = 0.0
        for i in 0..<count {
            sum += 1 / _powD(Double(i + 1), exponent)
            cdf[i] = sum
        }
        let inv = 1 / sum
        for i in 0..<count { cdf[i] *= inv }
        cdf[count - 1] = 1
        self.cdf = cdf
        var size = 64
        while size < min(count * 2, 1 << 16) { size <<= 1 }
        var guide = [UInt32](repeating: 0, count: size + 1)
        var rank = 0
        for b in 0...size {
            let u = Double(b) / Double(size)
            while rank < count - 1 && cdf[rank] <= u { rank += 1 }
            guide[b] = UInt32(rank)
        }
        self.guide = guide
        self.guideSize = Double(size)
    }

    /// Probability of `rank`.
    public func probability(ofRank rank: Int) -> Double {
        rank == 0 ? self.cdf[0] : self.cdf[rank] - self.cdf[rank - 1]
    }

    /// The rank for a uniform value `u` in [0, 1): the first rank whose CDF exceeds `u`.
    @inlinable
    public func rank(forUniform u: Double) -> Int {
        let b = min(max(Int(u * self.guideSize), 0), self.guide.count - 1)
        // The answer lies between the guide entries of u's bucket (inclusive).
        var lo = Int(self.guide[b])
        var hi = Int(self.guide[min(b + 1, self.guide.count - 1)])
        return self.cdf.withUnsafeBufferPointer { cdf in
            while lo < hi {
                let mid = (lo &+ hi) >> 1
                if cdf[mid] > u { hi = mid } else { lo = mid &+ 1 }
            }
            return lo
        }
    }

    /// Draws a rank.
    @inlinable
    public func sample(_ rng: inout LoadRandom) -> Int {
        self.rank(forUniform: rng.unit())
    }

    /// Draws a rank with any generator.
    @inlinable
    public func sample<G: RandomNumberGenerator>(using rng: inout G) -> Int {
        self.rank(forUniform: Double(rng.next() >> 11) * 0x1p-53)
    }
}
