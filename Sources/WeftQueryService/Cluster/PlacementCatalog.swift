import WeftAggregates
import WeftStorageEngine

/// What one storage node holds: for each org, the placements of its head and blocks with the time
/// range of their spans and whether the node is in sync for them, and the hints it holds pending for
/// other nodes. A coordinator asks every storage node for it before planning a query, and prefers
/// holders that are in sync and have no hints pending for them.
package struct PlacementCatalog: Sendable, Equatable {
    /// One placement of one org on the node.
    package struct Entry: Sendable, Equatable {
        package var org: String
        package var placement: String
        /// Earliest and latest span start, unix nanoseconds.
        package var minStart: UInt64
        package var maxStart: UInt64
        /// False while the node knows it lacks spans of the placement (anti-entropy found a holder
        /// with spans it does not have, and they have not all arrived yet).
        package var inSync: Bool

        package init(org: String, placement: String, minStart: UInt64, maxStart: UInt64, inSync: Bool = true) {
            self.org = org
            self.placement = placement
            self.minStart = minStart
            self.maxStart = maxStart
            self.inSync = inSync
        }
    }

    /// Hints the node holds, not delivered yet, for another node's copy of one placement.
    package struct PendingHints: Sendable, Equatable {
        package var target: String
        package var org: String
        package var placement: String
        package var hints: Int

        package init(target: String, org: String, placement: String, hints: Int) {
            self.target = target
            self.org = org
            self.placement = placement
            self.hints = hints
        }
    }

    package var entries: [Entry]
    package var pendingHints: [PendingHints]

    package init(entries: [Entry], pendingHints: [PendingHints] = []) {
        self.entries = entries
        self.pendingHints = pendingHints
    }

    /// The placements `engine` holds now, sorted by org and placement; those in `lacking` (org,
    /// placement) are marked not in sync.
    /// - Parameter only: the one org to list (nil: every org the engine holds).
    package static func of(
        _ engine: StorageEngine, lacking: Set<PartitionKey> = [], pendingHints: [PendingHints] = [], only: String? = nil
    ) -> PlacementCatalog {
        let orgs = only.map { [$0] } ?? Set(engine.head.orgs()).union(engine.blocks.map(\.org)).sorted()
        var entries: [Entry] = []
        for org in orgs {
            let snapshot = engine.snapshot(org: org)
            var ranges: [String: (UInt64, UInt64)] = [:]
            func add(_ placement: String, _ minStart: UInt64, _ maxStart: UInt64) {
                let old = ranges[placement] ?? (.max, 0)
                ranges[placement] = (min(old.0, minStart), max(old.1, maxStart))
            }
            for chunk in snapshot.chunks { add(chunk.placement, chunk.minStart, chunk.maxStart) }
            for block in snapshot.blocks { add(block.placement, block.minStart, block.maxStart) }
            for (placement, range) in ranges.sorted(by: { $0.key < $1.key }) {
                let inSync = !lacking.contains(PartitionKey(org: org, placement: placement))
                entries.append(Entry(org: org, placement: placement, minStart: range.0, maxStart: range.1, inSync: inSync))
            }
        }
        return PlacementCatalog(entries: entries, pendingHints: pendingHints)
    }

    /// What a plan for `org` over spans started in `range` (nil: any) takes from this catalog: the
    /// placements whose spans reach into the range, whether the node is in sync for each, the
    /// placements it holds hints for (by target), and with `latest` each placement's latest span
    /// start (a limited search stops waiting for nodes by it). Two catalogs with the same
    /// fingerprint give the same plan; spans arriving in placements already in range do not change it.
    package func fingerprint(org: String, range: ClosedRange<UInt64>?, latest: Bool) -> CatalogFingerprint {
        var w = ByteWriter()
        let relevant = self.entries.filter { e in e.org == org && range.map { e.minStart <= $0.upperBound && e.maxStart >= $0.lowerBound } ?? true }
        for e in relevant.sorted(by: { $0.placement < $1.placement }) {
            w.varint(UInt64(e.placement.utf8.count))
            w.raw(e.placement.utf8)
            w.raw([e.inSync ? 1 : 0])
            if latest { w.fixed64(e.maxStart) }
        }
        // Entries and hints apart, whatever the names.
        w.raw([0xff])
        let hinted = Set(self.pendingHints.filter { $0.org == org && $0.hints > 0 }.map { [$0.target, $0.placement] })
        for pair in hinted.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            for text in pair {
                w.varint(UInt64(text.utf8.count))
                w.raw(text.utf8)
            }
        }
        return CatalogFingerprint(of: w.bytes)
    }

    static let wireVersion: UInt64 = 2

    /// `[version][count]` then per entry: org, placement (length-prefixed UTF-8), min and max start,
    /// `[in sync: 0/1]`; then `[count]` of pending hints: target, org, placement, `[hints varint]`.
    /// Version 1 (no in-sync byte, no hints) still decodes, as in sync.
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
            w.raw([e.inSync ? 1 : 0])
        }
        w.varint(UInt64(self.pendingHints.count))
        for h in self.pendingHints {
            for text in [h.target, h.org, h.placement] {
                w.varint(UInt64(text.utf8.count))
                w.raw(text.utf8)
            }
            w.varint(UInt64(h.hints))
        }
        return w.bytes
    }

    /// - Throws: ``BlockFormatError`` on malformed, truncated or trailing input.
    package static func decode(_ bytes: [UInt8]) throws -> PlacementCatalog {
        try bytes.withUnsafeBytes { raw throws(BlockFormatError) in
            var r = ByteReader(raw)
            let version = try r.varint()
            guard version == 1 || version == Self.wireVersion else { throw BlockFormatError("unknown catalog version") }
            func texts(_ k: Int) throws(BlockFormatError) -> [String] {
                var texts: [String] = []
                for _ in 0..<k {
                    let n = try r.count(max: 1 << 16)
                    texts.append(String(decoding: try r.raw(n), as: UTF8.self))
                }
                return texts
            }
            let count = try r.count(max: 1 << 24)
            var entries: [Entry] = []
            for _ in 0..<count {
                let t = try texts(2)
                var entry = Entry(org: t[0], placement: t[1], minStart: try r.fixed64(), maxStart: try r.fixed64())
                if version >= 2 {
                    let flag = try r.raw(1)[0]
                    guard flag <= 1 else { throw BlockFormatError("bad in-sync flag \(flag)") }
                    entry.inSync = flag == 1
                }
                entries.append(entry)
            }
            var pending: [PendingHints] = []
            if version >= 2 {
                let hints = try r.count(max: 1 << 24)
                for _ in 0..<hints {
                    let t = try texts(3)
                    pending.append(PendingHints(target: t[0], org: t[1], placement: t[2], hints: Int(try r.count(max: Int.max >> 1))))
                }
            }
            guard r.isAtEnd else { throw BlockFormatError("trailing bytes after the catalog") }
            return PlacementCatalog(entries: entries, pendingHints: pending)
        }
    }
}

/// A 128-bit FNV-1a hash of what a plan takes from one node's catalog
/// (``PlacementCatalog/fingerprint(org:range:latest:)``), sent with a node request so the node can
/// tell the coordinator planned with a catalog that is no longer its own.
package struct CatalogFingerprint: Sendable, Hashable, CustomStringConvertible {
    package var value: UInt128

    package init(value: UInt128) { self.value = value }

    init(of bytes: [UInt8]) {
        var h: UInt128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d
        for b in bytes {
            h ^= UInt128(b)
            h = h &* 0x0000_0000_0100_0000_0000_0000_0000_013b
        }
        self.value = h
    }

    /// 32 lowercase hex digits.
    package var description: String {
        let hex = String(self.value, radix: 16)
        return String(repeating: "0", count: 32 - hex.count) + hex
    }

    /// Parses ``description``'s form.
    package init?(_ text: String) {
        guard text.utf8.count == 32, let v = UInt128(text, radix: 16) else { return nil }
        self.value = v
    }
}
