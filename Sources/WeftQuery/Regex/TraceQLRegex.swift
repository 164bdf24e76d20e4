/// A TraceQL regular expression (RE2 / Go syntax, matched against the whole value) that runs in time
/// linear in the text, whatever the pattern: literals, `.`, classes (`[a-z]`, `[^…]`, `[[:alpha:]]`,
/// `\d \w \s \D \W \S`), escapes, `|`, groups (`(…)`, `(?:…)`, `(?P<name>…)`), `* + ?` and
/// `{n}`, `{n,}`, `{n,m}` (counts up to 1000; lazy forms match the same), `^ $ \A \z`, and the flags
/// `(?i)`, `(?s)`. Backreferences, lookaround, word boundaries and Unicode classes are refused.
///
///     let regex = try TraceQLRegex("gpt-4.*")
///     regex.matches("gpt-4o")        // true
///     regex.matches("my-gpt-4o")     // false: the whole value must match
public struct TraceQLRegex: Sendable {
    public let pattern: String
    let program: RegexProgram

    /// Parses and compiles; throws naming the unsupported or invalid construct and its position.
    public init(_ pattern: String) throws(TraceQLRegexError) {
        self.pattern = pattern
        self.program = try RegexProgram(RegexParser.parse(pattern))
    }

    /// Whether `text` matches as a whole. For many texts, use one ``matcher()`` instead.
    public func matches(_ text: String) -> Bool { RegexMatcher(self.program).matches(text) }

    /// A matcher that keeps what it learns between texts (one per thread).
    func matcher() -> RegexMatcher { RegexMatcher(self.program) }
}

/// Why a pattern was refused; `position` counts Unicode scalars from the start of the pattern.
public struct TraceQLRegexError: Error, Sendable, Equatable, CustomStringConvertible {
    public var position: Int
    public var message: String
    public var description: String { "\(self.message) at offset \(self.position) of the regular expression" }
}
