/// A map from HTTP/2 stream IDs to per-stream state, cheaper than a `Dictionary` for the access pattern
/// of a connection: IDs of one parity that mostly increase by 2, with a bounded number live at once.
/// Each ID has one slot, `id >> 1` modulo the capacity, so streams opened in sequence never collide;
/// an ID whose slot is taken (a peer skipped far ahead) goes to a small overflow dictionary. The table
/// grows with the number of live entries only, not with the IDs, so skipping IDs costs no memory.
struct StreamTable<Value> {
    private var keys: [Int32]
    private var values: [Value?]
    private var mask: Int
    private var overflow: [Int32: Value] = [:]
    private(set) var count = 0

    /// Marks an empty slot (stream 0 is the connection and never a key).
    private static var empty: Int32 { 0 }

    init(capacity: Int = 64) {
        let n = max(8, 1 << (Int.bitWidth - (capacity * 2 - 1).leadingZeroBitCount))
        self.keys = Array(repeating: Self.empty, count: n)
        self.values = Array(repeating: nil, count: n)
        self.mask = n - 1
    }

    var isEmpty: Bool { self.count == 0 }

    @inline(__always) private func slot(_ id: Int32) -> Int { Int(id >> 1) & self.mask }

    subscript(id: Int32) -> Value? {
        get {
            let i = self.slot(id)
            if self.keys[i] == id { return self.values[i] }
            return self.overflow.isEmpty ? nil : self.overflow[id]
        }
        set {
            precondition(id != Self.empty, "stream 0 is the connection")
            guard let newValue else {
                self.removeValue(forKey: id)
                return
            }
            let i = self.slot(id)
            if self.keys[i] == id {
                self.values[i] = newValue
                return
            }
            if !self.overflow.isEmpty, self.overflow[id] != nil {
                self.overflow[id] = newValue
                return
            }
            if (self.count + 1) * 2 > self.keys.count {
                self.grow()
                return self[id] = newValue
            }
            self.count += 1
            if self.keys[i] == Self.empty {
                self.keys[i] = id
                self.values[i] = newValue
            } else {
                self.overflow[id] = newValue
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: Int32) -> Value? {
        let i = self.slot(id)
        if self.keys[i] == id {
            let removed = self.values[i]
            self.keys[i] = Self.empty
            self.values[i] = nil
            self.count -= 1
            return removed
        }
        guard !self.overflow.isEmpty, let removed = self.overflow.removeValue(forKey: id) else { return nil }
        self.count -= 1
        return removed
    }

    /// Every value, in no particular order.
    var allValues: [Value] { self.values.compactMap { $0 } + self.overflow.values }

    mutating func removeAll() {
        self = StreamTable(capacity: 64)
    }

    private mutating func grow() {
        var bigger = StreamTable(capacity: self.keys.count)
        for i in self.keys.indices where self.keys[i] != Self.empty {
            bigger[self.keys[i]] = self.values[i]
        }
        for (id, value) in self.overflow { bigger[id] = value }
        self = bigger
    }
}
