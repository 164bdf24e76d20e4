import Synchronization
import WeftCluster

/// Bytes of pushes in flight, per peer and for the whole node, each bounded: a write that does not
/// fit is refused instead of buffered, so a slow or paused peer cannot grow this node's memory.
///
/// A push holds its bytes until its replica answers or the push times out. What of an ended push has
/// not gone out by then is not kept: the transport resets its stream, which drops its unsent body, and
/// frames already serialised wait in the connection's output buffer, bounded by the client's
/// `maxBufferedBytes` (a connection whose peer stops reading refuses new pushes once its output has been
/// blocked for the client's `backedUpAfter`, and is closed after its stall timeout). So pushes hold at most this budget plus one such buffer per peer connection.
public final class PushBudget: Sendable {
    /// Most bytes in flight over all peers.
    public let maxBytes: Int
    /// Most bytes in flight to one peer.
    public let maxBytesPerPeer: Int

    private struct State {
        var total = 0
        var perPeer: [NodeID: Int] = [:]
    }

    private let state = Mutex(State())

    public init(maxBytes: Int, maxBytesPerPeer: Int) {
        self.maxBytes = maxBytes
        self.maxBytesPerPeer = maxBytesPerPeer
    }

    /// What ``reserve(_:)`` granted.
    public enum Grant: Sendable, Equatable {
        /// The peers whose bytes were reserved; the others are over their own budget and get nothing.
        case peers(Set<NodeID>)
        /// The node's budget cannot take the write: nothing was reserved.
        case refused(inFlight: Int)
    }

    /// Reserves `bytes` for each peer that has room (a peer with nothing in flight always has room, so
    /// a part larger than the per-peer budget still goes out alone). Refuses the whole write when the
    /// granted bytes would take the node over its budget while other pushes are in flight.
    public func reserve(_ bytes: [NodeID: Int]) -> Grant {
        self.state.withLock { s in
            var granted = Set<NodeID>()
            var sum = 0
            for (peer, n) in bytes {
                let held = s.perPeer[peer] ?? 0
                if held == 0 || held + n <= self.maxBytesPerPeer {
                    granted.insert(peer)
                    sum += n
                }
            }
            if s.total > 0 && s.total + sum > self.maxBytes { return .refused(inFlight: s.total) }
            s.total += sum
            for peer in granted { s.perPeer[peer, default: 0] += bytes[peer]! }
            return .peers(granted)
        }
    }

    /// Returns the bytes of one push once it has ended.
    public func release(_ bytes: Int, peer: NodeID) {
        self.state.withLock { s in
            s.total -= bytes
            let left = (s.perPeer[peer] ?? 0) - bytes
            s.perPeer[peer] = left > 0 ? left : nil
        }
    }

    /// Bytes in flight over all peers.
    public var inFlightBytes: Int { self.state.withLock { $0.total } }

    /// Bytes in flight to `peer`.
    public func inFlightBytes(to peer: NodeID) -> Int { self.state.withLock { $0.perPeer[peer] ?? 0 } }
}
