/// What a hints log holds, in numbers.
public struct HintStatus: Sendable, Equatable {
    /// Hints not delivered yet, and their payload bytes.
    public var pending = 0
    public var pendingBytes = 0
    /// Pending hints and bytes by the node they are for.
    public var byTarget: [NodeID: (hints: Int, bytes: Int)] = [:]
    /// Since start: hints taken, delivered, and refused because the log was full.
    public var queued = 0
    public var delivered = 0
    public var dropped = 0

    public init() {}

    public static func == (a: HintStatus, b: HintStatus) -> Bool {
        a.pending == b.pending && a.pendingBytes == b.pendingBytes && a.queued == b.queued && a.delivered == b.delivered && a.dropped == b.dropped
            && a.byTarget.count == b.byTarget.count
            && a.byTarget.allSatisfy { key, value in b.byTarget[key].map { $0.hints == value.hints && $0.bytes == value.bytes } ?? false }
    }
}

/// The delivery decisions of a hints log, without I/O or a clock of its own: which hint to send to
/// which node next (oldest first, one at a time per node, only to nodes that are reachable and past
/// their backoff), how long to back off after a failed delivery, which log segments hold only
/// delivered hints and can go, and whether a new hint fits under the byte bound.
///
/// Times are offsets from any fixed origin the caller chooses.
public struct HintQueue: Sendable {
    /// Bounds and backoff.
    public struct Settings: Sendable {
        /// Pending payload bytes beyond which new hints are refused.
        public var maxBytes: Int
        /// The wait after a first failed delivery; doubled after each further failure up to `maxBackoff`.
        public var initialBackoff: Duration
        public var maxBackoff: Duration

        public init(maxBytes: Int, initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(10)) {
            self.maxBytes = maxBytes
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }
    }

    private struct Hint {
        var segment: Int
        var target: NodeID
        var bytes: Int
    }

    private struct Target {
        var queue: [Int] = []
        var sending: Int? = nil
        var notBefore: Duration = .zero
        var backoff: Duration = .zero
    }

    public let settings: Settings
    private var hints: [Int: Hint] = [:]
    private var targets: [NodeID: Target] = [:]
    /// Undelivered hints per segment, for every segment that held a hint.
    private var liveBySegment: [Int: Int] = [:]
    private var counts = HintStatus()

    public init(settings: Settings) {
        self.settings = settings
    }

    /// Whether a hint of `bytes` fits under the bound; counts it as dropped when it does not.
    public mutating func admit(bytes: Int) -> Bool {
        guard self.counts.pendingBytes + bytes <= self.settings.maxBytes else {
            self.counts.dropped += 1
            return false
        }
        return true
    }

    /// Takes a hint, durable in `segment` of the log, for `target`. IDs must be unique and rise with log order.
    public mutating func add(id: Int, segment: Int, target: NodeID, bytes: Int) {
        self.hints[id] = Hint(segment: segment, target: target, bytes: bytes)
        self.targets[target, default: Target()].queue.append(id)
        self.liveBySegment[segment, default: 0] += 1
        self.counts.pending += 1
        self.counts.pendingBytes += bytes
        self.counts.queued += 1
    }

    /// The hints to send now, marked as being sent: for each reachable node not already being sent to
    /// and past its backoff, its oldest hint.
    public mutating func due(now: Duration, reachable: (NodeID) -> Bool) -> [(id: Int, target: NodeID)] {
        var out: [(id: Int, target: NodeID)] = []
        for (node, state) in self.targets.sorted(by: { $0.key < $1.key }) {
            guard state.sending == nil, let first = state.queue.first, now >= state.notBefore, reachable(node) else { continue }
            self.targets[node]?.sending = first
            out.append((first, node))
        }
        return out
    }

    /// Records that hint `id` reached its node: it leaves the queue and its node's backoff resets.
    public mutating func delivered(_ id: Int) {
        guard let hint = self.hints.removeValue(forKey: id) else { return }
        if var state = self.targets[hint.target] {
            state.queue.removeAll { $0 == id }
            state.sending = nil
            state.backoff = .zero
            state.notBefore = .zero
            self.targets[hint.target] = state.queue.isEmpty ? nil : state
        }
        self.liveBySegment[hint.segment, default: 1] -= 1
        self.counts.pending -= 1
        self.counts.pendingBytes -= hint.bytes
        self.counts.delivered += 1
    }

    /// Records that sending hint `id` failed at `now`: its node is not tried again before the backoff ends.
    public mutating func failed(_ id: Int, now: Duration) {
        guard let hint = self.hints[id], var state = self.targets[hint.target] else { return }
        state.sending = nil
        state.backoff = state.backoff == .zero ? self.settings.initialBackoff : min(self.settings.maxBackoff, state.backoff * 2)
        state.notBefore = now + state.backoff
        self.targets[hint.target] = state
    }

    /// Ends the backoff of `target` (every node when nil), so its hints are due at once.
    public mutating func expedite(_ target: NodeID?) {
        for node in self.targets.keys where target == nil || node == target {
            self.targets[node]?.notBefore = .zero
            self.targets[node]?.backoff = .zero
        }
    }

    /// Segments whose hints were all delivered, other than `current` (the one new hints go to); they are
    /// forgotten here, for the caller to remove.
    public mutating func removableSegments(current: Int) -> [Int] {
        let done = self.liveBySegment.filter { $0.value <= 0 && $0.key != current }.map(\.key).sorted()
        for segment in done { self.liveBySegment[segment] = nil }
        return done
    }

    /// Pending hints and the counters.
    public var status: HintStatus {
        var status = self.counts
        status.byTarget = self.targets.mapValues { state in
            (state.queue.count, state.queue.reduce(0) { $0 + (self.hints[$1]?.bytes ?? 0) })
        }
        return status
    }
}
