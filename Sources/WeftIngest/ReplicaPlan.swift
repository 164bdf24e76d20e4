import NIOCore
import WeftCluster
import WeftModel

/// One part of a replicated write: the spans of one placement, with the payload its remote replicas
/// receive (encoded once, shared by every push).
public struct ReplicaPart: Sendable {
    /// The name the replicas keep the spans under.
    public let key: PlacementKey
    /// The nodes it is written to: the replica set, or for a placement of an earlier write ring its
    /// current write targets.
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
        var grouping = Grouping()
        var dense = [Int32](repeating: -1, count: lookup.placementCount)
        for row in 0..<batch.spanCount {
            let placement = lookup.placement(for: batch.traceID(row))
            var index = Int(dense[placement])
            if index < 0 {
                let replicas = lookup.replicas(ofPlacement: placement)
                index = grouping.part(for: PlacementKey(replicas: replicas), targets: replicas)
                dense[placement] = Int32(index)
            }
            grouping.rows[index].append(row)
        }
        return grouping.parts(of: batch, local: local)
    }

    /// The parts of `batch` when each span is placed by the write ring in force at its start time
    /// (see `WriteRingHistory`): spans sent again after a ring change keep the placement they had.
    /// A part from an earlier ring is written to `DesiredHolders.writeTargets` of its key on `ring`
    /// (a member that left or drains is replaced, preferably by a node of that earlier ring). With one epoch, or spans all newer than the last
    /// change, this is `parts(of:on:local:)` on the current ring.
    public static func parts(of batch: SpanBatch, history: WriteRingHistory, ring: RingState, now: UInt64, local: NodeID? = nil) -> [ReplicaPart] {
        let epochs = history.epochs
        guard batch.spanCount > 0, let last = epochs.last else { return [] }
        let floor = now > history.retentionNanos ? now - history.retentionNanos : 0
        let first = epochs[0].since
        if epochs.count == 1 || batch.startTime.allSatisfy({ max($0, floor) >= last.since || max($0, floor) < first }) {
            return Self.parts(of: batch, on: last.lookup, local: local)
        }
        var grouping = Grouping()
        var dense: [[Int32]] = epochs.map { _ in [] }
        for row in 0..<batch.spanCount {
            let epoch = history.epoch(forStart: batch.startTime[row], now: now) ?? epochs.count - 1
            let lookup = epochs[epoch].lookup
            if dense[epoch].isEmpty { dense[epoch] = [Int32](repeating: -1, count: lookup.placementCount) }
            let placement = lookup.placement(for: batch.traceID(row))
            var index = Int(dense[epoch][placement])
            if index < 0 {
                let replicas = lookup.replicas(ofPlacement: placement)
                let key = PlacementKey(replicas: replicas)
                let targets = epoch == epochs.count - 1 ? replicas : DesiredHolders.writeTargets(of: key, ring: ring, preferring: Set(lookup.nodes))
                index = grouping.part(for: key, targets: targets)
                dense[epoch][placement] = Int32(index)
            }
            grouping.rows[index].append(row)
        }
        return grouping.parts(of: batch, local: local)
    }

    /// Rows grouped by placement key, in the order the keys first appear.
    private struct Grouping {
        var partOfKey: [PlacementKey: Int] = [:]
        var keys: [PlacementKey] = []
        var targets: [[NodeID]] = []
        var rows: [[Int]] = []

        /// The part index of `key`, made (with `targets`) on first sight.
        mutating func part(for key: PlacementKey, targets replicas: [NodeID]) -> Int {
            if let known = self.partOfKey[key] { return known }
            let index = self.keys.count
            self.partOfKey[key] = index
            self.keys.append(key)
            self.targets.append(replicas)
            self.rows.append([])
            return index
        }

        func parts(of batch: SpanBatch, local: NodeID?) -> [ReplicaPart] {
            self.keys.indices.map { index in
                let part = self.keys.count == 1 ? batch : batch.subset(rows: self.rows[index])
                let remote = self.targets[index].contains { $0 != local }
                return ReplicaPart(key: self.keys[index], replicas: self.targets[index], batch: part, payload: remote ? ReplicaPlan.encode(part) : ByteBuffer())
            }
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
