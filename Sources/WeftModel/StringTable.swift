/// An append-only dictionary of byte strings, each mapped to a dense `UInt32` ID.
///
/// Every table starts with the same well-known strings (``WellKnown``), so their IDs are constants
/// in every batch, head chunk and block: hot code compares integers, never bytes. ID 0 is the empty string.
public struct StringTable: Sendable {
    /// All strings, back to back.
    public private(set) var bytes: [UInt8]
    /// `offsets[id] ..< offsets[id + 1]` is the string with that ID.
    public private(set) var offsets: [UInt32]
    /// ``hash(_:)`` of each string, by ID.
    public private(set) var hashes: [UInt32]
    /// Open-addressing slots holding `id + 1` (0 = empty).
    private var slots: [UInt32]
    private var mask: Int

    public init() {
        self.bytes = []
        self.offsets = [0]
        self.hashes = []
        self.slots = Array(repeating: 0, count: 256)
        self.mask = 255
        self.bytes.reserveCapacity(4096)
        for s in WellKnown.all {
            _ = self.intern(s)
        }
    }

    /// Number of distinct strings, including the empty string.
    @inlinable public var count: Int { self.offsets.count - 1 }

    /// Bytes used by the strings themselves plus their offsets and hash index.
    public var memoryFootprint: Int {
        self.bytes.capacity + self.offsets.capacity * 4 + self.hashes.capacity * 4 + self.slots.capacity * 4
    }

    /// Drops spare capacity once the table stops growing.
    public mutating func shrinkToFit() {
        self.bytes = exactCopy(self.bytes)
        self.offsets = exactCopy(self.offsets)
        self.hashes = exactCopy(self.hashes)
    }

    /// Returns the ID of `string`, adding it if needed.
    public mutating func intern(_ string: String) -> UInt32 {
        var s = string
        return s.withUTF8 { self.intern(UnsafeRawBufferPointer($0)) }
    }

    /// Returns the ID of the bytes, adding them if needed.
    @inline(__always)
    public mutating func intern(_ raw: UnsafeRawBufferPointer) -> UInt32 {
        self.intern(raw, hash: StringTable.hash(raw))
    }

    /// Interns bytes whose ``hash(_:)`` is already known (e.g. from another table).
    @inline(__always)
    public mutating func intern(_ raw: UnsafeRawBufferPointer, hash h: UInt32) -> UInt32 {
        var slot = Int(h) & self.mask
        while true {
            let entry = self.slots[slot]
            if entry == 0 { break }
            let id = Int(entry - 1)
            if self.hashes[id] == h && self.equals(id, raw) { return UInt32(id) }
            slot = (slot + 1) & self.mask
        }
        let id = self.offsets.count - 1
        self.bytes.append(contentsOf: raw)
        self.offsets.append(UInt32(self.bytes.count))
        self.hashes.append(h)
        self.slots[slot] = UInt32(id + 1)
        if self.count * 2 > self.slots.count { self.grow() }
        return UInt32(id)
    }

    /// Returns the ID of the bytes if present, without adding them.
    public func lookup(_ raw: UnsafeRawBufferPointer) -> UInt32? {
        let h = StringTable.hash(raw)
        var slot = Int(h) & self.mask
        while true {
            let entry = self.slots[slot]
            if entry == 0 { return nil }
            let id = Int(entry - 1)
            if self.hashes[id] == h && self.equals(id, raw) { return UInt32(id) }
            slot = (slot + 1) & self.mask
        }
    }

    /// Returns the ID of `string` if present.
    public func lookup(_ string: String) -> UInt32? {
        var s = string
        return s.withUTF8 { self.lookup(UnsafeRawBufferPointer($0)) }
    }

    /// The string with this ID, decoded as UTF-8 (invalid sequences are repaired).
    public func string(_ id: UInt32) -> String {
        self.withBytes(id) { String(decoding: $0, as: UTF8.self) }
    }

    /// The raw bytes with this ID.
    public func data(_ id: UInt32) -> [UInt8] {
        let start = Int(self.offsets[Int(id)])
        let end = Int(self.offsets[Int(id) + 1])
        return Array(self.bytes[start..<end])
    }

    /// Calls `body` with the bytes of this ID.
    @inlinable
    public func withBytes<R>(_ id: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = Int(self.offsets[Int(id)])
        let end = Int(self.offsets[Int(id) + 1])
        return try self.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
    }

    /// Length in bytes of the string with this ID.
    @inlinable
    public func length(_ id: UInt32) -> Int { Int(self.offsets[Int(id) + 1] - self.offsets[Int(id)]) }

    private func equals(_ id: Int, _ raw: UnsafeRawBufferPointer) -> Bool {
        let start = Int(self.offsets[id])
        let end = Int(self.offsets[id + 1])
        guard end - start == raw.count else { return false }
        if raw.count == 0 { return true }
        return self.bytes.withUnsafeBytes { all in
            memcmpBytes(all.baseAddress! + start, raw.baseAddress!, raw.count)
        }
    }

    private mutating func grow() {
        let newCount = self.slots.count * 2
        var slots = [UInt32](repeating: 0, count: newCount)
        let mask = newCount - 1
        for id in 0..<self.count {
            var slot = Int(self.hashes[id]) & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = UInt32(id + 1)
        }
        self.slots = slots
        self.mask = mask
    }

    /// A fast non-cryptographic hash of bytes (wyhash-style multiply-fold; short strings take one multiply).
    @inlinable @inline(__always)
    public static func hash(_ raw: UnsafeRawBufferPointer) -> UInt32 {
        let n = raw.count
        guard let p = raw.baseAddress, n > 0 else { return 0x2D35_8DCC }
        var a: UInt64
        var b: UInt64
        var seed: UInt64 = 0xA076_1D64_78BD_642F ^ UInt64(n)
        if n <= 16 {
            if n >= 8 {
                a = p.loadUnaligned(as: UInt64.self)
                b = p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            } else if n >= 4 {
                a = UInt64(p.loadUnaligned(as: UInt32.self))
                b = UInt64(p.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self))
            } else {
                a = UInt64(p.load(as: UInt8.self)) << 16 | UInt64(p.load(fromByteOffset: n >> 1, as: UInt8.self)) << 8
                    | UInt64(p.load(fromByteOffset: n - 1, as: UInt8.self))
                b = 0
            }
        } else {
            var i = 0
            while i + 16 < n {
                seed = fold(p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ 0xE703_7ED1_A0B4_28DB,
                            p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self) ^ seed)
                i += 16
            }
            a = p.loadUnaligned(fromByteOffset: n - 16, as: UInt64.self)
            b = p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
        }
        let h = fold(a ^ 0xE703_7ED1_A0B4_28DB, b ^ seed)
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    @inlinable @inline(__always)
    static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let r = a.multipliedFullWidth(by: b)
        return r.high ^ r.low
    }
}

@usableFromInline
func memcmpBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    if n >= 8 {
        var i = 0
        while i + 8 < n {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                return false
            }
            i += 8
        }
        // The last (possibly overlapping) word.
        return a.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) == b.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
    }
    if n >= 4 {
        return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
            && a.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self) == b.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
    }
    var i = 0
    while i < n {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        i += 1
    }
    return true
}
