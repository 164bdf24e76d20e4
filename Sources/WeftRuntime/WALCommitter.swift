import Foundation
import Synchronization
import WeftStorageEngine

/// Group commit: requests queue their WAL records; one thread writes everything queued with a single
/// `write` and a single `fdatasync`, then completes all of them. Nothing is acknowledged before its
/// record is durable. The same thread rolls segments and removes flushed ones, so it alone touches
/// the log.
public final class WALCommitter: Sendable {
    /// Called with the segment the record went to, once durable.
    public typealias Completion = @Sendable (Result<Int, any Error>) -> Void

    /// The segment receiving records and when it was started.
    public struct Segment: Sendable, Equatable {
        public var number: Int
        public var started: ContinuousClock.Instant
        public var hasRecords: Bool
    }

    private struct Pending {
        var records: [[UInt8]] = []
        var completions: [Completion] = []
        var bytes = 0
        var stopping = false
        var stopped = false
        /// Set when an fsync failed: durability can no longer be promised, so writes are refused.
        var failure: String? = nil
        var rollRequested = false
        var removals: [Int] = []
    }

    /// Error returned when too many bytes wait for the disk (callers answer 503 with Retry-After).
    public struct Overloaded: Error, CustomStringConvertible {
        public var description: String { "write-ahead log is overloaded" }
    }

    /// Error returned after shutdown began.
    public struct ShuttingDown: Error, CustomStringConvertible {
        public var description: String { "server is shutting down" }
    }

    private let pending = Mutex(Pending())
    private let condition = NSCondition()
    private let done = Mutex<[CheckedContinuation<Void, Never>]>([])
    private nonisolated(unsafe) let wal: WAL
    private let head: Head
    private let maxPendingBytes: Int
    private let metrics: NodeMetrics
    private let segment: Mutex<Segment>

    /// Takes ownership of `wal` (already replayed); starts the commit thread. Each committed record is
    /// announced to `head` (``Head/expectAppends(segment:count:)``) before its completion runs.
    public init(wal: WAL, head: Head, maxPendingBytes: Int = 512 << 20, metrics: NodeMetrics) {
        self.wal = wal
        self.head = head
        self.maxPendingBytes = maxPendingBytes
        self.metrics = metrics
        self.segment = Mutex(Segment(number: wal.current, started: .now, hasRecords: wal.currentHasRecords))
        let thread = Thread { [self] in self.loop() }
        thread.name = "weft-wal"
        thread.start()
    }

    /// Queues a record framed with `WAL.frame` / `WALEntry.framed`; `completion` runs on the WAL thread
    /// once it is durable (or failed), so it must only hand off work.
    public func submit(_ record: [UInt8], completion: @escaping Completion) {
        let error: (any Error)? = self.pending.withLock { p in
            if p.stopping { return ShuttingDown() }
            if let failure = p.failure { return DiskError("write-ahead log unavailable after an fsync failure: \(failure)") }
            if p.bytes + record.count > self.maxPendingBytes && p.bytes > 0 { return Overloaded() }
            p.records.append(record)
            p.completions.append(completion)
            p.bytes += record.count
            return nil
        }
        if let error {
            completion(.failure(error))
            return
        }
        self.condition.lock()
        self.condition.signal()
        self.condition.unlock()
    }

    /// The segment currently receiving records.
    public var currentSegment: Segment { self.segment.withLock { $0 } }

    /// Asks the commit thread to close the current segment (if it has records) after what is queued.
    public func requestRoll() {
        self.pending.withLock { $0.rollRequested = true }
        self.wake()
    }

    /// Asks the commit thread to delete a closed segment whose records are in durable blocks.
    public func removeSegment(_ number: Int) {
        self.pending.withLock { $0.removals.append(number) }
        self.wake()
    }

    private func wake() {
        self.condition.lock()
        self.condition.signal()
        self.condition.unlock()
    }

    /// Stops accepting records, commits everything queued, and returns once the thread has exited.
    public func shutdown() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let already = self.pending.withLock { p -> Bool in
                if p.stopped { return true }
                p.stopping = true
                return false
            }
            if already {
                c.resume()
                return
            }
            self.done.withLock { $0.append(c) }
            self.condition.lock()
            self.condition.signal()
            self.condition.unlock()
        }
    }

    private func loop() {
        while true {
            var taken = Pending()
            self.condition.lock()
            while true {
                let (ready, stop) = self.pending.withLock { p -> (Bool, Bool) in
                    if !p.records.isEmpty || p.rollRequested || !p.removals.isEmpty {
                        swap(&taken.records, &p.records)
                        swap(&taken.completions, &p.completions)
                        swap(&taken.removals, &p.removals)
                        taken.rollRequested = p.rollRequested
                        p.rollRequested = false
                        p.bytes = 0
                        return (true, false)
                    }
                    if p.stopping {
                        p.stopped = true
                        return (false, true)
                    }
                    return (false, false)
                }
                if ready { break }
                if stop {
                    self.condition.unlock()
                    let waiters = self.done.withLock { w -> [CheckedContinuation<Void, Never>] in
                        defer { w = [] }
                        return w
                    }
                    for w in waiters { w.resume() }
                    return
                }
                self.condition.wait()
            }
            self.condition.unlock()

            if !taken.records.isEmpty { self.commit(taken) }
            if taken.rollRequested {
                do {
                    try self.wal.roll()
                } catch {
                    self.metrics.walErrors.increment()
                }
            }
            for number in taken.removals where number != self.wal.current {
                do {
                    try self.wal.remove(segment: number)
                    self.metrics.walSegmentsRemoved.increment()
                } catch {
                    self.metrics.walErrors.increment()
                }
            }
            let current = self.wal.current
            let hasRecords = self.wal.currentHasRecords
            self.segment.withLock { s in
                if s.number != current { s = Segment(number: current, started: .now, hasRecords: hasRecords) } else { s.hasRecords = hasRecords }
            }
        }
    }

    private func commit(_ taken: Pending) {
        let result: Result<Int, any Error>
        do {
            let segment = try self.wal.append(framed: taken.records)
            let start = ContinuousClock.now
            do {
                try self.wal.sync()
            } catch {
                self.pending.withLock { $0.failure = "\(error)" }
                throw error
            }
            self.metrics.walFsync.record(ContinuousClock.now - start)
            self.metrics.walBytes.increment(by: Int64(taken.records.reduce(0) { $0 + $1.count }))
            self.metrics.walBatchRecords.record(Int64(taken.records.count))
            self.head.expectAppends(segment: segment, count: taken.completions.count)
            result = .success(segment)
        } catch {
            self.metrics.walErrors.increment()
            result = .failure(error)
        }
        for c in taken.completions { c(result) }
    }
}
