/// The structure of one trace, drawn before its timings and attribute values.
struct TracePlan {
    /// LLM calls made by the app (1 or 2).
    var calls: Int
    /// Whether the app's HTTP client call to the gateway is instrumented (a CLIENT span per call).
    var clientSpans: Bool
    /// Bit `c` set: call `c` gets a 429 from the provider first and is retried.
    var rateLimited: UInt8
    var redis: Bool
    var postgres: Bool

    /// Share of failures that hit the provider call (the rest hit the PostgreSQL write, when there is one).
    static let providerFailureShare = 0.85
    /// Largest trace the plan may produce.
    static let maxSpans = 8

    var spanCount: Int {
        var n = 1 + (self.redis ? 1 : 0) + (self.postgres ? 1 : 0)
        n += self.calls * (self.clientSpans ? 3 : 2)
        n += self.rateLimited.nonzeroBitCount
        return n
    }

    static func sample(profile p: LoadProfile, rng: inout LoadRandom) -> TracePlan {
        var plan = TracePlan(
            calls: rng.chance(p.secondCallRate) ? 2 : 1,
            clientSpans: rng.chance(p.clientSpanRate),
            rateLimited: 0,
            redis: rng.chance(p.redisRate),
            postgres: rng.chance(p.postgresRate)
        )
        for c in 0..<plan.calls where rng.chance(p.rateLimitRate) {
            plan.rateLimited |= 1 << UInt8(c)
        }
        // Keep traces within 3–8 spans.
        if plan.spanCount > maxSpans { plan.clientSpans = false }
        if plan.spanCount > maxSpans { plan.redis = false }
        if plan.spanCount > maxSpans { plan.postgres = false }
        return plan
    }

    /// Expected number of ERROR spans if this trace fails (provider failure: provider, gateway,
    /// client span and root; database failure: the write and the root).
    func errorSpansIfFailed(providerShare: Double) -> Double {
        let provider = 3.0 + (self.clientSpans ? 1 : 0)
        return self.postgres ? providerShare * provider + (1 - providerShare) * 2 : provider
    }
}
