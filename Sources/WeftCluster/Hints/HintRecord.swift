import WeftModel

/// One hint as kept in a hints log: the replica it is for, the org and placement of its spans, and
/// the `SpanBatchCodec` payload that replica missed.
///
/// Encoding: `[target length: UInt16 LE][target][org length: UInt16 LE][org][placement length: UInt16 LE][placement][payload]`.
public struct HintRecord: Sendable, Equatable {
    public var target: NodeID
    public var org: String
    public var placement: PlacementKey
    public var payload: [UInt8]

    public init(target: NodeID, org: String, placement: PlacementKey, payload: [UInt8]) {
        self.target = target
        self.org = org
        self.placement = placement
        self.payload = payload
    }

    /// The record's bytes (nil when a field is longer than 65 535 bytes).
    public func encoded() -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(self.payload.count + 6 + self.target.rawValue.utf8.count + self.org.utf8.count + self.placement.rawValue.utf8.count)
        for field in [self.target.rawValue, self.org, self.placement.rawValue] {
            let bytes = Array(field.utf8)
            guard bytes.count <= Int(UInt16.max) else { return nil }
            out.append(UInt8(bytes.count & 0xff))
            out.append(UInt8(bytes.count >> 8))
            out.append(contentsOf: bytes)
        }
        out.append(contentsOf: self.payload)
        return out
    }

    /// Reads a record written by ``encoded()`` (nil when the bytes are not one).
    public init?(decoding bytes: UnsafeRawBufferPointer) {
        var position = 0
        func field() -> String? {
            guard position + 2 <= bytes.count else { return nil }
            let length = Int(bytes[position]) | Int(bytes[position + 1]) << 8
            position += 2
            guard position + length <= bytes.count else { return nil }
            defer { position += length }
            return String(decoding: bytes[position..<(position + length)], as: UTF8.self)
        }
        guard let target = field().flatMap(NodeID.init), let org = field(), let placement = field().flatMap(PlacementKey.init(parsing:)) else { return nil }
        self.init(target: target, org: org, placement: placement, payload: Array(bytes[position...]))
    }
}
