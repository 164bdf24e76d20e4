/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator, the same sequence on every platform.
///
/// Pure code takes randomness as `inout some RandomNumberGenerator`; tests and simulations seed
/// this one so that a run replays exactly from its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    /// Creates a generator whose whole sequence is determined by `seed`.
    @inlinable public init(seed: UInt64) { self.state = seed }

    @inlinable public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
