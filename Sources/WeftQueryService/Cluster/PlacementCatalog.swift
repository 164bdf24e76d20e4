import WeftAggregates
import WeftStorageEngine

/// What one storage node holds: for each org, the placements of its head and blocks with the time
/// range of their spans. A coordinator asks every storage node for it before planning a query.
package struct PlacementCatalog: Sendable, Equatable {
    /// One placement of one org on the node.
    package struct Entry: Sendable, Equatable {
        package var org: String
        package var placement: String
        /// Earliest and latest span start, unix nanoseconds.
        package var minStart: UInt64
        package var maxStart: UInt64

        package init(org: String, placement: String, minStart: UInt64, maxStart: UInt64) {
            self.org = org
            self.placement = placement
            self.minStart = minStart
            self.maxStart = maxStart
        }
    }

    package var entries: [Entry]

    package init(entries: [Entry]) { self.entries = entries }

    /// The placements `engine` holds now, sorted by org and placement.
    package static func of(_ engine: StorageEngine) -> PlacementCatalog {
        let orgs = Set(engine.head.orgs()).union(engine.blocks.map(\.org))
        var entries: [Entry] = []
        for org in orgs.sorted() {
            let snapshot = engine.snapshot(org: org)
            var ranges: [String: (UInt64, UInt64)] = [:]
            func add(_ placement: String, _ minStart: UInt64, _ maxStart: UInt64) {
                let old = ranges[placement] ?? (.max, 0)
                ranges[placement] = (min(old.0, minStart), max(old.1, maxStart))
            }
            for chunk in snapshot.chunks { add(chunk.placement, chunk.minStart, chunk.maxStart) }
            for block in snapshot.blocks { add(block.placement, block.minStart, block.maxStart) }
            for (placement, range) in ranges.sorted(by: { $0.key < $1.key }) {
                entries.append(Entry(org: org, placement: placement, minStart: range.0, maxStart: range.1))
            }
        }
        return PlacementCatalog(entries: entries)
    }

    static let wireVersion: UInt64 = 1

    /// `[version][count]` then per entry: org, placement (length-prefixed UTF-8), min and max start.
    package func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.varint(Self.wireVersion)
        w.varint(UInt64(self.entries.count))
        for e in self.entries {
            for text in [e.org, e.placement] {
                w.varint(UInt64(text.utf8.count))
                w.raw(text.utf8)
            }
            w.fixed64(e.minStart)
            w.fixed64(e.maxStart)
        }
        return w.bytes
    }

    /// - Throws: ``BlockFormatError`` on malformed, truncated or trailing input.
    package static func decode(_ bytes: [UInt8]) throws -> PlacementCatalog {
        try bytes.withUnsafeBytes { raw throws(BlockFormatError) in
            var r = ByteReader(raw)
            guard try r.varint() == Self.wireVersion else { throw BlockFormatError("unknown catalog version") }
            let count = try r.count(max: 1 << 24)
            var entries: [Entry] = []
            for _ in 0..<count {
                var texts: [String] = []
                for _ in 0..<2 {
                    let n = try r.count(max: 1 << 16)
                    texts.append(String(decoding: try r.raw(n), as: UTF8.self))
                }
                entries.append(Entry(org: texts[0], placement: texts[1], minStart: try r.fixed64(), maxStart: try r.fixed64()))
            }
            guard r.isAtEnd else { throw BlockFormatError("trailing bytes after the catalog") }
            return PlacementCatalog(entries: entries)
        }
    }
}
