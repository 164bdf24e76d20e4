/// A seeded xoshiro256** generator: fast, small state, and the same sequence on every platform.
///
/// The state is filled from the seed with SplitMix64, as the algorithm's authors recommend, so any
/// seed (including 0) gives a usable state. Nothing here reads a clock or the system's entropy.
public struct LoadRandom: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64
    /// A spare standard normal value from the last Box–Muller pair (NaN when empty).
    @usableFromInline var spareNormal: Double = .nan

    /// Creates a generator whose whole sequence is determined by `seed`.
    public init(seed: UInt64) {
        var sm = seed
        self.s0 = Self.splitMix64(&sm)
        self.s1 = Self.splitMix64(&sm)
        self.s2 = Self.splitMix64(&sm)
        self.s3 = Self.splitMix64(&sm)
    }

    /// One step of SplitMix64; also a good 64-bit mixing function for deriving sub-seeds.
    @inlinable
    public static func splitMix64(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Mixes two values into one well-distributed seed (used to derive per-request streams).
    @inlinable
    public static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var state = a ^ (b &* 0xD6E8_FEB8_6659_FD93)
        _ = Self.splitMix64(&state)
        return Self.splitMix64(&state)
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = (self.s1 &* 5).rotatedLeft(7) &* 9
        let t = self.s1 << 17
        self.s2 ^= self.s0
        self.s3 ^= self.s1
        self.s1 ^= self.s2
        self.s0 ^= self.s3
        self.s2 ^= t
        self.s3 = self.s3.rotatedLeft(45)
        return result
    }

    /// A non-zero 64-bit value (for span and trace IDs).
    @inlinable
    public mutating func nonZero() -> UInt64 {
        while true {
            let v = self.next()
            if v != 0 { return v }
        }
    }

    /// A uniform double in [0, 1) with 53 random bits.
    @inlinable
    public mutating func unit() -> Double {
        Double(self.next() >> 11) * 0x1p-53
    }

    /// A uniform integer in `0..<n` (`n` > 0), by multiply-high (no modulo bias worth caring about here).
    @inlinable
    public mutating func below(_ n: Int) -> Int {
        Int(truncatingIfNeeded: self.next().multipliedFullWidth(by: UInt64(n)).high)
    }

    /// True with probability `p`.
    @inlinable
    public mutating func chance(_ p: Double) -> Bool {
        self.unit() < p
    }

    /// A standard normal value (Box–Muller; the second value of each pair is kept for the next call).
    @inlinable
    public mutating func normal() -> Double {
        if !self.spareNormal.isNaN {
            let v = self.spareNormal
            self.spareNormal = .nan
            return v
        }
        let u1 = max(self.unit(), 0x1p-60)
        let u2 = self.unit()
        let r = (-2 * _logD(u1)).squareRoot()
        let theta = 2 * Double.pi * u2
        self.spareNormal = r * _sinD(theta)
        return r * _cosD(theta)
    }

    /// A log-normal value with the given median and shape `sigma` (the standard deviation of its log).
    @inlinable
    public mutating func logNormal(median: Double, sigma: Double) -> Double {
        median * _expD(sigma * self.normal())
    }
}

/// Log-normal multipliers (median 1) by table lookup with linear interpolation: a few ns per draw
/// instead of Box–Muller plus `exp`.
public struct LogNormalTable: Sendable {
    /// `values[i]` = exp(sigma × z) at the standard normal quantile (i + 0.5) / (size + 1).
    @usableFromInline let values: [Double]
    public let sigma: Double

    static let bits = 10
    /// Standard normal quantiles shared by every table (computed once by bisection on `erf`).
    static let quantiles: [Double] = {
        let size = 1 << bits
        return (0...size).map { i in
            let p = (Double(i) + 0.5) / Double(size + 1)
            var lo = -10.0
            var hi = 10.0
            for _ in 0..<80 {
                let mid = (lo + hi) / 2
                if 0.5 * (1 + erf(mid / 2.0.squareRoot())) < p { lo = mid } else { hi = mid }
            }
            return (lo + hi) / 2
        }
    }()

    public init(sigma: Double) {
        self.sigma = sigma
        self.values = Self.quantiles.map { _expD(sigma * $0) }
    }

    /// A multiplier with median 1.
    @inlinable
    public func sample(_ rng: inout LoadRandom) -> Double {
        let r = rng.next()
        let i = Int(truncatingIfNeeded: r >> 54)
        let frac = Double((r >> 22) & 0xFFFF_FFFF) * 0x1p-32
        return self.values.withUnsafeBufferPointer { v in v[i] + (v[i &+ 1] - v[i]) * frac }
    }
}

extension UInt64 {
    @inlinable func rotatedLeft(_ k: UInt64) -> UInt64 { (self << k) | (self >> (64 - k)) }
}

// Elementary functions without Foundation (layer 0 stays stdlib-only).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@inlinable func _logD(_ x: Double) -> Double { log(x) }
@inlinable func _expD(_ x: Double) -> Double { exp(x) }
@inlinable func _sinD(_ x: Double) -> Double { sin(x) }
@inlinable func _cosD(_ x: Double) -> Double { cos(x) }
@inlinable func _powD(_ x: Double, _ y: Double) -> Double { pow(x, y) }
