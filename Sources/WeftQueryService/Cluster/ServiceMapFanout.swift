import WeftModel
import WeftQuery
import WeftStorageEngine

extension Coordinator {
    /// The service map over every placement (`request` is a service-map request). Each node sums
    /// the edges of its placements, joining a call whose parent and child spans lie in two of them,
    /// and sends the calls whose parent it did not find (orphans). A trace normally lies in one
    /// placement, so most orphans have no parent anywhere (it was never stored); but a trace written
    /// across a ring change lies in two placements, which two nodes may read. The orphans of traces
    /// that may lie apart (``TraceCandidates``: more than one candidate placement, or a span start
    /// the ring history does not cover) are joined here: round 2 asks every placement for the
    /// services of their parent spans (at most ``ServiceMapPartial/maxOrphans`` of them).
    package func runServiceMap(
        _ request: NodeQueryRequest, org: String, holdings: Holdings, figures: FanoutTally? = nil
    ) async throws -> (partial: NodePartial, missing: [MissingData], holdings: Holdings) {
        let first = try await self.runChecked(request, org: org, holdings: holdings, figures: figures)
        guard case .serviceMap(var map) = first.partial, !map.orphans.isEmpty else { return first }
        let orphans = self.mayLieApart(map.orphans)
        map.orphans = []
        guard !orphans.isEmpty else { return (.serviceMap(map), first.missing, first.holdings) }
        var parents: [ServiceMapExecutor.SpanKey] = []
        var seen = Set<ServiceMapExecutor.SpanKey>()
        for o in orphans where parents.count < ServiceMapPartial.maxOrphans {
            let key = ServiceMapExecutor.SpanKey(trace: o.trace, span: o.parentSpanID)
            if seen.insert(key).inserted { parents.append(key) }
        }
        var read = request
        read.operation = .spanServices(parents)
        let second = try await self.runChecked(read, org: org, holdings: first.holdings, figures: figures)
        guard case .spanServices(let found) = second.partial else { throw AggregationError.invalid("not the services of spans") }
        for e in ServiceMapExecutor.join(orphans, services: found.services).edges { map.add(e) }
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
