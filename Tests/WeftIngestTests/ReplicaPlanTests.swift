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
}
