/// What the shell must do after feeding an event to `SWIMInstance`.
public enum SWIMDirective: Hashable, Sendable {
    /// Encode `message` (`SWIMCodec`) and send it to `address`; delivery may fail silently.
    case send(SWIMMessage, to: NodeAddress)
    /// Call `onTick(now:)` at this time (replaces any earlier request: the shell keeps one timer).
    case scheduleTick(at: UInt64)
    /// This node's view of a member changed.
    case memberStatusChanged(MemberStatusChange)
    /// The ring state changed (these entries are new); rebuild the `Ring` from `instance.ring`.
    case ringChanged([RingEntry])
}
