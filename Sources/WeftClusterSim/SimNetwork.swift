import WeftModel

/// The simulated network: per-message delay and loss drawn from the simulation's generator, and
/// partitions as a matrix of blocked directed links.
struct SimNetwork {
    /// Probability that a message is lost.
    let loss: Double
    /// One-way delay bounds, in nanoseconds (uniform between them).
    let minDelay: UInt64
    let maxDelay: UInt64
    private var blocked: [Bool]
    private let nodeCount: Int

    init(nodeCount: Int, loss: Double, minDelay: UInt64, maxDelay: UInt64) {
        self.nodeCount = nodeCount
        self.loss = loss
        self.minDelay = minDelay
        self.maxDelay = maxDelay
        self.blocked = Array(repeating: false, count: nodeCount * nodeCount)
    }

    /// Blocks messages from every node of `from` to every node of `to`.
    mutating func block(from: [Int], to: [Int]) {
        for a in from { for b in to { self.blocked[a * self.nodeCount + b] = true } }
    }

    mutating func heal() {
        for i in self.blocked.indices { self.blocked[i] = false }
    }

    /// The delivery delay of a message from `a` to `b`, or nil when it is lost or blocked.
    func delay(from a: Int, to b: Int, using rng: inout SplitMix64) -> UInt64? {
        if self.blocked[a * self.nodeCount + b] { return nil }
        if Double(rng.next() >> 11) * 0x1p-53 < self.loss { return nil }
        return self.minDelay + rng.next() % (self.maxDelay - self.minDelay + 1)
    }
}
