/// Tunables of the SWIM instance. Durations are nanoseconds of the caller's monotonic clock.
public struct SWIMSettings: Hashable, Sendable {
    /// Time between two probes (scaled by local health).
    public var protocolPeriod: UInt64 = 1_000_000_000
    /// How long a direct ping waits for its ack before asking others (scaled by local health).
    public var probeTimeout: UInt64 = 500_000_000
    /// How many members relay an indirect probe (ping-req), "k".
    public var indirectProbeCount = 3
    /// A relay nacks after this fraction of its (scaled) probe timeout, so the nack reaches the
    /// prober before its protocol period ends.
    public var relayTimeoutPercent: UInt64 = 80
    /// A suspect is declared dead after max(`minimumSuspicionPeriods`, `suspicionMultiplier` × log10(n))
    /// protocol periods, n being the number of live members.
    public var suspicionMultiplier = 2.0
    public var minimumSuspicionPeriods = 3.0
    /// Each update is piggybacked at most `retransmitMultiplier` × ⌈log2(n + 1)⌉ times (λ·log n).
    public var retransmitMultiplier = 3
    /// While updates are queued, every `gossipInterval` they also go out in a gossip-only message to
    /// `gossipFanout` random live members (as memberlist does), so news spreads in a few hundred ms.
    public var gossipInterval: UInt64 = 200_000_000
    public var gossipFanout = 3
    /// At most this many updates ride on one message.
    public var maxGossipPerMessage = 32
    /// Lifeguard's local health ceiling: timeouts and the probe interval are scaled by 1 + health.
    public var maxLocalHealth = 8
    /// Full-state push-pull with one random member at this interval (anti-entropy).
    public var pushPullInterval: UInt64 = 30_000_000_000
    /// Full-state push-pull with one random dead member at this interval, so that the two sides of a
    /// healed partition find each other again (each refutes the other's claim of its death).
    public var reconnectInterval: UInt64 = 10_000_000_000
    /// A ring digest mismatch starts a push-pull with the peer at most this often.
    public var ringSyncInterval: UInt64 = 3_000_000_000

    public init() {}

    /// The suspicion timeout for a cluster of `memberCount` live members.
    public func suspicionTimeout(memberCount: Int) -> UInt64 {
        let periods = max(self.minimumSuspicionPeriods, self.suspicionMultiplier * Self.log10(Double(max(memberCount, 1))))
        return UInt64(periods * Double(self.protocolPeriod))
    }

    /// How many times an update is piggybacked in a cluster of `memberCount` members.
    public func retransmitLimit(memberCount: Int) -> Int {
        // ⌈log2(n + 1)⌉ is the bit length of n.
        let bits = Int.bitWidth - max(memberCount, 1).leadingZeroBitCount
        return self.retransmitMultiplier * bits
    }

    /// log10 of `x` ≥ 1 without the C library: x = m·2^e with m in [1, 2), ln m = 2·atanh((m−1)/(m+1)).
    static func log10(_ x: Double) -> Double {
        let exponent = Double(x.exponent)
        let mantissa = x.significand
        let t = (mantissa - 1) / (mantissa + 1)
        var term = t
        var sum = 0.0
        for k in stride(from: 1, through: 29, by: 2) {
            sum += term / Double(k)
            term *= t * t
        }
        let ln2 = 0.693_147_180_559_945_3
        return (2 * sum + exponent * ln2) / 2.302_585_092_994_046
    }
}
