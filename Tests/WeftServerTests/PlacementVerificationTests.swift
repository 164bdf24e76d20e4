import Testing
import WeftStorageEngine

@testable import WeftServer

struct PlacementVerificationTests {
    static func key(_ placement: String) -> PartitionKey { PartitionKey(org: "acme", placement: placement) }

    @Test func test_beforeTheFirstRound_everyHeldPlacementIsNotInSync() {
        let v = PlacementVerification()
        let held = [Self.key("a+b+c"), Self.key("b+c+d")]
        #expect(v.notInSync(lacking: [], held: { held }) == Set(held))
        #expect(v.notInSync(lacking: [Self.key("x+y+z")], held: { held }) == Set(held + [Self.key("x+y+z")]))
    }

    @Test func test_afterARound_onlyPlacementsNoHolderCouldBeComparedWith_andLackingOnes() {
        var v = PlacementVerification()
        v.roundEnded(compared: [Self.key("a+b+c")], uncompared: [Self.key("b+c+d")])
        // Held placements are not consulted any more: one first held after the round is new since the start.
        #expect(v.notInSync(lacking: [], held: { Issue.record("held asked after the first round"); return [] }) == [Self.key("b+c+d")])
        #expect(v.notInSync(lacking: [Self.key("a+b+c")], held: { [] }) == [Self.key("a+b+c"), Self.key("b+c+d")])
        // A later round that reaches a holder verifies it; one that cannot compare a verified placement does not undo it.
        v.roundEnded(compared: [Self.key("b+c+d")], uncompared: [Self.key("a+b+c")])
        #expect(v.notInSync(lacking: [], held: { [] }).isEmpty)
        #expect(v.rounds == 2)
    }

    @Test func test_aLoneNodesFirstRound_verifiesEverything() {
        var v = PlacementVerification()
        v.roundEnded(compared: [Self.key("solo")], uncompared: [])
        #expect(v.notInSync(lacking: [], held: { [Self.key("solo")] }).isEmpty)
    }
}

/// A copy is surplus only when dropping it from reads leaves every span on as many other holders as
/// the placement has replicas, each of them checked this round.
struct SurplusCopyTests {
    @Test func test_surplus_onlyForANonHolderWhoseSpansEveryFullSetOfHoldersHas() {
        #expect(SurplusCopy.isSurplus(isHolder: false, otherHolders: 3, replicas: 3, handedOff: true))
        #expect(!SurplusCopy.isSurplus(isHolder: true, otherHolders: 3, replicas: 3, handedOff: true), "a desired holder keeps its copy")
        #expect(!SurplusCopy.isSurplus(isHolder: false, otherHolders: 3, replicas: 3, handedOff: false), "a holder lacked spans or was not reached")
        #expect(!SurplusCopy.isSurplus(isHolder: false, otherHolders: 2, replicas: 3, handedOff: true), "too few holders: this copy is still needed")
    }
}

/// A placement another holder's round pushed spans of is being handed over: not in sync until this
/// node's own round has compared it.
struct RepairReceivedTests {
    @Test func test_afterARepairPush_thePlacementIsNotInSyncUntilARoundComparesIt() {
        let p = PartitionKey(org: "acme", placement: "a+b+c")
        var v = PlacementVerification()
        v.roundEnded(compared: [], uncompared: [])
        #expect(v.notInSync(lacking: [], held: { [p] }).isEmpty, "a placement first held after the first round counts as new")
        v.received(repairOf: p)
        #expect(v.notInSync(lacking: [], held: { [p] }) == [p])
        v.roundEnded(compared: [], uncompared: [p])
        #expect(v.notInSync(lacking: [], held: { [p] }) == [p], "no holder could be compared with: still not in sync")
        v.roundEnded(compared: [p], uncompared: [])
        #expect(v.notInSync(lacking: [], held: { [p] }).isEmpty)
    }
}

/// A round that could not reach a live holder is tried again soon, then less and less often.
struct RepairRetryTests {
    @Test func test_retryDelay_doublesFromTwoSecondsUpToAMinute() {
        #expect((1...8).map { AntiEntropy.retryDelay(afterFailedRounds: $0) } == [2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
    }
}

/// A wiped node that starts before it can read its peers' catalogs must not take that round as its
/// first: it would then call every placement it receives later in sync, lacking what came before.
struct FirstRoundKnowledgeTests {
    @Test func test_aRoundCountsOnlyWhenItReadEveryLivePeersCatalog() {
        #expect(PlacementVerification.roundKnewPlacements(catalogsComplete: true, catalogsRead: 4, expectsPeers: true))
        #expect(!PlacementVerification.roundKnewPlacements(catalogsComplete: false, catalogsRead: 3, expectsPeers: true), "a peer's catalog did not come")
        #expect(!PlacementVerification.roundKnewPlacements(catalogsComplete: true, catalogsRead: 0, expectsPeers: true), "no peer known yet")
        #expect(PlacementVerification.roundKnewPlacements(catalogsComplete: true, catalogsRead: 0, expectsPeers: false), "a node started alone")
        #expect(
            PlacementVerification.roundKnewPlacements(catalogsComplete: true, catalogsRead: 0, expectsPeers: true, joined: true, storagePeers: 0),
            "the only storage node of a cluster it joined through a query node"
        )
        #expect(
            !PlacementVerification.roundKnewPlacements(catalogsComplete: true, catalogsRead: 0, expectsPeers: true, joined: true, storagePeers: 2),
            "storage peers in the ring, none of whose catalogs was read (all dead)"
        )
        #expect(
            !PlacementVerification.roundKnewPlacements(catalogsComplete: true, catalogsRead: 0, expectsPeers: true, joined: false, storagePeers: 0),
            "the cluster's ring not received yet"
        )
    }
}
