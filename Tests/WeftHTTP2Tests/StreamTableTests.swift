import Testing
@testable import WeftHTTP2
import WeftTestSupport

/// `StreamTable` against a `Dictionary` under seeded random operations shaped like HTTP/2 traffic:
/// IDs of one parity that mostly increase by 2, sometimes jump far ahead, removed in any order.
struct StreamTableTests {
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func test_matchesADictionary_underRandomTraffic(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var table = StreamTable<Int>(capacity: 4)
        var reference: [Int32: Int] = [:]
        var nextID: Int32 = seed % 2 == 0 ? 2 : 1
        for step in 0..<20_000 {
            let live = Array(reference.keys)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5 where reference.count < 300:
                // Open: usually the next ID, sometimes far ahead (a peer may skip IDs).
                nextID += Int.random(in: 0..<20, using: &rng) == 0 ? 2 * Int32.random(in: 1...5_000, using: &rng) : 2
                table[nextID] = step
                reference[nextID] = step
            case 5..<8 where !live.isEmpty:
                let id = live.randomElement(using: &rng)!
                #expect(table.removeValue(forKey: id) == reference.removeValue(forKey: id))
            case 8 where !live.isEmpty:
                let id = live.randomElement(using: &rng)!
                table[id] = -step
                reference[id] = -step
            default:
                let id = nextID - 2 * Int32.random(in: 0...400, using: &rng)
                if id > 0 {
                    #expect(table[id] == reference[id])
                    #expect(table.removeValue(forKey: id + 1_000_000) == nil)
                }
            }
            #expect(table.count == reference.count)
        }
        for (id, value) in reference { #expect(table[id] == value) }
        #expect(table.allValues.sorted() == reference.values.sorted())
        table.removeAll()
        #expect(table.isEmpty && table[nextID] == nil)
    }
}
