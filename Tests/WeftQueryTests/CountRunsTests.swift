import Testing
@testable import WeftQuery
import WeftModel

/// Counting rows into cells: the run-length path (most rows continue their neighbour's cell) and the
/// row-by-row path (short runs) give the counts of a plain loop.
struct CountRunsTests {
    /// Cells in runs of random length (1 to `longestRun`) over `cellCount` cells.
    static func cells(seed: UInt64, rows: Int, cellCount: Int, longestRun: Int) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        var out: [Int32] = []
        while out.count < rows {
            let cell = Int32(rng.next() % UInt64(cellCount))
            let run = 1 + Int(rng.next() % UInt64(longestRun))
            out += repeatElement(cell, count: min(run, rows - out.count))
        }
        return out
    }

    @Test(arguments: [(1, 1), (1, 40), (7, 1), (7, 3), (7, 50), (5_000, 2), (5_000, 64)] as [(Int, Int)])
    func test_addOnes_matchesAPlainLoop(cellCount: Int, longestRun: Int) {
        for seed in 1...5 as ClosedRange<UInt64> {
            for rows in [0, 1, 2, 17, 16_384] {
                let cells = Self.cells(seed: seed, rows: rows, cellCount: cellCount, longestRun: longestRun)
                var expected = [UInt64](repeating: 3, count: cellCount)
                for c in cells { expected[Int(c)] += 1 }
                var counts = [UInt64](repeating: 3, count: cellCount)
                counts.withUnsafeMutableBufferPointer { out in
                    cells.withUnsafeBufferPointer { Worker.addOnes($0, to: out) }
                }
                #expect(counts == expected, "seed \(seed), \(rows) rows")
            }
        }
    }
}
