import Synchronization
import WeftCluster
import WeftQueryService
import WeftStorageEngine

/// A storage node's hints log: hints it holds for other replicas, durable in their own WAL segments
/// (`<data-dir>/hints/`) and kept in memory for delivery until sent. Opening replays the segments, so
/// hints survive restarts; a segment is removed once all its hints are delivered (a hint delivered
/// just before a restart may be delivered again, which its replica stores once).
final class HintLog: Sendable {
    /// Touched only under the mutex (the WAL is one owner's).
    private struct State: @unchecked Sendable {
        let wal: WAL
        var queue: HintQueue
        var records: [Int: HintRecord] = [:]
        var nextID = 1
    }

    private let state: Mutex<State>
    private let origin = ContinuousClock.now

    /// Opens (and replays) the log in `directory`; records that cannot be read are skipped.
    init(disk: any Disk, directory: String, segmentBytes: Int, settings: HintQueue.Settings) throws {
        let wal = WAL(disk: disk, directory: directory, configuration: .init(segmentSize: segmentBytes))
        var queue = HintQueue(settings: settings)
        var records: [Int: HintRecord] = [:]
        var nextID = 1
        try wal.replay { segment, bytes in
            guard let record = HintRecord(decoding: bytes) else { return }
            queue.add(id: nextID, segment: segment, target: record.target, bytes: record.payload.count)
            records[nextID] = record
            nextID += 1
        }
        self.state = Mutex(State(wal: wal, queue: queue, records: records, nextID: nextID))
    }

    /// Appends a hint and makes it durable; false when the log is full (the hint is counted as dropped).
    func append(_ record: HintRecord) throws -> Bool {
        guard let bytes = record.encoded() else { return false }
        return try self.state.withLock { s in
            guard s.queue.admit(bytes: record.payload.count) else { return false }
            let segment = try bytes.withUnsafeBytes { try s.wal.append(framed: [WAL.frame($0)]) }
            try s.wal.sync()
            s.queue.add(id: s.nextID, segment: segment, target: record.target, bytes: record.payload.count)
            s.records[s.nextID] = record
            s.nextID += 1
            return true
        }
    }

    /// Hints to send now (see ``HintQueue/due(now:reachable:)``); each must be answered with
    /// ``delivered(_:)`` or ``failed(_:)``.
    func due(reachable: (NodeID) -> Bool) -> [(id: Int, record: HintRecord)] {
        let now = ContinuousClock.now - self.origin
        return self.state.withLock { s in
            s.queue.due(now: now, reachable: reachable).compactMap { hint in s.records[hint.id].map { (hint.id, $0) } }
        }
    }

    func delivered(_ id: Int) {
        self.state.withLock { s in
            s.queue.delivered(id)
            s.records[id] = nil
        }
    }

    func failed(_ id: Int) {
        let now = ContinuousClock.now - self.origin
        self.state.withLock { $0.queue.failed(id, now: now) }
    }

    /// Makes the hints for `target` (all when nil) due at once.
    func expedite(_ target: NodeID?) {
        self.state.withLock { $0.queue.expedite(target) }
    }

    var status: HintStatus { self.state.withLock { $0.queue.status } }

    /// Hints not delivered yet, counted by target, org and placement (for the placement catalog).
    func pendingPlacements() -> [PlacementCatalog.PendingHints] {
        var counts: [String: PlacementCatalog.PendingHints] = [:]
        self.state.withLock { s in
            for record in s.records.values {
                let key = record.target.rawValue + "\u{0}" + record.org + "\u{0}" + record.placement.rawValue
                counts[key, default: PlacementCatalog.PendingHints(target: record.target.rawValue, org: record.org, placement: record.placement.rawValue, hints: 0)].hints += 1
            }
        }
        return counts.keys.sorted().map { counts[$0]! }
    }

    /// Removes segments whose hints are all delivered (closing the current one first when nothing is pending).
    func removeDelivered() throws {
        try self.state.withLock { s in
            if s.queue.status.pending == 0, s.wal.currentHasRecords { try s.wal.roll() }
            for segment in s.queue.removableSegments(current: s.wal.current) { try s.wal.remove(segment: segment) }
        }
    }
}
