import WeftModel

/// What one generated request contains.
public struct GeneratedRequestInfo: Sendable, Equatable {
    /// Spans in the request (whole traces, so at least the number asked for).
    public var spans = 0
    /// Traces in the request.
    public var traces = 0
    /// Spans with status ERROR (failures and 429 attempts).
    public var errorSpans = 0
    /// Encoded size.
    public var bytes = 0
    /// ID of the first trace (handy for `weftctl trace`).
    public var firstTraceID = TraceID(high: 0, low: 0)
    /// Start of the first root span and end of the latest span, in ns since the epoch.
    public var minStartNanos: UInt64 = 0
    public var maxEndNanos: UInt64 = 0

    public init() {}
}

/// Generates realistic LLM-gateway traffic as OTLP/protobuf `ExportTraceServiceRequest` bytes.
///
/// Each trace is an app request (SERVER span) that calls `tfy-llm-gateway` (`chatCompletions`), which
/// calls a provider (`chat <model>`, CLIENT, with GenAI attributes, tokens and cost), sometimes with a
/// 429 attempt first, sometimes twice, with optional Redis and PostgreSQL spans: 3–8 spans. Spans are
/// grouped into `ResourceSpans` per service instance and `ScopeSpans` per instrumentation scope, the
/// way an SDK or collector batches them, and appear in end-time order within a scope (children first).
///
/// Fully deterministic: request `n` of a profile depends only on the profile (with its seed), `n`, the
/// span count and the times passed in. Nothing reads a clock or system randomness.
///
/// ```swift
/// var generator = TrafficGenerator(profile: LoadProfile(seed: 7))
/// let body = generator.nextRequest(spans: 1000, startTimeNanos: base, spacingNanos: 1000)
/// print(generator.lastRequest.spans)
/// ```
public struct TrafficGenerator: Sendable {
    /// The precomputed tables (shareable with other generators through ``init(tables:)``).
    public let tables: TrafficTables
    public var profile: LoadProfile { self.tables.profile }

    /// Index of the request ``nextRequest(spans:startTimeNanos:spacingNanos:)`` produces next.
    public var nextRequestIndex: UInt64 = 0
    /// Description of the last request produced.
    public private(set) var lastRequest = GeneratedRequestInfo()
    /// Totals over all requests produced by this generator.
    public private(set) var totalSpans = 0
    public private(set) var totalTraces = 0
    public private(set) var totalRequests = 0

    /// Spans in the last request.
    public var lastSpanCount: Int { self.lastRequest.spans }

    var rng = LoadRandom(seed: 0)
    /// Encoded spans per (resource, scope slot); replaced when shared with a copy of this generator.
    var storage: GeneratorStorage
    var touchedResources: [Int] = []
    var resourceTouched: [Bool]
    /// Where the span being written starts in its bucket (after its tag and 2-byte length slot).
    var spanBucket = 0
    var spanStart = 0

    /// Creates a generator and its tables for `profile`.
    public init(profile: LoadProfile = LoadProfile()) {
        self.init(tables: TrafficTables(profile: profile))
    }

    /// Creates a generator over existing tables (cheap; use one per thread or connection).
    public init(tables: TrafficTables) {
        self.tables = tables
        self.storage = GeneratorStorage(bucketCount: tables.resourceCount * TrafficTables.scopeSlots)
        self.resourceTouched = Array(repeating: false, count: tables.resourceCount)
    }

    /// Produces the next request: whole traces until at least `spans` spans.
    ///
    /// - Parameters:
    ///   - spans: minimum number of spans.
    ///   - startTimeNanos: start of the first trace (ns since the epoch).
    ///   - spacingNanos: nominal time per span; a trace starts `spacingNanos` × (spans before it in
    ///     this request) after `startTimeNanos`, so `1e9 / spacingNanos` is the span rate.
    /// - Returns: the encoded `ExportTraceServiceRequest`; see ``lastRequest`` for its counts.
    public mutating func nextRequest(spans: Int, startTimeNanos: UInt64, spacingNanos: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        self.request(index: self.nextRequestIndex, spans: spans, startTimeNanos: startTimeNanos, spacingNanos: spacingNanos, into: &out)
        self.nextRequestIndex &+= 1
        return out
    }

    /// Produces request number `index` into `output` (replacing its contents, reusing its capacity).
    ///
    /// The content depends only on the profile, `index`, `spans` and the times, so independent
    /// generators over the same tables can produce disjoint parts of one deterministic stream.
    @discardableResult
    public mutating func request(
        index: UInt64, spans: Int, startTimeNanos: UInt64, spacingNanos: UInt64, into output: inout [UInt8]
    ) -> GeneratedRequestInfo {
        self.rng = LoadRandom(seed: LoadRandom.mix(self.tables.profile.seed, index &+ 1))
        var info = GeneratedRequestInfo()
        info.minStartNanos = startTimeNanos
        if !isKnownUniquelyReferenced(&self.storage) {
            self.storage = GeneratorStorage(bucketCount: self.storage.bucketCount)
        }
        let tables = self.tables
        tables.pool.withUnsafeBufferPointer { pool in
            let pool = pool.baseAddress!
            while info.spans < max(1, spans) {
                let start = startTimeNanos &+ UInt64(info.spans) &* spacingNanos
                self.generateTrace(pool, tables, rootStart: start, info: &info)
                info.traces += 1
            }
            self.assemble(tables, into: &output)
        }
        info.bytes = output.count
        self.lastRequest = info
        self.totalSpans += info.spans
        self.totalTraces += info.traces
        self.totalRequests += 1
        return info
    }

    // MARK: - One trace

    /// Per-trace choices shared by its spans.
    struct TraceContext {
        var traceHigh: UInt64
        var traceLow: UInt64
        var appResource: Int
        var gatewayResource: Int
        var app: Int
        var tenant: Int
        var user: Int
        var region: Int
        var prompt: Int
    }

    mutating func generateTrace(_ pool: UnsafePointer<UInt8>, _ t: TrafficTables, rootStart: UInt64, info: inout GeneratedRequestInfo) {
        let p = t.profile
        let tenant = t.tenantSampler.sample(&self.rng)
        let app = self.rng.chance(0.7) ? Int(t.tenantApp[tenant]) : self.rng.below(t.apps.count)
        let region = self.rng.chance(0.9) ? Int(t.tenantHomeRegion[tenant]) : self.rng.below(t.regionAttr.count)
        let model1 = self.rng.chance(0.5) ? Int(t.tenantModel[tenant]) : t.modelSampler.sample(&self.rng)
        let appInstance = self.rng.chance(0.05) ? TrafficTables.appInstances - 1 : self.rng.below(TrafficTables.appInstances - 1)
        let ctx = TraceContext(
            traceHigh: self.rng.next(),
            traceLow: self.rng.nonZero(),
            appResource: app * TrafficTables.appInstances + appInstance,
            gatewayResource: t.gatewayResourceBase + self.rng.below(TrafficTables.gatewayInstances),
            app: app,
            tenant: tenant,
            user: t.userSampler.sample(&self.rng),
            region: region,
            prompt: t.promptSampler.sample(&self.rng)
        )
        if info.traces == 0 { info.firstTraceID = TraceID(high: ctx.traceHigh, low: ctx.traceLow) }
        let plan = TracePlan.sample(profile: p, rng: &self.rng)
        // Failure: none, a provider failure (kind index) on the last call, or the database write.
        var providerFailure = -1
        var databaseFailure = false
        if self.rng.chance(t.traceFailureProbability) {
            if plan.postgres && !self.rng.chance(TracePlan.providerFailureShare) {
                databaseFailure = true
            } else {
                providerFailure = self.rng.below(FailureCatalog.provider.count)
            }
        }
        let failed = providerFailure >= 0 || databaseFailure
        let appSpec = t.apps[app]

        let rootID = self.rng.nonZero()
        var now = rootStart &+ Self.nanos(self.ln(t.ln60, 2))
        if plan.redis {
            let start = now
            now &+= Self.nanos(self.ln(t.ln50, 0.8))
            var w = self.beginSpan(pool, ctx, resource: ctx.appResource, slot: 2, id: self.rng.nonZero(), parent: rootID, name: t.redisName, kind: 3, start: start, end: now)
            w.chunk(t.redisAttrs)
            self.endSpan(w, remoteParent: false)
            now &+= Self.nanos(self.ln(t.ln50, 0.3))
        }
        var previousInput = 0
        var previousOutput = 0
        for call in 0..<plan.calls {
            let model = call == 0 || self.rng.chance(0.7) ? model1 : t.modelSampler.sample(&self.rng)
            let lastCall = call == plan.calls - 1
            let failing = lastCall && providerFailure >= 0
            let clientID = plan.clientSpans ? self.rng.nonZero() : 0
            let clientStart = now
            if plan.clientSpans { now &+= Self.nanos(self.ln(t.ln50, 0.4)) }
            let gatewayID = self.rng.nonZero()
            let gatewayStart = now
            now &+= Self.nanos(self.ln(t.ln50, 4))
            if plan.rateLimited & (1 << UInt8(call)) != 0 {
                let start = now
                now &+= Self.nanos(self.ln(t.ln60, 80))
                self.providerSpan(pool, t, ctx, parent: gatewayID, model: model, start: start, end: now, tokens: nil, failure: t.rateLimitFailure)
                info.errorSpans += 1
                info.spans += 1
                now &+= Self.nanos(self.ln(t.ln50, 600))
            }
            // Tokens: follow-up calls carry the conversation so far.
            var input = Int(self.ln(t.ln70, appSpec.inputTokens))
            if call > 0 { input += previousInput + previousOutput }
            input = min(max(input, 8), 200_000)
            let output = min(max(Int(self.ln(t.ln80, appSpec.outputTokens)), 1), 4096)
            previousInput = input
            previousOutput = output
            let spec = t.models[model]
            let millis: Double
            if failing {
                millis = FailureCatalog.provider[providerFailure].errorType == "timeout"
                    ? 60_000 + self.ln(t.ln50, 5)
                    : self.ln(t.ln50, spec.firstTokenMillis * 0.5)
            } else {
                millis = spec.firstTokenMillis * self.ln(t.ln45, 1)
                    + Double(output) / spec.tokensPerSecond * 1000 * self.ln(t.ln25, 1)
            }
            let providerStart = now
            // The gateway gives up on a provider after 120 s.
            now &+= Self.nanos(min(millis, 120_000))
            self.providerSpan(
                pool, t, ctx, parent: gatewayID, model: model, start: providerStart, end: now,
                tokens: failing ? nil : (input, output), failure: failing ? providerFailure : -1
            )
            now &+= Self.nanos(self.ln(t.ln50, 1.5))
            // Gateway span.
            let status = failing ? t.failures[providerFailure].httpStatus : 200
            var w = self.beginSpan(pool, ctx, resource: ctx.gatewayResource, slot: 0, id: gatewayID, parent: plan.clientSpans ? clientID : rootID, name: t.gatewaySpanName, kind: 2, start: gatewayStart, end: now)
            w.chunk(t.gatewayAttrs)
            w.chunk(t.modelRequestAttr[model])
            self.dimensions(&w, t, ctx)
            w.chunk(t.httpStatusAttr[t.statusIndex(status)])
            if failing { self.failure(&w, t, providerFailure, at: now) }
            self.endSpan(w, remoteParent: true)
            // App client span.
            if plan.clientSpans {
                now &+= Self.nanos(self.ln(t.ln50, 0.4))
                var w = self.beginSpan(pool, ctx, resource: ctx.appResource, slot: 1, id: clientID, parent: rootID, name: t.appClientName, kind: 3, start: clientStart, end: now)
                w.chunk(t.appClientAttrs)
                w.chunk(t.httpStatusAttr[t.statusIndex(status)])
                if failing { self.failure(&w, t, providerFailure, at: now, event: false) }
                self.endSpan(w, remoteParent: false)
            }
            info.spans += plan.clientSpans ? 3 : 2
            if failing { info.errorSpans += plan.clientSpans ? 3 : 2 }
            if !lastCall { now &+= Self.nanos(self.ln(t.ln70, 3)) }
        }
        if plan.postgres {
            let start = now &+ Self.nanos(self.ln(t.ln50, 0.5))
            now = start &+ Self.nanos(databaseFailure ? 30_000 : self.ln(t.ln60, 3))
            var w = self.beginSpan(pool, ctx, resource: ctx.appResource, slot: 3, id: self.rng.nonZero(), parent: rootID, name: t.appPostgresName[app], kind: 3, start: start, end: now)
            w.chunk(t.appPostgresAttrs[app])
            if databaseFailure {
                self.failure(&w, t, t.databaseFailure, at: now)
                info.errorSpans += 1
            }
            self.endSpan(w, remoteParent: false)
        }
        now &+= Self.nanos(self.ln(t.ln60, 1))
        // Root span.
        let rootStatus = databaseFailure ? 500 : (providerFailure >= 0 ? (t.failures[providerFailure].httpStatus == 400 ? 400 : 502) : 200)
        var w = self.beginSpan(pool, ctx, resource: ctx.appResource, slot: 0, id: rootID, parent: 0, name: t.appRootName[app], kind: 2, start: rootStart, end: now)
        w.chunk(t.appRootAttrs[app])
        w.chunk(t.httpStatusAttr[t.statusIndex(rootStatus)])
        if failed {
            self.failure(&w, t, databaseFailure ? t.databaseFailure : providerFailure, at: now, event: false)
            info.errorSpans += 1
        }
        self.endSpan(w, remoteParent: false)
        info.spans += 1 + (plan.redis ? 1 : 0) + (plan.postgres ? 1 : 0)
        if now > info.maxEndNanos { info.maxEndNanos = now }
    }

    @inline(__always)
    static func nanos(_ millis: Double) -> UInt64 {
        UInt64(max(0.001, millis) * 1_000_000)
    }

    /// A provider call span (`chat <model>`, CLIENT).
    mutating func providerSpan(
        _ pool: UnsafePointer<UInt8>, _ t: TrafficTables, _ ctx: TraceContext, parent: UInt64, model: Int,
        start: UInt64, end: UInt64, tokens: (Int, Int)?, failure: Int
    ) {
        let p = t.profile
        var w = self.beginSpan(pool, ctx, resource: ctx.gatewayResource, slot: 1, id: self.rng.nonZero(), parent: parent, name: t.modelSpanName[model], kind: 3, start: start, end: end)
        w.chunk(t.providerOpAttr)
        w.chunk(self.rng.chance(p.deprecatedSystemRate) ? t.modelSystemAttr[model] : t.modelProviderAttr[model])
        w.chunk(t.modelRequestAttr[model])
        w.chunk(t.modelAddressAttr[model])
        w.chunk(t.providerPortAttr)
        if self.rng.chance(0.4) { w.chunk(t.streamAttr) }
        self.dimensions(&w, t, ctx)
        if let (input, output) = tokens {
            w.chunk(t.modelResponseAttr[model])
            if self.rng.chance(p.deprecatedTokenRate) {
                w.intAttr(key: t.promptTokensKey, input)
                w.intAttr(key: t.completionTokensKey, output)
            } else {
                w.intAttr(key: t.inputTokensKey, input)
                w.intAttr(key: t.outputTokensKey, output)
            }
            w.doubleAttr(key: t.costKey, t.models[model].cost(input: input, output: output))
        }
        if failure >= 0 {
            w.chunk(t.failureHTTPStatus[failure])
            self.failure(&w, t, failure, at: end)
        }
        self.endSpan(w, remoteParent: false)
    }

    /// The dimensions every gateway and provider span carries.
    @inline(__always)
    func dimensions(_ w: inout FragmentWriter, _ t: TrafficTables, _ ctx: TraceContext) {
        w.chunk(t.tenantAttr[ctx.tenant])
        w.chunk(t.userAttr[ctx.user])
        w.chunk(t.regionAttr[ctx.region])
        w.chunk(t.promptAttr[ctx.prompt])
    }

    /// `error.type`, an `exception` event (optional) and an ERROR status. Must come after the attributes.
    @inline(__always)
    func failure(_ w: inout FragmentWriter, _ t: TrafficTables, _ kind: Int, at time: UInt64, event: Bool = true) {
        w.chunk(t.failureErrorType[kind])
        if event {
            let tail = t.failureEventTail[kind]
            w.byte(0x5A)
            w.varint(UInt64(9 + Int(tail.count)))
            w.fixed64(tag: 0x09, time)
            w.chunk(tail)
        }
        w.chunk(t.failureStatus[kind])
    }

    /// Reserves room in the span's bucket, writes its tag, a 2-byte length slot and the common fields.
    @inline(__always)
    mutating func beginSpan(
        _ pool: UnsafePointer<UInt8>, _ ctx: TraceContext, resource: Int, slot: Int, id: UInt64, parent: UInt64,
        name: Chunk, kind: UInt8, start: UInt64, end: UInt64
    ) -> FragmentWriter {
        if !self.resourceTouched[resource] {
            self.resourceTouched[resource] = true
            self.touchedResources.append(resource)
        }
        let index = resource * TrafficTables.scopeSlots + slot
        let bucket = self.storage.buckets + index
        bucket.pointee.reserve(GeneratorStorage.maxSpanBytes)
        self.spanBucket = index
        self.spanStart = bucket.pointee.count + 3
        var w = FragmentWriter(cursor: bucket.pointee.base + self.spanStart, pool: pool)
        w.traceID(high: ctx.traceHigh, low: ctx.traceLow)
        w.id64(tag: 0x12, id)
        if parent != 0 { w.id64(tag: 0x22, parent) }
        w.chunk(name)
        w.byte(0x30)
        w.byte(kind)
        w.fixed64(tag: 0x39, start)
        w.fixed64(tag: 0x41, end)
        return w
    }

    /// Adds the W3C flags (sampled; parent remoteness known) and patches the span's length prefix.
    @inline(__always)
    mutating func endSpan(_ w: FragmentWriter, remoteParent: Bool) {
        var w = w
        w.byte(0x85)
        w.byte(0x01)
        w.byte(0x01)
        w.byte(remoteParent ? 0x03 : 0x01)
        w.byte(0)
        w.byte(0)
        let bucket = self.storage.buckets + self.spanBucket
        let base = bucket.pointee.base
        let length = w.cursor - (base + self.spanStart)
        precondition(length + 3 <= GeneratorStorage.maxSpanBytes, "span larger than the reserved room")
        let tagAt = self.spanStart - 3
        base[tagAt] = 0x12
        if length >= 0x80 {
            base[tagAt + 1] = UInt8(truncatingIfNeeded: length) | 0x80
            base[tagAt + 2] = UInt8(truncatingIfNeeded: length >> 7)
            bucket.pointee.count = self.spanStart + length
        } else {
            // Short span: one length byte, so the body moves back by one.
            base[tagAt + 1] = UInt8(length)
            UnsafeMutableRawPointer(base + tagAt + 2).copyMemory(from: base + self.spanStart, byteCount: length)
            bucket.pointee.count = self.spanStart - 1 + length
        }
    }

    @inline(__always)
    mutating func ln(_ table: LogNormalTable, _ median: Double) -> Double {
        median * table.sample(&self.rng)
    }

    // MARK: - Assembly

    /// Writes one `ResourceSpans` per touched resource, one `ScopeSpans` per non-empty scope slot.
    mutating func assemble(_ t: TrafficTables, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        let slots = TrafficTables.scopeSlots
        let buckets = self.storage.buckets
        var total = 0
        for r in self.touchedResources {
            for slot in 0..<slots { total += buckets[r * slots + slot].count + 16 }
            total += Int(t.resourceField[r].count) + 8
        }
        out.reserveCapacity(total + 64 * slots)
        t.pool.withUnsafeBufferPointer { pool in
            func append(_ c: Chunk) {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: pool[Int(c.offset)..<(Int(c.offset) + Int(c.count))]))
            }
            func varint(_ v: Int) {
                var v = UInt64(v)
                while v >= 0x80 {
                    out.append(UInt8(truncatingIfNeeded: v) | 0x80)
                    v >>= 7
                }
                out.append(UInt8(v))
            }
            for r in self.touchedResources {
                var body = Int(t.resourceField[r].count)
                for slot in 0..<slots {
                    let n = buckets[r * slots + slot].count
                    if n == 0 { continue }
                    let scopeLen = Int(t.scopeField[r * slots + slot].count) + n
                    body += 1 + varintSize(UInt64(scopeLen)) + scopeLen
                }
                out.append(0x0A)
                varint(body)
                append(t.resourceField[r])
                for slot in 0..<slots {
                    let bucket = buckets + (r * slots + slot)
                    let n = bucket.pointee.count
                    if n == 0 { continue }
                    let scope = t.scopeField[r * slots + slot]
                    out.append(0x12)
                    varint(Int(scope.count) + n)
                    append(scope)
                    out.append(contentsOf: UnsafeBufferPointer(start: bucket.pointee.base, count: n))
                    bucket.pointee.count = 0
                }
                self.resourceTouched[r] = false
            }
        }
        self.touchedResources.removeAll(keepingCapacity: true)
    }
}
