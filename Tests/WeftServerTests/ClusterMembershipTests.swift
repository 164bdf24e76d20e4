import Logging
import Testing
import WeftCluster
@testable import WeftServer

struct ClusterMembershipTests {
    @Test func test_seeds_resolveToEveryAddressOfAName() throws {
        let logger = Logger(label: "test")
        let seeds = try ClusterMembership.resolve(["localhost:9400", "127.0.0.1:9401"], logger: logger)
        #expect(seeds.contains(NodeAddress(host: "127.0.0.1", port: 9400)!))
        #expect(seeds.contains(NodeAddress(host: "127.0.0.1", port: 9401)!))
        #expect(Set(seeds).count == seeds.count)
        #expect(throws: ClusterMembership.Failure.self) { try ClusterMembership.resolve(["no-port"], logger: logger) }
    }

    @Test func test_lookup_ofALiteral_isTheLiteral() {
        #expect(ClusterMembership.lookup("127.0.0.1") == ["127.0.0.1"])
        #expect(ClusterMembership.lookup("nonexistent.invalid").isEmpty)
    }
}
