/// The node-to-node request that stores a part of a write on one replica: `POST` ``path`` with the
/// org and placement in headers and a `SpanBatchCodec` payload as the body. The replica answers 204
/// once the spans are durable, 400 for a payload or placement it cannot read, 503 when it cannot
/// store them now.
public enum ReplicaPush {
    public static let path = "/internal/v1/push"
    /// The org whose spans the payload holds.
    public static let orgHeader = "x-weft-org"
    /// The ``PlacementKey`` the replica keeps the spans under.
    public static let placementHeader = "x-weft-placement"
    /// Present (`1`) on pushes of anti-entropy: the receiver lacked these spans, so it may lack more of
    /// the placement and calls it not in sync until its own round has compared it.
    public static let repairHeader = "x-weft-repair"
}
