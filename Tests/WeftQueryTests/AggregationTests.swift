import Testing
import WeftLoad
import WeftModel
import WeftOTLP
@testable import WeftQuery
import WeftStorageEngine
import WeftTestSupport

/// The columnar aggregation engine against a row-at-a-time reference over the same spans, over
/// blocks and head alike; partials of any split merge to the whole.
struct AggregationTests {
    static let base: UInt64 = 1_764_460_800_000_000_000
    static let minute: UInt64 = 60_000_000_000

    /// 8 requests of generated traffic, one minute apart.
    static func traffic(seed: UInt64, requests: Int = 8) -> [SpanBatch] {
        var generator = TrafficGenerator(profile: LoadProfile(seed: seed))
        var decoder = OTLPProtobufDecoder()
        return (0..<requests).map { i in
            let body = generator.nextRequest(spans: 300, startTimeNanos: Self.base + UInt64(i) * Self.minute, spacingNanos: 50_000_000)
            var batch = SpanBatch()
            _ = try! body.withUnsafeBytes { try decoder.decode($0, into: &batch) }
            return batch
        }
    }

    /// The same spans twice: all in the head, and mostly in blocks (small row groups) with the rest in the head.
    static func engines(_ batches: [SpanBatch]) throws -> (head: StorageEngine, mixed: StorageEngine) {
        let head = StorageEngine(head: Head(configuration: .init(chunkSpans: 512)), store: BlockStore(disk: SimulatedDisk(), directory: "/h"))
        for b in batches { head.head.append(b, org: "o") }
        let mixed = StorageEngine(
            head: Head(configuration: .init(chunkSpans: 512)), store: BlockStore(disk: SimulatedDisk(), directory: "/b"),
            configuration: .init(blockOptions: .init(zstdLevel: 3, groupSpans: 128))
        )
        for (i, b) in batches.enumerated() { mixed.head.append(b, org: "o", segment: i * 3 / batches.count + 1) }
        try mixed.flush(segment: 1)
        try mixed.flush(segment: 2)
        #expect(mixed.snapshot(org: "o").blocks.count == 2)
        #expect(!mixed.snapshot(org: "o").chunks.isEmpty)
        return (head, mixed)
    }

    // MARK: Reference

    /// A field read row by row from the raw batch: span attribute, then resource attribute.
    static func value(_ f: TraceQLField, _ b: SpanBatch, _ row: Int) -> GroupValue {
        func lookup(_ attrs: AttributeColumns, _ range: Range<Int>, _ key: String) -> GroupValue? {
            guard let id = b.strings.lookup(key) else { return nil }
            for i in range where attrs.keys[i] == id {
                switch ValueType(rawValue: attrs.types[i]) {
                case .string: return .string(b.strings.string(UInt32(attrs.values[i])))
                case .int: return .int(Int64(bitPattern: attrs.values[i]))
                case .double: return .double(Double(bitPattern: attrs.values[i]))
                case .bool: return .bool(attrs.values[i] != 0)
                default: return nil
                }
            }
            return nil
        }
        switch f {
        case .intrinsic(.status): return .string(["unset", "ok", "error"][Int(b.statusCode[row])])
        case .intrinsic(.name): return .string(b.strings.string(b.name[row]))
        case .intrinsic(.duration): return .int(Int64(b.endTime[row] - b.startTime[row]))
        case .attribute(let scope, let key):
            if key == "gen_ai.usage.input_tokens" {
                // The normalized column also reads the deprecated alias.
                return lookup(b.attrs, b.attrRange(row), key) ?? lookup(b.attrs, b.attrRange(row), "gen_ai.usage.prompt_tokens") ?? .absent
            }
            if scope != .resource, let v = lookup(b.attrs, b.attrRange(row), key) { return v }
            if scope != .span, let v = lookup(b.resourceAttrs, b.resourceAttrRange(Int(b.resourceIndex[row])), key) { return v }
            return .absent
        default: return .absent
        }
    }

    static func number(_ v: GroupValue) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    struct Expected {
        var count = 0
        var values: [Double] = []
    }

    /// Per group: matching rows' count and the values of `field`, computed row by row.
    static func reference(_ q: AggregationQuery, field: TraceQLField?, _ batches: [SpanBatch]) -> [[GroupValue]: Expected] {
        var out: [[GroupValue]: Expected] = [:]
        for b in batches {
            let filter = CompiledTraceQLFilter(q.filter, strings: b.strings)
            for row in 0..<b.spanCount where b.startTime[row] >= q.startNanos && b.startTime[row] <= q.endNanos && filter.matches(b, row) {
                let key = q.groupBy.map { value($0, b, row) }
                out[key, default: Expected()].count += 1
                if let field, let v = number(value(field, b, row)) { out[key, default: Expected()].values.append(v) }
            }
        }
        return out
    }

    static func exactQuantile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        return sorted[Int(QuantileSketch.rank(q, UInt64(sorted.count)))]
    }

    // MARK: Tests

    /// Every query: the same groups as the reference; counts and integer sums exact, float sums to
    /// 1e-9, min/max exact, quantiles within 1%; head-only, mixed and split-and-merged partials equal.
    @Test(arguments: [3, 4] as [UInt64])
    func test_aggregates_equalRowByRowReference_overHeadAndBlocks(seed: UInt64) throws {
        let batches = Self.traffic(seed: seed)
        let (headOnly, mixed) = try Self.engines(batches)
        let sample = batches[2]
        func stringValue(_ key: String) -> String {
            let id = sample.strings.lookup(key)!
            let i = (0..<sample.attrs.count).first { sample.attrs.keys[$0] == id && sample.attrs.types[$0] == ValueType.string.rawValue }!
            return sample.strings.string(UInt32(sample.attrs.values[i]))
        }
        let region = stringValue("region"), model = stringValue("gen_ai.request.model")
        let end = Self.base + 8 * Self.minute
        let duration = TraceQLField.intrinsic(.duration)
        let tenant = TraceQLField.attribute(.span, "tenant_id")
        let modelField = TraceQLField.attribute(.span, "gen_ai.request.model")
        let service = TraceQLField.attribute(.resource, "service.name")
        let inputTokens = TraceQLField.attribute(.span, "gen_ai.usage.input_tokens")
        let cost = TraceQLField.attribute(.span, "gen_ai.usage.cost")
        let cases: [(AggregationQuery, TraceQLField?)] = [
            (AggregationQuery(aggregates: [.count], startNanos: Self.base, endNanos: end), nil),
            (AggregationQuery(filter: try TraceQLQuery(parsing: "{ span.region = \"\(region)\" }").filter, groupBy: [tenant], aggregates: [.count], startNanos: Self.base, endNanos: end), nil),
            (AggregationQuery(filter: try TraceQLQuery(parsing: "{ span.gen_ai.request.model != \"\" }").filter, groupBy: [modelField], aggregates: [.quantiles(duration, [0.5, 0.95, 0.99]), .min(duration), .max(duration)], startNanos: Self.base, endNanos: end), duration),
            (AggregationQuery(groupBy: [service, .intrinsic(.status)], aggregates: [.count, .quantiles(duration, [0.9]), .sum(duration)], startNanos: Self.base + Self.minute + 7, endNanos: Self.base + 5 * Self.minute), duration),
            (AggregationQuery(filter: try TraceQLQuery(parsing: "{ span.server.port >= 443 && duration > 300ms && (span.region =~ \"eu-.*|us-east-1\" || status = error) }").filter, groupBy: [tenant, modelField, .attribute(.span, "region")], aggregates: [.count, .sum(inputTokens), .avg(inputTokens)], startNanos: Self.base, endNanos: end), inputTokens),
            (AggregationQuery(filter: try TraceQLQuery(parsing: "{ span.gen_ai.request.model = \"\(model)\" && duration > 100ms }").filter, groupBy: [.attribute(.any, "service.version")], aggregates: [.sum(cost), .max(cost)], startNanos: Self.base, endNanos: end), cost),
            (AggregationQuery(filter: try TraceQLQuery(parsing: "{ resource.service.name = \"tfy-llm-gateway\" && kind = client }").filter, aggregates: [.histogram(duration), .count], startNanos: Self.base, endNanos: end, stepNanos: Self.minute), duration),
            (AggregationQuery(groupBy: [tenant], aggregates: [.count, .sum(duration)], startNanos: Self.base, endNanos: end), duration),
            (AggregationQuery(filter: try TraceQLQuery(parsing: "{ span.tenant_id != \"\" && span.gen_ai.usage.cost >= 0 }").filter, groupBy: [tenant], aggregates: [.sum(cost), .count], startNanos: Self.base, endNanos: end), cost),
            (AggregationQuery(filter: try TraceQLQuery(parsing: "{ span.tenant_id = \"no-such-tenant\" }").filter, groupBy: [tenant], aggregates: [.count], startNanos: Self.base, endNanos: end), nil),
        ]
        let headSnapshot = headOnly.snapshot(org: "o")
        let mixedSnapshot = mixed.snapshot(org: "o")
        for (index, (query, field)) in cases.enumerated() {
            let viaHead = try AggregationExecutor.partial(query, snapshot: headSnapshot, store: headOnly.store)
            let viaBlocks = try AggregationExecutor.partial(query, snapshot: mixedSnapshot, store: mixed.store, limits: AggregationLimits(parallelism: 1))
            let parallel = try AggregationExecutor.partial(query, snapshot: mixedSnapshot, store: mixed.store, limits: AggregationLimits(parallelism: 3, context: .threaded))
            #expect(viaBlocks.sameContents(as: viaHead), "case \(index): blocks differ from head")
            #expect(parallel.sameContents(as: viaBlocks), "case \(index): parallel scan differs")
            #expect(viaBlocks.stats.blocks == 2 || query.filter != .all, "case \(index)")

            let expected = Self.reference(query, field: field, batches)
            #expect(Set(viaBlocks.keys) == Set(expected.keys), "case \(index): groups \(viaBlocks.keys.count) vs \(expected.keys.count)")
            if index == cases.count - 1 { #expect(expected.isEmpty) } else { #expect(!expected.isEmpty, "case \(index) matches nothing") }
            for row in viaBlocks.rows(query) {
                guard let e = expected[row.key] else { continue }
                let values = e.values
                for (a, aggregate) in query.aggregates.enumerated() {
                    let got = row.values[a]
                    switch aggregate {
                    case .count: #expect(got == .number(Double(e.count)), "case \(index) \(row.key)")
                    case .sum:
                        let exact = values.reduce(0, +)
                        #expect(abs((got.scalar ?? 0) - exact) <= 1e-9 * max(1, abs(exact)), "case \(index) \(row.key): sum \(String(describing: got.scalar)) vs \(exact)")
                    case .avg where values.isEmpty: #expect(got == .number(nil), "case \(index) \(row.key)")
                    case .avg:
                        let exact = values.reduce(0, +) / Double(values.count)
                        #expect(abs((got.scalar ?? 0) - exact) <= 1e-9 * max(1, abs(exact)), "case \(index) \(row.key)")
                    case .min: #expect(got == .number(values.min()), "case \(index) \(row.key)")
                    case .max: #expect(got == .number(values.max()), "case \(index) \(row.key)")
                    case .quantiles(_, let qs):
                        guard case .quantiles(let estimates) = got else {
                            Issue.record("case \(index): not quantiles")
                            continue
                        }
                        for (q, estimate) in zip(qs, estimates) {
                            let exact = Self.exactQuantile(values, q)
                            let error = abs((estimate ?? .nan) - exact) / max(exact, 1)
                            #expect(error <= 0.01, "case \(index) \(row.key) q\(q): \(String(describing: estimate)) vs \(exact)")
                        }
                    case .histogram:
                        guard case .histogram(let buckets) = got else {
                            Issue.record("case \(index): not a histogram")
                            continue
                        }
                        var exact: [Int: UInt64] = [:]
                        for v in values { exact[Heatmap.valueBucket(UInt64(v)), default: 0] += 1 }
                        #expect(Dictionary(uniqueKeysWithValues: buckets.map { ($0.bucket, $0.count) }) == exact, "case \(index)")
                    }
                }
            }
        }
    }

    /// Token counts past 32 bits keep their full width in block columns (the narrow form is taken only
    /// for a row group whose counts all fit): sums, maxima and counts over blocks equal the head's and
    /// the typed column's own total, exactly.
    @Test func test_tokenCountsPast32Bits_sumExactlyOverBlocks() throws {
        var batches = Self.traffic(seed: 21)
        var large = 0
        for row in 0..<batches[0].spanCount where batches[0].inputTokens[row] != SpanBatch.noTokens && row % 3 == 0 {
            batches[0].inputTokens[row] = 5_000_000_000 + Int64(row)
            large += 1
        }
        #expect(large > 0)
        let present = batches.flatMap { $0.inputTokens.filter { $0 != SpanBatch.noTokens } }
        let (headOnly, mixed) = try Self.engines(batches)
        let tokens = TraceQLField.attribute(.span, "gen_ai.usage.input_tokens")
        let query = AggregationQuery(aggregates: [.sum(tokens), .max(tokens), .min(tokens)], startNanos: 0, endNanos: .max)
        let viaHead = try AggregationExecutor.partial(query, snapshot: headOnly.snapshot(org: "o"), store: headOnly.store)
        let viaBlocks = try AggregationExecutor.partial(query, snapshot: mixed.snapshot(org: "o"), store: mixed.store)
        #expect(viaBlocks.sameContents(as: viaHead))
        let row = try #require(viaBlocks.rows(query).first)
        #expect(row.values[0] == .number(Double(present.reduce(0, +))))
        #expect(row.values[1] == .number(Double(present.max()!)) && row.values[2] == .number(Double(present.min()!)))
    }

    /// Partials of any split of the snapshot (blocks and head chunks dealt out at random) merge, in any
    /// order, to the partial of the whole.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func test_mergeOfSplitPartials_equalsWhole(seed: UInt64) throws {
        let (_, mixed) = try Self.engines(Self.traffic(seed: seed))
        let snapshot = mixed.snapshot(org: "o")
        let query = AggregationQuery(
            groupBy: [.attribute(.resource, "service.name"), .attribute(.span, "gen_ai.request.model")],
            aggregates: [.count, .sum(.intrinsic(.duration)), .quantiles(.intrinsic(.duration), [0.5, 0.99]), .histogram(.intrinsic(.duration))],
            startNanos: Self.base, endNanos: Self.base + 8 * Self.minute, stepNanos: 2 * Self.minute
        )
        let whole = try AggregationExecutor.partial(query, snapshot: snapshot, store: mixed.store)
        var rng = LoadRandom(seed: seed)
        var parts = [StorageEngine.Snapshot](repeating: StorageEngine.Snapshot(chunks: [], blocks: []), count: 3)
        for c in snapshot.chunks { parts[Int(rng.next() % 3)].chunks.append(c) }
        for b in snapshot.blocks { parts[Int(rng.next() % 3)].blocks.append(b) }
        var partials = try parts.map { try AggregationExecutor.partial(query, snapshot: $0, store: mixed.store) }
        if rng.next() % 2 == 0 { partials.reverse() }
        var merged = partials[0]
        for p in partials.dropFirst() { merged.merge(p) }
        #expect(merged.sameContents(as: whole), "seed \(seed)")
        #expect(merged.stats.inspectedSpans == whole.stats.inspectedSpans)
        #expect(whole.groupCount > 3)
    }

    @Test func test_traceMatches_equalRowByRowReference() throws {
        let batches = Self.traffic(seed: 21)
        let (_, mixed) = try Self.engines(batches)
        let region = Self.value(.attribute(.span, "region"), batches[1], 0)
        guard case .string(let r) = region else {
            Issue.record("no region on the first span")
            return
        }
        let filter = try TraceQLQuery(parsing: "{ span.region = \"\(r)\" && kind = client }").filter
        let (start, end) = (Self.base + Self.minute, Self.base + 6 * Self.minute)
        let got = try TraceMatchExecutor.latest(filter, startNanos: start, endNanos: end, limit: 7, snapshot: mixed.snapshot(org: "o"), store: mixed.store)
        var latest: [TraceID: (UInt64, Int)] = [:]
        var spans = 0
        for b in batches {
            let f = CompiledTraceQLFilter(filter, strings: b.strings)
            for row in 0..<b.spanCount where b.startTime[row] >= start && b.startTime[row] <= end && f.matches(b, row) {
                spans += 1
                let e = latest[b.traceID(row)] ?? (0, 0)
                latest[b.traceID(row)] = (max(e.0, b.startTime[row]), e.1 + 1)
            }
        }
        let expected = latest.sorted { $0.value.0 != $1.value.0 ? $0.value.0 > $1.value.0 : $0.key < $1.key }.prefix(7)
        #expect(spans > 7)
        #expect(got.spans == spans)
        #expect(got.traces.map(\.traceID) == expected.map(\.key))
        #expect(got.traces.map(\.matched) == expected.map(\.value.1))
    }

    /// The service map from block sections plus the head join equals a self-join of all spans.
    @Test func test_serviceMap_equalsSelfJoin() throws {
        let batches = Self.traffic(seed: 31)
        let (headOnly, mixed) = try Self.engines(batches)
        struct Pair: Hashable { var parent: String, child: String }
        var expected: [Pair: (UInt64, UInt64)] = [:]
        var all = SpanBatch()
        for b in batches { all.append(b) }
        var serviceOf: [String: String] = [:]
        for row in 0..<all.spanCount { serviceOf["\(all.traceID(row))/\(all.spanID[row])"] = all.strings.string(all.resourceServiceName[Int(all.resourceIndex[row])]) }
        for row in 0..<all.spanCount where all.parentSpanID[row] != 0 {
            guard let parent = serviceOf["\(all.traceID(row))/\(all.parentSpanID[row])"] else { continue }
            let child = all.strings.string(all.resourceServiceName[Int(all.resourceIndex[row])])
            guard parent != child else { continue }
            let e = expected[Pair(parent: parent, child: child)] ?? (0, 0)
            expected[Pair(parent: parent, child: child)] = (e.0 + 1, e.1 + (all.statusCode[row] == 2 ? 1 : 0))
        }
        #expect(expected.count >= 2)
        for engine in [headOnly, mixed] {
            let (edges, _) = try ServiceMapExecutor.edges(startNanos: 0, endNanos: .max, snapshot: engine.snapshot(org: "o"), store: engine.store)
            var got: [Pair: (UInt64, UInt64)] = [:]
            for e in edges {
                got[Pair(parent: e.parent, child: e.child)] = (e.calls, e.errors)
                #expect(e.latency.count == e.calls)
            }
            #expect(got.mapValues { [$0.0, $0.1] } == expected.mapValues { [$0.0, $0.1] })
        }
        // Flushing and compacting everything changes where edges come from, not what they are.
        let (_, blocksOnly) = try Self.engines(batches)
        try blocksOnly.flush(segment: 3)
        #expect(blocksOnly.snapshot(org: "o").chunks.allSatisfy { $0.spanCount == 0 })
        let (edges, _) = try ServiceMapExecutor.edges(startNanos: 0, endNanos: .max, snapshot: blocksOnly.snapshot(org: "o"), store: blocksOnly.store)
        #expect(Dictionary(uniqueKeysWithValues: edges.map { (Pair(parent: $0.parent, child: $0.child), [$0.calls, $0.errors]) }) == expected.mapValues { [$0.0, $0.1] })
    }

    @Test func test_limits_areEnforcedWithClearErrors() throws {
        let (_, mixed) = try Self.engines(Self.traffic(seed: 41))
        let snapshot = mixed.snapshot(org: "o")
        let byUser = AggregationQuery(groupBy: [.attribute(.span, "user_id")], aggregates: [.count], startNanos: Self.base, endNanos: Self.base + 8 * Self.minute)
        #expect(throws: AggregationError.tooManySeries(limit: 5)) {
            _ = try AggregationExecutor.partial(byUser, snapshot: snapshot, store: mixed.store, limits: AggregationLimits(maxSeries: 5))
        }
        // The injected clock reads past the deadline.
        var expired = AggregationLimits(context: QueryContext(now: { 2_000_000_000 }, workers: SerialScanWorkers()))
        expired.deadline = 1_000_000_000
        #expect(throws: AggregationError.timeout(seconds: expired.timeoutSeconds)) {
            _ = try AggregationExecutor.partial(byUser, snapshot: snapshot, store: mixed.store, limits: expired)
        }
        let backwards = AggregationQuery(aggregates: [.count], startNanos: 10, endNanos: 5)
        #expect(throws: AggregationError.invalid("end is before start")) {
            _ = try AggregationExecutor.partial(backwards, snapshot: snapshot, store: mixed.store)
        }
    }

    @Test func test_partial_roundTripsThroughItsWireForm() throws {
        let (_, mixed) = try Self.engines(Self.traffic(seed: 51))
        let query = AggregationQuery(
            groupBy: [.attribute(.span, "tenant_id"), .intrinsic(.status)],
            aggregates: [.count, .sum(.attribute(.span, "gen_ai.usage.cost")), .quantiles(.intrinsic(.duration), [0.5]), .histogram(.intrinsic(.duration))],
            startNanos: Self.base, endNanos: Self.base + 8 * Self.minute, stepNanos: 3 * Self.minute
        )
        let partial = try AggregationExecutor.partial(query, snapshot: mixed.snapshot(org: "o"), store: mixed.store)
        let decoded = try AggregationPartial.decode(partial.encoded(), query)
        #expect(decoded.sameContents(as: partial))
        #expect(decoded.groupCount == partial.groupCount && partial.groupCount > 1)
        var bytes = partial.encoded()
        bytes.removeLast(3)
        #expect(throws: BlockFormatError.self) { _ = try AggregationPartial.decode(bytes, query) }
    }

    @Test func test_valueCellsRoundTripExactlyInTheirCompactForm() throws {
        let query = AggregationQuery(
            groupBy: [.attribute(.span, "tenant_id")], aggregates: [.sum(.attribute(.span, "x")), .min(.attribute(.span, "x"))],
            startNanos: 0, endNanos: 10
        )
        var partial = AggregationPartial(query)
        // Empty, integer, wide integer, float with compensation, negative zero, min and max set.
        var cells: [ValueSummary] = [ValueSummary()]
        var integer = ValueSummary()
        integer.add(integer: -7)
        integer.add(integer: .max)
        cells.append(integer)
        var wide = ValueSummary()
        for _ in 0..<4 { wide.add(integer: .max) }
        cells.append(wide)
        var float = ValueSummary()
        for v in [1e16, 1.0, -1e16, 0.1] { float.add(v) }
        cells.append(float)
        var zero = ValueSummary()
        zero.add(-0.0)
        cells.append(zero)
        for (g, cell) in cells.enumerated() {
            let group = partial.group([.string("t\(g)")])
            for a in 0..<2 { partial.columns[a].setSummary(group, cell) }
        }
        let bytes = partial.encoded()
        let decoded = try AggregationPartial.decode(bytes, query)
        #expect(decoded.keys == partial.keys)
        for g in cells.indices {
            for a in 0..<2 {
                let (x, y) = (decoded.columns[a].summary(g), partial.columns[a].summary(g))
                #expect(x.count == y.count && x.integerSum == y.integerSum && x.floatSum.bitPattern == y.floatSum.bitPattern)
                #expect(x.compensation.bitPattern == y.compensation.bitPattern && x.min.bitPattern == y.min.bitPattern && x.max.bitPattern == y.max.bitPattern)
            }
        }
    }

    @Test func test_mergingIntoAnEmptyPartialEqualsMergingGroupByGroup() throws {
        let (_, mixed) = try Self.engines(Self.traffic(seed: 52))
        let query = AggregationQuery(
            groupBy: [.attribute(.span, "tenant_id"), .intrinsic(.status)],
            aggregates: [.count, .sum(.attribute(.span, "gen_ai.usage.cost")), .quantiles(.intrinsic(.duration), [0.5])],
            startNanos: Self.base, endNanos: Self.base + 8 * Self.minute, stepNanos: 3 * Self.minute
        )
        let partial = try AggregationExecutor.partial(query, snapshot: mixed.snapshot(org: "o"), store: mixed.store)
        var fast = AggregationPartial(query)
        fast.merge(partial)
        // A closed partial that holds every group takes the slow path.
        var slow = AggregationPartial.closed(query, to: partial.keys)
        slow.merge(partial)
        #expect(fast.sameContents(as: partial) && slow.sameContents(as: partial))
        #expect(fast.keys == partial.keys && slow.keys == partial.keys)
        fast.merge(partial)
        slow.merge(partial)
        #expect(fast.sameContents(as: slow))
    }
}

extension AggregationTests {
    /// An ordered, limited table: the two-pass plan (order aggregate first, the rest for the chosen
    /// groups) and the quickselect cut give exactly the first rows of a full sort of all groups.
    @Test(arguments: [61, 62] as [UInt64])
    func test_orderedTable_equalsFullSortPrefix(seed: UInt64) throws {
        let (_, mixed) = try Self.engines(Self.traffic(seed: seed))
        let snapshot = mixed.snapshot(org: "o")
        let query = AggregationQuery(
            groupBy: [.attribute(.span, "tenant_id"), .attribute(.resource, "service.name")],
            aggregates: [.count, .quantiles(.intrinsic(.duration), [0.95]), .sum(.intrinsic(.duration))],
            startNanos: Self.base, endNanos: Self.base + 8 * Self.minute
        )
        let whole = try AggregationExecutor.partial(query, snapshot: snapshot, store: mixed.store)
        for (orderBy, descending, limit) in [(0, true, 7), (2, false, 5), (0, false, 13), (0, true, 100_000)] {
            var all = whole.rows(query)
            all.sort { x, y in
                let (a, b) = (x.values[orderBy].scalar!, y.values[orderBy].scalar!)
                if a != b { return descending ? a > b : a < b }
                return x.key.lexicographicallyPrecedes(y.key)
            }
            let expected = Array(all.prefix(limit))
            let (rows, groups, _) = try AggregationExecutor.table(query, orderBy: orderBy, descending: descending, limit: limit, snapshot: snapshot, store: mixed.store)
            #expect(groups == whole.groupCount)
            #expect(rows == expected, "order by \(orderBy) \(descending ? "desc" : "asc") limit \(limit)")
            #expect(whole.rows(query, orderBy: orderBy, descending: descending, limit: limit) == expected)
        }
        #expect(whole.groupCount > 20)
    }
}

extension AggregationTests {
    /// Trace-level intrinsics (`rootServiceName`, `rootName`, `traceDuration`) in filters and group-bys
    /// equal a reference that groups every span by trace first (traces lie whole in one block or chunk here).
    @Test func test_traceLevelIntrinsics_equalWholeTraceReference() throws {
        let batches = Self.traffic(seed: 71)
        let head = StorageEngine(head: Head(), store: BlockStore(disk: SimulatedDisk(), directory: "/h"))
        for b in batches { head.head.append(b, org: "o") }
        let blocks = StorageEngine(head: Head(), store: BlockStore(disk: SimulatedDisk(), directory: "/b"), configuration: .init(blockOptions: .init(zstdLevel: 3, groupSpans: 128)))
        for (i, b) in batches.enumerated() { blocks.head.append(b, org: "o", segment: i + 1) }
        for i in batches.indices { try blocks.flush(segment: i + 1) }

        // Reference: per trace, first start, last end, root service and name.
        var all = SpanBatch()
        for b in batches { all.append(b) }
        var context: [TraceID: (start: UInt64, end: UInt64, service: String, name: String)] = [:]
        for row in 0..<all.spanCount {
            let id = all.traceID(row)
            var c = context[id] ?? (.max, 0, "", "")
            c.start = min(c.start, all.startTime[row])
            c.end = max(c.end, all.endTime[row])
            if all.parentSpanID[row] == 0 {
                c.service = all.strings.string(all.resourceServiceName[Int(all.resourceIndex[row])])
                c.name = all.strings.string(all.name[row])
            }
            context[id] = c
        }
        let durations = context.values.map { $0.end - $0.start }.sorted()
        let threshold = durations[durations.count / 2]
        let (end, start) = (Self.base + 8 * Self.minute, Self.base)
        let filter = try TraceQLQuery(parsing: "{ traceDuration > \(threshold)ns && kind = client }").filter
        let query = AggregationQuery(filter: filter, groupBy: [.intrinsic(.rootServiceName), .intrinsic(.rootName)], aggregates: [.count, .max(.intrinsic(.traceDuration))], startNanos: start, endNanos: end)
        var expected: [[GroupValue]: (Int, UInt64)] = [:]
        for row in 0..<all.spanCount where all.kind[row] == 3 && all.startTime[row] >= start && all.startTime[row] <= end {
            let c = context[all.traceID(row)]!
            guard c.end - c.start > threshold else { continue }
            let key: [GroupValue] = [c.service.isEmpty ? .absent : .string(c.service), c.name.isEmpty ? .absent : .string(c.name)]
            let e = expected[key] ?? (0, 0)
            expected[key] = (e.0 + 1, max(e.1, c.end - c.start))
        }
        #expect(expected.count >= 2)
        for engine in [head, blocks] {
            let rows = try AggregationExecutor.partial(query, snapshot: engine.snapshot(org: "o"), store: engine.store).rows(query)
            let got = Dictionary(uniqueKeysWithValues: rows.map { ($0.key, (Int($0.values[0].scalar!), UInt64($0.values[1].scalar!))) })
            #expect(got.mapValues { [$0.0, Int($0.1)] } == expected.mapValues { [$0.0, Int($0.1)] })
        }
        // The same filter through search: every trace found is long and has a matching client span.
        var search = SearchRequest()
        search.traceQL = try TraceQLQuery(parsing: "{ traceDuration > \(threshold)ns && rootServiceName != \"\" }").filter
        search.limit = 1000
        let found = try SearchExecutor.columnar(search, snapshot: blocks.snapshot(org: "o"), store: blocks.store)
        let long = Set(context.filter { $0.value.end - $0.value.start > threshold && !$0.value.service.isEmpty }.map(\.key))
        #expect(Set(found.traces.map(\.traceID)) == long)
        #expect(found.traces.allSatisfy { $0.durationNanos > threshold && !$0.matchedSpans.isEmpty })
    }
}

extension AggregationTests {
    /// Distinct values read every block in range (a high-cardinality key included), honour a filter
    /// and stop at the limit.
    @Test func test_distinctValues_coverAllDataAndStopAtTheLimit() throws {
        let batches = Self.traffic(seed: 81)
        let (_, mixed) = try Self.engines(batches)
        let snapshot = mixed.snapshot(org: "o")
        var users = Set<GroupValue>(), errorUsers = Set<GroupValue>()
        for b in batches {
            for row in 0..<b.spanCount {
                let v = Self.value(.attribute(.span, "user_id"), b, row)
                guard v != .absent else { continue }
                users.insert(v)
                if b.statusCode[row] == 2 { errorUsers.insert(v) }
            }
        }
        #expect(users.count > 100 && !errorUsers.isEmpty && errorUsers.count < users.count)
        let all = try DistinctValues.values(of: .attribute(.span, "user_id"), limit: 1_000_000, snapshot: snapshot, store: mixed.store)
        #expect(Set(all.values) == users && all.values.count == users.count)
        let failing = try DistinctValues.values(of: .attribute(.span, "user_id"), filter: try TraceQLQuery(parsing: "{ status = error }").filter, limit: 1_000_000, snapshot: snapshot, store: mixed.store)
        #expect(Set(failing.values) == errorUsers)
        let few = try DistinctValues.values(of: .attribute(.span, "user_id"), limit: 10, snapshot: snapshot, store: mixed.store)
        #expect(few.values.count == 10 && Set(few.values).isSubset(of: users))
        let statuses = try DistinctValues.values(of: .intrinsic(.status), limit: 10, snapshot: snapshot, store: mixed.store)
        #expect(Set(statuses.values).isSubset(of: [.string("unset"), .string("ok"), .string("error")]) && statuses.values.contains(.string("error")))
    }
}

extension AggregationTests {
    /// The group map agrees with a dictionary for keys of both widths, and packing is injective
    /// across the 64-bit and 128-bit forms.
    @Test(arguments: [91, 92] as [UInt64])
    func test_slotMapAndKeyPacking_areExact(seed: UInt64) {
        var rng = LoadRandom(seed: seed)
        var map = SlotMap()
        var reference: [[UInt64]: Int32] = [:]
        for i in 0..<20_000 {
            let wide = rng.next() % 3 == 0
            let key = [rng.next() % 5_000, wide ? (rng.next() % 50) | 1 << 63 : 0]
            if let g = reference[key] {
                #expect(map.get(key[0], key[1]) == g)
            } else {
                #expect(map.get(key[0], key[1]) == nil)
                map.put(key[0], key[1], Int32(i))
                reference[key] = Int32(i)
            }
        }
        for (key, g) in reference { #expect(map.get(key[0], key[1]) == g) }
        // Codes at the 64-bit limits and just past them: no two tuples share a packed key.
        for fields in 1...4 {
            var owner: [[UInt64]: [UInt32]] = [:]
            let edges: [UInt32] = [0, 1, (1 << 16) - 1, 1 << 16, (1 << 21) - 1, 1 << 21, UInt32.max >> 1]
            for _ in 0..<2_000 {
                let codes = (0..<fields).map { _ in edges[Int(rng.next() % UInt64(edges.count))] }
                let (lo, hi) = codes.withUnsafeBufferPointer { AggregationPartial.pack($0) }
                let fits = fields <= 2 || (fields == 3 && codes.allSatisfy { $0 < 1 << 21 }) || (fields == 4 && codes.allSatisfy { $0 < 1 << 16 })
                #expect((hi == 0) == fits, "\(codes)")
                if let other = owner[[lo, hi]] { #expect(other == codes, "\(codes) and \(other) pack alike") }
                owner[[lo, hi]] = codes
            }
            #expect(owner.count > 4)
        }
    }
}

extension AggregationTests {
    static func batch(_ resources: [(service: String, spans: [TestSpan])]) -> SpanBatch {
        var batch = SpanBatch()
        var decoder = OTLPProtobufDecoder()
        _ = try! RequestBuilder.request(resources).withUnsafeBytes { try decoder.decode($0, into: &batch) }
        return batch
    }

    /// Head spans are joined across batches and segments (children arriving before their parents);
    /// once a segment is a block its edges come from the block, never twice. A parent and child that
    /// end up in different places (one in a block, one in the head or another block) are joined once.
    @Test func test_serviceEdges_acrossBatchesSegmentsAndBlocks() throws {
        let t = TraceID(high: 7, low: 9)
        let base = Self.base
        let engine = StorageEngine(head: Head(), store: BlockStore(disk: SimulatedDisk(), directory: "/b"))
        // Segment 1: a child (llm-gateway) and grandchild (provider) arrive before their root (checkout).
        engine.head.append(Self.batch([
            ("llm-gateway", [TestSpan(traceID: t, spanID: 2, parentSpanID: 1, name: "chat", start: base + 10, end: base + 900, statusCode: 2)]),
            ("provider", [TestSpan(traceID: t, spanID: 3, parentSpanID: 2, name: "call", start: base + 20, end: base + 800)]),
        ]), org: "o", segment: 1)
        engine.head.append(Self.batch([("checkout", [TestSpan(traceID: t, spanID: 1, name: "POST /buy", start: base, end: base + 1000)])]), org: "o", segment: 2)
        func edges() throws -> [String: [UInt64]] {
            let (e, _) = try ServiceMapExecutor.edges(startNanos: base, endNanos: base + Self.minute, snapshot: engine.snapshot(org: "o"), store: engine.store)
            return Dictionary(uniqueKeysWithValues: e.map { ("\($0.parent)>\($0.child)", [$0.calls, $0.errors, $0.latency.count]) })
        }
        #expect(try edges() == ["checkout>llm-gateway": [1, 1, 1], "llm-gateway>provider": [1, 0, 1]])
        // A second trace entirely in segment 2, which then becomes a block.
        let u = TraceID(high: 7, low: 10)
        engine.head.append(Self.batch([
            ("checkout", [TestSpan(traceID: u, spanID: 1, name: "POST /buy", start: base + 50, end: base + 500)]),
            ("llm-gateway", [TestSpan(traceID: u, spanID: 2, parentSpanID: 1, name: "chat", start: base + 60, end: base + 400)]),
        ]), org: "o", segment: 2)
        #expect(try edges() == ["checkout>llm-gateway": [2, 1, 2], "llm-gateway>provider": [1, 0, 1]])
        try engine.flush(segment: 2)
        #expect(engine.snapshot(org: "o").blocks.count == 1)
        // Trace t's root is now in a block and its child still in the head: the call still counts once.
        #expect(try edges() == ["checkout>llm-gateway": [2, 1, 2], "llm-gateway>provider": [1, 0, 1]])
        try engine.flush(segment: 1)
        // And in two blocks.
        #expect(engine.snapshot(org: "o").blocks.count == 2)
        #expect(try edges() == ["checkout>llm-gateway": [2, 1, 2], "llm-gateway>provider": [1, 0, 1]])
    }
}
