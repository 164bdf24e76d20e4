/// The name under which a storage node keeps a placement's data: its replica set as sorted node IDs
/// joined by `+` (a `+` never appears in a node ID).
///
/// Two ring ranges with the same nodes in another order share one key: their traces are disjoint, so
/// keeping them together halves the number of placements without mixing anything a coordinator must
/// keep apart (it reads each key from one replica, and every node of the set holds all of it).
public struct PlacementKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// The key of a single node that is not in a cluster.
    public static let local = PlacementKey(rawValue: "local")

    public init(replicas: [NodeID]) {
        self.rawValue = replicas.map(\.rawValue).sorted().joined(separator: "+")
    }

    private init(rawValue: String) { self.rawValue = rawValue }

    /// Parses a key as stored or sent; nil unless it is `local` or `+`-joined valid node IDs in order
    /// and without repeats.
    public init?(parsing text: String) {
        if text == Self.local.rawValue {
            self = .local
            return
        }
        let parts = text.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, parts.count <= 16 else { return nil }
        var ids: [NodeID] = []
        for part in parts {
            guard let id = NodeID(part) else { return nil }
            ids.append(id)
        }
        guard zip(ids, ids.dropFirst()).allSatisfy({ $0.rawValue < $1.rawValue }) else { return nil }
        self.rawValue = text
    }

    /// The nodes of the set, sorted (empty for ``local``).
    public var replicas: [NodeID] {
        self == .local ? [] : self.rawValue.split(separator: "+").compactMap { NodeID(String($0)) }
    }

    public var description: String { self.rawValue }

    public static func < (a: PlacementKey, b: PlacementKey) -> Bool { a.rawValue < b.rawValue }
}
