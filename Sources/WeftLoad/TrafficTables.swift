import WeftOTLP

/// Everything the generator precomputes from a ``LoadProfile``: samplers, the pre-encoded attribute
/// values (tenants, users, regions, prompt versions, models…), resources and scopes.
///
/// Immutable and shareable: several ``TrafficGenerator``s (one per connection or thread) can use one
/// table set, which costs a few MB for the default profile.
public final class TrafficTables: Sendable {
    public let profile: LoadProfile

    // Samplers.
    let tenantSampler: ZipfSampler
    let userSampler: ZipfSampler
    let promptSampler: ZipfSampler
    let modelSampler: ZipfSampler

    /// All pre-encoded fragments.
    let pool: [UInt8]

    // Dimensions, by popularity rank.
    let tenantAttr: [Chunk]
    let tenantHomeRegion: [UInt16]
    let tenantModel: [UInt8]
    let tenantApp: [UInt8]
    let userAttr: [Chunk]
    let regionAttr: [Chunk]
    let promptAttr: [Chunk]

    // Models.
    let models: [ModelSpec]
    let modelSpanName: [Chunk]
    let modelRequestAttr: [Chunk]
    let modelResponseAttr: [Chunk]
    let modelProviderAttr: [Chunk]
    let modelSystemAttr: [Chunk]
    let modelAddressAttr: [Chunk]

    // Apps.
    let apps: [AppSpec]
    let appRootName: [Chunk]
    let appRootAttrs: [Chunk]
    let appClientName: Chunk
    let appClientAttrs: Chunk
    let appPostgresName: [Chunk]
    let appPostgresAttrs: [Chunk]
    let redisName: Chunk
    let redisAttrs: Chunk

    // Gateway and provider constants.
    let gatewaySpanName: Chunk
    let gatewayAttrs: Chunk
    let providerOpAttr: Chunk
    let providerPortAttr: Chunk
    let streamAttr: Chunk

    // Keys of attributes written per span.
    let inputTokensKey: Chunk
    let outputTokensKey: Chunk
    let promptTokensKey: Chunk
    let completionTokensKey: Chunk
    let costKey: Chunk

    // HTTP status attribute by code.
    let httpStatusCodes: [Int]
    let httpStatusAttr: [Chunk]

    // Failures: provider kinds, then database, then rate limit.
    let failures: [FailureSpec]
    let failureStatus: [Chunk]
    let failureErrorType: [Chunk]
    let failureEventTail: [Chunk]
    let failureHTTPStatus: [Chunk]
    var databaseFailure: Int { self.failures.count - 2 }
    var rateLimitFailure: Int { self.failures.count - 1 }

    // Resources and scopes.
    static let appInstances = 5
    static let gatewayInstances = 6
    static let scopeSlots = 4
    let resourceField: [Chunk]
    /// `scopeField[resource * scopeSlots + slot]`.
    let scopeField: [Chunk]
    var resourceCount: Int { self.resourceField.count }
    var gatewayResourceBase: Int { self.apps.count * Self.appInstances }

    // Log-normal multipliers by shape.
    let ln25 = LogNormalTable(sigma: 0.25)
    let ln45 = LogNormalTable(sigma: 0.45)
    let ln50 = LogNormalTable(sigma: 0.5)
    let ln60 = LogNormalTable(sigma: 0.6)
    let ln70 = LogNormalTable(sigma: 0.7)
    let ln80 = LogNormalTable(sigma: 0.8)

    /// Probability that a trace fails, calibrated so that failing spans make up `profile.errorRate`.
    let traceFailureProbability: Double
    /// Mean spans per trace of this profile (estimated at init).
    public let meanSpansPerTrace: Double

    /// Precomputes everything for `profile`. Takes a fraction of a second for the default profile.
    public init(profile: LoadProfile) {
        let p = profile.normalized
        self.profile = p
        var rng = LoadRandom(seed: LoadRandom.mix(p.seed, 0x7AB1E5))
        var b = PoolBuilder()

        let modelSampler = ZipfSampler(count: p.models, exponent: p.modelSkew)
        self.tenantSampler = ZipfSampler(count: p.tenants, exponent: p.tenantSkew)
        self.userSampler = ZipfSampler(count: p.users, exponent: p.userSkew)
        self.promptSampler = ZipfSampler(count: p.promptVersions, exponent: 1.0)
        self.modelSampler = modelSampler

        // Names are assigned to ranks through a seeded shuffle, so the busiest tenant is not tenant 1.
        let tenantNames = Self.shuffled(Self.numbered("tenant-", p.tenants), &rng)
        let userNames = Self.shuffled(Self.numbered("user-", p.users), &rng)
        let promptNames = Self.shuffled(PromptCatalog.names(p.promptVersions), &rng)
        let regionNames = RegionCatalog.names(p.regions)
        self.models = Array(ModelCatalog.all.prefix(p.models))
        self.apps = AppCatalog.all

        self.tenantAttr = tenantNames.map { b.stringAttr("tenant_id", $0) }
        self.userAttr = userNames.map { b.stringAttr("user_id", $0) }
        self.promptAttr = promptNames.map { b.stringAttr("prompt_version", $0) }
        self.regionAttr = regionNames.map { b.stringAttr("region", $0) }
        // Region weights: a few big regions, a long tail.
        let regionSampler = ZipfSampler(count: p.regions, exponent: 0.8)
        self.tenantHomeRegion = (0..<p.tenants).map { _ in UInt16(regionSampler.sample(&rng)) }
        self.tenantModel = (0..<p.tenants).map { _ in UInt8(modelSampler.sample(&rng)) }
        self.tenantApp = (0..<p.tenants).map { _ in UInt8(rng.below(AppCatalog.all.count)) }

        self.modelSpanName = self.models.map { m in b.add { $0.stringField(5, "chat \(m.name)") } }
        self.modelRequestAttr = self.models.map { b.stringAttr("gen_ai.request.model", $0.name) }
        self.modelResponseAttr = self.models.map { b.stringAttr("gen_ai.response.model", $0.responseName) }
        self.modelProviderAttr = self.models.map { b.stringAttr("gen_ai.provider.name", $0.provider) }
        self.modelSystemAttr = self.models.map { b.stringAttr("gen_ai.system", $0.legacySystem) }
        self.modelAddressAttr = self.models.map { b.stringAttr("server.address", $0.serverAddress) }

        let gatewayHost = "tfy-llm-gateway.llm-gateway.svc.cluster.local"
        self.appRootName = self.apps.map { a in b.add { $0.stringField(5, "\(a.method) \(a.route)") } }
        self.appRootAttrs = self.apps.map { a in
            b.stringAttrs([("http.request.method", a.method), ("http.route", a.route), ("url.scheme", "https")])
        }
        self.appClientName = b.add { $0.stringField(5, "POST") }
        self.appClientAttrs = b.stringAttrs([
            ("http.request.method", "POST"), ("server.address", gatewayHost),
            ("url.full", "http://\(gatewayHost)/api/llm/v1/chat/completions"),
        ])
        self.appPostgresName = self.apps.map { a in b.add { $0.stringField(5, "INSERT \(a.database).\(a.table)") } }
        self.appPostgresAttrs = self.apps.map { a in
            b.stringAttrs([
                ("db.system", "postgresql"), ("db.namespace", a.database), ("db.operation.name", "INSERT"),
                ("db.collection.name", a.table), ("server.address", "postgres-primary.db.svc.cluster.local"),
            ])
        }
        self.redisName = b.add { $0.stringField(5, "GET") }
        self.redisAttrs = b.stringAttrs([
            ("db.system", "redis"), ("db.operation.name", "GET"), ("db.namespace", "0"),
            ("server.address", "redis-master.cache.svc.cluster.local"),
        ])

        self.gatewaySpanName = b.add { $0.stringField(5, "chatCompletions") }
        self.gatewayAttrs = b.stringAttrs([("gen_ai.operation.name", "chat"), ("tfy.span_type", "ChatCompletion")])
        self.providerOpAttr = b.stringAttr("gen_ai.operation.name", "chat")
        self.providerPortAttr = b.intAttr("server.port", 443)
        self.streamAttr = b.boolAttr("gen_ai.request.stream", true)

        self.inputTokensKey = b.keyField("gen_ai.usage.input_tokens")
        self.outputTokensKey = b.keyField("gen_ai.usage.output_tokens")
        self.promptTokensKey = b.keyField("gen_ai.usage.prompt_tokens")
        self.completionTokensKey = b.keyField("gen_ai.usage.completion_tokens")
        self.costKey = b.keyField("gen_ai.usage.cost")

        self.httpStatusCodes = [200, 400, 429, 500, 502, 503, 504]
        self.httpStatusAttr = self.httpStatusCodes.map { b.intAttr("http.response.status_code", Int64($0)) }

        self.failures = FailureCatalog.provider + [FailureCatalog.database, FailureCatalog.rateLimited]
        self.failureStatus = self.failures.map { f in
            b.add { w in
                w.message(15) { s in
                    s.stringField(2, f.message)
                    s.varintField(3, 2)
                }
            }
        }
        self.failureErrorType = self.failures.map { b.stringAttr("error.type", $0.errorType) }
        // Event body after its time: name, then attributes (field 3).
        self.failureEventTail = self.failures.map { f in
            b.add { w in
                w.stringField(2, "exception")
                w.stringKV(3, "exception.type", f.exceptionType)
                w.stringKV(3, "exception.message", f.message)
            }
        }
        let codes = self.httpStatusCodes
        let statusAttrs = self.httpStatusAttr
        self.failureHTTPStatus = self.failures.map { f in statusAttrs[codes.firstIndex(of: f.httpStatus) ?? 0] }

        // Resources: each app has 4 production instances and 1 staging one; the gateway has 6 instances.
        var resources: [Chunk] = []
        var scopes: [Chunk] = []
        let appScopes = [
            "opentelemetry.instrumentation.fastapi", "opentelemetry.instrumentation.httpx",
            "opentelemetry.instrumentation.redis", "opentelemetry.instrumentation.asyncpg",
        ]
        for app in self.apps {
            for instance in 0..<Self.appInstances {
                let staging = instance == Self.appInstances - 1
                let pod = "\(app.name)-\(Self.podHash(&rng, 10))-\(Self.podHash(&rng, 5))"
                let region = regionNames[(instance + app.name.utf8.count) % regionNames.count]
                resources.append(b.add { w in
                    w.message(1) { r in
                        r.stringKV(1, "service.name", app.name)
                        r.stringKV(1, "service.namespace", "apps")
                        r.stringKV(1, "service.version", app.version)
                        r.stringKV(1, "service.instance.id", pod)
                        r.stringKV(1, "deployment.environment.name", staging ? "staging" : "production")
                        r.stringKV(1, "k8s.namespace.name", staging ? "\(app.name)-staging" : app.name)
                        r.stringKV(1, "k8s.pod.name", pod)
                        r.stringKV(1, "cloud.provider", "aws")
                        r.stringKV(1, "cloud.region", region)
                        r.stringKV(1, "telemetry.sdk.name", "opentelemetry")
                        r.stringKV(1, "telemetry.sdk.language", "python")
                        r.stringKV(1, "telemetry.sdk.version", "1.27.0")
                    }
                })
                for name in appScopes {
                    scopes.append(b.add { w in
                        w.message(1) { s in
                            s.stringField(1, name)
                            s.stringField(2, "0.48b0")
                        }
                    })
                }
            }
        }
        for instance in 0..<Self.gatewayInstances {
            let pod = "tfy-llm-gateway-\(Self.podHash(&rng, 10))-\(Self.podHash(&rng, 5))"
            let region = regionNames[instance % regionNames.count]
            resources.append(b.add { w in
                w.message(1) { r in
                    r.stringKV(1, "service.name", "tfy-llm-gateway")
                    r.stringKV(1, "service.namespace", "llm-gateway")
                    r.stringKV(1, "service.version", "0.57.3")
                    r.stringKV(1, "service.instance.id", pod)
                    r.stringKV(1, "deployment.environment.name", "production")
                    r.stringKV(1, "k8s.namespace.name", "llm-gateway")
                    r.stringKV(1, "k8s.pod.name", pod)
                    r.stringKV(1, "cloud.provider", "aws")
                    r.stringKV(1, "cloud.region", region)
                    r.stringKV(1, "telemetry.sdk.name", "opentelemetry")
                    r.stringKV(1, "telemetry.sdk.language", "nodejs")
                    r.stringKV(1, "telemetry.sdk.version", "1.26.0")
                }
            })
            for name in ["tfy-llm-gateway", "tfy-llm-gateway/providers", "", ""] {
                scopes.append(b.add { w in
                    w.message(1) { s in
                        s.stringField(1, name)
                        s.stringField(2, "0.57.3")
                    }
                })
            }
        }
        self.resourceField = resources
        self.scopeField = scopes
        self.pool = b.bytes

        // Calibrate the failure probability on a sample of plans.
        var sampleRNG = LoadRandom(seed: LoadRandom.mix(p.seed, 0xCA11B))
        var spans = 0
        var errorSpansIfFailed = 0.0
        let samples = 20_000
        for _ in 0..<samples {
            let plan = TracePlan.sample(profile: p, rng: &sampleRNG)
            spans += plan.spanCount
            errorSpansIfFailed += plan.errorSpansIfFailed(providerShare: TracePlan.providerFailureShare)
        }
        self.meanSpansPerTrace = Double(spans) / Double(samples)
        self.traceFailureProbability = min(1, p.errorRate * Double(spans) / max(1, errorSpansIfFailed))
    }

    /// Index of `code` in ``httpStatusAttr``.
    func statusIndex(_ code: Int) -> Int { self.httpStatusCodes.firstIndex(of: code) ?? 0 }

    static func numbered(_ prefix: String, _ count: Int) -> [String] {
        let width = max(4, String(count).count)
        return (0..<count).map { i in
            let digits = String(i + 1)
            return prefix + String(repeating: "0", count: width - digits.count) + digits
        }
    }

    static func shuffled(_ names: [String], _ rng: inout LoadRandom) -> [String] {
        var names = names
        if names.count > 1 {
            for i in stride(from: names.count - 1, to: 0, by: -1) {
                names.swapAt(i, rng.below(i + 1))
            }
        }
        return names
    }

    static func podHash(_ rng: inout LoadRandom, _ length: Int) -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789".utf8)
        return String(decoding: (0..<length).map { _ in alphabet[rng.below(alphabet.count)] }, as: UTF8.self)
    }
}
