import WeftStorageEngine

/// What an aggregation's state costs per group, checked against
/// ``AggregationLimits/maxMemoryBytes`` before the scan (one group must fit) and while groups are
/// created (their number is only known then).
struct MemoryBudget {
    /// Bytes one group takes in one partial: every aggregate's cell over every step.
    let bytesPerGroup: Int
    /// Most groups one scanning thread's partial may hold: the threads' partials and their merge
    /// (which holds at most as many groups as all of them) share the budget.
    let groupsPerThread: Int
    let limits: AggregationLimits

    init(_ query: AggregationQuery, limits: AggregationLimits) {
        let perCell = query.aggregates.reduce(0) { $0 + Self.cellBytes($1) }
        let (bytes, overflow) = perCell.multipliedReportingOverflow(by: query.steps)
        self.bytesPerGroup = overflow ? .max : max(1, bytes)
        // Cells are numbered group × steps + step in an Int32, whatever the budget.
        let addressable = Int(Int32.max) / max(1, query.steps)
        self.groupsPerThread = min(addressable, max(0, limits.maxMemoryBytes) / self.bytesPerGroup / (2 * limits.parallelism))
        self.limits = limits
    }

    /// Bytes of one cell of an aggregate's state (a sketch's bins are counted at a typical size).
    static func cellBytes(_ aggregate: Aggregate) -> Int {
        switch aggregate.stateKind {
        case .count: return MemoryLayout<UInt64>.stride
        case .values: return 5 * MemoryLayout<Double>.stride + MemoryLayout<Int128>.stride
        case .sketch: return MemoryLayout<QuantileSketch>.stride + 256
        case .histogram: return Heatmap.valueBuckets * MemoryLayout<UInt64>.stride
        }
    }

    /// Throws when `groups` in one thread's partial exceed its share.
    func checkThread(groups: Int) throws(AggregationError) {
        if groups > self.groupsPerThread { throw self.exceeded }
    }

    /// Throws when `groups` in the merged partial exceed what the threads may hold together.
    func checkMerged(groups: Int) throws(AggregationError) {
        if groups > self.groupsPerThread * self.limits.parallelism { throw self.exceeded }
    }

    var exceeded: AggregationError {
        let mib = { (b: Int) in b >= 1 << 20 ? "\(b >> 20) MiB" : "\(max(1, b >> 10)) KiB" }
        let allowed = self.groupsPerThread == 0
            ? "not even one group fits"
            : "at most \(self.groupsPerThread * self.limits.parallelism) groups fit and the query has more"
        return .tooMuchMemory(
            "the query needs about \(mib(self.bytesPerGroup)) per group (every step of every aggregate); within the memory limit of "
                + "\(mib(self.limits.maxMemoryBytes)) \(allowed): use a larger step, a shorter range, fewer group-by fields or a narrower filter"
        )
    }
}
