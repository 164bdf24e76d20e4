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

    /// Attribute names over head chunks, then block row groups newest first until `blockSpans` spans of
    /// blocks were read (tag autocompletion reflects recent data; a full scan of months of blocks is
    /// not worth it). Distinct values, by contrast, read everything in range (``DistinctValues``).
    public static func names(scope: String?, snapshot: StorageEngine.Snapshot, store: BlockStore, blockSpans: Int) throws -> Names {
        var names = try self.names(scope: scope) { body in snapshot.chunks.forEach { body($0.batch) } }
        var span = Set(names.span), resource = Set(names.resource)
        let wantSpan = self.includes(scope, "span"), wantResource = self.includes(scope, "resource")
        var budget = blockSpans
        for meta in snapshot.blocks.sorted(by: { $0.maxStart > $1.maxStart }) where budget > 0 {
            do {
                // A row group's span keys come from its attribute layout's key list, without its rows.
                let reader = try store.reader(meta)
                names.stats.blocks += 1
                var keys = Set<UInt32>()
                for g in (0..<reader.groups.count).reversed() where budget > 0 {
                    if wantSpan { keys.formUnion(try reader.spanAttributeKeys(g)) }
                    names.stats.chunks += 1
                    names.stats.inspectedSpans += Int(reader.groups.spans[g])
                    budget -= Int(reader.groups.spans[g])
                }
                for k in keys { span.insert(try reader.dictionary.string(k)) }
                if wantResource {
                    let resources = try reader.blockLevelBatch(strings: StringTable())
                    for k in Set(resources.resourceAttrs.keys) { resource.insert(try reader.dictionary.string(k)) }
                }
            } catch {
                store.quarantine(meta, error)
            }
        }
        names.span = span.sorted()
        names.resource = resource.sorted()
        return names
    }

    /// Whether names of `scope` list the intrinsics.
    public static func includesIntrinsics(_ scope: String?) -> Bool { self.includes(scope, "intrinsic") }

    /// Whether names of `scope` (nil, empty or `all` for every scope) list those of `name`.
    static func includes(_ scope: String?, _ name: String) -> Bool { scope == nil || scope == "" || scope == "all" || scope == name }

    /// Attribute names by scope over the batches `forEach` yields.
    static func names(scope: String?, forEach: ((SpanBatch) -> Void) throws -> Void) throws -> Names {
        switch scope {
        case nil, "", "all", "span", "resource", "intrinsic": break
        default: throw QueryError("parameter 'scope': '\(scope!)' is not one of resource, span, intrinsic")
        }
        var names = Names()
        names.includeIntrinsics = self.includesIntrinsics(scope)
        var span = Set<String>()
        var resource = Set<String>()
        try forEach { b in
            names.stats.chunks += 1
            names.stats.inspectedSpans += b.spanCount
            if self.includes(scope, "span") {
                for k in distinct(b.attrs.keys, b.strings.count) { span.insert(b.strings.string(k)) }
            }
            if self.includes(scope, "resource") {
                for k in distinct(b.resourceAttrs.keys, b.strings.count) { resource.insert(b.strings.string(k)) }
            }
        }
        names.span = span.sorted()
        names.resource = resource.sorted()
        return names
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
