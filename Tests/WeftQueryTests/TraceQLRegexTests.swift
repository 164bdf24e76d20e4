import Foundation
import Testing
@testable import WeftQuery
import WeftTestSupport

struct TraceQLRegexTests {
    /// (pattern, text, whether the whole text matches).
    static let table: [(String, String, Bool)] = [
        ("gpt-4.*", "gpt-4o", true), ("gpt-4.*", "my-gpt-4o", false), ("gpt-4.*", "gpt-3.5", false),
        ("", "", true), ("", "a", false), ("a|", "", true), ("a|b", "b", true), ("a|b", "ab", false),
        ("(a|b)*c", "ababc", true), ("(a|b)*c", "abab", false), ("a+", "", false), ("a*", "", true), ("a?b", "b", true),
        ("a{3}", "aaa", true), ("a{3}", "aa", false), ("a{2,}", "aaaaa", true), ("a{2,3}", "aaaa", false), ("a{0}", "", true),
        ("a{1,2}b{0,1}", "aab", true), ("a{,3}", "a{,3}", true), ("x{", "x{", true),
        ("[a-c]+", "abcabc", true), ("[^a-c]+", "xyz", true), ("[^a-c]+", "xaz", false), ("[]a]+", "]a]", true), ("[a-]", "-", true),
        ("[\\]]", "]", true), ("[\\d.]+", "1.5", true), ("[^\\d]", "7", false),
        ("\\d+", "12345", true), ("\\d+", "12a", false), ("\\w+", "a_Z1", true), ("\\s", " ", true), ("\\s", "\u{0B}", false),
        ("\\D", "a", true), ("\\W", "-", true), ("\\S", " ", false), ("a\\.b", "a.b", true), ("a\\.b", "axb", false),
        ("\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\\\\\/", ".*+?()[]{}|^$\\/", true), ("\\n\\t", "\n\t", true),
        ("a.b", "a\nb", false), ("(?s)a.b", "a\nb", true), (".", "é", true), ("..", "é", false),
        ("(?i)hello", "HeLLo", true), ("(?i:a)b", "Ab", true), ("(?i:a)b", "AB", false), ("a(?i)b", "aB", true), ("a(?i)b", "AB", false),
        ("(?i)[a-c]+", "AbC", true), ("(?i)[^a]", "A", false), ("(?i)[^a]", "b", true), ("(?i)é", "É", true), ("(?i-i)a", "A", false),
        ("^abc$", "abc", true), ("a$b", "ab", false), ("a^b", "ab", false), ("$", "", true), ("^$", "", true), ("\\Aa\\z", "a", true),
        ("(?:ab)+", "abab", true), ("(?:ab)+", "aba", false), ("(?P<x>ab)c", "abc", true), ("(?<y>a)", "a", true),
        ("[[:alpha:]]+", "abZ", true), ("[[:digit:]]", "a", false), ("[[:^digit:]]", "a", true), ("[[:xdigit:]]+", "0aF", true),
        ("\\x41", "A", true), ("\\x{263a}", "☺", true), ("é+", "éé", true), ("[à-ÿ]", "é", true), ("[^a]", "☺", true),
        ("(a*)*", "aaa", true), ("(a*)+b", "aab", true), ("(a|ab)(c|bcd)(d*)", "abcd", true), ("a*?b+?", "aabb", true),
        ("x*y*", "xxyy", true), ("x*y*", "yx", false), ("(a+)+$", "aaaaaaaaaaaaaaaaaaaa!", false),
        ("[a-z]+@[a-z]+\\.com", "me@example.com", true), ("[a-z]+@[a-z]+\\.com", "me@example.org", false),
    ]

    @Test func test_table_matchesExpected() throws {
        for (pattern, text, expected) in Self.table {
            let regex = try TraceQLRegex(pattern)
            #expect(regex.matches(text) == expected, "\(pattern) on \(text.debugDescription)")
        }
    }

    /// (pattern, part of the message naming what is refused).
    static let refused: [(String, String)] = [
        ("(a)\\1", "backreferences"), ("(?P<n>a)\\k<n>", "backreferences"), ("(?=a)", "lookahead"), ("(?!a)", "negative lookahead"),
        ("(?<=a)b", "lookbehind"), ("(?<!a)b", "negative lookbehind"), ("(?>a)", "atomic"), ("a**", "nested repetition"),
        ("a{2}{3}", "nested repetition"), ("*a", "missing argument"), ("a|+", "missing argument"), ("{2}", "missing argument"),
        ("(a", "missing ')'"), ("a)", "unexpected ')'"), ("[a", "missing ']'"), ("a{1001}", "above 1000"), ("a{1,1001}", "above 1000"),
        ("a{3,2}", "invalid repetition range"), ("[z-a]", "invalid class range"), ("\\b", "word boundaries"), ("\\pL", "Unicode classes"),
        ("(?m)^a", "multi-line"), ("(?x)a", "unknown flag"), ("(a{1000}){1000}", "too large"), ("\\", "trailing backslash"),
        ("\\q", "invalid escape"), ("[[:nope:]]", "unknown class"), ("\\x{110000}", "invalid hex escape"),
        (String(repeating: "(", count: 30_000) + String(repeating: ")", count: 30_000), "nested deeper"),
    ]

    @Test func test_unsupportedConstructs_areRefusedByName() {
        for (pattern, expected) in Self.refused {
            do {
                _ = try TraceQLRegex(pattern)
                Issue.record("\(pattern.prefix(40)) compiled")
            } catch {
                #expect(error.message.contains(expected), "\(pattern.prefix(40)): \(error)")
            }
        }
    }

    /// Random patterns without nested quantifiers agree with Swift's backtracking `Regex` on random texts.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func test_randomPatterns_agreeWithSwiftRegex(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let atoms = ["a", "b", ".", "[ab]", "[^a]", "(a|b)", "(ab)", "(?:ba)", "\\w", "[a-c]"]
        let quantifiers = ["", "", "*", "+", "?", "{2}", "{1,2}", "{0,}"]
        func piece() -> String {
            (0..<Int.random(in: 1...4, using: &rng)).map { _ in atoms.randomElement(using: &rng)! + quantifiers.randomElement(using: &rng)! }.joined()
        }
        for _ in 0..<300 {
            let pattern = Bool.random(using: &rng) ? piece() : piece() + "|" + piece()
            let ours = try TraceQLRegex(pattern)
            let swift = try Regex("^(?:" + pattern + ")$")
            for _ in 0..<20 {
                let text = String((0..<Int.random(in: 0...6, using: &rng)).map { _ in "abc".randomElement(using: &rng)! })
                let expected = (try swift.wholeMatch(in: text)) != nil
                #expect(ours.matches(text) == expected, "\(pattern) on \(text)")
            }
        }
    }

    /// Patterns that make a backtracking matcher take exponential time finish at once.
    @Test func test_pathologicalPatterns_runInLinearTime() throws {
        let start = ContinuousClock.now
        let text = String(repeating: "a", count: 20) + "!"
        for pattern in ["(a+)+$", "(a|a)*b", "(a*)*b", "(a|aa)+c", "(.*a){12}x"] {
            #expect(try TraceQLRegex(pattern).matches(text) == false, "\(pattern)")
        }
        let long = String(repeating: "a", count: 100_000) + "!"
        #expect(try TraceQLRegex("(a+)+$").matches(long) == false)
        #expect(try TraceQLRegex("(a|aa)+!").matches(long) == true)
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    /// Many texts through one matcher (the dictionary path of a query): `(a|b)*a(a|b){12}` ("the 13th
    /// scalar from the end is an a") needs 2^13 DFA states, more than the cache holds, so it is dropped
    /// and rebuilt while the answers stay right.
    @Test func test_manyTexts_throughAStateCacheThatOverflows() throws {
        let matcher = try TraceQLRegex("(a|b)*a(a|b){12}").matcher()
        var rng = SplitMix64(seed: 9)
        for _ in 0..<3000 {
            let text = Array((0..<Int.random(in: 1...40, using: &rng)).map { _ in Bool.random(using: &rng) ? "a" : "b" as Character })
            let expected = text.count >= 13 && text[text.count - 13] == "a"
            #expect(matcher.matches(String(text)) == expected, "\(String(text))")
        }
    }
}
