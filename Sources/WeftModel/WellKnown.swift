/// Strings interned first in every ``StringTable``, so their IDs are the same everywhere.
public enum WellKnown {
    public static let all: [String] = [
        "",
        "service.name",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.cost",
        "gen_ai.cost.usd",
        "gen_ai.cost.total_cost",
        "gen_ai.usage.total_cost",
        "llm.cost.total",
    ]
    public static let empty: UInt32 = 0
    public static let serviceName: UInt32 = 1
    public static let genAIProviderName: UInt32 = 2
    public static let genAISystem: UInt32 = 3
    public static let genAIRequestModel: UInt32 = 4
    public static let genAIResponseModel: UInt32 = 5
    public static let genAIInputTokens: UInt32 = 6
    public static let genAIPromptTokens: UInt32 = 7
    public static let genAIOutputTokens: UInt32 = 8
    public static let genAICompletionTokens: UInt32 = 9
    public static let genAIUsageCost: UInt32 = 10
    /// The first ID of the built-in cost aliases (through ``lastCostAlias``).
    public static let firstCostAlias: UInt32 = 11
    public static let lastCostAlias: UInt32 = 14
}
