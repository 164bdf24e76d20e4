import Testing
import WeftCluster
import WeftIngest
import WeftModel

struct ReplicaPlanTests {
    @Test func test_parts_holdEveryRowOnce_inThePlacementOfItsTrace_andDecodeFromTheirPayload() throws {
        let batch = try generatedBatch(spans: 3000, seed: 11)
        let lookup = ring(["a", "b", "c", "d", "e"]).writes
        let parts = ReplicaPlan.parts(of: batch, on: lookup)
        #expect(parts.count > 1)
        #expect(Set(parts.map(\.key)).count == parts.count, "one part per placement key")
        #expect(parts.reduce(0) { $0 + $1.batch.spanCount } == batch.spanCount)
        var seen: [UInt64] = []
        for part in parts {
            #expect(part.replicas.count == 3)
            #expect(part.key == PlacementKey(replicas: part.replicas))
            for row in 0..<part.batch.spanCount {
                #expect(PlacementKey(replicas: lookup.replicas(for: part.batch.traceID(row))) == part.key)
            }
            let decoded = try part.payload.withUnsafeReadableBytes { bytes throws(SpanBatchCodec.DecodeError) in try SpanBatchCodec.decode(bytes) }
            #expect(decoded.spanID == part.batch.spanID)
            #expect(decoded.traceLow == part.batch.traceLow)
            seen += part.batch.spanID
        }
        #expect(seen.sorted() == batch.spanID.sorted())
    }

    @Test func test_onePlacement_keepsTheBatch_andLocalOnlyPartsAreNotEncoded() throws {
        let batch = try generatedBatch(spans: 200, seed: 5)
        let lookup = ring(["solo"]).writes
        let remote = ReplicaPlan.parts(of: batch, on: lookup)
        #expect(remote.count == 1)
        #expect(remote[0].batch.spanID == batch.spanID)
        #expect(remote[0].payload.readableBytes > 0)
        let local = ReplicaPlan.parts(of: batch, on: lookup, local: NodeID("solo")!)
        #expect(local[0].payload.readableBytes == 0)
    }

    @Test func test_emptyBatchOrRing_givesNoParts() throws {
        #expect(ReplicaPlan.parts(of: SpanBatch(), on: ring(["a"]).writes).isEmpty)
        #expect(ReplicaPlan.parts(of: try generatedBatch(spans: 10, seed: 1), on: .empty).isEmpty)
    }

    /// Rows started before a join keep the old ring's placements; later rows take the new ring's; a
    /// placement whose member now drains is written to a stand-in; every row is in exactly one part.
    @Test func test_history_placesEachRowByTheRingInForceAtItsStart() throws {
        var batch = try generatedBatch(spans: 2000, seed: 21)
        let base = batch.startTime.min()!
        let change = base + 1_000_000_000
        for row in 0..<batch.spanCount where row % 2 == 0 { batch.startTime[row] = change + UInt64(row) }
        for row in 0..<batch.spanCount where row % 2 == 1 { batch.startTime[row] = base + UInt64(row) }
        let old = ring(["a", "b", "c", "d"])
        var state = ring(["a", "b", "c", "d", "e"]).state
        state.apply(RingEntry(nodeID: NodeID("d")!, version: 2, state: .leaving, address: NodeAddress(host: "d", port: 9400)!))
        let new = Ring(state: state, replicationFactor: 3)
        var history = WriteRingHistory(requestedReplicationFactor: 3)
        history.observe(old.writes, now: base - 1)
        history.observe(new.writes, now: change)
        let parts = ReplicaPlan.parts(of: batch, history: history, ring: new.state, now: change + 2_000_000_000)
        #expect(parts.reduce(0) { $0 + $1.batch.spanCount } == batch.spanCount)
        #expect(Set(parts.map(\.key)).count == parts.count)
        var sawStandIn = false
        for part in parts {
            #expect(!part.replicas.contains(NodeID("d")!), "no write to a draining node")
            for row in 0..<part.batch.spanCount {
                let lookup = part.batch.startTime[row] >= change ? new.writes : old.writes
                #expect(PlacementKey(replicas: lookup.replicas(for: part.batch.traceID(row))) == part.key)
            }
            if part.key.replicas.contains(NodeID("d")!) {
                sawStandIn = true
                #expect(part.replicas == DesiredHolders.writeTargets(of: part.key, ring: new.state, preferring: Set(old.writes.nodes)))
                #expect(part.replicas.count == 3)
            } else {
                #expect(Set(part.replicas) == Set(part.key.replicas))
            }
        }
        #expect(sawStandIn)
        // With every span newer than the change, the parts are the current ring's.
        var fresh = try generatedBatch(spans: 300, seed: 22)
        for row in 0..<fresh.spanCount { fresh.startTime[row] = change + UInt64(row) }
        let byHistory = ReplicaPlan.parts(of: fresh, history: history, ring: new.state, now: change)
        let byRing = ReplicaPlan.parts(of: fresh, on: new.writes)
        #expect(byHistory.map(\.key) == byRing.map(\.key))
    }
}
