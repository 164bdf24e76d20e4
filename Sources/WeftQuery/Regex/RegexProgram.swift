/// A regular expression compiled to a Thompson NFA: instructions that consume one scalar from a set,
/// fork, jump, assert the start or end of the text, or accept.
struct RegexProgram: Sendable {
    enum Op: UInt8, Sendable {
        /// Consume a scalar in `sets[a]`, go on at the next instruction.
        case consume
        /// Go on at both `a` and `b`.
        case split
        case jump
        case beginText
        case endText
        case match
    }

    struct Instruction: Sendable {
        var op: Op
        var a: Int32 = 0
        var b: Int32 = 0
    }

    /// Most instructions a program may have (counted repetitions copy their operand).
    static let maxInstructions = 20_000

    private(set) var instructions: [Instruction] = []
    private(set) var sets: [ScalarSet] = []

    init(_ node: RegexNode) throws(TraceQLRegexError) {
        try self.emit(node)
        try self.append(Instruction(op: .match))
    }

    private var next: Int32 { Int32(self.instructions.count) }

    private mutating func append(_ i: Instruction) throws(TraceQLRegexError) {
        guard self.instructions.count < Self.maxInstructions else {
            throw TraceQLRegexError(position: 0, message: "the regular expression is too large (more than \(Self.maxInstructions) steps once repetitions are expanded)")
        }
        self.instructions.append(i)
    }

    private mutating func emit(_ node: RegexNode) throws(TraceQLRegexError) {
        switch node {
        case .empty:
            break
        case .set(let s):
            if let i = self.sets.firstIndex(of: s) {
                try self.append(Instruction(op: .consume, a: Int32(i)))
            } else {
                self.sets.append(s)
                try self.append(Instruction(op: .consume, a: Int32(self.sets.count - 1)))
            }
        case .beginText:
            try self.append(Instruction(op: .beginText))
        case .endText:
            try self.append(Instruction(op: .endText))
        case .concat(let items):
            for item in items { try self.emit(item) }
        case .alternate(let branches):
            // split L1, next; L1: branch; jump end; … the last branch falls through.
            var jumps: [Int] = []
            for (k, branch) in branches.enumerated() {
                if k == branches.count - 1 {
                    try self.emit(branch)
                    break
                }
                let split = self.instructions.count
                try self.append(Instruction(op: .split, a: self.next + 1))
                try self.emit(branch)
                jumps.append(self.instructions.count)
                try self.append(Instruction(op: .jump))
                self.instructions[split].b = self.next
            }
            for j in jumps { self.instructions[j].a = self.next }
        case .repetition(let inner, let min, let max):
            for _ in 0..<min { try self.emit(inner) }
            guard let max else {
                // L: split body, end; body; jump L.
                let loop = self.instructions.count
                try self.append(Instruction(op: .split, a: self.next + 1))
                try self.emit(inner)
                try self.append(Instruction(op: .jump, a: Int32(loop)))
                self.instructions[loop].b = self.next
                return
            }
            // Optional copies: split body, end; body; split body, end; … all exits at the end.
            var exits: [Int] = []
            for _ in min..<max {
                exits.append(self.instructions.count)
                try self.append(Instruction(op: .split, a: self.next + 1))
                try self.emit(inner)
            }
            for e in exits { self.instructions[e].b = self.next }
        }
    }
}
