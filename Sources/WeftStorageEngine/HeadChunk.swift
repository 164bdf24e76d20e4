import WeftModel

/// A columnar chunk of recent spans of one org and placement, with its own string dictionary, a
/// trace-ID index and the WAL segment of each row.
///
/// Chunks are values: a query takes a snapshot and scans it without holding the head's lock.
public struct HeadChunk: Sendable {
    public let org: String
    /// The replica set the rows were written to.
    public let placement: String
    /// Identifies the chunk inside its head (a cut names the rows it took by chunk and row).
    let id: UInt64
    public private(set) var batch = SpanBatch()
    /// The last row of each trace in this chunk; earlier rows are reached through ``previousInTrace``.
    public private(set) var lastRowOfTrace: [TraceID: UInt32] = [:]
    /// For each row, the previous row of the same trace (`UInt32.max` if none).
    public private(set) var previousInTrace: [UInt32] = []
    /// For each row, the WAL segment that logged it.
    public private(set) var rowSegments: [UInt32] = []
    public private(set) var minStart: UInt64 = .max
    public private(set) var maxStart: UInt64 = 0
    /// Derived facts shared by every copy of this chunk (a rebuilt chunk starts a new one).
    let derived = HeadChunkDerived()

    init(org: String, placement: String, id: UInt64) {
        self.org = org
        self.placement = placement
        self.id = id
    }

    /// A chunk over an existing batch (e.g. rows decoded from a block), with its trace index built.
    public init(org: String, batch: SpanBatch) {
        self.org = org
        self.placement = ""
        self.id = 0
        self.append(batch, segment: 0, sharingStrings: true)
    }

    /// A chunk over rows gathered from another chunk, keeping its identity.
    init(rebuilding chunk: HeadChunk, batch: SpanBatch, rowSegments: [UInt32]) {
        self.org = chunk.org
        self.placement = chunk.placement
        self.id = chunk.id
        self.append(batch, segment: 0, sharingStrings: true)
        self.rowSegments = rowSegments
    }

    public var spanCount: Int { self.batch.spanCount }

    /// Whether this is a chunk of the head, whose partition keeps each span once across all its
    /// chunks (chunks made over other rows, e.g. decoded from a block, may repeat spans).
    public var holdsEachSpanOnce: Bool { self.id != 0 }

    /// Reserves room for `spans` spans shaped like `sample` (attributes, events and links per span).
    mutating func reserve(spans: Int, like sample: SpanBatch) {
        let n = max(1, sample.spanCount)
        self.batch.reserve(spans: spans, attributes: spans * sample.attrs.count / n + 16)
        self.previousInTrace.reserveCapacity(spans)
        self.rowSegments.reserveCapacity(spans)
        self.lastRowOfTrace.reserveCapacity(spans / 2)
    }

    mutating func append(_ other: SpanBatch, segment: Int, sharingStrings: Bool = false) {
        let first = self.batch.spanCount
        if sharingStrings && first == 0 { self.batch = other } else { self.batch.append(other) }
        self.previousInTrace.reserveCapacity(self.batch.spanCount)
        self.rowSegments.append(contentsOf: repeatElement(UInt32(truncatingIfNeeded: segment), count: self.batch.spanCount - first))
        for row in first..<self.batch.spanCount {
            let id = self.batch.traceID(row)
            let previous = self.lastRowOfTrace.updateValue(UInt32(row), forKey: id)
            self.previousInTrace.append(previous ?? .max)
            let start = self.batch.startTime[row]
            if start < self.minStart { self.minStart = start }
            if start > self.maxStart { self.maxStart = start }
        }
    }

    /// Drops spare capacity; called when the chunk is sealed.
    mutating func shrinkToFit() {
        self.batch.shrinkToFit()
        self.previousInTrace = self.previousInTrace.withUnsafeBufferPointer { Array($0) }
        self.rowSegments = self.rowSegments.withUnsafeBufferPointer { Array($0) }
    }

    /// Rows of a trace in this chunk, in insertion order.
    public func rows(of trace: TraceID) -> [Int] {
        guard let last = self.lastRowOfTrace[trace] else { return [] }
        var rows: [Int] = []
        self.appendRows(endingAt: last, to: &rows)
        return rows.reversed()
    }

    /// Appends the rows of the trace whose last row here is `last`, last first.
    public func appendRows(endingAt last: UInt32, to rows: inout [Int]) {
        var row = last
        while row != .max {
            rows.append(Int(row))
            row = self.previousInTrace[Int(row)]
        }
    }

    /// The given rows (ascending) as a batch of their own, with only the strings they use.
    func gather(_ rows: [Int]) -> SpanBatch {
        var out = SpanBatch()
        out.strings = self.batch.strings
        out.appendRows(rows, of: self.batch)
        out.dropUnusedStrings()
        return out
    }

    /// Approximate heap bytes held.
    public var memoryFootprint: Int {
        self.batch.memoryFootprint + self.previousInTrace.capacity * 4 + self.rowSegments.capacity * 4 + self.lastRowOfTrace.capacity * 28
    }
}
