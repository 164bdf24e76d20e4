/// A min-heap of timed events; events at the same time pop in insertion order, so a run is a pure
/// function of its seed.
struct EventQueue<Event> {
    private struct Entry {
        var time: UInt64
        var order: UInt64
        var event: Event

        func precedes(_ other: Entry) -> Bool { self.time != other.time ? self.time < other.time : self.order < other.order }
    }

    private var heap: [Entry] = []
    private var nextOrder: UInt64 = 0

    var nextTime: UInt64? { self.heap.first?.time }

    mutating func push(_ event: Event, at time: UInt64) {
        self.heap.append(Entry(time: time, order: self.nextOrder, event: event))
        self.nextOrder += 1
        var child = self.heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard self.heap[child].precedes(self.heap[parent]) else { break }
            self.heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (time: UInt64, event: Event)? {
        guard !self.heap.isEmpty else { return nil }
        self.heap.swapAt(0, self.heap.count - 1)
        let top = self.heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < self.heap.count, self.heap[left].precedes(self.heap[smallest]) { smallest = left }
            if right < self.heap.count, self.heap[right].precedes(self.heap[smallest]) { smallest = right }
            guard smallest != parent else { break }
            self.heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.time, top.event)
    }
}
