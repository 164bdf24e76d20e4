import Foundation
import Testing
import WeftCluster
@testable import WeftClusterService

struct ClusterServiceTests {
    @Test func test_parseRoles_acceptsAllAndLists_refusesUnknown() {
        #expect(ClusterSettings.parseRoles("all") == .all)
        #expect(ClusterSettings.parseRoles("storage") == .storage)
        #expect(ClusterSettings.parseRoles("ingest, query") == [.ingest, .query])
        #expect(ClusterSettings.parseRoles("INGEST,storage,query") == .all)
        #expect(ClusterSettings.parseRoles("ingest,cook") == nil)
        #expect(ClusterSettings.parseRoles("") == nil)
        #expect(ClusterSettings.parseRoles(",") == nil)
    }

    @Test func test_splitHostPort_namesIPv4AndBracketedIPv6() {
        #expect(ClusterSettings.splitHostPort("10.0.0.1:9400")! == ("10.0.0.1", 9400))
        #expect(ClusterSettings.splitHostPort("weft-storage.ns.svc:9400")! == ("weft-storage.ns.svc", 9400))
        #expect(ClusterSettings.splitHostPort("[::1]:9401")! == ("::1", 9401))
        for bad in ["nohost", ":9400", "h:", "h:0", "h:70000", "[::1]9400", "[::1"] {
            #expect(ClusterSettings.splitHostPort(bad) == nil, "\(bad)")
        }
    }

    @Test func test_nodeIdentity_persistsInTheDataDir_andRefusesAnotherID() throws {
        let dir = NSTemporaryDirectory() + "weft-id-" + UUID().uuidString + "/data"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try NodeIdentity.resolve(requested: nil, dataDir: dir)
        #expect(first.rawValue.hasPrefix("node-"))
        #expect(try NodeIdentity.resolve(requested: nil, dataDir: dir) == first)
        #expect(try NodeIdentity.resolve(requested: first.rawValue, dataDir: dir) == first)
        #expect(throws: NodeIdentity.Failure.self) { try NodeIdentity.resolve(requested: "someone-else", dataDir: dir) }
        #expect(throws: NodeIdentity.Failure.self) { try NodeIdentity.resolve(requested: "bad id", dataDir: nil) }
        // Without a data dir (no storage role) a given ID is used as it is, and none is generated anew each time.
        #expect(try NodeIdentity.resolve(requested: "ingest-1", dataDir: nil).rawValue == "ingest-1")
        #expect(try NodeIdentity.resolve(requested: nil, dataDir: nil) != NodeIdentity.resolve(requested: nil, dataDir: nil))
    }

    @Test func test_secretComparison() {
        #expect(InternalAPI.constantTimeEqual(Array("s3cret".utf8), Array("s3cret".utf8)))
        #expect(!InternalAPI.constantTimeEqual(Array("s3cret".utf8), Array("s3cre".utf8)))
        #expect(!InternalAPI.constantTimeEqual(Array("s3cret".utf8), Array("s3creT".utf8)))
        #expect(!InternalAPI.constantTimeEqual([], Array("x".utf8)))
    }

    static func entry(_ id: String, _ state: NodeState = .active, zone: String = "", tokens: UInt16 = 128, roles: NodeRoles = .all) -> RingEntry {
        RingEntry(nodeID: NodeID(id)!, version: 2, state: state, address: NodeAddress(host: "127.0.0.1", port: 9400)!, zone: Zone(zone)!, tokenCount: tokens, roles: roles)
    }

    @Test func test_ringOwnership_sharesSumToOneAndRF_andEveryNodeHoldsAboutItsShare() {
        let state = RingState((1...5).map { Self.entry("n\($0)") } + [Self.entry("gone", .left), Self.entry("q", tokens: 0, roles: .query)])
        let ring = Ring(state: state, replicationFactor: 3)
        let ownership = RingOwnership(ring.writes)
        #expect(ownership.replicationFactor == 3)
        #expect(Set(ownership.shares.map(\.node.rawValue)) == ["n1", "n2", "n3", "n4", "n5"])
        #expect(abs(ownership.shares.reduce(0) { $0 + $1.primary } - 1) < 1e-9)
        #expect(abs(ownership.shares.reduce(0) { $0 + $1.replica } - 3) < 1e-9)
        for share in ownership.shares {
            #expect(share.primary > 0.1 && share.primary < 0.3, "\(share)")
            #expect(share.replica > 0.45 && share.replica < 0.75, "\(share)")
        }
    }

    @Test func test_adminJSON_membersAndRing() throws {
        let entries = [Self.entry("n1"), Self.entry("n2", .leaving, zone: "b")]
        let state = RingState(entries)
        let me = MemberUpdate(node: NodeID("n1")!, address: entries[0].address, status: .alive, incarnation: 0)
        let other = MemberUpdate(node: NodeID("n2")!, address: entries[1].address, status: .suspect, incarnation: 4)
        let view = ClusterView(
            me: me.node,
            members: [.init(update: me, entry: entries[0], lastHeardNanosAgo: 0, isSelf: true),
                      .init(update: other, entry: entries[1], lastHeardNanosAgo: 1_500_000_000, isSelf: false)],
            ringState: state, localHealth: 0
        )
        let members = try JSONSerialization.jsonObject(with: Data(AdminAPI.members(view))) as! [String: Any]
        let rows = members["members"] as! [[String: Any]]
        #expect(members["self"] as? String == "n1")
        #expect(rows[1]["status"] as? String == "suspect")
        #expect(rows[1]["state"] as? String == "LEAVING")
        #expect(rows[1]["incarnation"] as? Int == 4)
        #expect(rows[1]["lastHeardMs"] as? Int == 1500)
        #expect(rows[1]["zone"] as? String == "b")
        let ring = try JSONSerialization.jsonObject(with: Data(AdminAPI.ring(view, Ring(state: state, replicationFactor: 3)))) as! [String: Any]
        #expect(ring["replicationFactor"] as? Int == 1)  // only n1 takes writes while n2 leaves
        let nodes = ring["nodes"] as! [[String: Any]]
        #expect(nodes.map { $0["id"] as! String } == ["n1", "n2"])
        #expect(nodes[0]["primaryShare"] as? Double == 1)
        #expect(nodes[1]["primaryShare"] as? Double == 0)
    }
}
