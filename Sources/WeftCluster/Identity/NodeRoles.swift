/// The roles a node runs (`weft serve --roles ingest,storage,query`). Only storage nodes own ring tokens.
public struct NodeRoles: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let ingest = NodeRoles(rawValue: 1 << 0)
    public static let storage = NodeRoles(rawValue: 1 << 1)
    public static let query = NodeRoles(rawValue: 1 << 2)
    public static let all: NodeRoles = [.ingest, .storage, .query]

    /// The role names, in the order ingest, storage, query.
    public var names: [String] {
        var names: [String] = []
        if self.contains(.ingest) { names.append("ingest") }
        if self.contains(.storage) { names.append("storage") }
        if self.contains(.query) { names.append("query") }
        return names
    }

    public var description: String { self.names.joined(separator: ",") }
}
