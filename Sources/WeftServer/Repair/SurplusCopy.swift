/// When a storage node's copy of a placement is surplus: after a drain, a join, a wipe or a restart,
/// the stand-in chosen for a gone member can change, and writes placed by an earlier write ring can
/// reach a node the repair loop no longer counts on. Such a copy made a span's copies exceed RF for
/// good. It is surplus once this node is not one of the placement's desired holders, there are as
/// many other holders as the placement has replicas, and a sync round reached each of them and found
/// that they already hold every span this node holds. Pure: the round reports what it found.
enum SurplusCopy {
    static func isSurplus(isHolder: Bool, otherHolders: Int, replicas: Int, handedOff: Bool) -> Bool {
        !isHolder && handedOff && otherHolders >= replicas
    }
}
