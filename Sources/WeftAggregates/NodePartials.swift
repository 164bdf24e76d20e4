import WeftModel

/// Traces with matching spans: per trace, the latest matching start and how many spans matched.
public struct TraceMatchesPartial: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var latestStart: UInt64
        public var matched: Int

        public init(latestStart: UInt64, matched: Int) {
            self.latestStart = latestStart
            self.matched = matched
        }
    }

    public var traces: [TraceID: Entry] = [:]
    /// Matching spans in all.
    public var spans = 0
    public var stats = ScanStats()
    /// Summaries of some of ``traces`` over the same data (a storage node's latest traces, sent with
    /// round 1 of a search so that the coordinator needs no round 2 for traces that lie in one
    /// placement); a trace's summaries from two partials are merged as over disjoint data.
    public var summaries: [TraceID: TraceSummary] = [:]
    /// Matching spans each summary keeps at most.
    public var spansPerSpanSet = 0

    public init() {}

    public mutating func merge(_ other: TraceMatchesPartial) {
        self.spans += other.spans
        self.stats.add(other.stats)
        if !other.summaries.isEmpty || !self.summaries.isEmpty {
            self.spansPerSpanSet = max(self.spansPerSpanSet, other.spansPerSpanSet)
            for (id, b) in other.summaries {
                self.summaries[id] = self.summaries[id].map { TraceSummary.merged($0, b, spansPerSpanSet: self.spansPerSpanSet) } ?? b
            }
            // A trace with matches in both lies in two placements: whichever summaries came, they
            // were not taken over all its spans by one node, so none is kept (it takes round 2).
            for id in self.summaries.keys where self.traces[id] != nil && other.traces[id] != nil {
                self.summaries[id] = nil
            }
        }
        if self.traces.isEmpty {
            self.traces = other.traces
            return
        }
        // Grown once, not doubling (and rehashing every trace) as the entries come.
        self.traces.reserveCapacity(self.traces.count + other.traces.count)
        for (id, e) in other.traces {
            if let mine = self.traces[id] {
                self.traces[id] = Entry(latestStart: max(mine.latestStart, e.latestStart), matched: mine.matched + e.matched)
            } else {
                self.traces[id] = e
            }
        }
    }

    /// The `limit` traces with the latest matching span, most recent first (ties by trace ID).
    public func latest(_ limit: Int) -> [TraceMatch] {
        func before(_ a: (key: TraceID, value: Entry), _ b: (key: TraceID, value: Entry)) -> Bool {
            a.value.latestStart != b.value.latestStart ? a.value.latestStart > b.value.latestStart : a.key < b.key
        }
        guard limit > 0 else { return [] }
        var best: [(key: TraceID, value: Entry)]
        if limit > 256 || limit * 8 >= self.traces.count {
            // Many: the first `limit` chosen by selection, then only they are sorted.
            best = Array(self.traces)
            if limit < best.count {
                Self.moveFirst(limit, of: &best, by: before)
                best.removeSubrange(limit...)
            }
            best.sort(by: before)
        } else {
            // A few of many: kept in order as they come; most entries are compared with the last alone.
            best = []
            best.reserveCapacity(limit + 1)
            for e in self.traces where best.count < limit || before(e, best[best.count - 1]) {
                var lo = 0, hi = best.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if before(best[mid], e) { lo = mid + 1 } else { hi = mid }
                }
                best.insert(e, at: lo)
                if best.count > limit { best.removeLast() }
            }
        }
        return best.map { TraceMatch(traceID: $0.key, latestStart: $0.value.latestStart, matched: $0.value.matched) }
    }

    /// Reorders `a` so that its first `k` elements are the first `k` by `before` (a strict total
    /// order), in no particular order: quickselect with seeded pivots.
    static func moveFirst<T>(_ k: Int, of a: inout [T], by before: (T, T) -> Bool) {
        var lo = 0, hi = a.count - 1
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        while lo < hi {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            a.swapAt(lo + Int(state >> 33) % (hi - lo + 1), hi)
            var store = lo
            for i in lo..<hi where before(a[i], a[hi]) {
                a.swapAt(i, store)
                store += 1
            }
            a.swapAt(store, hi)
            // a[store] is in its sorted place: everything before it comes first.
            if store == k { return }
            if store < k { lo = store + 1 } else { hi = store - 1 }
        }
    }

    public static func == (a: TraceMatchesPartial, b: TraceMatchesPartial) -> Bool { a.traces == b.traces && a.spans == b.spans }
}

/// Attribute names by scope.
public struct TagNamesPartial: Sendable, Equatable {
    public var span = Set<String>()
    public var resource = Set<String>()
    public var includeIntrinsics: Bool
    public var stats = ScanStats()

    public init(includeIntrinsics: Bool) { self.includeIntrinsics = includeIntrinsics }

    public mutating func merge(_ other: TagNamesPartial) {
        self.span.formUnion(other.span)
        self.resource.formUnion(other.resource)
        self.includeIntrinsics = self.includeIntrinsics || other.includeIntrinsics
        self.stats.add(other.stats)
    }

    public static func == (a: TagNamesPartial, b: TagNamesPartial) -> Bool {
        a.span == b.span && a.resource == b.resource && a.includeIntrinsics == b.includeIntrinsics
    }
}

/// Distinct values of a field, at most `limit` (the smallest kept when more are known). A node stops
/// scanning once it knows `limit` values, so a full partial holds `limit` of the values, not
/// necessarily the smallest; one with fewer holds them all.
public struct TagValuesPartial: Sendable, Equatable {
    public private(set) var values: [GroupValue] = []
    public let limit: Int
    public var stats = ScanStats()

    public init(limit: Int, values: some Sequence<GroupValue> = []) {
        self.limit = max(0, limit)
        self.values = Array(Set(values)).sorted().prefix(self.limit).map { $0 }
    }

    /// Whether every value is known (fewer than `limit` were found).
    public var isComplete: Bool { self.values.count < self.limit }

    public mutating func merge(_ other: TagValuesPartial) {
        self.values = Array(Set(self.values).union(other.values)).sorted().prefix(self.limit).map { $0 }
        self.stats.add(other.stats)
    }

    public static func == (a: TagValuesPartial, b: TagValuesPartial) -> Bool { a.values == b.values && a.limit == b.limit }
}

/// Service-map edges summed per (parent, child), and the calls not joined yet: spans whose parent
/// span the data read did not hold (in a cluster, a trace written across a ring change can lie in two
/// placements read by two nodes; the coordinator joins those).
public struct ServiceMapPartial: Sendable, Equatable {
    public struct Pair: Hashable, Sendable {
        public var parent: String
        public var child: String
    }

    public var edges: [Pair: ServiceMapEdge] = [:]
    /// Spans in range whose parent span was not found, in no particular order.
    public var orphans: [ServiceOrphan] = []
    public var stats = ScanStats()

    /// Orphans one partial carries on the wire at most; a node with more (mostly spans whose parent
    /// was never stored, such as a gateway called by an untraced client) sends the first this many.
    public static let maxOrphans = 1 << 17

    public init() {}

    /// Adds an edge into the one of its (parent, child) pair in place: copying the stored edge out
    /// and back would copy its sketch's bins on every add.
    public mutating func add(_ e: ServiceMapEdge) {
        let key = Pair(parent: e.parent, child: e.child)
        guard let i = self.edges.index(forKey: key) else {
            self.edges[key] = e
            return
        }
        self.edges.values[i].calls += e.calls
        self.edges.values[i].errors += e.errors
        self.edges.values[i].latency.merge(e.latency)
    }

    public mutating func merge(_ other: ServiceMapPartial) {
        for e in other.edges.values { self.add(e) }
        self.orphans += other.orphans
        self.stats.add(other.stats)
    }

    /// The edges by parent, then child.
    public var sorted: [ServiceMapEdge] { self.edges.values.sorted { ($0.parent, $0.child) < ($1.parent, $1.child) } }

    /// Equal edges (the answer); the orphans not joined are not compared.
    public static func == (a: ServiceMapPartial, b: ServiceMapPartial) -> Bool { a.edges == b.edges }
}
