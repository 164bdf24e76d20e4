// Properties of the load generator (WeftLoad): determinism, span counts, trace shape, error share,
// Zipf skew, valid IDs, and that every generated span decodes with the server's protobuf decoder and
// fills the typed GenAI columns.

import Testing
import WeftLoad
import WeftModel
import WeftOTLP

private let baseTime: UInt64 = 1_750_000_000_000_000_000

/// Decodes one generated request.
private func decode(_ bytes: [UInt8]) throws -> (DecodeOutcome, SpanBatch) {
    var decoder = OTLPProtobufDecoder()
    var batch = SpanBatch()
    let outcome = try bytes.withUnsafeBytes { try decoder.decode($0, into: &batch) }
    return (outcome, batch)
}

/// A few requests from one generator, decoded into one batch.
private func sample(_ profile: LoadProfile, requests: Int, spans: Int) throws -> (SpanBatch, [GeneratedRequestInfo]) {
    var generator = TrafficGenerator(profile: profile)
    var all = SpanBatch()
    var infos: [GeneratedRequestInfo] = []
    for i in 0..<requests {
        let bytes = generator.nextRequest(spans: spans, startTimeNanos: baseTime + UInt64(i) * 1_000_000_000, spacingNanos: 1000)
        let (outcome, batch) = try decode(bytes)
        #expect(outcome.rejectedSpans == 0, "\(outcome.rejectionMessage)")
        #expect(outcome.acceptedSpans == generator.lastRequest.spans)
        all.append(batch)
        infos.append(generator.lastRequest)
    }
    return (all, infos)
}

private struct TraceKey: Hashable {
    var high: UInt64
    var low: UInt64
}

@Suite("TrafficGenerator")
struct TrafficGeneratorTests {
    @Test func sameSeedGivesIdenticalBytes() {
        var a = TrafficGenerator(profile: LoadProfile(seed: 42))
        var b = TrafficGenerator(profile: LoadProfile(seed: 42))
        for i in 0..<3 {
            let t = baseTime + UInt64(i) * 1_000_000
            #expect(a.nextRequest(spans: 500, startTimeNanos: t, spacingNanos: 1000) == b.nextRequest(spans: 500, startTimeNanos: t, spacingNanos: 1000))
        }
        var c = TrafficGenerator(profile: LoadProfile(seed: 43))
        var d = TrafficGenerator(profile: LoadProfile(seed: 42))
        #expect(c.nextRequest(spans: 500, startTimeNanos: baseTime, spacingNanos: 1000) != d.nextRequest(spans: 500, startTimeNanos: baseTime, spacingNanos: 1000))
    }

    @Test func copiesOfAGeneratorAreIndependent() {
        var original = TrafficGenerator(profile: LoadProfile(seed: 8))
        var copy = original
        let a = original.nextRequest(spans: 300, startTimeNanos: baseTime, spacingNanos: 1000)
        let b = copy.nextRequest(spans: 300, startTimeNanos: baseTime, spacingNanos: 1000)
        #expect(a == b)
        #expect(original.nextRequest(spans: 300, startTimeNanos: baseTime, spacingNanos: 1000) == copy.nextRequest(spans: 300, startTimeNanos: baseTime, spacingNanos: 1000))
    }

    @Test func requestIndexDeterminesContent() {
        // Request n is the same whether produced in sequence or directly, and by any generator over the tables.
        let tables = TrafficTables(profile: LoadProfile(seed: 9))
        var sequential = TrafficGenerator(tables: tables)
        _ = sequential.nextRequest(spans: 100, startTimeNanos: baseTime, spacingNanos: 1000)
        let second = sequential.nextRequest(spans: 100, startTimeNanos: baseTime, spacingNanos: 1000)
        var direct = TrafficGenerator(tables: tables)
        var out: [UInt8] = []
        let info = direct.request(index: 1, spans: 100, startTimeNanos: baseTime, spacingNanos: 1000, into: &out)
        #expect(out == second)
        #expect(info == sequential.lastRequest)
    }

    @Test(arguments: [1, 7, 100, 1000, 5000])
    func requestedSpanCountIsMet(spans: Int) throws {
        var generator = TrafficGenerator(profile: LoadProfile(seed: 3))
        let bytes = generator.nextRequest(spans: spans, startTimeNanos: baseTime, spacingNanos: 1000)
        let info = generator.lastRequest
        #expect(info.spans >= spans)
        #expect(info.spans < spans + 8, "only whole traces beyond the request")
        #expect(info.bytes == bytes.count)
        let (outcome, batch) = try decode(bytes)
        #expect(outcome.acceptedSpans == info.spans)
        #expect(batch.spanCount == info.spans)
        #expect(Set((0..<batch.spanCount).map { TraceKey(high: batch.traceHigh[$0], low: batch.traceLow[$0]) }).count == info.traces)
    }

    @Test func tracesHaveThreeToEightSpansAndAreWellFormed() throws {
        let (batch, infos) = try sample(LoadProfile(seed: 5), requests: 20, spans: 1000)
        var byTrace: [TraceKey: [Int]] = [:]
        for row in 0..<batch.spanCount {
            byTrace[TraceKey(high: batch.traceHigh[row], low: batch.traceLow[row]), default: []].append(row)
        }
        #expect(byTrace.count == infos.reduce(0) { $0 + $1.traces })
        var sizes = Set<Int>()
        for (_, rows) in byTrace {
            sizes.insert(rows.count)
            #expect((3...8).contains(rows.count))
            // Exactly one root; every parent is in the trace and encloses its child.
            let ids = Dictionary(uniqueKeysWithValues: rows.map { (batch.spanID[$0], $0) })
            #expect(rows.filter { batch.parentSpanID[$0] == 0 }.count == 1)
            for row in rows where batch.parentSpanID[row] != 0 {
                guard let parent = ids[batch.parentSpanID[row]] else {
                    Issue.record("parent span missing")
                    continue
                }
                #expect(batch.startTime[parent] <= batch.startTime[row])
                #expect(batch.endTime[row] <= batch.endTime[parent])
            }
        }
        #expect(sizes.count >= 4, "trace sizes vary: \(sizes.sorted())")
        // Root spans come from app services, and the gateway service is present.
        let services = Set((0..<batch.resourceCount).map { batch.strings.string(batch.resourceServiceName[$0]) })
        #expect(services.contains("tfy-llm-gateway"))
        #expect(services.count >= 8)
        #expect(batch.resourceCount < batch.spanCount / 10, "spans are grouped per resource")
    }

    @Test func everyTraceAndSpanIDIsNonZeroAndUnique() throws {
        let (batch, _) = try sample(LoadProfile(seed: 11), requests: 10, spans: 2000)
        var spanIDs = Set<UInt64>()
        for row in 0..<batch.spanCount {
            #expect(batch.traceHigh[row] != 0 || batch.traceLow[row] != 0)
            #expect(batch.spanID[row] != 0)
            spanIDs.insert(batch.spanID[row])
        }
        #expect(spanIDs.count == batch.spanCount)
    }

    @Test func errorShareIsAboutTwoPercent() throws {
        // Failures only (no 429 attempts): about 2% of spans have status ERROR.
        var profile = LoadProfile(seed: 17)
        profile.rateLimitRate = 0
        let (batch, infos) = try sample(profile, requests: 100, spans: 1000)
        let errors = batch.statusCode.filter { $0 == 2 }.count
        let share = Double(errors) / Double(batch.spanCount)
        #expect(share > 0.016 && share < 0.024, "error share \(share)")
        #expect(errors == infos.reduce(0) { $0 + $1.errorSpans })
        // Every error carries error.type and a message.
        let errorType = batch.strings.lookup("error.type")
        for row in 0..<batch.spanCount where batch.statusCode[row] == 2 {
            #expect(batch.statusMessage[row] != 0)
            #expect(batch.attrRange(row).contains { batch.attrs.keys[$0] == errorType })
        }
    }

    @Test func rateLimitedCallsAreRetried() throws {
        let (batch, _) = try sample(LoadProfile(seed: 23), requests: 20, spans: 1000)
        guard let errorType = batch.strings.lookup("error.type"), let tooMany = batch.strings.lookup("429") else {
            Issue.record("no 429 spans")
            return
        }
        var rateLimited = 0
        for row in 0..<batch.spanCount where batch.attrRange(row).contains(where: { batch.attrs.keys[$0] == errorType && batch.attrs.values[$0] == UInt64(tooMany) }) {
            rateLimited += 1
            #expect(batch.statusCode[row] == 2)
            // The retry: a later sibling under the same gateway span.
            let siblings = (0..<batch.spanCount).filter {
                $0 != row && batch.parentSpanID[$0] == batch.parentSpanID[row] && batch.traceLow[$0] == batch.traceLow[row]
            }
            #expect(siblings.contains { batch.startTime[$0] >= batch.endTime[row] })
        }
        #expect(rateLimited > 50)
    }

    @Test func providerSpansFillTheTypedGenAIColumns() throws {
        let (batch, _) = try sample(LoadProfile(seed: 29), requests: 20, spans: 1000)
        var providerSpans = 0
        var systems = 0
        var deprecatedTokens = 0
        let systemKey = batch.strings.lookup("gen_ai.system")
        let promptKey = batch.strings.lookup("gen_ai.usage.prompt_tokens")
        var models = Set<UInt32>()
        var providers = Set<UInt32>()
        for row in 0..<batch.spanCount {
            let name = batch.strings.string(batch.name[row])
            guard name.hasPrefix("chat ") else { continue }
            #expect(batch.kind[row] == 3)
            #expect(batch.genAIProvider[row] != 0)
            #expect(batch.genAIRequestModel[row] != 0)
            #expect(name == "chat " + batch.strings.string(batch.genAIRequestModel[row]))
            models.insert(batch.genAIRequestModel[row])
            providers.insert(batch.genAIProvider[row])
            let range = batch.attrRange(row)
            if range.contains(where: { batch.attrs.keys[$0] == systemKey }) { systems += 1 }
            if range.contains(where: { batch.attrs.keys[$0] == promptKey }) { deprecatedTokens += 1 }
            guard batch.statusCode[row] != 2 else { continue }
            providerSpans += 1
            #expect(batch.genAIResponseModel[row] != 0)
            #expect(batch.inputTokens[row] > 0)
            #expect(batch.outputTokens[row] > 0)
            #expect(batch.cost[row] > 0 && batch.cost[row] < 50)
        }
        #expect(providerSpans > 3000)
        #expect(models.count >= 20)
        #expect(providers.count >= 8)
        let share = Double(systems) / Double(providerSpans)
        #expect(share > 0.15 && share < 0.25, "deprecated gen_ai.system share \(share)")
        #expect(deprecatedTokens > 0)
        // Gateway spans carry the dimensions.
        let dims = ["tenant_id", "user_id", "region", "prompt_version"].map { batch.strings.lookup($0) }
        for row in 0..<batch.spanCount where batch.strings.string(batch.name[row]) == "chatCompletions" {
            let keys = Set(batch.attrRange(row).map { batch.attrs.keys[$0] })
            #expect(dims.allSatisfy { $0.map(keys.contains) ?? false })
        }
    }

    @Test func zipfSamplerIsSkewed() {
        let zipf = ZipfSampler(count: 5000, exponent: 1.1)
        var rng = LoadRandom(seed: 1)
        var counts = [Int](repeating: 0, count: zipf.count)
        for _ in 0..<200_000 { counts[zipf.sample(&rng)] += 1 }
        #expect(counts[0] > 20_000, "rank 1 gets about 16%: \(counts[0])")
        #expect(counts[0] > 100 * max(1, counts[2500]))
        #expect(counts[0] > counts[1] && counts[1] > counts[9])
        #expect(zipf.probability(ofRank: 0) > zipf.probability(ofRank: 1))
        #expect(zipf.rank(forUniform: 0) == 0)
        #expect(zipf.rank(forUniform: 0.999_999_999) < zipf.count)
        // Exponent 0 is uniform.
        let uniform = ZipfSampler(count: 4, exponent: 0)
        #expect(abs(uniform.probability(ofRank: 3) - 0.25) < 1e-12)
    }

    @Test func tenantsAreSkewedAcrossGeneratedSpans() throws {
        let (batch, _) = try sample(LoadProfile(seed: 31), requests: 20, spans: 1000)
        guard let tenantKey = batch.strings.lookup("tenant_id") else {
            Issue.record("no tenant_id")
            return
        }
        var counts: [UInt64: Int] = [:]
        for i in 0..<batch.attrs.count where batch.attrs.keys[i] == tenantKey { counts[batch.attrs.values[i], default: 0] += 1 }
        let sorted = counts.values.sorted(by: >)
        #expect(sorted.count > 500, "many tenants: \(sorted.count)")
        #expect(sorted[0] > 20 * sorted[sorted.count / 2])
    }

    @Test func timestampsFollowStartAndSpacing() throws {
        var generator = TrafficGenerator(profile: LoadProfile(seed: 2))
        let bytes = generator.nextRequest(spans: 1000, startTimeNanos: baseTime, spacingNanos: 1_000_000)
        let (_, batch) = try decode(bytes)
        let roots = (0..<batch.spanCount).filter { batch.parentSpanID[$0] == 0 }.map { batch.startTime[$0] }
        #expect(roots.min() == baseTime)
        #expect(roots.max()! < baseTime + 1000 * 1_000_000)
        #expect(generator.lastRequest.minStartNanos == baseTime)
        #expect(generator.lastRequest.maxEndNanos == batch.endTime.max())
    }
}
