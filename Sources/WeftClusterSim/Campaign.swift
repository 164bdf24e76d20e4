import WeftCluster

/// Runs many seeds and summarises them: failures with their replay commands, detection time
/// percentiles, false positives and gossip traffic.
public struct Campaign: Sendable {
    public private(set) var outcomes: [Scenario.Outcome] = []

    public init() {}

    /// Runs `scenarios` in order.
    public mutating func run(_ scenarios: [Scenario], settings: SWIMSettings = SWIMSettings()) {
        for scenario in scenarios { self.outcomes.append(scenario.run(settings: settings)) }
    }

    public var failed: [Scenario.Outcome] { self.outcomes.filter { !$0.failures.isEmpty } }

    public var detectionPeriods: [Double] { self.outcomes.flatMap(\.detectionPeriods).sorted() }

    /// The `q` quantile (nearest rank) of the detection times, in protocol periods.
    public func detectionQuantile(_ q: Double) -> Double? {
        let sorted = self.detectionPeriods
        guard !sorted.isEmpty else { return nil }
        let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    public var falsePositives: Int { self.outcomes.reduce(0) { $0 + $1.falsePositives } }

    /// Bytes of SWIM messages (all kinds, gossip included) per running node per simulated second.
    public var bytesPerNodePerSecond: Double {
        let seconds = self.outcomes.reduce(0) { $0 + $1.nodeSeconds }
        return seconds > 0 ? Double(self.outcomes.reduce(0) { $0 + $1.bytesSent }) / seconds : 0
    }

    /// A multi-line summary, failures first.
    public var report: String {
        var lines: [String] = []
        for outcome in self.failed {
            lines.append("FAILED \(outcome.scenario): " + outcome.failures.joined(separator: "; "))
            lines.append("  replay: \(outcome.scenario.replayCommand)")
        }
        let sizes = self.outcomes.map(\.scenario.nodeCount)
        let kinds = Scenario.Kind.allCases.map { kind in "\(kind.rawValue)=\(self.outcomes.filter { $0.scenario.kind == kind }.count)" }
        func periods(_ value: Double?) -> String { value.map { String(Int(($0 * 100).rounded())).twoDecimals } ?? "n/a" }
        lines.append(
            "seeds=\(self.outcomes.count) (\(kinds.joined(separator: " "))) nodes=\(sizes.min() ?? 0)...\(sizes.max() ?? 0) failed=\(self.failed.count)"
        )
        lines.append(
            "detection (periods until every live node declared the crashed node dead, \(self.detectionPeriods.count) crashes): p50=\(periods(self.detectionQuantile(0.5))) p99=\(periods(self.detectionQuantile(0.99))) max=\(periods(self.detectionPeriods.last))"
        )
        lines.append("false positives=\(self.falsePositives) gossip bytes/node/s=\(Int(self.bytesPerNodePerSecond.rounded()))")
        return lines.joined(separator: "\n")
    }
}

extension String {
    /// "1234" (hundredths) as "12.34".
    fileprivate var twoDecimals: String {
        let padded = String(repeating: "0", count: max(0, 3 - self.count)) + self
        return "\(padded.dropLast(2)).\(padded.suffix(2))"
    }
}
