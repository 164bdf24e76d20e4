import Foundation
import Testing
import WeftClusterSim

/// Whole-cluster runs in the deterministic simulator. Each seed derives its scenario (crash, 5 % loss,
/// ring changes, partition), size (5–64 nodes) and faults; a failure prints the command that replays it.
///
/// CI runs `SIM_SEEDS` seeds (default 24) in a debug build; `weft-sim --seeds 1000` runs the full
/// campaign from a release build. `SIM_SEED=S` replays one seed.
struct ClusterSimulationTests {
    static var scenarios: [Scenario] {
        let environment = ProcessInfo.processInfo.environment
        if let seed = environment["SIM_SEED"].flatMap(UInt64.init) { return [Scenario(seed: seed)] }
        let count = environment["SIM_SEEDS"].flatMap(UInt64.init) ?? 24
        // Always include the largest cluster under 5 % loss and a 64-node crash.
        return (1...count).map { Scenario(seed: $0) } + [Scenario(seed: 1_000_001, nodeCount: 64, loss: 0.05), Scenario(seed: 1_000_003, nodeCount: 64)]
    }

    @Test func test_campaign_detectsCrashes_noFalsePositives_ringsConverge() {
        var campaign = Campaign()
        campaign.run(Self.scenarios)
        print(campaign.report)
        for outcome in campaign.failed {
            Issue.record("\(outcome.scenario): \(outcome.failures.joined(separator: "; "))\n  replay: \(outcome.scenario.replayCommand)")
        }
        #expect(campaign.outcomes.count == Self.scenarios.count)
    }

    @Test func test_sameSeed_replaysExactly() {
        let a = Scenario(seed: 1_000_003, nodeCount: 12).run()
        let b = Scenario(seed: 1_000_003, nodeCount: 12).run()
        #expect(a.bytesSent == b.bytesSent)
        #expect(a.detectionPeriods == b.detectionPeriods)
        #expect(a.bytesSent > 0)
    }
}
