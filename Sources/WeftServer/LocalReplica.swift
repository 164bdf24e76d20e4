import NIOCore
import WeftCluster
import WeftClusterService
import WeftIngest
import WeftRuntime
import WeftStorage

extension LocalSpanSink {
    /// Stores parts pushed by ingest nodes (the internal push route) under the placement they name.
    var replicaStore: ReplicaStore {
        { batch, org, placement, loop in
            self.write(batch, org: org, placement: placement.rawValue, on: loop).map { result in
                switch result {
                case .success: return .durable
                case .failure(.unavailable(let why)): return .unavailable(why)
                case .failure(let other): return .rejected("\(other)")
                }
            }
        }
    }

    /// Writes the parts this node's own replicated writes place on it, without the network.
    var replicaWrite: LocalReplicaWrite {
        { batch, org, placement, loop in self.write(batch, org: org, placement: placement.rawValue, on: loop) }
    }
}
