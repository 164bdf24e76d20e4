/// Chooses, for one query, which storage node reads each placement: exactly one holder per
/// placement, preferring holders that are in sync (not lacking spans, no hints pending for them);
/// among those this node when it holds one, the rest spread evenly over the other holders.
package enum QueryPlanner {
    /// Who reads what.
    package struct Plan: Sendable, Equatable {
        /// Node ID → the placements it reads, sorted.
        package var assignments: [String: [String]]
        /// Placements no usable node holds, sorted.
        package var uncovered: [String]
        /// Placements read from a holder that may lack some of their spans (every holder without that
        /// doubt is excluded or there is none), with those other holders: the answer may miss spans.
        package var lagging: [String: [String]] = [:]
    }

    /// Assigns every placement of `holders` (placement → node IDs holding it) to one of its holders
    /// outside `excluding`. Deterministic: the same input gives the same plan.
    /// - Parameters:
    ///   - local: this node's ID, preferred wherever it holds the placement (and is not avoided).
    ///   - avoid: placement → holders that may lack some of its spans; one is chosen only when the
    ///     placement has no other holder outside `excluding`.
    package static func assign(_ holders: [String: Set<String>], local: String?, excluding: Set<String> = [], avoid: [String: Set<String>] = [:]) -> Plan {
        var plan = Plan(assignments: [:], uncovered: [])
        var load: [String: Int] = [:]
        for placement in holders.keys.sorted() {
            let usable = holders[placement, default: []].subtracting(excluding)
            guard !usable.isEmpty else {
                plan.uncovered.append(placement)
                continue
            }
            let preferred = usable.subtracting(avoid[placement] ?? [])
            if preferred.isEmpty {
                plan.lagging[placement] = holders[placement, default: []].subtracting(avoid[placement] ?? []).sorted()
            }
            let candidates = (preferred.isEmpty ? usable : preferred).sorted()
            let chosen: String
            if let local, candidates.contains(local) {
                chosen = local
            } else {
                let least = candidates.map { load[$0, default: 0] }.min()!
                let tied = candidates.filter { load[$0, default: 0] == least }
                chosen = tied[Int(Self.hash(placement) % UInt64(tied.count))]
            }
            load[chosen, default: 0] += 1
            plan.assignments[chosen, default: []].append(placement)
        }
        return plan
    }

    /// FNV-1a of the placement's bytes: a stable tie-break that differs between placements.
    static func hash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }
}
