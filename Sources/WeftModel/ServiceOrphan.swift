/// A span whose parent span was not among the spans its edges were computed from (its block, or the
/// head): the parent lies in another block or the head, or was never stored. Its call joins the
/// service map once a query finds the parent.
public struct ServiceOrphan: Sendable, Equatable {
    public var trace: TraceID
    public var parentSpanID: UInt64
    /// The span's own service.
    public var child: String
    public var start: UInt64
    public var duration: UInt64
    public var isError: Bool

    public init(trace: TraceID, parentSpanID: UInt64, child: String, start: UInt64, duration: UInt64, isError: Bool) {
        self.trace = trace
        self.parentSpanID = parentSpanID
        self.child = child
        self.start = start
        self.duration = duration
        self.isError = isError
    }

    /// Row `row` of `batch`.
    public init(_ batch: SpanBatch, row: Int) {
        let start = batch.startTime[row], end = batch.endTime[row]
        self.init(
            trace: batch.traceID(row), parentSpanID: batch.parentSpanID[row],
            child: batch.strings.string(batch.resourceServiceName[Int(batch.resourceIndex[row])]), start: start,
            duration: end > start ? end - start : 0, isError: batch.statusCode[row] == 2
        )
    }
}
