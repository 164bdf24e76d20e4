import WeftModel
import WeftStorageEngine

/// Distinct attribute names and values, for Grafana's tag autocompletion.
public enum TagCatalog {
    public static let intrinsics = ["duration", "kind", "name", "rootName", "rootServiceName", "status", "statusMessage", "traceDuration"]

    public struct Names: Sendable {
        public var span: [String] = []
        public var resource: [String] = []
        public var includeIntrinsics = true
        public var stats = ScanStats()
    }

    public struct Values: Sendable {
        public var values: [(type: String, value: String)] = []
        public var stats = ScanStats()

        public init(values: [(type: String, value: String)] = [], stats: ScanStats = ScanStats()) {
            self.values = values
            self.stats = stats
        }
    }

    /// Attribute names by scope (`span`, `resource`, `intrinsic`, or nil for all).
    public static func names(in chunks: [HeadChunk], scope: String?) throws(QueryError) -> Names {
        do {
            return try names(scope: scope) { body in chunks.forEach { body($0.batch) } }
        } catch let error as QueryError {
            throw error
        } catch {
            throw QueryError("\(error)")
        }
    }

    /// Head chunks, then block row groups newest first until `blockSpans` spans of blocks were read
    /// (tag autocompletion reflects recent data; a full scan of months of blocks is not worth it).
    public static func eachBatch(snapshot: StorageEngine.Snapshot, store: BlockStore, blockSpans: Int) -> ((SpanBatch) -> Void) throws -> Void {
        { body in
            for chunk in snapshot.chunks { body(chunk.batch) }
            var budget = blockSpans
            for meta in snapshot.blocks.sorted(by: { $0.maxStart > $1.maxStart }) where budget > 0 {
                do {
                    let reader = try store.reader(meta)
                    for g in (0..<reader.groups.count).reversed() where budget > 0 {
                        body(try reader.decodedGroup(g, parts: [.attributes]))
                        budget -= Int(reader.groups.spans[g])
                    }
                } catch {
                    store.quarantine(meta, error)
                }
            }
        }
    }

    /// Attribute names by scope over the batches `forEach` yields.
    public static func names(scope: String?, forEach: ((SpanBatch) -> Void) throws -> Void) throws -> Names {
        switch scope {
        case nil, "", "all", "span", "resource", "intrinsic": break
        default: throw QueryError("parameter 'scope': '\(scope!)' is not one of resource, span, intrinsic")
        }
        var names = Names()
        names.includeIntrinsics = scope == nil || scope == "" || scope == "all" || scope == "intrinsic"
        var span = Set<String>()
        var resource = Set<String>()
        try forEach { b in
            names.stats.chunks += 1
            names.stats.inspectedSpans += b.spanCount
            if scope == nil || scope == "" || scope == "all" || scope == "span" {
                for k in distinct(b.attrs.keys, b.strings.count) { span.insert(b.strings.string(k)) }
            }
            if scope == nil || scope == "" || scope == "all" || scope == "resource" {
                for k in distinct(b.resourceAttrs.keys, b.strings.count) { resource.insert(b.strings.string(k)) }
            }
        }
        names.span = span.sorted()
        names.resource = resource.sorted()
        return names
    }

    /// Distinct values of a tag (`service.name`, `span.x`, `resource.x`, `.x`, or an intrinsic), at most `limit`.
    public static func values(of tag: String, in chunks: [HeadChunk], limit: Int) -> Values {
        // Iterating an array cannot fail.
        try! values(of: tag, limit: limit) { body in chunks.forEach { body($0.batch) } }
    }

    /// Distinct values of a tag over the batches `forEach` yields.
    public static func values(of tag: String, limit: Int, forEach: ((SpanBatch) -> Void) throws -> Void) throws -> Values {
        var result = Values()
        var seen = Set<String>()
        var typed: [(String, String)] = []
        func add(_ type: String, _ value: String) {
            guard typed.count < limit, seen.insert(type + "\u{0}" + value).inserted else { return }
            typed.append((type, value))
        }
        var key = tag
        var scope = TagCondition.Scope.any
        if key.hasPrefix("span.") {
            scope = .span
            key.removeFirst(5)
        } else if key.hasPrefix("resource.") {
            scope = .resource
            key.removeFirst(9)
        } else if key.hasPrefix(".") {
            key.removeFirst()
        }
        try forEach { b in
            result.stats.chunks += 1
            result.stats.inspectedSpans += b.spanCount
            switch (scope, key) {
            case (.any, "name"):
                for id in Set(b.name) { add("string", b.strings.string(id)) }
                return
            case (.any, "status"):
                for code in Set(b.statusCode) { add("keyword", ["unset", "ok", "error"][min(Int(code), 2)]) }
                return
            case (.any, "kind"):
                let kinds = ["unspecified", "internal", "server", "client", "producer", "consumer"]
                for k in Set(b.kind) where Int(k) < kinds.count { add("keyword", kinds[Int(k)]) }
                return
            default: break
            }
            guard let keyID = b.strings.lookup(key) else { return }
            func collect(_ attrs: AttributeColumns) {
                var ids = Set<UInt64>()
                for i in 0..<attrs.count where attrs.keys[i] == keyID {
                    let t = ValueType(rawValue: attrs.types[i]) ?? .empty
                    switch t {
                    case .string: ids.insert(attrs.values[i])
                    case .int: add("int", String(Int64(bitPattern: attrs.values[i])))
                    case .double: add("float", String(Double(bitPattern: attrs.values[i])))
                    case .bool: add("bool", attrs.values[i] != 0 ? "true" : "false")
                    default: break
                    }
                    if typed.count >= limit { break }
                }
                for id in ids { add("string", b.strings.string(UInt32(id))) }
            }
            if scope != .resource { collect(b.attrs) }
            if scope != .span { collect(b.resourceAttrs) }
        }
        result.values = typed.sorted { $0.1 < $1.1 }.map { (type: $0.0, value: $0.1) }
        return result
    }
}

/// The distinct dictionary IDs in `ids` (all below `bound`), with a bitmap rather than hashing.
func distinct(_ ids: [UInt32], _ bound: Int) -> [UInt32] {
    var seen = [Bool](repeating: false, count: bound)
    var result: [UInt32] = []
    for id in ids where !seen[Int(id)] {
        seen[Int(id)] = true
        result.append(id)
    }
    return result
}
