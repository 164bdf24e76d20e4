import WeftModel

/// A trace found by a search, summarised the way Tempo's `SearchResponse` shows it.
public struct TraceSummary: Sendable {
    public var traceID: TraceID
    public var rootServiceName: String
    public var rootTraceName: String
    public var startNanos: UInt64
    public var durationNanos: UInt64
    /// Matched spans (up to `spss`) and how many matched in all.
    public var matchedSpans: [SpanSummary]
    public var matched: Int
    /// Span and error counts per service.
    public var serviceStats: [(service: String, spans: Int, errors: Int)]

    public init(
        traceID: TraceID, rootServiceName: String, rootTraceName: String, startNanos: UInt64, durationNanos: UInt64, matchedSpans: [SpanSummary],
        matched: Int, serviceStats: [(service: String, spans: Int, errors: Int)]
    ) {
        self.traceID = traceID
        self.rootServiceName = rootServiceName
        self.rootTraceName = rootTraceName
        self.startNanos = startNanos
        self.durationNanos = durationNanos
        self.matchedSpans = matchedSpans
        self.matched = matched
        self.serviceStats = serviceStats
    }
}

/// A span inside a search result.
public struct SpanSummary: Sendable {
    public var spanID: UInt64
    public var name: String
    public var startNanos: UInt64
    public var durationNanos: UInt64
    /// The span's (or its resource's) values of the attributes the query reads or selects.
    public var attributes: [(key: String, value: GroupValue)] = []

    public init(spanID: UInt64, name: String, startNanos: UInt64, durationNanos: UInt64, attributes: [(key: String, value: GroupValue)] = []) {
        self.spanID = spanID
        self.name = name
        self.startNanos = startNanos
        self.durationNanos = durationNanos
        self.attributes = attributes
    }
}

extension TraceSummary: Equatable {
    public static func == (a: TraceSummary, b: TraceSummary) -> Bool {
        a.traceID == b.traceID && a.rootServiceName == b.rootServiceName && a.rootTraceName == b.rootTraceName && a.startNanos == b.startNanos
            && a.durationNanos == b.durationNanos && a.matchedSpans == b.matchedSpans && a.matched == b.matched
            && a.serviceStats.elementsEqual(b.serviceStats, by: { $0.service == $1.service && $0.spans == $1.spans && $0.errors == $1.errors })
    }
}

extension SpanSummary: Equatable {
    public static func == (a: SpanSummary, b: SpanSummary) -> Bool {
        a.spanID == b.spanID && a.name == b.name && a.startNanos == b.startNanos && a.durationNanos == b.durationNanos
            && a.attributes.elementsEqual(b.attributes, by: { $0.key == $1.key && $0.value == $1.value })
    }
}

extension TraceSummary {
    /// The root service name of a trace whose root span is not stored (yet).
    public static let noRoot = "<root span not yet received>"

    /// The summary of a trace's spans in two disjoint sets of placements (each span in one of them):
    /// the earlier start, the later end, the root from whichever holds it, span and error counts per
    /// service added, matched spans up to `spansPerSpanSet` (each span ID once), the larger match count.
    public static func merged(_ a: TraceSummary, _ b: TraceSummary, spansPerSpanSet: Int) -> TraceSummary {
        var out = a
        let end = max(a.startNanos + a.durationNanos, b.startNanos + b.durationNanos)
        out.startNanos = min(a.startNanos, b.startNanos)
        out.durationNanos = end - out.startNanos
        if a.rootServiceName == Self.noRoot && b.rootServiceName != Self.noRoot {
            out.rootServiceName = b.rootServiceName
            out.rootTraceName = b.rootTraceName
        }
        for s in b.serviceStats {
            if let i = out.serviceStats.firstIndex(where: { $0.service == s.service }) {
                out.serviceStats[i].spans += s.spans
                out.serviceStats[i].errors += s.errors
            } else {
                out.serviceStats.append(s)
            }
        }
        for span in b.matchedSpans where out.matchedSpans.count < spansPerSpanSet && !out.matchedSpans.contains(where: { $0.spanID == span.spanID }) {
            out.matchedSpans.append(span)
        }
        out.matched = max(a.matched, b.matched)
        return out
    }
}
