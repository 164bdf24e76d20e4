/// A regular expression as parsed: what the compiler turns into a program.
indirect enum RegexNode {
    case empty
    /// One scalar from the set.
    case set(ScalarSet)
    case concat([RegexNode])
    case alternate([RegexNode])
    /// `min` to `max` (nil: unbounded) repetitions.
    case repetition(RegexNode, min: Int, max: Int?)
    /// `^` or `\A`: the start of the text.
    case beginText
    /// `$` or `\z`: the end of the text.
    case endText
}

/// Parses RE2 (Go) syntax into a ``RegexNode``, refusing what cannot run in linear time
/// (backreferences, lookaround) and what would make the program too large.
struct RegexParser {
    /// Most repetitions in a counted repetition `{n,m}` (RE2's limit).
    static let maxRepeat = 1000
    /// Deepest nesting of groups.
    static let maxDepth = 100

    private let scalars: [Unicode.Scalar]
    private var at = 0
    private var depth = 0

    struct Flags {
        var caseInsensitive = false
        var dotMatchesNewline = false
    }

    init(_ pattern: String) { self.scalars = Array(pattern.unicodeScalars) }

    static func parse(_ pattern: String) throws(TraceQLRegexError) -> RegexNode {
        var parser = RegexParser(pattern)
        var flags = Flags()
        let node = try parser.alternation(&flags)
        if parser.at < parser.scalars.count { throw parser.error("unexpected ')'") }
        return node
    }

    private func error(_ message: String, at position: Int? = nil) -> TraceQLRegexError {
        TraceQLRegexError(position: position ?? self.at, message: message)
    }

    private var current: Unicode.Scalar? { self.at < self.scalars.count ? self.scalars[self.at] : nil }

    private func peek(_ offset: Int) -> Unicode.Scalar? {
        self.at + offset < self.scalars.count ? self.scalars[self.at + offset] : nil
    }

    private mutating func alternation(_ flags: inout Flags) throws(TraceQLRegexError) -> RegexNode {
        var branches = [try self.concatenation(&flags)]
        while self.current == "|" {
            self.at += 1
            branches.append(try self.concatenation(&flags))
        }
        return branches.count == 1 ? branches[0] : .alternate(branches)
    }

    private mutating func concatenation(_ flags: inout Flags) throws(TraceQLRegexError) -> RegexNode {
        var items: [RegexNode] = []
        while let c = self.current, c != "|", c != ")" {
            // A group with only flags (`(?i)`) changes the flags of the rest of the enclosing group.
            if c == "(", self.peek(1) == "?", try self.flagsOnly(&flags) { continue }
            let atom = try self.atom(flags)
            items.append(try self.repetitions(of: atom))
        }
        switch items.count {
        case 0: return .empty
        case 1: return items[0]
        default: return .concat(items)
        }
    }

    /// `(?flags)` alone: applies them and returns true; false when the group is something else.
    private mutating func flagsOnly(_ flags: inout Flags) throws(TraceQLRegexError) -> Bool {
        var i = self.at + 2
        while i < self.scalars.count, "imsU-".unicodeScalars.contains(self.scalars[i]) { i += 1 }
        guard i < self.scalars.count, self.scalars[i] == ")", i > self.at + 2 else { return false }
        flags = try self.applying(self.at + 2..<i, to: flags)
        self.at = i + 1
        return true
    }

    /// Flags `i` (case-insensitive), `s` (`.` matches `\n`) and `U` (ungreedy: no effect on a match),
    /// with `-` clearing those after it.
    private func applying(_ range: Range<Int>, to flags: Flags) throws(TraceQLRegexError) -> Flags {
        var out = flags
        var on = true
        for i in range {
            switch self.scalars[i] {
            case "-": on = false
            case "i": out.caseInsensitive = on
            case "s": out.dotMatchesNewline = on
            case "U": break
            case "m": throw self.error("the multi-line flag (?m) is not supported", at: i)
            default: throw self.error("unknown flag '\(self.scalars[i])'", at: i)
            }
        }
        return out
    }

    private mutating func repetitions(of atom: RegexNode) throws(TraceQLRegexError) -> RegexNode {
        var node = atom
        var repeated = false
        while let c = self.current {
            let start = self.at
            var bounds: (Int, Int?)
            switch c {
            case "*": bounds = (0, nil)
            case "+": bounds = (1, nil)
            case "?": bounds = (0, 1)
            case "{":
                guard let counted = try self.countedRepetition() else { return node }
                bounds = counted
            default: return node
            }
            self.at += 1
            if repeated { throw self.error("invalid nested repetition operator '\(c)'", at: start) }
            // A lazy quantifier (`*?`) matches the same texts.
            if self.current == "?" { self.at += 1 }
            node = .repetition(node, min: bounds.0, max: bounds.1)
            repeated = true
        }
        return node
    }

    /// `{n}`, `{n,}` or `{n,m}` at the current `{`; nil (a literal `{`) when it is not one. Leaves the
    /// position on the closing `}`.
    private mutating func countedRepetition() throws(TraceQLRegexError) -> (Int, Int?)? {
        let start = self.at
        var i = self.at + 1
        func number() -> Int? {
            var v = 0, digits = 0
            while i < self.scalars.count, ("0"..."9").contains(self.scalars[i]) {
                v = min(v * 10 + Int(self.scalars[i].value - 48), 1_000_000)
                digits += 1
                i += 1
            }
            return digits > 0 ? v : nil
        }
        guard let low = number() else { return nil }
        var high: Int? = low
        if i < self.scalars.count, self.scalars[i] == "," {
            i += 1
            high = number()
        }
        guard i < self.scalars.count, self.scalars[i] == "}" else { return nil }
        if low > Self.maxRepeat || (high ?? 0) > Self.maxRepeat {
            throw self.error("repetition count above \(Self.maxRepeat)", at: start)
        }
        if let high, high < low { throw self.error("invalid repetition range {\(low),\(high)}", at: start) }
        self.at = i
        return (low, high)
    }

    private mutating func atom(_ flags: Flags) throws(TraceQLRegexError) -> RegexNode {
        let start = self.at
        let c = self.scalars[self.at]
        self.at += 1
        switch c {
        case "(":
            return try self.group(flags, start: start)
        case "[":
            return .set(try self.characterClass(start: start, caseInsensitive: flags.caseInsensitive))
        case ".":
            return .set(flags.dotMatchesNewline ? .any : .anyButNewline)
        case "^":
            return .beginText
        case "$":
            return .endText
        case "\\":
            if let anchor = try self.anchorEscape() { return anchor }
            let set = try self.escape()
            return .set(flags.caseInsensitive ? set.caseFolded() : set)
        case "*", "+", "?":
            throw self.error("missing argument to repetition operator '\(c)'", at: start)
        case "{":
            self.at = start
            if try self.countedRepetition() != nil { throw self.error("missing argument to repetition operator '{'", at: start) }
            self.at = start + 1
            return .set(.scalar(c.value))
        default:
            let set = ScalarSet.scalar(c.value)
            return .set(flags.caseInsensitive ? set.caseFolded() : set)
        }
    }

    /// After `(`: a capturing, non-capturing, named or flag group.
    private mutating func group(_ outer: Flags, start: Int) throws(TraceQLRegexError) -> RegexNode {
        self.depth += 1
        defer { self.depth -= 1 }
        if self.depth > Self.maxDepth { throw self.error("groups nested deeper than \(Self.maxDepth)", at: start) }
        var flags = outer
        if self.current == "?" {
            self.at += 1
            switch self.current {
            case "=": throw self.error("lookahead (?=…) is not supported", at: start)
            case "!": throw self.error("negative lookahead (?!…) is not supported", at: start)
            case ">": throw self.error("atomic groups (?>…) are not supported", at: start)
            case "#": throw self.error("comments (?#…) are not supported", at: start)
            case ":": self.at += 1
            case "P", "<":
                if self.current == "P" { self.at += 1 }
                guard self.current == "<" else { throw self.error("invalid named group", at: start) }
                if self.peek(1) == "=" { throw self.error("lookbehind (?<=…) is not supported", at: start) }
                if self.peek(1) == "!" { throw self.error("negative lookbehind (?<!…) is not supported", at: start) }
                self.at += 1
                let nameStart = self.at
                while let n = self.current, n == "_" || n.properties.isAlphabetic || n.properties.numericType != nil { self.at += 1 }
                guard self.current == ">", self.at > nameStart else { throw self.error("invalid named group", at: start) }
                self.at += 1
            default:
                let flagStart = self.at
                while let f = self.current, f != ":", f != ")" { self.at += 1 }
                flags = try self.applying(flagStart..<self.at, to: flags)
                guard self.current == ":" else { throw self.error("missing ':' or ')' after group flags", at: start) }
                self.at += 1
            }
        }
        let inner = try self.alternation(&flags)
        guard self.current == ")" else { throw self.error("missing ')' for the group opened", at: start) }
        self.at += 1
        return inner
    }

    /// `\A` and `\z`, or nil for other escapes (the position stays after the backslash).
    private mutating func anchorEscape() throws(TraceQLRegexError) -> RegexNode? {
        switch self.current {
        case "A":
            self.at += 1
            return .beginText
        case "z":
            self.at += 1
            return .endText
        case "b", "B":
            throw self.error("word boundaries (\\\(self.current!)) are not supported", at: self.at - 1)
        default:
            return nil
        }
    }

    /// The set an escape after `\` stands for (a class such as `\d`, a control character, a hex code
    /// or escaped punctuation).
    private mutating func escape() throws(TraceQLRegexError) -> ScalarSet {
        let start = self.at - 1
        guard let c = self.current else { throw self.error("trailing backslash", at: start) }
        self.at += 1
        switch c {
        case "d": return .digit
        case "D": return ScalarSet.digit.inverted()
        case "w": return .word
        case "W": return ScalarSet.word.inverted()
        case "s": return .space
        case "S": return ScalarSet.space.inverted()
        case "n": return .scalar(10)
        case "t": return .scalar(9)
        case "r": return .scalar(13)
        case "f": return .scalar(12)
        case "v": return .scalar(11)
        case "a": return .scalar(7)
        case "x": return .scalar(try self.hexEscape(start: start))
        case "1"..."9": throw self.error("backreferences (\\\(c)) are not supported", at: start)
        case "k": throw self.error("backreferences (\\k) are not supported", at: start)
        case "p", "P": throw self.error("Unicode classes (\\\(c)) are not supported", at: start)
        case "Q": throw self.error("quoting (\\Q…\\E) is not supported", at: start)
        default:
            // Escaped punctuation stands for itself.
            if c.isASCII && !c.properties.isAlphabetic && c.properties.numericType == nil { return .scalar(c.value) }
            throw self.error("invalid escape '\\\(c)'", at: start)
        }
    }

    /// After `\x`: two hex digits or `{…}`.
    private mutating func hexEscape(start: Int) throws(TraceQLRegexError) -> UInt32 {
        var digits = ""
        if self.current == "{" {
            self.at += 1
            while let d = self.current, d != "}" {
                digits.unicodeScalars.append(d)
                self.at += 1
            }
            guard self.current == "}" else { throw self.error("missing '}' in \\x{…}", at: start) }
            self.at += 1
        } else {
            for _ in 0..<2 {
                guard let d = self.current else { break }
                digits.unicodeScalars.append(d)
                self.at += 1
            }
        }
        guard !digits.isEmpty, digits.count <= 6, let v = UInt32(digits, radix: 16), v <= ScalarSet.maxScalar else {
            throw self.error("invalid hex escape", at: start)
        }
        return v
    }

    /// After `[`: a bracketed class up to its `]` (case-folded before it is negated, as RE2 does).
    private mutating func characterClass(start: Int, caseInsensitive: Bool) throws(TraceQLRegexError) -> ScalarSet {
        var negated = false
        if self.current == "^" {
            negated = true
            self.at += 1
        }
        var set = ScalarSet()
        var first = true
        while true {
            guard let c = self.current else { throw self.error("missing ']' for the class opened", at: start) }
            if c == "]" && !first { break }
            first = false
            if c == "[", self.peek(1) == ":" {
                set = set.union(try self.posixClass())
                continue
            }
            let lowStart = self.at
            let low = try self.classMember()
            guard case .single(let lo) = low else {
                if case .set(let s) = low { set = set.union(s) }
                continue
            }
            if self.current == "-", let next = self.peek(1), next != "]" {
                self.at += 1
                guard case .single(let hi) = try self.classMember() else { throw self.error("invalid class range", at: lowStart) }
                guard lo <= hi else { throw self.error("invalid class range", at: lowStart) }
                set = set.union(ScalarSet([lo...hi]))
            } else {
                set = set.union(.scalar(lo))
            }
        }
        self.at += 1
        if caseInsensitive { set = set.caseFolded() }
        return negated ? set.inverted() : set
    }

    private enum ClassMember {
        case single(UInt32)
        case set(ScalarSet)
    }

    private mutating func classMember() throws(TraceQLRegexError) -> ClassMember {
        let c = self.scalars[self.at]
        self.at += 1
        guard c == "\\" else { return .single(c.value) }
        let set = try self.escape()
        if set.ranges.count == 1, set.ranges[0].count == 1 { return .single(set.ranges[0].lowerBound) }
        return .set(set)
    }

    /// `[:alpha:]` and the other ASCII classes (`[:^alpha:]` negated).
    private mutating func posixClass() throws(TraceQLRegexError) -> ScalarSet {
        let start = self.at
        var i = self.at + 2
        var name = ""
        while i + 1 < self.scalars.count, !(self.scalars[i] == ":" && self.scalars[i + 1] == "]") {
            name.unicodeScalars.append(self.scalars[i])
            i += 1
        }
        guard i + 1 < self.scalars.count else { throw self.error("missing ':]' for the class opened", at: start) }
        let negated = name.hasPrefix("^")
        if negated { name.removeFirst() }
        let ranges: [ClosedRange<UInt32>]
        switch name {
        case "alnum": ranges = [48...57, 65...90, 97...122]
        case "alpha": ranges = [65...90, 97...122]
        case "ascii": ranges = [0...127]
        case "blank": ranges = [9...9, 32...32]
        case "cntrl": ranges = [0...31, 127...127]
        case "digit": ranges = [48...57]
        case "graph": ranges = [33...126]
        case "lower": ranges = [97...122]
        case "print": ranges = [32...126]
        case "punct": ranges = [33...47, 58...64, 91...96, 123...126]
        case "space": ranges = [9...13, 32...32]
        case "upper": ranges = [65...90]
        case "word": ranges = [48...57, 65...90, 95...95, 97...122]
        case "xdigit": ranges = [48...57, 65...70, 97...102]
        default: throw self.error("unknown class [:\(name):]", at: start)
        }
        self.at = i + 2
        let set = ScalarSet(ranges)
        return negated ? set.inverted() : set
    }
}
