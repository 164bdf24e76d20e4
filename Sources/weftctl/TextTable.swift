/// A compact plain-text table: a header row, then rows; numeric columns are right-aligned.
struct TextTable {
    enum Alignment { case left, right }

    let header: [String]
    let alignments: [Alignment]
    private(set) var rows: [[String]] = []

    init(_ columns: [(String, Alignment)]) {
        self.header = columns.map(\.0)
        self.alignments = columns.map(\.1)
    }

    mutating func append(_ row: [String]) {
        precondition(row.count == self.header.count, "a row needs one cell per column")
        self.rows.append(row)
    }

    /// The lines, columns two spaces apart, without trailing spaces.
    var lines: [String] {
        let all = [self.header] + self.rows
        var widths = [Int](repeating: 0, count: self.header.count)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return all.map { row in
            var line = ""
            for (i, cell) in row.enumerated() {
                if i > 0 { line += "  " }
                line += self.alignments[i] == .right ? CLI.padLeft(cell, widths[i]) : CLI.padRight(cell, widths[i])
            }
            while line.last == " " { line.removeLast() }
            return line
        }
    }
}

extension CLI {
    /// `1536` → `1.5 KiB`; bytes below 1 KiB as `512 B`.
    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : "\(CLI.fixed(value, value < 10 ? 1 : 0)) \(units[unit])"
    }

    /// `0.4s ago`, `12s ago`, `3m05s ago`, `2h07m ago` for a number of milliseconds.
    static func ago(milliseconds ms: Int) -> String {
        let seconds = Double(ms) / 1000
        if seconds < 10 { return "\(CLI.fixed(seconds, 1))s ago" }
        let s = ms / 1000
        if s < 60 { return "\(s)s ago" }
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        if s < 3600 { return "\(s / 60)m\(two(s % 60))s ago" }
        return "\(s / 3600)h\(two(s % 3600 / 60))m ago"
    }

    /// A share of the ring (1 = all of it) as a percentage with one decimal.
    static func percent(_ share: Double) -> String { "\(CLI.fixed(share * 100, 1))%" }
}
