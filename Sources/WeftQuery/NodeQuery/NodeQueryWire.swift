import WeftModel
import WeftStorageEngine

/// Binary forms of requests and partials between a coordinator and storage nodes:
/// `[version][operation]` then the operation's fields. Decoding validates everything and throws
/// ``BlockFormatError`` on malformed, truncated or trailing input.
extension NodeQueryRequest {
    /// Version 2 added the many-traces operations (8: spans, 9: search summaries), version 3 the
    /// services of spans (10); the others are still written as version 1, so nodes that know only
    /// version 1 keep answering them.
    public static let wireVersion: UInt64 = 3

    /// The version a request of `operation` is written with.
    static func wireVersion(of operation: Operation) -> UInt64 {
        switch operation {
        case .traces, .summaries: return 2
        case .spanServices: return 3
        default: return 1
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.varint(Self.wireVersion(of: self.operation))
        w.optional(self.deadline)
        w.fixed64(self.timeoutSeconds.bitPattern)
        w.varint(UInt64(self.maxSeries))
        w.varint(UInt64(self.maxMemoryBytes))
        w.varint(UInt64(self.parallelism))
        switch self.operation {
        case .trace(let id):
            w.varint(0)
            w.traceID(id)
        case .traces(let ids, let start, let end):
            w.varint(8)
            w.varint(UInt64(ids.count))
            for id in ids { w.traceID(id) }
            w.fixed64(start)
            w.fixed64(end)
        case .traceMatches(let filter, let start, let end):
            w.varint(1)
            w.filter(filter)
            w.fixed64(start)
            w.fixed64(end)
        case .tagNames(let scope, let blockSpans):
            w.varint(2)
            w.varint(scope == nil ? 0 : 1)
            if let scope { w.string(scope) }
            w.varint(UInt64(blockSpans))
        case .tagValues(let field, let filter, let start, let end, let limit):
            w.varint(3)
            w.field(field)
            w.filter(filter)
            w.fixed64(start)
            w.fixed64(end)
            w.varint(UInt64(limit))
        case .aggregate(let q):
            w.varint(4)
            w.aggregationQuery(q)
        case .aggregateGroups(let q, let keys):
            w.varint(5)
            w.aggregationQuery(q)
            w.varint(UInt64(keys.count))
            for key in keys {
                for v in key { w.groupValue(v) }
            }
        case .search(let search):
            w.varint(7)
            w.search(search)
        case .summaries(let search, let chosen):
            w.varint(9)
            w.search(search)
            w.varint(UInt64(chosen.count))
            for m in chosen {
                w.traceID(m.traceID)
                w.fixed64(m.latestStart)
                w.varint(UInt64(m.matched))
            }
        case .serviceMap(let start, let end):
            w.varint(6)
            w.fixed64(start)
            w.fixed64(end)
        case .spanServices(let spans):
            w.varint(10)
            w.varint(UInt64(spans.count))
            for s in spans {
                w.traceID(s.trace)
                w.fixed64(s.span)
            }
        }
        return w.bytes
    }

    /// - Throws: ``BlockFormatError`` when `bytes` are not a request of this version.
    public static func decode(_ bytes: [UInt8]) throws -> NodeQueryRequest {
        try readAll(bytes, "a query request") { r in
            let version = try r.varint()
            guard (1...3).contains(version) else { throw BlockFormatError("unknown query request version") }
            let deadline = try r.optional()
            let timeout = Double(bitPattern: try r.fixed64())
            guard timeout.isFinite, timeout >= 0 else { throw BlockFormatError("bad timeout") }
            let maxSeries = try r.count(max: Int.max >> 1)
            let maxMemory = try r.count(max: Int.max >> 1)
            let parallelism = try r.count(max: 1024)
            let operation: Operation
            switch try r.varint() {
            case 0: operation = .trace(try r.traceID())
            case 8 where version >= 2:
                var ids: [TraceID] = []
                for _ in 0..<(try r.count(max: Self.maxTraces)) { ids.append(try r.traceID()) }
                let start = try r.fixed64()
                operation = .traces(ids, startNanos: start, endNanos: try r.fixed64())
            case 1:
                let filter = try r.filter()
                let start = try r.fixed64()
                operation = .traceMatches(filter: filter, startNanos: start, endNanos: try r.fixed64())
            case 2:
                let scope: String?
                switch try r.varint() {
                case 0: scope = nil
                case 1: scope = try r.string()
                default: throw BlockFormatError("bad optional marker")
                }
                operation = .tagNames(scope: scope, blockSpans: try r.count(max: Int.max >> 1))
            case 3:
                let field = try r.field()
                let filter = try r.filter()
                let start = try r.fixed64()
                let end = try r.fixed64()
                operation = .tagValues(field: field, filter: filter, startNanos: start, endNanos: end, limit: try r.count(max: 1 << 24))
            case 4: operation = .aggregate(try r.aggregationQuery())
            case 5:
                let q = try r.aggregationQuery()
                var keys: [[GroupValue]] = []
                for _ in 0..<(try r.count(max: 1 << 24)) {
                    var key: [GroupValue] = []
                    for _ in 0..<q.groupBy.count { key.append(try r.groupValue()) }
                    keys.append(key)
                }
                operation = .aggregateGroups(q, keys: keys)
            case 6:
                let start = try r.fixed64()
                operation = .serviceMap(startNanos: start, endNanos: try r.fixed64())
            case 7: operation = .search(try r.search())
            case 9 where version >= 2:
                let search = try r.search()
                var chosen: [TraceMatch] = []
                for _ in 0..<(try r.count(max: Self.maxTraces)) {
                    let id = try r.traceID()
                    let latest = try r.fixed64()
                    chosen.append(TraceMatch(traceID: id, latestStart: latest, matched: try r.count(max: Int.max >> 1)))
                }
                operation = .summaries(search, chosen)
            case 10 where version >= 3:
                var spans: [ServiceMapExecutor.SpanKey] = []
                for _ in 0..<(try r.count(max: ServiceMapPartial.maxOrphans)) {
                    let trace = try r.traceID()
                    spans.append(ServiceMapExecutor.SpanKey(trace: trace, span: try r.fixed64()))
                }
                operation = .spanServices(spans)
            default: throw BlockFormatError("unknown query operation")
            }
            return NodeQueryRequest(
                operation, deadline: deadline, timeoutSeconds: timeout, maxSeries: maxSeries, maxMemoryBytes: maxMemory, parallelism: max(1, parallelism)
            )
        }
    }
}

extension NodeQueryRequest {
    /// Trace IDs one many-traces request may name.
    public static let maxTraces = 1 << 20
}

extension NodePartial {
    /// Version 2 added the many-traces partial (6), version 3 a service map's orphans, version 4
    /// trace matches with summaries (9, sent only to a coordinator that asked for them); the others
    /// are still written as version 1.
    public static let wireVersion: UInt64 = 4

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case .serviceMap(let p) where !p.orphans.isEmpty: w.varint(3)
        case .spanServices: w.varint(3)
        case .traceMatches(let p) where !p.summaries.isEmpty: w.varint(4)
        case .traces, .summaries: w.varint(2)
        default: w.varint(1)
        }
        switch self {
        case .summaries(let p):
            w.varint(7)
            w.varint(UInt64(p.spansPerSpanSet))
            w.varint(UInt64(p.traces.count))
            for t in p.traces.values.sorted(by: { $0.traceID < $1.traceID }) { w.summary(t) }
            w.stats(p.stats)
        case .traces(let p):
            w.varint(6)
            w.varint(UInt64(p.chunks.count))
            for chunk in p.chunks {
                let bytes = SpanBatchCodec.encode(chunk.batch)
                w.varint(UInt64(bytes.count))
                w.raw(bytes)
            }
            w.stats(p.stats)
        case .trace(let p):
            w.varint(0)
            w.traceID(p.traceID)
            w.varint(UInt64(p.chunks.count))
            for chunk in p.chunks {
                // The trace's rows of each source as a block of their own.
                var rows = SpanBatch()
                rows.strings = chunk.batch.strings
                rows.appendRows(chunk.rows(of: p.traceID), of: chunk.batch)
                let block = BlockCodec.encode(rows).bytes
                w.varint(UInt64(block.count))
                w.raw(block)
            }
            w.stats(p.stats)
        case .traceMatches(let p) where !p.summaries.isEmpty:
            w.varint(9)
            p.encode(into: &w)
            w.varint(UInt64(p.spansPerSpanSet))
            w.varint(UInt64(p.summaries.count))
            for t in p.summaries.values.sorted(by: { $0.traceID < $1.traceID }) { w.summary(t) }
        case .traceMatches(let p):
            w.varint(1)
            p.encode(into: &w)
        case .tagNames(let p):
            w.varint(2)
            p.encode(into: &w)
        case .tagValues(let p):
            w.varint(3)
            p.encode(into: &w)
        case .aggregate(let p):
            w.varint(4)
            let bytes = p.encoded()
            w.varint(UInt64(bytes.count))
            w.raw(bytes)
            w.varint(p.stats.elapsedNanos)
        case .serviceMap(let p):
            w.varint(5)
            p.encode(into: &w)
            if !p.orphans.isEmpty { p.encodeOrphans(into: &w) }
        case .spanServices(let p):
            w.varint(8)
            w.varint(UInt64(p.services.count))
            for (key, service) in p.services.sorted(by: { ($0.key.trace, $0.key.span) < ($1.key.trace, $1.key.span) }) {
                w.traceID(key.trace)
                w.fixed64(key.span)
                w.string(service)
            }
            w.stats(p.stats)
        }
        return w.bytes
    }

    /// Reads a partial answer to `operation` (an aggregate's shape comes from its query).
    /// - Throws: ``BlockFormatError`` when `bytes` are not such a partial.
    public static func decode(_ bytes: [UInt8], for operation: NodeQueryRequest.Operation) throws -> NodePartial {
        try readAll(bytes, "a partial answer") { r in
            let version = try r.varint()
            guard (1...4).contains(version) else { throw BlockFormatError("unknown partial answer version") }
            let kind = try r.varint()
            switch (kind, operation) {
            case (7, .summaries(_, let chosen)) where version >= 2:
                let ids = Set(chosen.map(\.traceID))
                var p = SummariesPartial()
                p.spansPerSpanSet = try r.count(max: 1 << 16)
                for _ in 0..<(try r.count(max: NodeQueryRequest.maxTraces)) {
                    let t = try r.summary()
                    guard ids.contains(t.traceID) else { throw BlockFormatError("the summary of a trace not asked for") }
                    p.traces[t.traceID] = t
                }
                p.stats = try r.stats()
                return .summaries(p)
            case (6, .traces(let wanted, _, _)) where version >= 2:
                let ids = Set(wanted)
                var chunks: [HeadChunk] = []
                for _ in 0..<(try r.count(max: 1 << 20)) {
                    let bytes = try r.raw(try r.count(max: 1 << 31))
                    let batch: SpanBatch
                    do {
                        batch = try SpanBatchCodec.decode(bytes)
                    } catch {
                        throw BlockFormatError("bad span batch: \(error)")
                    }
                    guard (0..<batch.spanCount).allSatisfy({ ids.contains(batch.traceID($0)) }) else { throw BlockFormatError("spans of a trace not asked for") }
                    chunks.append(HeadChunk(org: "", batch: batch))
                }
                var p = TracesPartial(chunks: chunks)
                p.stats = try r.stats()
                return .traces(p)
            case (0, .trace(let wanted)):
                let id = try r.traceID()
                guard id == wanted else { throw BlockFormatError("the partial is of another trace") }
                var chunks: [HeadChunk] = []
                for _ in 0..<(try r.count(max: 1 << 20)) {
                    let block = Array(try r.raw(try r.count(max: 1 << 31)))
                    let batch = try BlockReader(bytes: block).decodeAll()
                    guard (0..<batch.spanCount).allSatisfy({ batch.traceID($0) == id }) else { throw BlockFormatError("spans of another trace") }
                    chunks.append(HeadChunk(org: "", batch: batch))
                }
                var p = TracePartial(traceID: id, chunks: chunks)
                p.stats = try r.stats()
                return .trace(p)
            case (1, .traceMatches), (1, .search): return .traceMatches(try TraceMatchesPartial.decode(&r))
            case (9, .search) where version >= 4:
                var p = try TraceMatchesPartial.decode(&r)
                p.spansPerSpanSet = try r.count(max: 1 << 16)
                for _ in 0..<(try r.count(max: p.traces.count)) {
                    let t = try r.summary()
                    guard p.traces[t.traceID] != nil else { throw BlockFormatError("the summary of a trace without matches") }
                    guard p.summaries.updateValue(t, forKey: t.traceID) == nil else { throw BlockFormatError("a summary listed twice") }
                }
                return .traceMatches(p)
            case (2, .tagNames): return .tagNames(try TagNamesPartial.decode(&r))
            case (3, .tagValues(_, _, _, _, let limit)): return .tagValues(try TagValuesPartial.decode(&r, limit: limit))
            case (4, .aggregate(let q)), (4, .aggregateGroups(let q, _)):
                var p = try AggregationPartial.decode(Array(try r.raw(try r.count(max: 1 << 31))), q)
                p.stats.elapsedNanos = try r.varint()
                return .aggregate(p)
            case (5, .serviceMap):
                var p = try ServiceMapPartial.decode(&r)
                if version >= 3 { p.orphans = try ServiceMapPartial.decodeOrphans(&r) }
                return .serviceMap(p)
            case (8, .spanServices(let spans)) where version >= 3:
                let asked = Set(spans)
                var p = SpanServicesPartial()
                for _ in 0..<(try r.count(max: spans.count)) {
                    let trace = try r.traceID()
                    let key = ServiceMapExecutor.SpanKey(trace: trace, span: try r.fixed64())
                    guard asked.contains(key) else { throw BlockFormatError("the service of a span not asked for") }
                    guard p.services.updateValue(try r.string(), forKey: key) == nil else { throw BlockFormatError("a span listed twice") }
                }
                p.stats = try r.stats()
                return .spanServices(p)
            default:
                throw BlockFormatError("the partial answers another operation")
            }
        }
    }
}

extension ByteWriter {
    mutating func search(_ search: SearchRequest) {
        self.varint(UInt64(search.conditions.count))
        for c in search.conditions {
            self.varint(c.scope == .any ? 0 : c.scope == .span ? 1 : 2)
            self.string(c.key)
            self.string(c.value)
        }
        for v in [search.minDurationNanos, search.maxDurationNanos, search.startNanos, search.endNanos] { self.optional(v) }
        self.varint(UInt64(search.limit))
        self.varint(UInt64(search.spansPerSpanSet))
        self.varint(search.traceQL == nil ? 0 : 1)
        if let f = search.traceQL { self.filter(f) }
        self.varint(UInt64(search.select.count))
        for field in search.select { self.field(field) }
    }

    mutating func summary(_ t: TraceSummary) {
        self.traceID(t.traceID)
        self.string(t.rootServiceName)
        self.string(t.rootTraceName)
        self.fixed64(t.startNanos)
        self.fixed64(t.durationNanos)
        self.varint(UInt64(t.matched))
        self.varint(UInt64(t.matchedSpans.count))
        for s in t.matchedSpans {
            self.fixed64(s.spanID)
            self.string(s.name)
            self.fixed64(s.startNanos)
            self.fixed64(s.durationNanos)
            self.varint(UInt64(s.attributes.count))
            for a in s.attributes {
                self.string(a.key)
                self.groupValue(a.value)
            }
        }
        self.varint(UInt64(t.serviceStats.count))
        for s in t.serviceStats {
            self.string(s.service)
            self.varint(UInt64(s.spans))
            self.varint(UInt64(s.errors))
        }
    }
}

extension ByteReader {
    mutating func search() throws(BlockFormatError) -> SearchRequest {
        var search = SearchRequest()
        for _ in 0..<(try self.count(max: 1 << 16)) {
            let scope: TagCondition.Scope
            switch try self.varint() {
            case 0: scope = .any
            case 1: scope = .span
            case 2: scope = .resource
            default: throw BlockFormatError("unknown tag scope")
            }
            let key = try self.string()
            search.conditions.append(TagCondition(scope: scope, key: key, value: try self.string()))
        }
        search.minDurationNanos = try self.optional()
        search.maxDurationNanos = try self.optional()
        search.startNanos = try self.optional()
        search.endNanos = try self.optional()
        search.limit = try self.count(max: 1 << 24)
        search.spansPerSpanSet = try self.count(max: 1 << 16)
        switch try self.varint() {
        case 0: break
        case 1: search.traceQL = try self.filter()
        default: throw BlockFormatError("bad optional marker")
        }
        for _ in 0..<(try self.count(max: 1 << 10)) { search.select.append(try self.field()) }
        return search
    }

    mutating func summary() throws(BlockFormatError) -> TraceSummary {
        let id = try self.traceID()
        let rootService = try self.string()
        let rootName = try self.string()
        let start = try self.fixed64()
        let duration = try self.fixed64()
        let matched = try self.count(max: Int.max >> 1)
        var spans: [SpanSummary] = []
        for _ in 0..<(try self.count(max: 1 << 16)) {
            let spanID = try self.fixed64()
            let name = try self.string()
            let s = try self.fixed64()
            var span = SpanSummary(spanID: spanID, name: name, startNanos: s, durationNanos: try self.fixed64())
            for _ in 0..<(try self.count(max: 1 << 16)) {
                let key = try self.string()
                span.attributes.append((key: key, value: try self.groupValue()))
            }
            spans.append(span)
        }
        var services: [(service: String, spans: Int, errors: Int)] = []
        for _ in 0..<(try self.count(max: 1 << 20)) {
            let service = try self.string()
            let n = try self.count(max: Int.max >> 1)
            services.append((service, n, try self.count(max: Int.max >> 1)))
        }
        return TraceSummary(
            traceID: id, rootServiceName: rootService, rootTraceName: rootName, startNanos: start, durationNanos: duration,
            matchedSpans: spans, matched: matched, serviceStats: services
        )
    }
}
