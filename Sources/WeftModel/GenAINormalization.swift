/// Fills the typed GenAI columns of a span from its attributes, mapping deprecated names
/// (`gen_ai.system`, `gen_ai.usage.prompt_tokens`, `gen_ai.usage.completion_tokens`) and cost aliases.
public struct GenAINormalizer: Sendable {
    /// Extra attribute keys read as cost, after `gen_ai.usage.cost` and the built-in aliases.
    public var costAliases: [String]

    public init(costAliases: [String] = []) {
        self.costAliases = costAliases
    }

    /// String IDs of the configured aliases in a given table (interned once per batch).
    public func aliasIDs(in strings: inout StringTable) -> [UInt32] {
        self.costAliases.map { strings.intern($0) }
    }

    /// Appends the typed GenAI values of the span whose attributes are `attrs[range]`.
    @inlinable
    public static func appendTypedColumns(
        to batch: inout SpanBatch,
        attributes range: Range<Int>,
        aliasIDs: [UInt32]
    ) {
        var provider: UInt32 = 0
        var system: UInt32 = 0
        var requestModel: UInt32 = 0
        var responseModel: UInt32 = 0
        var input = SpanBatch.noTokens
        var prompt = SpanBatch.noTokens
        var output = SpanBatch.noTokens
        var completion = SpanBatch.noTokens
        var cost = Double.nan
        var aliasCost = Double.nan
        var aliasRank = Int.max
        let wellKnownCount = UInt32(WellKnown.all.count)
        for i in range {
            let key = batch.attrs.keys[i]
            let type = batch.attrs.types[i]
            let value = batch.attrs.values[i]
            if key < wellKnownCount {
                switch key {
                case WellKnown.genAIProviderName: if type == ValueType.string.rawValue { provider = UInt32(value) }
                case WellKnown.genAISystem: if type == ValueType.string.rawValue { system = UInt32(value) }
                case WellKnown.genAIRequestModel: if type == ValueType.string.rawValue { requestModel = UInt32(value) }
                case WellKnown.genAIResponseModel: if type == ValueType.string.rawValue { responseModel = UInt32(value) }
                case WellKnown.genAIInputTokens: input = integer(type, value) ?? input
                case WellKnown.genAIPromptTokens: prompt = integer(type, value) ?? prompt
                case WellKnown.genAIOutputTokens: output = integer(type, value) ?? output
                case WellKnown.genAICompletionTokens: completion = integer(type, value) ?? completion
                case WellKnown.genAIUsageCost: cost = number(type, value) ?? cost
                case WellKnown.firstCostAlias...WellKnown.lastCostAlias:
                    let rank = Int(key - WellKnown.firstCostAlias)
                    if rank < aliasRank, let v = number(type, value) {
                        aliasCost = v
                        aliasRank = rank
                    }
                default: break
                }
            } else if !aliasIDs.isEmpty, let index = aliasIDs.firstIndex(of: key) {
                let rank = 16 + index
                if rank < aliasRank, let v = number(type, value) {
                    aliasCost = v
                    aliasRank = rank
                }
            }
        }
        batch.genAIProvider.append(provider != 0 ? provider : system)
        batch.genAIRequestModel.append(requestModel)
        batch.genAIResponseModel.append(responseModel)
        batch.inputTokens.append(input != SpanBatch.noTokens ? input : prompt)
        batch.outputTokens.append(output != SpanBatch.noTokens ? output : completion)
        batch.cost.append(cost.isNaN ? aliasCost : cost)
    }

    @inlinable
    static func integer(_ type: UInt8, _ value: UInt64) -> Int64? {
        switch type {
        case ValueType.int.rawValue: return Int64(bitPattern: value)
        case ValueType.double.rawValue:
            let d = Double(bitPattern: value)
            return d.isFinite && abs(d) < 9e18 ? Int64(d) : nil
        default: return nil
        }
    }

    @inlinable
    static func number(_ type: UInt8, _ value: UInt64) -> Double? {
        switch type {
        case ValueType.int.rawValue: return Double(Int64(bitPattern: value))
        case ValueType.double.rawValue: return Double(bitPattern: value)
        default: return nil
        }
    }
}
