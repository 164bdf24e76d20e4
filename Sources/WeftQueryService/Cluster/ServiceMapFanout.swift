import WeftModel
import WeftQuery
import WeftStorageEngine

extension Coordinator {
    /// Traces a service map reads again to join calls across placements, at most.
    package static let maxServiceMapJoinTraces = 10_000

    /// The service map over every placement (`request` is a service-map request). Each node sums
    /// the edges of its placements, joining a call whose parent and child spans lie in two of them,
    /// and sends the calls whose parent it did not find (orphans). A trace normally lies in one
    /// placement, so most orphans have no parent anywhere (it was never stored); but a trace written
    /// across a ring change lies in two placements, which two nodes may read. The orphans of traces
    /// that may lie apart (``TraceCandidates``: more than one candidate placement, or a span start
    /// the ring history does not cover) are joined here, against their traces' spans read from every
    /// placement (at most ``maxServiceMapJoinTraces`` traces).
    package func runServiceMap(
        _ request: NodeQueryRequest, org: String, holdings: Holdings, figures: FanoutTally? = nil
    ) async throws -> (partial: NodePartial, missing: [MissingData], holdings: Holdings) {
        let first = try await self.runChecked(request, org: org, holdings: holdings, figures: figures)
        guard case .serviceMap(var map) = first.partial, !map.orphans.isEmpty else { return first }
        let orphans = self.mayLieApart(map.orphans)
        map.orphans = []
        guard !orphans.isEmpty else { return (.serviceMap(map), first.missing, first.holdings) }
        var traces: [TraceID] = []
        var seen = Set<TraceID>()
        for o in orphans where seen.count < Self.maxServiceMapJoinTraces && seen.insert(o.trace).inserted { traces.append(o.trace) }
        var read = request
        read.operation = .traces(traces, startNanos: 0, endNanos: .max)
        let second = try await self.runChecked(read, org: org, holdings: first.holdings, figures: figures)
        guard case .traces(let spans) = second.partial else { throw AggregationError.invalid("not the spans of traces") }
        let joined = ServiceMapExecutor.join(orphans, services: ServiceMapExecutor.services(of: orphans, in: spans.chunks.map(\.batch)))
        for e in joined.edges { map.add(ServiceMapEdge(parent: e.parent, child: e.child, calls: e.calls, errors: e.errors, latency: e.latency)) }
        var missing = first.missing
        for m in second.missing where !missing.contains(m) { missing.append(m) }
        return (.serviceMap(map), missing, second.holdings)
    }

    /// The orphans whose trace may have spans in another placement than theirs: every one when the
    /// coordinator knows no ring history.
    func mayLieApart(_ orphans: [ServiceOrphan]) -> [ServiceOrphan] {
        guard let traceCandidates = self.traceCandidates else { return orphans }
        var candidates: [TraceID: TraceCandidates] = [:]
        var apart = Set<TraceID>()
        for o in orphans {
            let c = candidates[o.trace] ?? traceCandidates(o.trace)
            candidates[o.trace] = c
            if c.placements.count > 1 || !c.covers([o.start]) { apart.insert(o.trace) }
        }
        return orphans.filter { apart.contains($0.trace) }
    }
}
