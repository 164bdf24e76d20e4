import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import WeftRuntime
import WeftStorageEngine

/// The background threads that move data from the head to blocks and keep blocks tidy.
///
/// The cut thread closes the WAL segment by age, cuts idle traces to blocks and removes WAL
/// segments none of whose rows remain in the head. The compaction thread merges small blocks (one
/// plan per pass, see ``StorageEngine/compactionIsDue(_:)``), applies retention, and deletes retired
/// block files after a grace period. Under steady load both always have work; on their own threads
/// they share the cores with ingest instead of compaction waiting for a pass with nothing to cut,
/// which never comes (small blocks then pile up and every query and resend check pays per block).
/// Ingest waits for them only when the head is full.
package final class BlockMaintainer: Sendable {
    package struct Settings: Sendable {
        /// Close the open WAL segment once it is this old; also the longest wait between cuts.
        var maxSegmentAge: Duration
        /// Cut idle traces as soon as they hold this many spans (otherwise once per `maxSegmentAge`).
        var cutMinSpans: Int
        /// Time between passes.
        var interval: Duration
        /// How long retired blocks' files stay for queries that started before (≥ the query timeout).
        var retiredGrace: Duration

        package init(maxSegmentAge: Duration, cutMinSpans: Int, interval: Duration, retiredGrace: Duration) {
            self.maxSegmentAge = maxSegmentAge
            self.cutMinSpans = cutMinSpans
            self.interval = interval
            self.retiredGrace = retiredGrace
        }
    }

    private let engine: StorageEngine
    private let committer: WALCommitter
    private let metrics: NodeMetrics
    private let logger: Logger
    private let settings: Settings
    private let cutter: PassThread
    private let compactor: PassThread
    /// Serialises cut passes and on-demand flushes.
    private let cutting = Mutex<Void>(())
    /// Serialises compaction passes; retired blocks with the time they left the catalog.
    private let compacting = Mutex<[(ids: Set<UInt64>, at: ContinuousClock.Instant)]>([])
    private let reportedQuarantine = Mutex<Set<UInt64>>([])
    private let lastCut = Mutex<ContinuousClock.Instant>(.now)
    /// Whether the latest cut pass found nothing to cut (then any compaction plan runs).
    private let cutIdle = Atomic<Bool>(true)

    package init(engine: StorageEngine, committer: WALCommitter, metrics: NodeMetrics, logger: Logger, settings: Settings) {
        self.engine = engine
        self.committer = committer
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
        self.cutter = PassThread(name: "weft-blocks", interval: settings.interval, nice: Self.maintenanceNice)
        self.compactor = PassThread(name: "weft-compact", interval: settings.interval, nice: Self.maintenanceNice)
        self.cutter.start { [self] in self.cutPass() }
        self.compactor.start { [self] in self.compactionPass() }
    }

    /// The nice value of both threads: while queries run they get a small share of a busy core (a
    /// query right after a large ingest no longer waits behind the cuts and compactions it caused);
    /// with the cores otherwise idle, or ingest held back by a full head, they still get all of it.
    static let maintenanceNice: Int32 = 10

    /// Stops both threads after the passes in progress.
    package func shutdown() async {
        await self.cutter.stop()
        await self.compactor.stop()
    }

    /// Rolls an old WAL segment, cuts what is due, and releases WAL segments no head row needs.
    private func cutPass() {
        self.cutting.withLock { _ in
            let segment = self.committer.currentSegment
            if segment.hasRecords && ContinuousClock.now - segment.started >= self.settings.maxSegmentAge {
                self.committer.requestRoll()
            }
            let due = ContinuousClock.now - self.lastCut.withLock { $0 } >= self.settings.maxSegmentAge
            let cut = self.record { try self.engine.cut(minSpans: due ? 0 : self.settings.cutMinSpans) }
            self.releaseSegments()
            self.cutIdle.store(cut.isEmpty, ordering: .relaxed)
            self.reportQuarantine()
        }
        if !self.cutIdle.load(ordering: .relaxed) { self.compactor.wake() }
    }

    /// Runs one compaction (any plan while cuts are idle, else only a due one), then retention and
    /// the deletion of retired files.
    private func compactionPass() {
        self.compacting.withLock { retired in
            if let plan = self.engine.compactionPlan(), self.cutIdle.load(ordering: .relaxed) || self.engine.compactionIsDue(plan) {
                self.compact(plan, &retired)
            }
            self.retain(&retired)
            self.purge(&retired)
        }
    }

    /// Closes the open segment and cuts the whole head to blocks, waiting (up to `timeout`) for the
    /// roll and for acknowledged spans to land in the head. Returns the blocks written.
    package func flushNow(timeout: Duration = .seconds(10)) -> [BlockMeta] {
        let deadline = ContinuousClock.now + timeout
        let before = self.committer.currentSegment
        if before.hasRecords {
            self.committer.requestRoll()
            while self.committer.currentSegment.number == before.number && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.001)
            }
        }
        let current = self.committer.currentSegment.number
        while self.engine.head.hasPendingAppends(below: current), ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.001)
        }
        return self.cutting.withLock { _ in
            let written = self.record { try self.engine.flushAll() }
            self.releaseSegments()
            return written
        }
    }

    /// Runs a cut or flush with its metrics; a failure is logged and retried on the next pass.
    @discardableResult
    private func record(_ cut: () throws -> [BlockMeta]) -> [BlockMeta] {
        let started = ContinuousClock.now
        do {
            let metas = try cut()
            guard !metas.isEmpty else { return [] }
            self.lastCut.withLock { $0 = .now }
            self.metrics.flushes.increment()
            self.metrics.flushedSpans.increment(by: Int64(metas.reduce(0) { $0 + $1.spans }))
            self.metrics.flushDuration.record(ContinuousClock.now - started)
            self.logger.debug("cut traces to blocks", metadata: [
                "blocks": "\(metas.count)", "spans": "\(metas.reduce(0) { $0 + $1.spans })", "bytes": "\(metas.reduce(0) { $0 + $1.bytes })",
            ])
            return metas
        } catch {
            self.metrics.maintenanceErrors.increment()
            self.logger.error("cutting traces to blocks failed; will retry", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// Removes closed WAL segments that no head row needs any more.
    private func releaseSegments() {
        for s in self.engine.releasableSegments(current: self.committer.currentSegment.number) {
            self.committer.removeSegment(s)
            self.engine.released(segment: s)
        }
    }

    private func compact(_ plan: [BlockMeta], _ retired: inout [(ids: Set<UInt64>, at: ContinuousClock.Instant)]) {
        let started = ContinuousClock.now
        do {
            let output = try self.engine.compact(plan)
            retired.append((Set(plan.map(\.id)), .now))
            self.metrics.compactions.increment()
            self.metrics.compactedSpans.increment(by: Int64(output.spans))
            self.metrics.compactionDuration.record(ContinuousClock.now - started)
            self.logger.debug("compacted blocks", metadata: [
                "inputs": "\(plan.count)", "output": "\(output.id)", "spans": "\(output.spans)", "bytes": "\(output.bytes)",
            ])
        } catch {
            self.metrics.maintenanceErrors.increment()
            self.logger.error("compaction failed; will retry", metadata: ["error": "\(error)"])
        }
    }

    private func retain(_ retired: inout [(ids: Set<UInt64>, at: ContinuousClock.Instant)]) {
        let now = WallClock.nowNanos()
        do {
            let expired = try self.engine.applyRetention(nowNanos: now)
            if !expired.isEmpty {
                retired.append((Set(expired.map(\.id)), .now))
                self.metrics.retentionDeleted.increment(by: Int64(expired.count))
                self.logger.info("retention removed blocks", metadata: ["blocks": "\(expired.count)"])
            }
        } catch {
            self.metrics.maintenanceErrors.increment()
        }
    }

    private func purge(_ retired: inout [(ids: Set<UInt64>, at: ContinuousClock.Instant)]) {
        let due = retired.filter { ContinuousClock.now - $0.at >= self.settings.retiredGrace }
        guard !due.isEmpty else { return }
        do {
            try self.engine.purgeRetired(due.reduce(into: Set<UInt64>()) { $0.formUnion($1.ids) })
            retired.removeAll { ContinuousClock.now - $0.at >= self.settings.retiredGrace }
        } catch {
            self.metrics.maintenanceErrors.increment()
            self.logger.error("could not delete retired blocks; will retry", metadata: ["error": "\(error)"])
        }
    }

    private func reportQuarantine() {
        for (id, reason) in self.engine.store.quarantined {
            guard self.reportedQuarantine.withLock({ $0.insert(id).inserted }) else { continue }
            self.logger.error("block failed verification and is out of service", metadata: ["block": "\(id)", "error": "\(reason)"])
        }
    }
}

/// A thread that runs a pass every `interval`, or sooner when woken, until stopped.
private final class PassThread: Sendable {
    private let name: String
    private let interval: Duration
    private let condition = NSCondition()
    private let state = Mutex<(stopping: Bool, stopped: Bool, woken: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, false, false, []))

    private let nice: Int32

    init(name: String, interval: Duration, nice: Int32) {
        self.name = name
        self.interval = interval
        self.nice = nice
    }

    func start(_ pass: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            // On Linux the nice value is per thread: `who` 0 is this thread alone. A failure leaves
            // the default priority, which is only slower for queries.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, self.nice)
            while true {
                self.condition.lock()
                if !self.state.withLock({ $0.stopping || $0.woken }) {
                    let seconds = Double(self.interval.components.seconds) + Double(self.interval.components.attoseconds) / 1e18
                    _ = self.condition.wait(until: Date(timeIntervalSinceNow: seconds))
                }
                self.condition.unlock()
                let stopping = self.state.withLock { s -> Bool in
                    s.woken = false
                    return s.stopping
                }
                if stopping { break }
                pass()
            }
            let waiters = self.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.stopped = true
                defer { s.waiters = [] }
                return s.waiters
            }
            for w in waiters { w.resume() }
        }
        thread.name = self.name
        thread.start()
    }

    /// Runs the next pass now rather than at the end of the interval.
    func wake() {
        self.condition.lock()
        self.state.withLock { $0.woken = true }
        self.condition.signal()
        self.condition.unlock()
    }

    /// Stops the thread after the pass in progress.
    func stop() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = self.state.withLock { s -> Bool in
                if s.stopped { return true }
                s.stopping = true
                s.waiters.append(c)
                return false
            }
            if done { c.resume() }
            self.condition.lock()
            self.condition.signal()
            self.condition.unlock()
        }
    }
}
