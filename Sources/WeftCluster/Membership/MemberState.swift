/// What a SWIM instance holds about one other member.
public struct MemberState: Hashable, Sendable {
    /// The greatest claim heard about the member.
    public var update: MemberUpdate
    /// When this node started suspecting the member (set while the status is `suspect`).
    public var suspectedAt: UInt64?

    public var status: MemberStatus { self.update.status }
}
