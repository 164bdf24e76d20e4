import ArgumentParser
import WeftClusterSim

/// Runs simulator seeds outside CI: `weft-sim --seeds 1000`, or replays one with `--seed S`.
@main
struct WeftSim: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "weft-sim", abstract: "Deterministic SWIM cluster simulation campaigns.")

    @Option(help: "Number of seeds to run (seeds first-seed ..< first-seed + N).") var seeds = 1000
    @Option(help: "The first seed of the campaign.") var firstSeed: UInt64 = 1
    @Option(help: "Replay this one seed.") var seed: UInt64?
    @Option(help: "Override the node count of every scenario.") var nodes: Int?
    @Option(help: "Override the message loss probability (0...1).") var loss: Double?

    func run() throws {
        let range = self.seed.map { $0..<($0 + 1) } ?? self.firstSeed..<(self.firstSeed + UInt64(self.seeds))
        var campaign = Campaign()
        campaign.run(range.map { Scenario(seed: $0, nodeCount: self.nodes, loss: self.loss) })
        print(campaign.report)
        if !campaign.failed.isEmpty { throw ExitCode.failure }
    }
}
