/// One LLM offered through the gateway, with its list price and a latency model.
public struct ModelSpec: Sendable, Equatable {
    /// `gen_ai.request.model`.
    public var name: String
    /// `gen_ai.response.model` (the dated snapshot the provider reports).
    public var responseName: String
    /// `gen_ai.provider.name`.
    public var provider: String
    /// The deprecated `gen_ai.system` value for the same provider.
    public var legacySystem: String
    /// `server.address` of the provider endpoint.
    public var serverAddress: String
    /// USD per million input tokens, and per million output tokens.
    public var inputPrice: Double
    public var outputPrice: Double
    /// Median time to first token (ms) and output speed (tokens/s).
    public var firstTokenMillis: Double
    public var tokensPerSecond: Double

    public init(
        _ name: String, response: String, provider: String, system: String, address: String,
        input: Double, output: Double, ttft: Double, tps: Double
    ) {
        self.name = name
        self.responseName = response
        self.provider = provider
        self.legacySystem = system
        self.serverAddress = address
        self.inputPrice = input
        self.outputPrice = output
        self.firstTokenMillis = ttft
        self.tokensPerSecond = tps
    }

    /// Cost in USD of one call.
    @inlinable public func cost(input: Int, output: Int) -> Double {
        (Double(input) * self.inputPrice + Double(output) * self.outputPrice) * 1e-6
    }
}

/// The built-in model catalog, most popular first (list prices per million tokens, approximate).
public enum ModelCatalog {
    public static let all: [ModelSpec] = [
        ModelSpec("gpt-4o-mini", response: "gpt-4o-mini-2024-07-18", provider: "openai", system: "openai", address: "api.openai.com", input: 0.15, output: 0.6, ttft: 350, tps: 110),
        ModelSpec("gpt-4o", response: "gpt-4o-2024-08-06", provider: "openai", system: "openai", address: "api.openai.com", input: 2.5, output: 10, ttft: 450, tps: 80),
        ModelSpec("claude-sonnet-4-5", response: "claude-sonnet-4-5-20250929", provider: "anthropic", system: "anthropic", address: "api.anthropic.com", input: 3, output: 15, ttft: 700, tps: 70),
        ModelSpec("gemini-2.5-flash", response: "gemini-2.5-flash", provider: "gcp.vertex_ai", system: "vertex_ai", address: "us-central1-aiplatform.googleapis.com", input: 0.3, output: 2.5, ttft: 400, tps: 180),
        ModelSpec("gpt-4.1-mini", response: "gpt-4.1-mini-2025-04-14", provider: "openai", system: "openai", address: "api.openai.com", input: 0.4, output: 1.6, ttft: 380, tps: 100),
        ModelSpec("claude-3-5-haiku", response: "claude-3-5-haiku-20241022", provider: "anthropic", system: "anthropic", address: "api.anthropic.com", input: 0.8, output: 4, ttft: 500, tps: 90),
        ModelSpec("anthropic.claude-3-5-sonnet-20240620-v1:0", response: "anthropic.claude-3-5-sonnet-20240620-v1:0", provider: "aws.bedrock", system: "aws.bedrock", address: "bedrock-runtime.us-east-1.amazonaws.com", input: 3, output: 15, ttft: 900, tps: 60),
        ModelSpec("gpt-4.1", response: "gpt-4.1-2025-04-14", provider: "openai", system: "openai", address: "api.openai.com", input: 2, output: 8, ttft: 500, tps: 75),
        ModelSpec("gemini-2.5-pro", response: "gemini-2.5-pro", provider: "gcp.vertex_ai", system: "vertex_ai", address: "us-central1-aiplatform.googleapis.com", input: 1.25, output: 10, ttft: 1800, tps: 90),
        ModelSpec("llama-3.3-70b-versatile", response: "llama-3.3-70b-versatile", provider: "groq", system: "groq", address: "api.groq.com", input: 0.59, output: 0.79, ttft: 200, tps: 280),
        ModelSpec("mistral-large-latest", response: "mistral-large-2411", provider: "mistral_ai", system: "mistral_ai", address: "api.mistral.ai", input: 2, output: 6, ttft: 450, tps: 60),
        ModelSpec("deepseek-chat", response: "deepseek-chat", provider: "deepseek", system: "deepseek", address: "api.deepseek.com", input: 0.27, output: 1.1, ttft: 900, tps: 40),
        ModelSpec("o4-mini", response: "o4-mini-2025-04-16", provider: "openai", system: "openai", address: "api.openai.com", input: 1.1, output: 4.4, ttft: 4000, tps: 120),
        ModelSpec("gpt-5", response: "gpt-5-2025-08-07", provider: "openai", system: "openai", address: "api.openai.com", input: 1.25, output: 10, ttft: 3500, tps: 70),
        ModelSpec("gemini-2.0-flash", response: "gemini-2.0-flash-001", provider: "gcp.vertex_ai", system: "vertex_ai", address: "us-central1-aiplatform.googleapis.com", input: 0.1, output: 0.4, ttft: 300, tps: 200),
        ModelSpec("command-r-plus", response: "command-r-plus-08-2024", provider: "cohere", system: "cohere", address: "api.cohere.com", input: 2.5, output: 10, ttft: 600, tps: 55),
        ModelSpec("amazon.nova-pro-v1:0", response: "amazon.nova-pro-v1:0", provider: "aws.bedrock", system: "aws.bedrock", address: "bedrock-runtime.us-east-1.amazonaws.com", input: 0.8, output: 3.2, ttft: 500, tps: 90),
        ModelSpec("grok-3-mini", response: "grok-3-mini", provider: "x_ai", system: "xai", address: "api.x.ai", input: 0.3, output: 0.5, ttft: 1200, tps: 90),
        ModelSpec("mistral-small-latest", response: "mistral-small-2503", provider: "mistral_ai", system: "mistral_ai", address: "api.mistral.ai", input: 0.1, output: 0.3, ttft: 300, tps: 130),
        ModelSpec("gpt-5-mini", response: "gpt-5-mini-2025-08-07", provider: "openai", system: "openai", address: "api.openai.com", input: 0.25, output: 2, ttft: 2000, tps: 90),
        ModelSpec("claude-opus-4-1", response: "claude-opus-4-1-20250805", provider: "anthropic", system: "anthropic", address: "api.anthropic.com", input: 15, output: 75, ttft: 1500, tps: 35),
        ModelSpec("llama-3.1-8b-instant", response: "llama-3.1-8b-instant", provider: "groq", system: "groq", address: "api.groq.com", input: 0.05, output: 0.08, ttft: 120, tps: 600),
        ModelSpec("deepseek-reasoner", response: "deepseek-reasoner", provider: "deepseek", system: "deepseek", address: "api.deepseek.com", input: 0.55, output: 2.19, ttft: 6000, tps: 35),
        ModelSpec("command-r", response: "command-r-08-2024", provider: "cohere", system: "cohere", address: "api.cohere.com", input: 0.15, output: 0.6, ttft: 350, tps: 110),
        ModelSpec("meta.llama3-1-70b-instruct-v1:0", response: "meta.llama3-1-70b-instruct-v1:0", provider: "aws.bedrock", system: "aws.bedrock", address: "bedrock-runtime.us-west-2.amazonaws.com", input: 0.72, output: 0.72, ttft: 600, tps: 60),
        ModelSpec("grok-3", response: "grok-3", provider: "x_ai", system: "xai", address: "api.x.ai", input: 3, output: 15, ttft: 900, tps: 55),
        ModelSpec("o3", response: "o3-2025-04-16", provider: "openai", system: "openai", address: "api.openai.com", input: 2, output: 8, ttft: 7000, tps: 60),
        ModelSpec("codestral-latest", response: "codestral-2501", provider: "mistral_ai", system: "mistral_ai", address: "api.mistral.ai", input: 0.3, output: 0.9, ttft: 250, tps: 150),
        ModelSpec("amazon.nova-lite-v1:0", response: "amazon.nova-lite-v1:0", provider: "aws.bedrock", system: "aws.bedrock", address: "bedrock-runtime.us-east-1.amazonaws.com", input: 0.06, output: 0.24, ttft: 300, tps: 150),
        ModelSpec("gpt-4.1-nano", response: "gpt-4.1-nano-2025-04-14", provider: "openai", system: "openai", address: "api.openai.com", input: 0.1, output: 0.4, ttft: 250, tps: 150),
        ModelSpec("claude-3-7-sonnet", response: "claude-3-7-sonnet-20250219", provider: "anthropic", system: "anthropic", address: "api.anthropic.com", input: 3, output: 15, ttft: 800, tps: 65),
    ]
}

/// An application service that calls the gateway.
struct AppSpec: Sendable {
    var name: String
    var method: String
    var route: String
    /// Medians of input and output tokens of its LLM calls.
    var inputTokens: Double
    var outputTokens: Double
    /// Database name used by its PostgreSQL spans, and the table it writes.
    var database: String
    var table: String
    var version: String
}

enum AppCatalog {
    static let all: [AppSpec] = [
        AppSpec(name: "support-bot", method: "POST", route: "/api/support/chat", inputTokens: 2500, outputTokens: 350, database: "support", table: "conversations", version: "3.14.2"),
        AppSpec(name: "search-api", method: "GET", route: "/api/search", inputTokens: 600, outputTokens: 80, database: "search", table: "query_log", version: "1.42.0"),
        AppSpec(name: "checkout", method: "POST", route: "/api/checkout/recommendations", inputTokens: 900, outputTokens: 150, database: "orders", table: "recommendations", version: "2.7.1"),
        AppSpec(name: "doc-summarizer", method: "POST", route: "/v1/summarize", inputTokens: 9000, outputTokens: 500, database: "documents", table: "summaries", version: "0.19.3"),
        AppSpec(name: "code-assistant", method: "POST", route: "/api/complete", inputTokens: 3500, outputTokens: 400, database: "assist", table: "completions", version: "5.2.0"),
        AppSpec(name: "email-composer", method: "POST", route: "/api/drafts", inputTokens: 800, outputTokens: 300, database: "mail", table: "drafts", version: "1.8.4"),
        AppSpec(name: "fraud-screening", method: "POST", route: "/api/screen", inputTokens: 1200, outputTokens: 40, database: "risk", table: "decisions", version: "4.0.9"),
        AppSpec(name: "recommendations", method: "GET", route: "/api/recommendations", inputTokens: 700, outputTokens: 120, database: "catalog", table: "reco_cache", version: "2.3.3"),
        AppSpec(name: "translation-svc", method: "POST", route: "/api/translate", inputTokens: 500, outputTokens: 500, database: "i18n", table: "translations", version: "1.1.0"),
        AppSpec(name: "analytics-copilot", method: "POST", route: "/api/ask", inputTokens: 4000, outputTokens: 600, database: "analytics", table: "questions", version: "0.9.12"),
        AppSpec(name: "hr-assistant", method: "POST", route: "/api/hr/ask", inputTokens: 1500, outputTokens: 250, database: "hr", table: "tickets", version: "1.0.5"),
        AppSpec(name: "onboarding-agent", method: "POST", route: "/api/agent/step", inputTokens: 3000, outputTokens: 200, database: "onboarding", table: "agent_steps", version: "0.4.1"),
    ]
}

enum RegionCatalog {
    static let builtIn: [String] = [
        "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-southeast-1",
        "ap-northeast-1", "sa-east-1", "ca-central-1", "eu-north-1", "ap-southeast-2", "me-central-1",
    ]

    static func names(_ count: Int) -> [String] {
        (0..<count).map { $0 < builtIn.count ? builtIn[$0] : "region-\($0 + 1)" }
    }
}

enum PromptCatalog {
    static let families: [String] = [
        "support", "search", "summarize", "checkout-assist", "classify", "extract", "translate",
        "code-review", "sql-gen", "rag-answer", "moderation", "email-draft", "agent-plan", "agent-act",
        "onboarding", "faq", "product-desc", "sentiment", "routing", "title-gen",
    ]

    /// `family/vN` names: versions cycle through the families, so 500 names give 25 versions each.
    static func names(_ count: Int) -> [String] {
        (0..<count).map { i in "\(families[i % families.count])/v\(i / families.count + 1)" }
    }
}

/// Failures of a provider call (status message and `error.type`).
struct FailureSpec: Sendable {
    var errorType: String
    var message: String
    var exceptionType: String
    var httpStatus: Int
}

enum FailureCatalog {
    static let provider: [FailureSpec] = [
        FailureSpec(errorType: "500", message: "upstream provider returned 500 Internal Server Error", exceptionType: "InternalServerError", httpStatus: 502),
        FailureSpec(errorType: "503", message: "upstream provider overloaded", exceptionType: "ServiceUnavailableError", httpStatus: 503),
        FailureSpec(errorType: "timeout", message: "request to provider timed out after 60s", exceptionType: "APITimeoutError", httpStatus: 504),
        FailureSpec(errorType: "context_length_exceeded", message: "maximum context length exceeded", exceptionType: "BadRequestError", httpStatus: 400),
        FailureSpec(errorType: "content_filter", message: "response blocked by content filter", exceptionType: "ContentFilterError", httpStatus: 400),
        FailureSpec(errorType: "_OTHER", message: "connection reset by peer", exceptionType: "APIConnectionError", httpStatus: 502),
    ]
    static let database = FailureSpec(errorType: "57014", message: "canceling statement due to statement timeout", exceptionType: "QueryCanceledError", httpStatus: 500)
    static let rateLimited = FailureSpec(errorType: "429", message: "rate limit exceeded, retry after 1s", exceptionType: "RateLimitError", httpStatus: 429)
}
