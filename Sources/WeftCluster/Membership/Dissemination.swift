/// The queue of updates being piggybacked: each is sent at most `limit` times, the least-sent first,
/// and a newer update about the same subject replaces the older one (and starts its count afresh).
struct Dissemination: Sendable {
    struct Item: Sendable {
        var update: GossipUpdate
        var transmissions: Int
        /// Insertion order: among equally-sent items, the newest goes first.
        var order: UInt64
    }

    private(set) var items: [GossipSubject: Item] = [:]
    private var nextOrder: UInt64 = 0

    var isEmpty: Bool { self.items.isEmpty }
    var count: Int { self.items.count }

    mutating func enqueue(_ update: GossipUpdate) {
        self.items[update.subject] = Item(update: update, transmissions: 0, order: self.nextOrder)
        self.nextOrder += 1
    }

    /// Up to `maxCount` updates for one message; each taken update counts one transmission, and
    /// updates that reach `limit` transmissions leave the queue.
    mutating func take(maxCount: Int, limit: Int) -> [GossipUpdate] {
        guard !self.items.isEmpty, maxCount > 0 else { return [] }
        let chosen = self.items.sorted { a, b in
            a.value.transmissions != b.value.transmissions
                ? a.value.transmissions < b.value.transmissions : a.value.order > b.value.order
        }.prefix(maxCount)
        var updates: [GossipUpdate] = []
        updates.reserveCapacity(chosen.count)
        for (subject, item) in chosen {
            updates.append(item.update)
            if item.transmissions + 1 >= limit {
                self.items[subject] = nil
            } else {
                self.items[subject]?.transmissions += 1
            }
        }
        return updates
    }
}
