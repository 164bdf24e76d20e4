/// The node-to-node request that leaves a part of a write, missed by one replica, with a replica that
/// stored it: `POST` ``path`` with the target node in ``targetHeader``, the org and placement in the
/// ``ReplicaPush`` headers and the same `SpanBatchCodec` payload. The holder answers 204 once the hint
/// is durable in its hints log, 503 when it cannot keep it (log full, recovering).
public enum ReplicaHint {
    public static let path = "/internal/v1/hint"
    /// The node ID the hint is addressed to.
    public static let targetHeader = "x-weft-hint-target"
}
