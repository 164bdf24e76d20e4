import WeftModel
import WeftStorageEngine

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
}

/// A span inside a search result.
public struct SpanSummary: Sendable {
    public var spanID: UInt64
    public var name: String
    public var startNanos: UInt64
    public var durationNanos: UInt64
}

/// What a query looked at.
public struct ScanStats: Sendable {
    public var chunks = 0
    public var inspectedSpans = 0
    public var inspectedTraces = 0
    public var inspectedBytes = 0
}

/// Search results, most recent traces first.
public struct SearchResult: Sendable {
    public var traces: [TraceSummary]
    public var stats: ScanStats
}

/// One condition resolved against a chunk's dictionary.
private enum Resolved {
    case name(UInt32)
    case status(UInt8)
    case kind(UInt8)
    case serviceName(UInt32)
    case provider(UInt32)
    case requestModel(UInt32)
    case responseModel(UInt32)
    /// Index into the attribute-condition list; matched on span and/or resource attributes.
    case attribute(Int)
    case impossible
}

private struct AttributeMatcher {
    var key: UInt32
    var scope: TagCondition.Scope
    /// Acceptable (type, payload) pairs.
    var candidates: [(UInt8, UInt64)]

    func matches(_ attrs: AttributeColumns, _ range: Range<Int>) -> Bool {
        for i in range where attrs.keys[i] == self.key {
            let t = attrs.types[i]
            let v = attrs.values[i]
            for c in self.candidates where c.0 == t && c.1 == v { return true }
        }
        return false
    }
}

/// Tag search over head chunks.
public enum SearchExecutor {
    public static func search(_ request: SearchRequest, in chunks: [HeadChunk]) -> SearchResult {
        var stats = ScanStats()
        // Best match per trace: the chunk/row of its latest matching span and the matches.
        var found: [TraceID: (latest: UInt64, spans: [(Int, Int)], matched: Int)] = [:]
        for (chunkIndex, chunk) in chunks.enumerated() {
            stats.chunks += 1
            if let end = request.endNanos, chunk.minStart > end { continue }
            if let start = request.startNanos, chunk.maxStart < start { continue }
            let batch = chunk.batch
            guard let (resolved, matchers) = resolve(request.conditions, batch) else { continue }
            // Pre-compute, per resource, which attribute conditions its attributes satisfy.
            var resourceMatch = [[Bool]](repeating: [], count: batch.resourceCount)
            for r in 0..<batch.resourceCount {
                let range = batch.resourceAttrRange(r)
                resourceMatch[r] = matchers.map { $0.scope != .span && $0.matches(batch.resourceAttrs, range) }
            }
            stats.inspectedSpans += batch.spanCount
            stats.inspectedBytes += batch.memoryFootprint
            rows: for row in 0..<batch.spanCount {
                let start = batch.startTime[row]
                if let s = request.startNanos, start < s { continue }
                if let e = request.endNanos, start > e { continue }
                let end = batch.endTime[row]
                let duration = end > start ? end - start : 0
                if let min = request.minDurationNanos, duration < min { continue }
                if let max = request.maxDurationNanos, duration > max { continue }
                for condition in resolved {
                    switch condition {
                    case .name(let id): if batch.name[row] != id { continue rows }
                    case .status(let code): if batch.statusCode[row] != code { continue rows }
                    case .kind(let kind): if batch.kind[row] != kind { continue rows }
                    case .serviceName(let id):
                        if batch.resourceServiceName[Int(batch.resourceIndex[row])] != id { continue rows }
                    case .provider(let id): if batch.genAIProvider[row] != id { continue rows }
                    case .requestModel(let id): if batch.genAIRequestModel[row] != id { continue rows }
                    case .responseModel(let id): if batch.genAIResponseModel[row] != id { continue rows }
                    case .attribute(let m):
                        if resourceMatch[Int(batch.resourceIndex[row])][m] { continue }
                        let matcher = matchers[m]
                        if matcher.scope == .resource || !matcher.matches(batch.attrs, batch.attrRange(row)) { continue rows }
                    case .impossible: continue rows
                    }
                }
                let id = batch.traceID(row)
                if var entry = found[id] {
                    entry.matched += 1
                    if entry.spans.count < request.spansPerSpanSet { entry.spans.append((chunkIndex, row)) }
                    if start > entry.latest { entry.latest = start }
                    found[id] = entry
                } else {
                    found[id] = (start, [(chunkIndex, row)], 1)
                }
            }
        }
        stats.inspectedTraces = found.count
        let top = found.sorted { a, b in
            a.value.latest != b.value.latest ? a.value.latest > b.value.latest : a.key < b.key
        }.prefix(request.limit)
        let traces = top.map { (id, entry) -> TraceSummary in
            var summary = summarize(id, in: chunks)
            summary.matched = entry.matched
            summary.matchedSpans = entry.spans.map { (c, row) in
                let b = chunks[c].batch
                let s = b.startTime[row]
                let e = b.endTime[row]
                return SpanSummary(spanID: b.spanID[row], name: b.strings.string(b.name[row]), startNanos: s, durationNanos: e > s ? e - s : 0)
            }
            return summary
        }
        return SearchResult(traces: traces, stats: stats)
    }

    /// Summary of a whole trace (root, span counts, duration) across chunks.
    public static func summarize(_ id: TraceID, in chunks: [HeadChunk]) -> TraceSummary {
        var minStart = UInt64.max
        var maxEnd: UInt64 = 0
        var rootService = ""
        var rootName = ""
        var rootFound = false
        var services: [String: (Int, Int)] = [:]
        var order: [String] = []
        for chunk in chunks {
            let b = chunk.batch
            for row in chunk.rows(of: id) {
                minStart = min(minStart, b.startTime[row])
                maxEnd = max(maxEnd, b.endTime[row])
                let service = b.strings.string(b.resourceServiceName[Int(b.resourceIndex[row])])
                if b.parentSpanID[row] == 0 && !rootFound {
                    rootFound = true
                    rootService = service
                    rootName = b.strings.string(b.name[row])
                }
                if services[service] == nil { order.append(service) }
                services[service, default: (0, 0)].0 += 1
                if b.statusCode[row] == 2 { services[service, default: (0, 0)].1 += 1 }
            }
        }
        if !rootFound {
            rootService = "<root span not yet received>"
        }
        if minStart == .max { minStart = 0 }
        return TraceSummary(
            traceID: id,
            rootServiceName: rootService,
            rootTraceName: rootName,
            startNanos: minStart,
            durationNanos: maxEnd > minStart ? maxEnd - minStart : 0,
            matchedSpans: [],
            matched: 0,
            serviceStats: order.map { ($0, services[$0]!.0, services[$0]!.1) }
        )
    }

    /// Resolves conditions to dictionary IDs of this chunk; nil if some value cannot occur in it.
    private static func resolve(_ conditions: [TagCondition], _ batch: SpanBatch) -> ([Resolved], [AttributeMatcher])? {
        var resolved: [Resolved] = []
        var matchers: [AttributeMatcher] = []
        let strings = batch.strings
        for c in conditions {
            if c.scope == .any {
                switch c.key {
                case "name":
                    guard let id = strings.lookup(c.value) else { return nil }
                    resolved.append(.name(id))
                    continue
                case "status":
                    switch c.value {
                    case "error": resolved.append(.status(2))
                    case "ok": resolved.append(.status(1))
                    case "unset": resolved.append(.status(0))
                    default: return nil
                    }
                    continue
                case "kind":
                    let kinds = ["unspecified", "internal", "server", "client", "producer", "consumer"]
                    guard let k = kinds.firstIndex(of: c.value) else { return nil }
                    resolved.append(.kind(UInt8(k)))
                    continue
                default: break
                }
            }
            if c.scope != .span && c.key == "service.name" {
                guard let id = strings.lookup(c.value) else { return nil }
                resolved.append(.serviceName(id))
                continue
            }
            if c.scope != .resource {
                switch c.key {
                case "gen_ai.provider.name", "gen_ai.system":
                    guard let id = strings.lookup(c.value) else { return nil }
                    resolved.append(.provider(id))
                    continue
                case "gen_ai.request.model":
                    guard let id = strings.lookup(c.value) else { return nil }
                    resolved.append(.requestModel(id))
                    continue
                case "gen_ai.response.model":
                    guard let id = strings.lookup(c.value) else { return nil }
                    resolved.append(.responseModel(id))
                    continue
                default: break
                }
            }
            guard let key = strings.lookup(c.key) else { return nil }
            var candidates: [(UInt8, UInt64)] = []
            if let id = strings.lookup(c.value) { candidates.append((ValueType.string.rawValue, UInt64(id))) }
            if let i = Int64(c.value) { candidates.append((ValueType.int.rawValue, UInt64(bitPattern: i))) }
            if let d = Double(c.value), d.isFinite { candidates.append((ValueType.double.rawValue, d.bitPattern)) }
            if c.value == "true" { candidates.append((ValueType.bool.rawValue, 1)) }
            if c.value == "false" { candidates.append((ValueType.bool.rawValue, 0)) }
            guard !candidates.isEmpty else { return nil }
            resolved.append(.attribute(matchers.count))
            matchers.append(AttributeMatcher(key: key, scope: c.scope, candidates: candidates))
        }
        return (resolved, matchers)
    }
}
