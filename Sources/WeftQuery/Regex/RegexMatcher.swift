/// Runs a ``RegexProgram`` over whole strings as a lazily built DFA: a state is the set of NFA
/// instructions alive after some prefix, built on first need and cached with its transitions (a
/// table for ASCII, a map for the rest). Each scalar costs a table lookup once its transition is
/// known, and at most one pass over the program when it is not, so a match is linear in the text
/// whatever the pattern. The cache is dropped when it holds ``maxStates`` states.
///
/// Not thread-safe: one matcher per thread (it is cheap to make).
final class RegexMatcher {
    private let program: RegexProgram
    private let instructions: [RegexProgram.Instruction]

    /// State → its instructions (`consume`, `endText` and `match` only), sorted.
    private var states: [[Int32]] = []
    private var stateIDs: [[Int32]: Int32] = [:]
    /// Per state, 128 ASCII transitions (``unknown`` until computed).
    private var asciiNext: [Int32] = []
    private var otherNext: [UInt64: Int32] = [:]
    /// Per state: 1 accepts at the end of the text, 0 does not, −1 unknown.
    private var acceptsAtEnd: [Int8] = []
    private var start: Int32 = 0

    /// Scratch for closures: instruction marks (by generation) and a stack.
    private var marks: [UInt32]
    private var generation: UInt32 = 0
    private var stack: [Int32] = []

    static let maxStates = 4096
    private static let unknown: Int32 = -1
    /// The state with no instructions: nothing can match any more.
    private static let dead: Int32 = 0

    init(_ program: RegexProgram) {
        self.program = program
        self.instructions = program.instructions
        self.marks = [UInt32](repeating: 0, count: program.instructions.count)
        self.reset()
    }

    private func reset() {
        self.states = []
        self.stateIDs = [:]
        self.asciiNext = []
        self.otherNext = [:]
        self.acceptsAtEnd = []
        _ = self.intern([])
        self.start = self.intern(self.closure([0], atStart: true))
    }

    /// Whether the whole of `text` matches.
    func matches(_ text: String) -> Bool {
        var state = self.start
        var empty = true
        for scalar in text.unicodeScalars {
            empty = false
            let v = scalar.value
            var next: Int32
            if v < 128 {
                next = self.asciiNext[Int(state) &* 128 &+ Int(v)]
            } else {
                next = self.otherNext[UInt64(state) << 21 | UInt64(v)] ?? Self.unknown
            }
            if next == Self.unknown { next = self.computeStep(&state, v) }
            if next == Self.dead { return false }
            state = next
        }
        if empty { return self.accepts(self.states[Int(state)], atStart: true) }
        if self.acceptsAtEnd[Int(state)] < 0 { self.acceptsAtEnd[Int(state)] = self.accepts(self.states[Int(state)], atStart: false) ? 1 : 0 }
        return self.acceptsAtEnd[Int(state)] == 1
    }

    /// The state after `state` reads `v`, cached. May drop the cache, in which case `state` is
    /// re-interned in the fresh one.
    private func computeStep(_ state: inout Int32, _ v: UInt32) -> Int32 {
        var seeds: [Int32] = []
        for pc in self.states[Int(state)] {
            let i = self.instructions[Int(pc)]
            if i.op == .consume && self.program.sets[Int(i.a)].contains(v) { seeds.append(pc + 1) }
        }
        let set = self.closure(seeds, atStart: false)
        if self.states.count >= Self.maxStates && self.stateIDs[set] == nil {
            let current = self.states[Int(state)]
            self.reset()
            state = self.intern(current)
        }
        let next = self.intern(set)
        if v < 128 {
            self.asciiNext[Int(state) * 128 + Int(v)] = next
        } else {
            self.otherNext[UInt64(state) << 21 | UInt64(v)] = next
        }
        return next
    }

    private func intern(_ set: [Int32]) -> Int32 {
        if let id = self.stateIDs[set] { return id }
        let id = Int32(self.states.count)
        self.states.append(set)
        self.stateIDs[set] = id
        self.asciiNext.append(contentsOf: repeatElement(Self.unknown, count: 128))
        self.acceptsAtEnd.append(-1)
        return id
    }

    private func nextGeneration() {
        self.generation &+= 1
        if self.generation == 0 {
            for i in self.marks.indices { self.marks[i] = 0 }
            self.generation = 1
        }
    }

    /// The instructions reachable from `seeds` without consuming: splits and jumps followed, the
    /// start-of-text assertion only at the start; kept are those that consume, assert the end, or match.
    private func closure(_ seeds: [Int32], atStart: Bool) -> [Int32] {
        self.nextGeneration()
        var out: [Int32] = []
        self.stack.removeAll(keepingCapacity: true)
        self.stack.append(contentsOf: seeds.reversed())
        while let pc = self.stack.popLast() {
            if self.marks[Int(pc)] == self.generation { continue }
            self.marks[Int(pc)] = self.generation
            let i = self.instructions[Int(pc)]
            switch i.op {
            case .consume, .endText, .match: out.append(pc)
            case .jump: self.stack.append(i.a)
            case .split:
                self.stack.append(i.b)
                self.stack.append(i.a)
            case .beginText: if atStart { self.stack.append(pc + 1) }
            }
        }
        out.sort()
        return out
    }

    /// Whether a state accepts with no text left: a `match` reachable through end-of-text assertions
    /// and non-consuming steps.
    private func accepts(_ set: [Int32], atStart: Bool) -> Bool {
        self.nextGeneration()
        self.stack.removeAll(keepingCapacity: true)
        self.stack.append(contentsOf: set)
        while let pc = self.stack.popLast() {
            if self.marks[Int(pc)] == self.generation { continue }
            self.marks[Int(pc)] = self.generation
            let i = self.instructions[Int(pc)]
            switch i.op {
            case .match: return true
            case .consume: break
            case .endText: self.stack.append(pc + 1)
            case .jump: self.stack.append(i.a)
            case .split:
                self.stack.append(i.b)
                self.stack.append(i.a)
            case .beginText: if atStart { self.stack.append(pc + 1) }
            }
        }
        return false
    }
}
