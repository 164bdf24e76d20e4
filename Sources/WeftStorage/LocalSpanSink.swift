import NIOCore
import WeftModel
import WeftRuntime
import WeftStorageEngine

/// The sink of a single storage node: a version-2 WAL record (group-committed and fsynced by the
/// ``WALCommitter``), then the head stripe of the writing event loop, then the answer.
public struct LocalSpanSink: SpanSink {
    let head: Head
    let committer: WALCommitter
    /// Placement recorded for batches written through ``write(_:org:on:)``.
    let placement: String
    /// The head stripe of each event loop, so loops never contend on head appends.
    let stripes: [ObjectIdentifier: Int]
    /// Above this many spans in the head (flushes behind), writes are refused with a retry hint.
    let headMaxSpans: Int

    public init(head: Head, committer: WALCommitter, placement: String, stripes: [ObjectIdentifier: Int], headMaxSpans: Int = .max) {
        self.head = head
        self.committer = committer
        self.placement = placement
        self.stripes = stripes
        self.headMaxSpans = headMaxSpans
    }

    public var refusal: IngestFailure? {
        let held = self.head.spanCount
        guard held >= self.headMaxSpans else { return nil }
        return .unavailable("the in-memory head holds \(held) spans (limit \(self.headMaxSpans)) while blocks are written; retry shortly")
    }

    public func write(_ batch: SpanBatch, org: String, on loop: any EventLoop) -> EventLoopFuture<Result<Void, IngestFailure>> {
        self.write(batch, org: org, placement: self.placement, on: loop)
    }

    /// Writes a batch that names its own placement (e.g. one sent by another node). Refused while the
    /// head is full, whichever path the batch came by: this node's own replicated writes and other
    /// nodes' pushes never consult ``refusal`` before decoding, and must not grow the head unbounded.
    public func write(_ batch: SpanBatch, org: String, placement: String, on loop: any EventLoop) -> EventLoopFuture<Result<Void, IngestFailure>> {
        if let refusal = self.refusal { return loop.makeSucceededFuture(.failure(refusal)) }
        let record: [UInt8]
        do {
            record = try WALEntry.framed(org: org, placement: placement, batch: batch)
        } catch {
            return loop.makeSucceededFuture(.failure(.malformed("\(error)")))
        }
        let promise = loop.makePromise(of: Result<Void, IngestFailure>.self)
        let head = self.head
        let stripe = self.stripes[ObjectIdentifier(loop)] ?? 0
        self.committer.submit(record) { committed in
            switch committed {
            case .success(let segment):
                // Back on the event loop: the WAL thread only writes and syncs.
                loop.execute {
                    head.appendExpected(batch, org: org, placement: placement, stripe: stripe, segment: segment)
                    promise.succeed(.success(()))
                }
            case .failure(let error):
                promise.succeed(.failure(.unavailable("spans not stored: \(error)")))
            }
        }
        return promise.futureResult
    }
}
