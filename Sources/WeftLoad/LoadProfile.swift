/// The shape of the generated LLM-gateway traffic. Every field has a default matching the reference
/// data set of `DESIGN.md` §9 (5,000 tenants with Zipf skew 1.1, 110 k users, 12 regions, 500 prompt
/// versions, 30 models).
public struct LoadProfile: Sendable, Equatable {
    /// Seed of every random choice; the same profile always produces the same bytes.
    public var seed: UInt64
    /// Number of distinct `tenant_id` values.
    public var tenants: Int
    /// Zipf exponent of tenant popularity.
    public var tenantSkew: Double
    /// Number of distinct `user_id` values.
    public var users: Int
    /// Zipf exponent of user activity.
    public var userSkew: Double
    /// Number of distinct `region` values (names beyond the 12 built-in ones are synthesised).
    public var regions: Int
    /// Number of distinct `prompt_version` values (e.g. `support/v37`).
    public var promptVersions: Int
    /// Number of models used, taken from the built-in catalog in popularity order (at most ``ModelCatalog/all``'s count).
    public var models: Int
    /// Zipf exponent of model popularity.
    public var modelSkew: Double
    /// Target share of spans with status ERROR caused by failures (429 rate-limit attempts come on top).
    public var errorRate: Double
    /// Share of LLM calls that first get an HTTP 429 from the provider and are retried.
    public var rateLimitRate: Double
    /// Share of provider spans that use the deprecated `gen_ai.system` instead of `gen_ai.provider.name`.
    public var deprecatedSystemRate: Double
    /// Share of provider spans that use `gen_ai.usage.prompt_tokens`/`completion_tokens`.
    public var deprecatedTokenRate: Double
    /// Share of traces whose app makes a second LLM call (agent-style follow-up).
    public var secondCallRate: Double
    /// Share of traces with a Redis cache lookup, and with a PostgreSQL write.
    public var redisRate: Double
    public var postgresRate: Double
    /// Share of LLM calls that the app makes through an instrumented HTTP client span.
    public var clientSpanRate: Double

    public init(
        seed: UInt64 = 1,
        tenants: Int = 5_000,
        tenantSkew: Double = 1.1,
        users: Int = 110_000,
        userSkew: Double = 0.9,
        regions: Int = 12,
        promptVersions: Int = 500,
        models: Int = 30,
        modelSkew: Double = 1.0,
        errorRate: Double = 0.02,
        rateLimitRate: Double = 0.02,
        deprecatedSystemRate: Double = 0.2,
        deprecatedTokenRate: Double = 0.15,
        secondCallRate: Double = 0.15,
        redisRate: Double = 0.35,
        postgresRate: Double = 0.3,
        clientSpanRate: Double = 0.5
    ) {
        self.seed = seed
        self.tenants = tenants
        self.tenantSkew = tenantSkew
        self.users = users
        self.userSkew = userSkew
        self.regions = regions
        self.promptVersions = promptVersions
        self.models = models
        self.modelSkew = modelSkew
        self.errorRate = errorRate
        self.rateLimitRate = rateLimitRate
        self.deprecatedSystemRate = deprecatedSystemRate
        self.deprecatedTokenRate = deprecatedTokenRate
        self.secondCallRate = secondCallRate
        self.redisRate = redisRate
        self.postgresRate = postgresRate
        self.clientSpanRate = clientSpanRate
    }

    /// The profile with its counts clamped to usable ranges.
    var normalized: LoadProfile {
        var p = self
        p.tenants = max(1, p.tenants)
        p.users = max(1, p.users)
        p.regions = max(1, p.regions)
        p.promptVersions = max(1, p.promptVersions)
        p.models = min(max(1, p.models), ModelCatalog.all.count)
        p.errorRate = min(max(0, p.errorRate), 0.5)
        p.rateLimitRate = min(max(0, p.rateLimitRate), 1)
        return p
    }
}
