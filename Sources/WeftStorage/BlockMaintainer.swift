import Foundation
import Logging
import Synchronization
import WeftRuntime
import WeftStorageEngine

/// The background thread that moves data from the head to blocks and keeps blocks tidy: it closes
/// the WAL segment by age, cuts idle traces to blocks, removes WAL segments none of whose rows remain
/// in the head, runs one compaction per pass, applies retention, and deletes retired block files
/// after a grace period. Ingest never waits for it.
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
    private let condition = NSCondition()
    private let state = Mutex<(stopping: Bool, stopped: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, false, []))
    /// Serialises passes and on-demand flushes.
    private let work = Mutex<[(ids: Set<UInt64>, at: ContinuousClock.Instant)]>([])
    private let reportedQuarantine = Mutex<Set<UInt64>>([])
    private let lastCut = Mutex<ContinuousClock.Instant>(.now)

    package init(engine: StorageEngine, committer: WALCommitter, metrics: NodeMetrics, logger: Logger, settings: Settings) {
        self.engine = engine
        self.committer = committer
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
        let thread = Thread { [self] in self.loop() }
        thread.name = "weft-blocks"
        thread.start()
    }

    private func loop() {
        while true {
            self.condition.lock()
            if !self.state.withLock({ $0.stopping }) {
                _ = self.condition.wait(until: Date(timeIntervalSinceNow: Double(self.settings.interval.components.seconds) + Double(self.settings.interval.components.attoseconds) / 1e18))
            }
            self.condition.unlock()
            if self.state.withLock({ $0.stopping }) { break }
            self.pass()
        }
        let waiters = self.state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.stopped = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    /// Stops the thread after the pass in progress.
    package func shutdown() async {
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

    /// One maintenance pass.
    package func pass() {
        self.work.withLock { retired in
            let segment = self.committer.currentSegment
            if segment.hasRecords && ContinuousClock.now - segment.started >= self.settings.maxSegmentAge {
                self.committer.requestRoll()
            }
            let due = ContinuousClock.now - self.lastCut.withLock { $0 } >= self.settings.maxSegmentAge
            let cut = self.record { try self.engine.cut(minSpans: due ? 0 : self.settings.cutMinSpans) }
            self.releaseSegments()
            // Cuts come first: compact only in a pass that had nothing to cut.
            if cut.isEmpty { self.compactOnce(&retired) }
            self.retain(&retired)
            self.purge(&retired)
            self.reportQuarantine()
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
        return self.work.withLock { _ in
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

    private func compactOnce(_ retired: inout [(ids: Set<UInt64>, at: ContinuousClock.Instant)]) {
        guard let plan = self.engine.compactionPlan() else { return }
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
