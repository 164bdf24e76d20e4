import NIOHTTP1
import Synchronization
import WeftModel
import WeftQuery
import WeftRuntime
import WeftStorageEngine

/// Gives the query API a coordinator while the node is in a cluster whose data lies on other
/// storage nodes too (nil: the node answers from its own data).
package final class CoordinatorReference: Sendable {
    private let provider = Mutex<(@Sendable () -> Coordinator?)?>(nil)

    package init() {}

    package func set(_ provider: @escaping @Sendable () -> Coordinator?) { self.provider.withLock { $0 = provider } }

    /// The coordinator for a query starting now.
    package var current: Coordinator? { self.provider.withLock { $0 }?() }
}

/// Where one HTTP query reads: this node's snapshot, or every placement of the cluster through a
/// coordinator (its catalogs asked once per query). Used by one query worker at a time.
package final class QueryReads: @unchecked Sendable {
    private let engine: StorageEngine
    private let org: String
    private let coordinator: Coordinator?
    private var holdings: Coordinator.Holdings?
    /// What the cluster reads could not reach so far.
    package private(set) var missing: [MissingData] = []

    package init(engine: StorageEngine, org: String, coordinator: Coordinator?) {
        self.engine = engine
        self.org = org
        self.coordinator = coordinator
    }

    /// Whether the reads go to other nodes.
    package var isDistributed: Bool { self.coordinator != nil }

    /// `request` over everything the org has (the local snapshot, or once per placement in the cluster).
    package func run(_ request: NodeQueryRequest) throws -> NodePartial {
        guard let coordinator = self.coordinator else {
            return try NodeQuery.run(request, snapshot: self.engine.snapshot(org: self.org), store: self.engine.store, context: .live)
        }
        let org = self.org
        let holdings: Coordinator.Holdings
        if let known = self.holdings {
            holdings = known
        } else {
            holdings = try Coordinator.wait { await coordinator.holdings(org: org) }
            self.holdings = holdings
        }
        let (partial, missing) = try Coordinator.wait { try await coordinator.run(request, org: org, holdings: holdings) }
        for m in missing where !self.missing.contains(m) { self.missing.append(m) }
        return partial
    }

    /// Each of `requests`, as ``run(_:)`` gives it; in a cluster up to ``concurrentRequests`` at a time.
    package func runEach(_ requests: [NodeQueryRequest]) throws -> [NodePartial] {
        guard let coordinator = self.coordinator else { return try requests.map { try self.run($0) } }
        guard let first = requests.first else { return [] }
        // The first also asks for the catalogs, once.
        var partials = [try self.run(first)]
        let org = self.org
        let holdings = self.holdings!
        let answers = try Coordinator.wait { () -> [(partial: NodePartial, missing: [MissingData])] in
            try await withThrowingTaskGroup(of: (Int, (partial: NodePartial, missing: [MissingData])).self) { group in
                var answers = [(partial: NodePartial, missing: [MissingData])?](repeating: nil, count: requests.count)
                var next = 1
                while next < min(requests.count, 1 + Self.concurrentRequests) {
                    let i = next
                    group.addTask { (i, try await coordinator.run(requests[i], org: org, holdings: holdings)) }
                    next += 1
                }
                while let (i, answer) = try await group.next() {
                    answers[i] = answer
                    if next < requests.count {
                        let j = next
                        group.addTask { (j, try await coordinator.run(requests[j], org: org, holdings: holdings)) }
                        next += 1
                    }
                }
                return answers.dropFirst().map { $0! }
            }
        }
        for (partial, missing) in answers {
            for m in missing where !self.missing.contains(m) { self.missing.append(m) }
            partials.append(partial)
        }
        return partials
    }

    /// Node requests one query keeps in flight at once in ``runEach(_:)``.
    package static let concurrentRequests = 16

    /// `response` with the `x-weft-partial` header naming the missing data, when some is missing.
    package func flagged(_ response: HTTPResponse) -> HTTPResponse {
        guard !self.missing.isEmpty else { return response }
        var flagged = response
        flagged.headers.add(name: Self.partialHeader, value: self.missing.map(\.description).joined(separator: " "))
        return flagged
    }

    /// A JSON object answer with `"partial": true` and the `missing` list added, when some is missing.
    package func flaggedObject(_ body: [UInt8]) -> [UInt8] {
        guard !self.missing.isEmpty, body.first == UInt8(ascii: "{") else { return body }
        var w = JSONWriter()
        w.object { o in
            o.key("partial")
            o.bool(true)
            o.key("missing")
            o.array { a in
                for m in self.missing {
                    a.object { e in
                        if let placement = m.placement {
                            e.key("placement")
                            e.string(placement)
                        }
                        e.key("nodes")
                        e.array { n in for node in m.nodes { n.string(node) } }
                    }
                }
            }
        }
        // Both are objects: the flag's members, then the answer's.
        var out = Array(w.bytes.dropLast())
        if body.count > 2 { out.append(UInt8(ascii: ",")) }
        out.append(contentsOf: body.dropFirst())
        return out
    }

    /// Names the data a cluster answer lacks: `placement@node,node` entries, `*` for placements
    /// only unreachable nodes may hold.
    package static let partialHeader = "x-weft-partial"
}

/// A refusal from a storage node, answered with its status and message.
extension QueryAPI {
    package static func refused(_ refusal: NodeRefusal) -> HTTPResponse {
        json(HTTPResponseStatus(statusCode: refusal.status), QueryResponses.error(refusal.message))
    }
}
