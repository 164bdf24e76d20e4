import NIOCore
import WeftCluster
import WeftModel

/// One part of a replicated write: the spans of one placement, with the payload its remote replicas
/// receive (encoded once, shared by every push).
public struct ReplicaPart: Sendable {
    /// The name the replicas keep the spans under.
    public let key: PlacementKey
    /// The replica set.
    public let replicas: [NodeID]
    public let batch: SpanBatch
    /// The `SpanBatchCodec` encoding of ``batch``; empty when no replica is remote.
    public let payload: ByteBuffer
}

/// Splits a batch by the placement of each trace on a write ring.
public enum ReplicaPlan {
    /// The parts of `batch` on `lookup`, one per placement key, in the order they first appear (ring
    /// ranges whose replica sets differ only in order share a key, so they share a part). Each row's
    /// trace is hashed once; a batch of one part is kept as it is (no copy). Parts whose replicas are
    /// all `local` are not encoded. An empty batch or ring gives no parts.
    public static func parts(of batch: SpanBatch, on lookup: ReplicaLookup, local: NodeID? = nil) -> [ReplicaPart] {
        guard batch.spanCount > 0, lookup.placementCount > 0 else { return [] }
        // Ring placement -> dense part index (through its key on first sight), then the rows of each part.
        var dense = [Int32](repeating: -1, count: lookup.placementCount)
        var partOfKey: [PlacementKey: Int] = [:]
        var keys: [PlacementKey] = []
        var replicaSets: [[NodeID]] = []
        var rows: [[Int]] = []
        for row in 0..<batch.spanCount {
            let placement = lookup.placement(for: batch.traceID(row))
            var index = Int(dense[placement])
            if index < 0 {
                let replicas = lookup.replicas(ofPlacement: placement)
                let key = PlacementKey(replicas: replicas)
                if let known = partOfKey[key] {
                    index = known
                } else {
                    index = keys.count
                    partOfKey[key] = index
                    keys.append(key)
                    replicaSets.append(replicas)
                    rows.append([])
                }
                dense[placement] = Int32(index)
            }
            rows[index].append(row)
        }
        return keys.indices.map { index in
            let part = keys.count == 1 ? batch : batch.subset(rows: rows[index])
            let remote = replicaSets[index].contains { $0 != local }
            return ReplicaPart(key: keys[index], replicas: replicaSets[index], batch: part, payload: remote ? Self.encode(part) : ByteBuffer())
        }
    }

    /// The `SpanBatchCodec` encoding of `batch`, written straight into a buffer.
    public static func encode(_ batch: SpanBatch) -> ByteBuffer {
        let bound = SpanBatchCodec.encodedSizeBound(batch)
        var buffer = ByteBufferAllocator().buffer(capacity: bound)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { SpanBatchCodec.encode(batch, into: $0) }
        return buffer
    }
}
