import NIOCore

/// Writes of streamed bodies (a client's request, a server's response) waiting to go out, at most one
/// per stream. Both handlers complete them from the session's `.writable` events and fail them when
/// their stream or connection ends.
struct PendingBodyWrites {
    private var waiting: [Int32: EventLoopPromise<Void>] = [:]

    /// Whether a write on `sid` is still waiting (a stream takes one at a time).
    func isWaiting(_ sid: Int32) -> Bool { self.waiting[sid] != nil }

    /// Queues `piece` (and the end of the body with `end`) on the session. `promise` completes once the
    /// piece has gone out, or at once for the end or an empty piece. Returns false, leaving `promise`
    /// to the caller, when the session no longer has the stream.
    mutating func write(_ piece: ByteBuffer, end: Bool, on sid: Int32, session: NGSession, promise: EventLoopPromise<Void>) -> Bool {
        guard session.writeBody(sid, piece, end: end) else { return false }
        if end || piece.readableBytes == 0 {
            promise.succeed(())
        } else {
            self.waiting[sid] = promise
        }
        return true
    }

    /// The session reported `sid` writable: its waiting write has gone out.
    mutating func sent(_ sid: Int32) {
        self.waiting.removeValue(forKey: sid)?.succeed(())
    }

    /// Fails the write waiting on `sid`; false if there was none.
    @discardableResult
    mutating func fail(_ sid: Int32, _ error: any Error) -> Bool {
        guard let promise = self.waiting.removeValue(forKey: sid) else { return false }
        promise.fail(error)
        return true
    }

    mutating func failAll(_ error: any Error) {
        let all = self.waiting
        self.waiting = [:]
        for (_, promise) in all { promise.fail(error) }
    }
}
