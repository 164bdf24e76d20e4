import WeftAggregates
import WeftModel
import WeftStorageEngine

/// One aggregate of an aggregation query, computed per group (and per time step).
public enum Aggregate: Sendable, Equatable, Hashable {
    case count
    case sum(TraceQLField)
    case avg(TraceQLField)
    case min(TraceQLField)
    case max(TraceQLField)
    /// Quantiles from a relative-error sketch.
    case quantiles(TraceQLField, [Double])
    /// Counts per log2 bucket of the value, as ``Heatmap/valueBucket(_:)`` numbers them.
    case histogram(TraceQLField)

    /// The field the aggregate reads, if any.
    public var field: TraceQLField? {
        switch self {
        case .count: return nil
        case .sum(let f), .avg(let f), .min(let f), .max(let f), .quantiles(let f, _), .histogram(let f): return f
        }
    }

    enum StateKind: UInt8, Sendable { case count, values, sketch, histogram }

    /// Sums and averages keep count and sum only (their minimum and maximum stay unset).
    var isSumOrAverage: Bool {
        switch self {
        case .sum, .avg: return true
        default: return false
        }
    }

    var stateKind: StateKind {
        switch self {
        case .count: return .count
        case .sum, .avg, .min, .max: return .values
        case .quantiles: return .sketch
        case .histogram: return .histogram
        }
    }
}

/// Spans matching a filter, in a time range, grouped by fields, with aggregates per group and
/// (when `stepNanos` is set) per time step. The storage side computes an ``AggregationPartial``;
/// partials merge exactly and are finished into tables or series.
public struct AggregationQuery: Sendable, Equatable {
    public var filter: TraceQLFilter
    public var groupBy: [TraceQLField]
    public var aggregates: [Aggregate]
    /// Span start times in [startNanos, endNanos].
    public var startNanos: UInt64
    public var endNanos: UInt64
    /// Width of a time step; nil for one value over the whole range.
    public var stepNanos: UInt64?

    public static let maxGroupBy = 4

    public init(
        filter: TraceQLFilter = .all, groupBy: [TraceQLField] = [], aggregates: [Aggregate], startNanos: UInt64, endNanos: UInt64,
        stepNanos: UInt64? = nil
    ) {
        self.filter = filter
        self.groupBy = groupBy
        self.aggregates = aggregates
        self.startNanos = startNanos
        self.endNanos = endNanos
        self.stepNanos = stepNanos
    }

    /// The aggregation a TraceQL metrics query asks for (`rate` and `count_over_time` count).
    public init(_ query: TraceQLQuery, startNanos: UInt64, endNanos: UInt64, stepNanos: UInt64?) {
        let aggregate: Aggregate
        switch query.metrics?.function ?? .countOverTime {
        case .rate, .countOverTime: aggregate = .count
        case .sumOverTime(let f): aggregate = .sum(f)
        case .avgOverTime(let f): aggregate = .avg(f)
        case .minOverTime(let f): aggregate = .min(f)
        case .maxOverTime(let f): aggregate = .max(f)
        case .quantileOverTime(let f, let qs): aggregate = .quantiles(f, qs)
        case .histogramOverTime(let f): aggregate = .histogram(f)
        }
        self.init(
            filter: query.filter, groupBy: query.metrics?.by ?? [], aggregates: [aggregate], startNanos: startNanos, endNanos: endNanos,
            stepNanos: stepNanos
        )
    }

    /// Number of time steps (1 without a step).
    public var steps: Int {
        guard let step = self.stepNanos, step > 0, self.endNanos >= self.startNanos else { return 1 }
        return Int((self.endNanos - self.startNanos) / step) + 1
    }

    /// Why the query cannot run, if it cannot.
    public var problem: String? {
        if self.endNanos < self.startNanos { return "end is before start" }
        if self.groupBy.count > Self.maxGroupBy { return "at most \(Self.maxGroupBy) group-by fields" }
        if self.aggregates.isEmpty { return "no aggregates" }
        for a in self.aggregates {
            if case .quantiles(_, let qs) = a, qs.isEmpty || qs.contains(where: { !($0 >= 0 && $0 <= 1) }) {
                return "quantiles must lie in [0, 1]"
            }
        }
        return nil
    }
}

/// Count, sum, min and max of numeric values. Integer inputs are summed exactly (128 bits); float
/// inputs with a compensated sum, so merging in any order differs only in the last bits.
public struct ValueSummary: Sendable, Equatable {
    public internal(set) var count: UInt64 = 0
    public internal(set) var integerSum: Int128 = 0
    public internal(set) var floatSum: Double = 0
    var compensation: Double = 0
    public internal(set) var min = Double.infinity
    public internal(set) var max = -Double.infinity

    public init() {}

    public var sum: Double { Double(self.integerSum) + (self.floatSum + self.compensation) }
    public var mean: Double? { self.count == 0 ? nil : self.sum / Double(self.count) }

    @inline(__always) public mutating func add(integer v: Int64) {
        self.count += 1
        self.integerSum += Int128(v)
        let d = Double(v)
        if d < self.min { self.min = d }
        if d > self.max { self.max = d }
    }

    @inline(__always) public mutating func add(_ v: Double) {
        self.count += 1
        self.addFloat(v)
        if v < self.min { self.min = v }
        if v > self.max { self.max = v }
    }

    /// Neumaier's compensated addition.
    @inline(__always) mutating func addFloat(_ v: Double) {
        let t = self.floatSum + v
        if abs(self.floatSum) >= abs(v) {
            self.compensation += (self.floatSum - t) + v
        } else {
            self.compensation += (v - t) + self.floatSum
        }
        self.floatSum = t
    }

    public mutating func merge(_ o: ValueSummary) {
        self.count += o.count
        self.integerSum += o.integerSum
        self.addFloat(o.floatSum)
        self.compensation += o.compensation
        self.min = Swift.min(self.min, o.min)
        self.max = Swift.max(self.max, o.max)
    }
}

/// The states of one aggregate for every (group, step) cell; only the array of its kind is used.
public struct AggregateColumn: Sendable, Equatable {
    let kind: Aggregate.StateKind
    public internal(set) var counts: [UInt64] = []
    /// `.values` cells as parallel arrays (see ``summary(_:)``): a sum touches only the count and sum
    /// lanes, which keeps thousands of groups' hot state in cache.
    var valueCount: [UInt64] = []
    var valueInteger: [Int128] = []
    var valueFloat: [Double] = []
    var valueCompensation: [Double] = []
    var valueMin: [Double] = []
    var valueMax: [Double] = []
    public internal(set) var sketches: [QuantileSketch] = []
    /// ``Heatmap/valueBuckets`` counts per cell.
    public internal(set) var histograms: [UInt64] = []

    init(kind: Aggregate.StateKind) { self.kind = kind }

    /// Adds `cells` empty cells. Appending whole arrays (not `repeatElement`) copies in bulk even in
    /// unoptimised builds, where a group of thousands of steps would otherwise take seconds.
    mutating func grow(by cells: Int) {
        if cells == 1 {
            // One step per group (a table): no array to build per group.
            switch self.kind {
            case .count: self.counts.append(0)
            case .values:
                self.valueCount.append(0)
                self.valueInteger.append(0)
                self.valueFloat.append(0)
                self.valueCompensation.append(0)
                self.valueMin.append(.infinity)
                self.valueMax.append(-.infinity)
            case .sketch: self.sketches.append(QuantileSketch())
            case .histogram: self.histograms.append(contentsOf: [UInt64](repeating: 0, count: Heatmap.valueBuckets))
            }
            return
        }
        if self.counts.isEmpty && self.valueCount.isEmpty && self.sketches.isEmpty && self.histograms.isEmpty {
            // The first cells (a decoded partial's all at once): made in place, not appended.
            switch self.kind {
            case .count: self.counts = [UInt64](repeating: 0, count: cells)
            case .values:
                self.valueCount = [UInt64](repeating: 0, count: cells)
                self.valueInteger = [Int128](repeating: 0, count: cells)
                self.valueFloat = [Double](repeating: 0, count: cells)
                self.valueCompensation = [Double](repeating: 0, count: cells)
                self.valueMin = [Double](repeating: .infinity, count: cells)
                self.valueMax = [Double](repeating: -.infinity, count: cells)
            case .sketch: self.sketches = [QuantileSketch](repeating: QuantileSketch(), count: cells)
            case .histogram: self.histograms = [UInt64](repeating: 0, count: cells * Heatmap.valueBuckets)
            }
            return
        }
        switch self.kind {
        case .count: self.counts.append(contentsOf: [UInt64](repeating: 0, count: cells))
        case .values:
            self.valueCount.append(contentsOf: [UInt64](repeating: 0, count: cells))
            self.valueInteger.append(contentsOf: [Int128](repeating: 0, count: cells))
            self.valueFloat.append(contentsOf: [Double](repeating: 0, count: cells))
            self.valueCompensation.append(contentsOf: [Double](repeating: 0, count: cells))
            self.valueMin.append(contentsOf: [Double](repeating: .infinity, count: cells))
            self.valueMax.append(contentsOf: [Double](repeating: -.infinity, count: cells))
        case .sketch: self.sketches.append(contentsOf: [QuantileSketch](repeating: QuantileSketch(), count: cells))
        case .histogram: self.histograms.append(contentsOf: [UInt64](repeating: 0, count: cells * Heatmap.valueBuckets))
        }
    }

    /// Adds cell `from` of `other` into cell `to`.
    mutating func merge(cell to: Int, from other: AggregateColumn, cell from: Int) {
        switch self.kind {
        case .count: self.counts[to] += other.counts[from]
        case .values:
            var v = self.summary(to)
            v.merge(other.summary(from))
            self.setSummary(to, v)
        case .sketch: self.sketches[to].merge(other.sketches[from])
        case .histogram:
            let b = Heatmap.valueBuckets
            for i in 0..<b { self.histograms[to * b + i] += other.histograms[from * b + i] }
        }
    }

    /// Adds every cell of `other` into this column: group `g`'s cells of step `s` into group
    /// `target[g]`'s (none when −1). Each kind's lanes are added in one loop over buffers, in the
    /// order ``merge(cell:from:cell:)`` adds them, so the sums are the same to the bit.
    mutating func merge(_ other: AggregateColumn, into target: [Int], steps: Int) {
        switch self.kind {
        case .count:
            self.counts.withUnsafeMutableBufferPointer { into in
                other.counts.withUnsafeBufferPointer { from in
                    for g in target.indices where target[g] >= 0 {
                        for s in 0..<steps { into[target[g] * steps + s] += from[g * steps + s] }
                    }
                }
            }
        case .values:
            let (count, integer, float) = (other.valueCount, other.valueInteger, other.valueFloat)
            let (compensation, low, high) = (other.valueCompensation, other.valueMin, other.valueMax)
            self.withValueLanes { into in
                for g in target.indices where target[g] >= 0 {
                    for s in 0..<steps {
                        let (t, f) = (target[g] * steps + s, g * steps + s)
                        into.count[t] += count[f]
                        into.integer[t] += integer[f]
                        // As ValueSummary.merge: the float sum by Neumaier's addition, then the
                        // other's compensation.
                        let (sum, v) = (into.float[t], float[f])
                        let added = sum + v
                        if abs(sum) >= abs(v) {
                            into.compensation[t] += (sum - added) + v
                        } else {
                            into.compensation[t] += (v - added) + sum
                        }
                        into.float[t] = added
                        into.compensation[t] += compensation[f]
                        into.low[t] = Swift.min(into.low[t], low[f])
                        into.high[t] = Swift.max(into.high[t], high[f])
                    }
                }
            }
        case .sketch, .histogram:
            for g in target.indices where target[g] >= 0 {
                for s in 0..<steps { self.merge(cell: target[g] * steps + s, from: other, cell: g * steps + s) }
            }
        }
    }

    /// The six lanes of `.values` cells, writable in place.
    struct ValueLanes {
        var count: UnsafeMutableBufferPointer<UInt64>
        var integer: UnsafeMutableBufferPointer<Int128>
        var float: UnsafeMutableBufferPointer<Double>
        var compensation: UnsafeMutableBufferPointer<Double>
        var low: UnsafeMutableBufferPointer<Double>
        var high: UnsafeMutableBufferPointer<Double>

        /// Sets cell `i` to `v`.
        @inline(__always) func set(_ i: Int, _ v: ValueSummary) {
            self.count[i] = v.count
            self.integer[i] = v.integerSum
            self.float[i] = v.floatSum
            self.compensation[i] = v.compensation
            self.low[i] = v.min
            self.high[i] = v.max
        }
    }

    /// Runs `body` on the `.values` lanes, each made unique once rather than on every write.
    mutating func withValueLanes<R>(_ body: (ValueLanes) throws -> R) rethrows -> R {
        try self.valueCount.withUnsafeMutableBufferPointer { count in
            try self.valueInteger.withUnsafeMutableBufferPointer { integer in
                try self.valueFloat.withUnsafeMutableBufferPointer { float in
                    try self.valueCompensation.withUnsafeMutableBufferPointer { compensation in
                        try self.valueMin.withUnsafeMutableBufferPointer { low in
                            try self.valueMax.withUnsafeMutableBufferPointer { high in
                                try body(ValueLanes(count: count, integer: integer, float: float, compensation: compensation, low: low, high: high))
                            }
                        }
                    }
                }
            }
        }
    }

    /// A `.values` cell.
    public func summary(_ cell: Int) -> ValueSummary {
        var v = ValueSummary()
        v.count = self.valueCount[cell]
        v.integerSum = self.valueInteger[cell]
        v.floatSum = self.valueFloat[cell]
        v.compensation = self.valueCompensation[cell]
        v.min = self.valueMin[cell]
        v.max = self.valueMax[cell]
        return v
    }

    mutating func setSummary(_ cell: Int, _ v: ValueSummary) {
        self.valueCount[cell] = v.count
        self.valueInteger[cell] = v.integerSum
        self.valueFloat[cell] = v.floatSum
        self.valueCompensation[cell] = v.compensation
        self.valueMin[cell] = v.min
        self.valueMax[cell] = v.max
    }

    /// Whether a cell holds no observation.
    func isEmpty(_ cell: Int) -> Bool {
        switch self.kind {
        case .count: return self.counts[cell] == 0
        case .values: return self.valueCount[cell] == 0
        case .sketch: return self.sketches[cell].isEmpty
        case .histogram:
            let b = Heatmap.valueBuckets
            return !self.histograms[(cell * b)..<(cell * b + b)].contains { $0 != 0 }
        }
    }
}

/// What a storage node answers for an ``AggregationQuery``: groups, their aggregate states per time
/// step, and scan statistics. Merging adds states cell by cell (exact, associative, commutative).
///
/// Groups are kept as tuples of per-field codes (each field's distinct values are numbered once), so
/// finding a row's group is one hash of at most four integers, never of strings.
public struct AggregationPartial: Sendable {
    public let steps: Int
    let fieldCount: Int
    /// Per group-by field: values by code, and codes by value.
    private var fieldValues: [[GroupValue]]
    /// Codes of values that are not strings.
    private var fieldCodes: [[GroupValue: UInt32]]
    /// Per group-by field: string values by their UTF-8 bytes, and the code of each (``unmapped`` for
    /// bytes looked up that are no value's), so a source's strings are found without a `String`.
    private var stringIndex: [StringTable]
    private var stringIndexCodes: [[UInt32]]
    private static let unmapped = UInt32.max
    /// `fieldCount` codes per group.
    private var groupCodes: [UInt32] = []
    private var slots = SlotMap()
    /// With one group-by field: the group of each field code (−1 none).
    private var groupOfCode: [Int32] = []
    /// One column per aggregate; cell = group × steps + step.
    public internal(set) var columns: [AggregateColumn]
    public var stats = ScanStats()

    /// A closed partial only counts into the groups it already has (see ``closed(to:)``).
    public private(set) var isClosed = false

    /// An empty partial of `query` holding exactly the groups `keys`, which takes no others: rows of
    /// other groups are skipped (the second pass of an ordered, limited table).
    public static func closed(_ query: AggregationQuery, to keys: [[GroupValue]]) -> AggregationPartial {
        var p = AggregationPartial(query)
        for k in keys { _ = p.group(k) }
        p.isClosed = true
        return p
    }

    public init(_ query: AggregationQuery) {
        self.steps = query.steps
        self.fieldCount = query.groupBy.count
        self.fieldValues = Array(repeating: [], count: query.groupBy.count)
        self.fieldCodes = Array(repeating: [:], count: query.groupBy.count)
        self.stringIndex = Array(repeating: StringTable(), count: query.groupBy.count)
        self.stringIndexCodes = Array(repeating: [], count: query.groupBy.count)
        self.columns = query.aggregates.map { AggregateColumn(kind: $0.stateKind) }
    }

    public private(set) var groupCount = 0

    /// Group keys, in order of first appearance.
    public var keys: [[GroupValue]] { (0..<self.groupCount).map(self.key) }

    public func key(_ g: Int) -> [GroupValue] {
        (0..<self.fieldCount).map { f in self.fieldValues[f][Int(self.groupCodes[g * self.fieldCount + f])] }
    }

    /// The code of `value` in field `f` (numbered on first sight); in a closed partial, nil for a value
    /// none of its groups has.
    mutating func code(field f: Int, _ value: GroupValue) -> UInt32? {
        if case .string(var s) = value {
            // Valid UTF-8, so these bytes decode to `s` again.
            return s.withUTF8 { self.code(field: f, utf8: UnsafeRawBufferPointer($0)) }
        }
        if let c = self.fieldCodes[f][value] { return c }
        if self.isClosed { return nil }
        let c = UInt32(self.fieldValues[f].count)
        self.fieldValues[f].append(value)
        self.fieldCodes[f][value] = c
        return c
    }

    /// ``code(field:_:)`` of the string whose UTF-8 bytes are `raw` (invalid sequences repaired).
    mutating func code(field f: Int, utf8 raw: UnsafeRawBufferPointer) -> UInt32? {
        let id = Int(self.stringIndex[f].intern(raw))
        if id < self.stringIndexCodes[f].count {
            let c = self.stringIndexCodes[f][id]
            if c != Self.unmapped { return c }
        } else {
            self.stringIndexCodes[f].append(contentsOf: repeatElement(Self.unmapped, count: id + 1 - self.stringIndexCodes[f].count))
        }
        guard let string = Self.validString(raw) else {
            // Not UTF-8: the code of the repaired string, which has bytes of its own.
            guard let c = self.code(field: f, .string(String(decoding: raw, as: UTF8.self))) else { return nil }
            self.stringIndexCodes[f][id] = c
            return c
        }
        if self.isClosed { return nil }
        let c = UInt32(self.fieldValues[f].count)
        self.fieldValues[f].append(.string(string))
        self.stringIndexCodes[f][id] = c
        return c
    }

    /// The string of UTF-8 bytes `raw`, nil when they are not valid UTF-8. ASCII (most group values)
    /// is checked here: `String(validating:as:)` is generic over the encoding and not specialised,
    /// which costs more than the check.
    @inline(__always) static func validString(_ raw: UnsafeRawBufferPointer) -> String? {
        var high: UInt8 = 0
        for b in raw { high |= b }
        return high < 0x80 ? String(decoding: raw, as: UTF8.self) : String(validating: raw, as: UTF8.self)
    }

    /// The code of `value` if the partial has it.
    private func existingCode(field f: Int, _ value: GroupValue) -> UInt32? {
        guard case .string(var s) = value else { return self.fieldCodes[f][value] }
        return s.withUTF8 { u in
            self.stringIndex[f].lookup(UnsafeRawBufferPointer(u)).flatMap { id in
                Int(id) < self.stringIndexCodes[f].count && self.stringIndexCodes[f][Int(id)] != Self.unmapped ? self.stringIndexCodes[f][Int(id)] : nil
            }
        }
    }

    /// A tuple of field codes as a 128-bit key; `hi` is 0 exactly when the key fits in 64 bits (up to two
    /// fields, three codes below 2^21 or four below 2^16), so most keys take the smaller map.
    @inline(__always) static func pack(_ codes: UnsafeBufferPointer<UInt32>) -> (UInt64, UInt64) {
        switch codes.count {
        case 0: return (0, 0)
        case 1: return (UInt64(codes[0]), 0)
        case 2: return (UInt64(codes[0]) | UInt64(codes[1]) << 32, 0)
        case 3:
            if codes[0] < 1 << 21 && codes[1] < 1 << 21 && codes[2] < 1 << 21 {
                return (UInt64(codes[0]) | UInt64(codes[1]) << 21 | UInt64(codes[2]) << 42, 0)
            }
            return (UInt64(codes[0]) | UInt64(codes[1]) << 32, UInt64(codes[2]) | 1 << 63)
        default:
            if codes[0] < 1 << 16 && codes[1] < 1 << 16 && codes[2] < 1 << 16 && codes[3] < 1 << 16 {
                return (UInt64(codes[0]) | UInt64(codes[1]) << 16 | UInt64(codes[2]) << 32 | UInt64(codes[3]) << 48, 0)
            }
            return (UInt64(codes[0]) | UInt64(codes[1]) << 32, UInt64(codes[2]) | UInt64(codes[3]) << 32 | 1 << 63)
        }
    }

    /// The group of a tuple of field codes (packed by ``pack(_:)``), created with empty cells if new
    /// (in a closed partial: −1).
    /// - Parameter growing: false when the caller adds the new groups' cells itself, in bulk.
    @inline(__always) mutating func group(lo: UInt64, hi: UInt64, codes: UnsafeBufferPointer<UInt32>, growing: Bool = true) -> Int {
        if self.fieldCount == 1 {
            // One field: its code indexes the groups directly.
            let c = Int(codes[0])
            if c < self.groupOfCode.count && self.groupOfCode[c] >= 0 { return Int(self.groupOfCode[c]) }
        } else if let g = self.slots.get(lo, hi) {
            return Int(g)
        }
        if self.isClosed { return -1 }
        let g = self.groupCount
        self.groupCount += 1
        self.groupCodes.append(contentsOf: codes)
        if self.fieldCount != 1 {
            // One field's groups are found by ``groupOfCode`` alone.
            self.slots.put(lo, hi, Int32(g))
        } else {
            let c = Int(codes[0])
            if c >= self.groupOfCode.count { self.groupOfCode.append(contentsOf: repeatElement(-1, count: c - self.groupOfCode.count + 1)) }
            self.groupOfCode[c] = Int32(g)
        }
        if growing {
            for a in self.columns.indices { self.columns[a].grow(by: self.steps) }
        }
        return g
    }

    /// Whether a tuple of field codes (packed by ``pack(_:)``) already has a group.
    func hasGroup(lo: UInt64, hi: UInt64, codes: UnsafeBufferPointer<UInt32>) -> Bool {
        if self.fieldCount == 1 {
            let c = Int(codes[0])
            return c < self.groupOfCode.count && self.groupOfCode[c] >= 0
        }
        return self.slots.get(lo, hi) != nil
    }

    /// The group of `key`, created (with empty cells) if new.
    mutating func group(_ key: [GroupValue]) -> Int {
        var codes = [UInt32](repeating: 0, count: self.fieldCount)
        for f in 0..<self.fieldCount {
            guard let c = self.code(field: f, key[f]) else { return -1 }
            codes[f] = c
        }
        return codes.withUnsafeBufferPointer { c in
            let (lo, hi) = Self.pack(c)
            return self.group(lo: lo, hi: hi, codes: c)
        }
    }

    public func group(of key: [GroupValue]) -> Int? {
        guard key.count == self.fieldCount else { return nil }
        var codes = [UInt32](repeating: 0, count: self.fieldCount)
        for f in 0..<self.fieldCount {
            guard let c = self.existingCode(field: f, key[f]) else { return nil }
            codes[f] = c
        }
        return codes.withUnsafeBufferPointer { c in
            let (lo, hi) = Self.pack(c)
            guard self.hasGroup(lo: lo, hi: hi, codes: c) else { return nil }
            return self.fieldCount == 1 ? Int(self.groupOfCode[Int(c[0])]) : self.slots.get(lo, hi).map(Int.init)
        }
    }

    public mutating func merge(_ other: AggregationPartial) {
        precondition(other.steps == self.steps && other.columns.count == self.columns.count && other.fieldCount == self.fieldCount, "partials of different queries")
        if self.groupCount == 0 && !self.isClosed && !other.isClosed && self.fieldValues.allSatisfy(\.isEmpty) {
            // Into nothing: the same codes, groups and cells as merging one by one would give.
            var stats = self.stats
            stats.add(other.stats)
            self = other
            self.stats = stats
            return
        }
        // Translate the other's field codes once per distinct value.
        let translate = (0..<self.fieldCount).map { f in other.fieldValues[f].map { self.code(field: f, $0) } }
        var codes = [UInt32](repeating: 0, count: self.fieldCount)
        // This partial's group for each of the other's (−1: not taken by a closed partial).
        var target = [Int](repeating: -1, count: other.groupCount)
        groups: for g in 0..<other.groupCount {
            for f in 0..<self.fieldCount {
                guard let c = translate[f][Int(other.groupCodes[g * self.fieldCount + f])] else { continue groups }
                codes[f] = c
            }
            target[g] = codes.withUnsafeBufferPointer { c in
                let (lo, hi) = Self.pack(c)
                return self.group(lo: lo, hi: hi, codes: c)
            }
        }
        let steps = self.steps
        for a in self.columns.indices {
            // The column is taken out while it is merged into, so it is neither copied nor reached
            // through the array per cell.
            let from = other.columns[a]
            var into = AggregateColumn(kind: from.kind)
            swap(&into, &self.columns[a])
            into.merge(from, into: target, steps: steps)
            swap(&into, &self.columns[a])
        }
        self.stats.add(other.stats)
    }

    /// Equal contents, whatever the group order.
    public func sameContents(as other: AggregationPartial) -> Bool {
        guard self.steps == other.steps, self.groupCount == other.groupCount, self.columns.count == other.columns.count else { return false }
        for g in 0..<self.groupCount {
            guard let h = other.group(of: self.key(g)) else { return false }
            for a in self.columns.indices {
                for s in 0..<self.steps {
                    let x = g * self.steps + s, y = h * self.steps + s
                    let (c, d) = (self.columns[a], other.columns[a])
                    switch c.kind {
                    case .count: if c.counts[x] != d.counts[y] { return false }
                    case .values:
                        let (u, v) = (c.summary(x), d.summary(y))
                        if u.count != v.count || u.integerSum != v.integerSum || u.min != v.min || u.max != v.max { return false }
                        if abs(u.sum - v.sum) > 1e-9 * Swift.max(1, abs(u.sum)) { return false }
                    case .sketch: if c.sketches[x] != d.sketches[y] { return false }
                    case .histogram:
                        let b = Heatmap.valueBuckets
                        if c.histograms[(x * b)..<(x * b + b)] != d.histograms[(y * b)..<(y * b + b)] { return false }
                    }
                }
            }
        }
        return true
    }
}

// MARK: Wire form

extension AggregationPartial {
    /// The version ``encoded()`` writes; ``decode(_:_:)`` reads it and version 1.
    public static let wireVersion: UInt64 = 2

    /// Version 2: `[version][steps][aggregates][kinds][fields]`, each field's distinct values (as
    /// ``ByteWriter/groupValue(_:)`` writes them), `[groups]` and each group's field codes as
    /// varints, then every column's cells, then the scan statistics. A value cell is its count and a
    /// flags byte naming which lanes differ from an empty cell's, then only those lanes
    /// (``writeValueCell(_:_:into:)``); sketches use their own wire form.
    ///
    /// Version 1 wrote every group's key in full and every value cell's six lanes.
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.varint(Self.wireVersion)
        w.varint(UInt64(self.steps))
        w.varint(UInt64(self.columns.count))
        for c in self.columns { w.varint(UInt64(c.kind.rawValue)) }
        w.varint(UInt64(self.fieldCount))
        for values in self.fieldValues {
            w.varint(UInt64(values.count))
            for v in values { w.groupValue(v) }
        }
        w.varint(UInt64(self.groupCount))
        for code in self.groupCodes { w.varint(UInt64(code)) }
        for c in self.columns {
            switch c.kind {
            case .count: for v in c.counts { w.varint(v) }
            case .values: for i in 0..<c.valueCount.count { Self.writeValueCell(c, i, into: &w) }
            case .sketch: for s in c.sketches { s.encode(into: &w) }
            case .histogram: for v in c.histograms { w.varint(v) }
            }
        }
        let s = self.stats
        for v in [s.chunks, s.blocks, s.skippedGroups, s.inspectedSpans, s.inspectedTraces, s.inspectedBytes] { w.varint(UInt64(v)) }
        return w.bytes
    }

    /// Lanes of a value cell that differ from an empty cell's.
    private enum Lane {
        static let integer: UInt8 = 1
        static let wideInteger: UInt8 = 2
        static let float: UInt8 = 4
        static let compensation: UInt8 = 8
        static let min: UInt8 = 16
        static let max: UInt8 = 32
        static let all: UInt8 = 63
    }

    /// `[count][flags]`, then the integer sum (zig-zag varint, or 16 bytes when it does not fit 64
    /// bits), float sum, compensation, min and max (fixed 64-bit patterns), each only when its flag
    /// is set: a sum of integers takes a few bytes, not 57. Lanes compare by bit pattern, so the
    /// cell reads back exactly.
    static func writeValueCell(_ c: AggregateColumn, _ i: Int, into w: inout ByteWriter) {
        let integer = c.valueInteger[i]
        let (float, compensation, min, max) = (c.valueFloat[i], c.valueCompensation[i], c.valueMin[i], c.valueMax[i])
        var flags: UInt8 = 0
        let narrow = Int64(exactly: integer)
        if integer != 0 { flags |= narrow == nil ? Lane.wideInteger : Lane.integer }
        if float.bitPattern != 0 { flags |= Lane.float }
        if compensation.bitPattern != 0 { flags |= Lane.compensation }
        if min.bitPattern != Double.infinity.bitPattern { flags |= Lane.min }
        if max.bitPattern != (-Double.infinity).bitPattern { flags |= Lane.max }
        w.varint(c.valueCount[i])
        w.raw(CollectionOfOne(flags))
        if flags & Lane.integer != 0, let n = narrow { w.varint(UInt64(bitPattern: (n << 1) ^ (n >> 63))) }
        if flags & Lane.wideInteger != 0 {
            w.fixed64(UInt64(truncatingIfNeeded: integer))
            w.fixed64(UInt64(truncatingIfNeeded: integer >> 64))
        }
        if flags & Lane.float != 0 { w.fixed64(float.bitPattern) }
        if flags & Lane.compensation != 0 { w.fixed64(compensation.bitPattern) }
        if flags & Lane.min != 0 { w.fixed64(min.bitPattern) }
        if flags & Lane.max != 0 { w.fixed64(max.bitPattern) }
    }

    static func readValueCell(_ r: inout ByteReader) throws(BlockFormatError) -> ValueSummary {
        var v = ValueSummary()
        v.count = try r.varint()
        let flags = try r.raw(1)[0]
        guard flags & ~Lane.all == 0, flags & (Lane.integer | Lane.wideInteger) != (Lane.integer | Lane.wideInteger) else {
            throw BlockFormatError("bad value cell flags")
        }
        if flags & Lane.integer != 0 {
            let z = try r.varint()
            v.integerSum = Int128(Int64(bitPattern: (z >> 1) ^ (0 &- (z & 1))))
        }
        if flags & Lane.wideInteger != 0 {
            let low = try r.fixed64(), high = try r.fixed64()
            v.integerSum = Int128(Int64(bitPattern: high)) << 64 | Int128(low)
        }
        if flags & Lane.float != 0 { v.floatSum = Double(bitPattern: try r.fixed64()) }
        if flags & Lane.compensation != 0 { v.compensation = Double(bitPattern: try r.fixed64()) }
        if flags & Lane.min != 0 { v.min = Double(bitPattern: try r.fixed64()) }
        if flags & Lane.max != 0 { v.max = Double(bitPattern: try r.fixed64()) }
        return v
    }

    /// Reads a partial of `query` (its shape must match the query's), of either version.
    public static func decode(_ bytes: [UInt8], _ query: AggregationQuery) throws -> AggregationPartial {
        var partial = AggregationPartial(query)
        try bytes.withUnsafeBytes { raw throws in
            var r = ByteReader(raw)
            let version = try r.varint()
            guard version == 1 || version == 2 else { throw BlockFormatError("unknown partial aggregate version") }
            guard try r.varint() == UInt64(partial.steps), try r.varint() == UInt64(partial.columns.count) else {
                throw BlockFormatError("partial aggregate of a different query")
            }
            for c in partial.columns where try r.varint() != UInt64(c.kind.rawValue) { throw BlockFormatError("partial aggregate of a different query") }
            let groups = version == 1 ? try Self.readKeys(&r, into: &partial) : try Self.readCodes(&r, into: &partial)
            let cells = groups * partial.steps
            for a in partial.columns.indices { partial.columns[a].grow(by: cells) }
            for a in partial.columns.indices {
                switch partial.columns[a].kind {
                case .count: for i in 0..<cells { partial.columns[a].counts[i] = try r.varint() }
                case .values:
                    // The column is taken out while its cells are read, so its lanes stay unique.
                    var column = AggregateColumn(kind: .values)
                    swap(&column, &partial.columns[a])
                    try column.withValueLanes { lanes in
                        for i in 0..<cells {
                            var v: ValueSummary
                            if version == 1 {
                                v = ValueSummary()
                                v.count = try r.varint()
                                let low = try r.fixed64(), high = try r.fixed64()
                                v.integerSum = Int128(Int64(bitPattern: high)) << 64 | Int128(low)
                                v.floatSum = Double(bitPattern: try r.fixed64())
                                v.compensation = Double(bitPattern: try r.fixed64())
                                v.min = Double(bitPattern: try r.fixed64())
                                v.max = Double(bitPattern: try r.fixed64())
                            } else {
                                v = try Self.readValueCell(&r)
                            }
                            lanes.set(i, v)
                        }
                    }
                    swap(&column, &partial.columns[a])
                case .sketch: for i in 0..<cells { partial.columns[a].sketches[i] = try QuantileSketch.decode(&r) }
                case .histogram: for i in 0..<(cells * Heatmap.valueBuckets) { partial.columns[a].histograms[i] = try r.varint() }
                }
            }
            partial.stats.chunks = try r.count()
            partial.stats.blocks = try r.count()
            partial.stats.skippedGroups = try r.count()
            partial.stats.inspectedSpans = try r.count()
            partial.stats.inspectedTraces = try r.count()
            partial.stats.inspectedBytes = try r.count()
            guard r.position == raw.count else { throw BlockFormatError("trailing bytes after a partial aggregate") }
        }
        return partial
    }

    /// Version 2's field values and group codes; the number of groups. Cells are not added.
    private static func readCodes(_ r: inout ByteReader, into partial: inout AggregationPartial) throws -> Int {
        guard try r.varint() == UInt64(partial.fieldCount) else { throw BlockFormatError("partial aggregate of a different query") }
        for f in 0..<partial.fieldCount {
            let n = try r.count(max: 1 << 26)
            partial.fieldValues[f].reserveCapacity(n)
            for i in 0..<n {
                // A string's bytes are coded as they lie in the buffer: one `String` made, not two.
                let tag = try r.varint()
                let code = tag == 1 ? partial.code(field: f, utf8: try r.raw(try r.count(max: 1 << 24))) : partial.code(field: f, try r.groupValue(tag: tag))
                guard code == UInt32(i) else { throw BlockFormatError("a group value listed twice") }
            }
        }
        let groups = try r.count(max: 1 << 26)
        let values = partial.fieldValues.map { UInt64($0.count) }
        if partial.fieldCount == 1 {
            // One field: a group is its value's code, so the groups are built in local arrays.
            var groupOfCode = [Int32](repeating: -1, count: Int(values[0]))
            var groupCodes: [UInt32] = []
            groupCodes.reserveCapacity(groups)
            for g in 0..<groups {
                let code = try r.varint()
                guard code < values[0] else { throw BlockFormatError("a group code without a value") }
                guard groupOfCode[Int(code)] < 0 else { throw BlockFormatError("duplicate group in a partial aggregate") }
                groupOfCode[Int(code)] = Int32(g)
                groupCodes.append(UInt32(code))
            }
            partial.groupOfCode = groupOfCode
            partial.groupCodes = groupCodes
            partial.groupCount = groups
            return groups
        }
        partial.groupCodes.reserveCapacity(groups * partial.fieldCount)
        // Room for every group at once (each takes at least a byte per field on the wire).
        partial.slots.reserveSmall(Swift.min(groups, r.remaining / Swift.max(1, partial.fieldCount)))
        var codes = [UInt32](repeating: 0, count: partial.fieldCount)
        try codes.withUnsafeMutableBufferPointer { c throws in
            for _ in 0..<groups {
                for f in 0..<c.count {
                    let code = try r.varint()
                    guard code < values[f] else { throw BlockFormatError("a group code without a value") }
                    c[f] = UInt32(code)
                }
                let read = UnsafeBufferPointer(c)
                let (lo, hi) = Self.pack(read)
                guard !partial.hasGroup(lo: lo, hi: hi, codes: read) else { throw BlockFormatError("duplicate group in a partial aggregate") }
                _ = partial.group(lo: lo, hi: hi, codes: read, growing: false)
            }
        }
        return groups
    }

    /// Version 1's keys, each in full; the number of groups. Cells are not added.
    private static func readKeys(_ r: inout ByteReader, into partial: inout AggregationPartial) throws -> Int {
        let groups = try r.count(max: 1 << 26)
        var codes = [UInt32](repeating: 0, count: partial.fieldCount)
        for _ in 0..<groups {
            guard try r.count(max: AggregationQuery.maxGroupBy) == partial.fieldCount else { throw BlockFormatError("partial aggregate of a different query") }
            for f in 0..<partial.fieldCount { codes[f] = partial.code(field: f, try r.groupValue())! }
            try Self.addGroup(codes, to: &partial)
        }
        return groups
    }

    private static func addGroup(_ codes: [UInt32], to partial: inout AggregationPartial) throws {
        let fresh = codes.withUnsafeBufferPointer { c in
            let (lo, hi) = Self.pack(c)
            if partial.hasGroup(lo: lo, hi: hi, codes: c) { return false }
            _ = partial.group(lo: lo, hi: hi, codes: c, growing: false)
            return true
        }
        guard fresh else { throw BlockFormatError("duplicate group in a partial aggregate") }
    }
}
