/// The queue of updates being piggybacked: each is sent at most `limit` times, the least-sent first
/// (the newest first among equals), and a newer update about the same subject replaces the older
/// one (and starts its count afresh).
///
/// Updates sit in buckets by transmission count, so taking k updates costs O(k) however long the
/// queue is; replaced updates leave stale bucket slots that are skipped (and dropped) when reached.
struct Dissemination: Sendable {
    struct Item: Sendable {
        var update: GossipUpdate
        var transmissions: Int
        var generation: UInt64
    }

    private(set) var items: [GossipSubject: Item] = [:]
    /// `buckets[t]` holds (subject, generation) of the updates sent `t` times, oldest first.
    private var buckets: [[(subject: GossipSubject, generation: UInt64)]] = []
    private var nextGeneration: UInt64 = 0

    var isEmpty: Bool { self.items.isEmpty }

    mutating func enqueue(_ update: GossipUpdate) {
        let generation = self.nextGeneration
        self.nextGeneration += 1
        self.items[update.subject] = Item(update: update, transmissions: 0, generation: generation)
        self.append(update.subject, generation: generation, toBucket: 0)
    }

    /// Up to `maxCount` updates for one message; each taken update counts one transmission, and
    /// updates that reach `limit` transmissions leave the queue.
    mutating func take(maxCount: Int, limit: Int) -> [GossipUpdate] {
        guard !self.items.isEmpty else {
            self.buckets.removeAll()
            return []
        }
        var taken: [(subject: GossipSubject, item: Item)] = []
        var bucket = 0
        while taken.count < maxCount, bucket < self.buckets.count {
            while taken.count < maxCount, let (subject, generation) = self.buckets[bucket].popLast() {
                guard let item = self.items[subject], item.generation == generation, item.transmissions == bucket else { continue }
                taken.append((subject, item))
            }
            bucket += 1
        }
        for (subject, item) in taken {
            if item.transmissions + 1 >= limit {
                self.items[subject] = nil
            } else {
                self.items[subject]?.transmissions += 1
                self.append(subject, generation: item.generation, toBucket: item.transmissions + 1)
            }
        }
        return taken.map(\.item.update)
    }

    private mutating func append(_ subject: GossipSubject, generation: UInt64, toBucket bucket: Int) {
        while self.buckets.count <= bucket { self.buckets.append([]) }
        self.buckets[bucket].append((subject, generation))
    }
}
