import NIOCore

/// The first handler of an HTTP/1.1 connection (ahead of the h2c preface check and the HTTP codec):
/// it sees every byte in and every write out, learns request and response boundaries from
/// ``HTTPRequestHandler``, and closes the connection when the peer stalls (see ``HTTPConnectionLimits``):
/// idle between requests, a request that does not arrive in time (answered 408 when no response is
/// under way), or a response the peer does not read.
package final class HTTPConnectionTimeouts: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = IOData
    package typealias OutboundOut = IOData

    private enum Phase {
        /// No request in progress: the idle timeout runs from `since`.
        case idle
        /// Bytes of a request arrived, its head has not: the head is due `requestReadTimeout` after `since`.
        case readingHead
        /// The head arrived; the body must keep arriving (no gap over `requestReadTimeout`).
        case readingBody
        /// The request is complete and being answered: no read deadline (queries have their own limit).
        case answering
    }

    private let limits: HTTPConnectionLimits
    private var phase = Phase.idle
    private var since = NIODeadline.now()
    private var lastRead = NIODeadline.now()
    /// Bytes arrived while answering: the next (pipelined) request has begun.
    private var readWhileAnswering = false
    /// Bytes written toward the socket; those not in the channel's buffer have left. Progress is
    /// judged at each check from these counts, so writes cost no promise or callback.
    private var bytesWritten = 0
    private var bytesSentAtLastCheck = 0
    private var lastWriteProgress = NIODeadline.now()
    private var check: Scheduled<Void>? = nil

    package init(limits: HTTPConnectionLimits) {
        self.limits = limits
    }

    // MARK: Boundaries, from the request handler (same event loop)

    package func requestHeadReceived() {
        self.phase = .readingBody
        self.lastRead = .now()
    }

    package func requestReceived() {
        self.phase = .answering
        self.readWhileAnswering = false
    }

    /// Call before writing the response's end: the next request may be delivered from inside that write.
    package func responseFinishing() {
        let now = NIODeadline.now()
        self.phase = self.readWhileAnswering ? .readingHead : .idle
        self.since = now
        self.readWhileAnswering = false
    }

    // MARK: Channel events

    package func handlerAdded(context: ChannelHandlerContext) {
        self.since = .now()
        self.scheduleCheck(context: context)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.check?.cancel()
        self.check = nil
    }

    package func channelInactive(context: ChannelHandlerContext) {
        self.check?.cancel()
        self.check = nil
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = NIODeadline.now()
        self.lastRead = now
        switch self.phase {
        case .idle:
            self.phase = .readingHead
            self.since = now
        case .answering:
            self.readWhileAnswering = true
        case .readingHead, .readingBody:
            break
        }
        context.fireChannelRead(data)
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .byteBuffer(let buffer): self.bytesWritten += buffer.readableBytes
        case .fileRegion(let region): self.bytesWritten += region.readableBytes
        }
        context.write(data, promise: promise)
    }

    // MARK: Deadlines

    private func scheduleCheck(context: ChannelHandlerContext) {
        self.check = context.eventLoop.assumeIsolated().scheduleTask(in: self.limits.tick) {
            self.checkDeadlines(context: context)
        }
    }

    private func checkDeadlines(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let now = NIODeadline.now()
        let buffered = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        let sent = self.bytesWritten - buffered
        if sent > self.bytesSentAtLastCheck || buffered == 0 {
            self.bytesSentAtLastCheck = sent
            self.lastWriteProgress = now
        }
        if buffered > 0 {
            // Output is waiting for the peer: no read or idle deadline while it does.
            if now - self.lastWriteProgress >= self.limits.writeTimeout { return self.close(context, .write) }
            if self.phase == .idle { self.since = now }
        } else {
            switch self.phase {
            case .idle:
                if now - self.since >= self.limits.idleTimeout { return self.close(context, .idle) }
            case .readingHead:
                if now - self.since >= self.limits.requestReadTimeout { return self.requestTimedOut(context) }
            case .readingBody:
                if now - self.lastRead >= self.limits.requestReadTimeout { return self.requestTimedOut(context) }
            case .answering:
                break
            }
        }
        self.scheduleCheck(context: context)
    }

    /// Counts the timeout, then closes: a client that sees the connection end finds it counted.
    private func close(_ context: ChannelHandlerContext, _ why: HTTPTimeout) {
        self.check = nil
        self.limits.onTimeout?(why)
        context.close(promise: nil)
    }

    /// A request stopped arriving while nothing else was being written: 408, straight to the socket
    /// (behind the codec, which never saw a complete request), then close.
    private func requestTimedOut(_ context: ChannelHandlerContext) {
        self.check = nil
        let text = "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        let channel = context.channel
        // Counted first: the write may finish, and the connection close, before this call returns.
        self.limits.onTimeout?(.read)
        context.writeAndFlush(self.wrapOutboundOut(.byteBuffer(ByteBuffer(string: text))))
            .whenComplete { _ in channel.close(promise: nil) }
    }
}
