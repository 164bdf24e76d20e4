import Foundation
import Testing
import WeftModel
import WeftQueryService

/// The response writer's fast paths (escape runs, digits and hex written in place) must give what a
/// strict JSON parser reads back, for random strings and numbers.
struct JSONWriterTests {
    @Test func stringsRoundTripThroughAStrictParser() throws {
        var rng = SplitMix64(seed: 11)
        let alphabet: [Character] = ["a", "Z", "0", " ", "\"", "\\", "\n", "\r", "\t", "\u{01}", "\u{1F}", "é", "→", "😀", "/", "{"]
        for _ in 0..<500 {
            let s = String((0..<Int(rng.next() % 24)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            var w = JSONWriter()
            w.array { a in
                a.string(s)
                a.object { o in
                    o.key(s)
                    o.string(s)
                }
            }
            let parsed = try JSONSerialization.jsonObject(with: Data(w.bytes)) as! [Any]
            #expect(parsed[0] as? String == s)
            #expect((parsed[1] as? [String: String])?[s] == s)
        }
    }

    @Test func numbersAndQuotedDigitsMatchTheirDecimalForm() throws {
        var rng = SplitMix64(seed: 12)
        let edges: [UInt64] = [0, 1, 9, 10, 99, 100, UInt64(Int64.max), UInt64.max]
        for v in edges + (0..<300).map({ _ in rng.next() >> (rng.next() % 64) }) {
            let i = Int(truncatingIfNeeded: v)
            var w = JSONWriter()
            w.array { a in
                a.string(decimal: v)
                a.number(v)
                a.number(i)
                a.string(hex: v)
                a.string(hex: v, trimmed: true)
            }
            #expect(String(decoding: w.bytes, as: UTF8.self) == "[\"\(v)\",\(v),\(i),\"\(Hex.encode(v))\",\"\(String(v, radix: 16))\"]")
        }
    }

    @Test func traceIDsArePrintedAsTempoPrintsThem() {
        var rng = SplitMix64(seed: 13)
        let ids = [TraceID(high: 0, low: 0), TraceID(high: 0, low: 1), TraceID(high: 1, low: 0), TraceID(high: 0, low: .max)]
            + (0..<200).map { _ in TraceID(high: rng.next() >> (rng.next() % 65 == 64 ? 63 : rng.next() % 64), low: rng.next() >> (rng.next() % 64)) }
        for id in ids {
            var w = JSONWriter()
            w.string(trimmedHexHigh: id.high, low: id.low)
            #expect(String(decoding: w.bytes, as: UTF8.self) == "\"\(QueryResponses.tempoTraceID(id))\"")
        }
    }
}
