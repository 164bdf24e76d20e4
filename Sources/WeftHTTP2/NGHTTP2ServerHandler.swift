import CNGHTTP2
import NIOCore

/// Serves HTTP/2 on one connection with an ``NGSession``: reads are fed to the session as they come,
/// complete requests go to the service, and output is flushed once per read burst (or once per loop
/// tick for answers that complete later).
final class NGHTTP2ServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let configuration: HTTP2ServerConfiguration
    private let service: HTTP2Service
    private var session: NGSession?
    private var context: ChannelHandlerContext?
    /// Inside a read burst: channelReadComplete will flush.
    private var reading = false
    private var flushScheduled = false
    private var lastActivity = NIODeadline.now()
    /// Since when output has waited for the channel to become writable; nil while it flows.
    private var writeBlockedSince: NIODeadline? = nil
    private var idleCheck: Scheduled<Void>? = nil
    private var goingAway = false
    /// Streamed response bodies: the write in progress per stream, completed once it has gone out.
    private var bodyWrites = PendingBodyWrites()
    /// Streams whose body a producer is writing; a close code once the stream is gone (kept until the
    /// producer's next write or its end, so it learns why).
    private var streamingStreams: [Int32: UInt32?] = [:]
    /// The writers of streamed bodies, told when their stream closes early.
    private var streamWriters: [Int32: HTTP2BodyWriter] = [:]
    /// Request bodies being handed to their handlers piece by piece.
    private var incoming: [Int32: StreamBridge] = [:]

    init(configuration: HTTP2ServerConfiguration, service: HTTP2Service) {
        self.configuration = configuration
        self.service = service
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            self.session = try NGSession(role: .server, settings: self.configuration.sessionSettings, allocator: context.channel.allocator)
            self.session?.streamsRequestBody = self.service.streamsRequestBody
        } catch {
            context.close(promise: nil)
            return
        }
        // Our SETTINGS go out with the first flush (the read that brought the preface, or the next tick).
        self.scheduleFlush()
        self.scheduleIdleCheck(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.idleCheck?.cancel()
        self.context = nil
        self.session = nil
        self.failStreamedBodies()
    }

    /// The connection is gone: streamed bodies being written fail.
    private func failStreamedBodies() {
        self.streamingStreams = [:]
        let writers = self.streamWriters
        self.streamWriters = [:]
        for (_, writer) in writers { writer.peerClosed() }
        let bodies = self.incoming
        self.incoming = [:]
        self.bodyWrites.failAll(HTTP2StreamClosed(errorCode: nil))
        for (_, b) in bodies { b.fail(HTTP2StreamClosed(errorCode: nil)) }
    }

    /// Closes the connection gracefully (GOAWAY) once it has had no open stream for `idleTimeout`, and
    /// at once when its output has been blocked for `writeTimeout`.
    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        let timeouts = [self.configuration.idleTimeout, self.configuration.writeTimeout].compactMap { $0 }
        guard let shortest = timeouts.min() else { return }
        let tick = TimeAmount.nanoseconds(min(max(shortest.nanoseconds / 4, 1_000_000), 1_000_000_000))
        self.idleCheck = context.eventLoop.assumeIsolated().scheduleTask(in: tick) {
            guard let context = self.context, let session = self.session else { return }
            if let blocked = self.writeBlockedSince, let limit = self.configuration.writeTimeout, NIODeadline.now() - blocked >= limit {
                self.session = nil
                self.failStreamedBodies()
                // Counted before the close a client can see.
                self.configuration.onWriteTimeout?()
                context.close(promise: nil)
                return
            }
            guard !self.goingAway, let timeout = self.configuration.idleTimeout else { return self.scheduleIdleCheck(context: context) }
            if session.openStreams > 0 {
                self.lastActivity = .now()
            } else if NIODeadline.now() - self.lastActivity >= timeout {
                self.goingAway = true
                session.submitGoAway()
                self.flush(context: context)
                return
            }
            self.scheduleIdleCheck(context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session = self.session else { return }
        self.reading = true
        self.lastActivity = .now()
        do {
            try session.receive(self.unwrapInboundIn(data))
        } catch {
            // Fatal for the connection: send what nghttp2 queued (GOAWAY) and close.
            self.flush(context: context)
            self.session = nil
            context.close(promise: nil)
            return
        }
        self.handleEvents(session, context: context)
        self.flush(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.reading = false
        self.flush(context: context)
        context.fireChannelReadComplete()
    }

    /// Output waits while the channel is not writable; it resumes here.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.writeBlockedSince = nil
            self.flush(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.session = nil
        self.failStreamedBodies()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, let session = self.session {
            // Graceful shutdown: GOAWAY; streams already accepted run to completion, then we close.
            session.submitGoAway()
            self.flush(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: -

    private func handleEvents(_ session: NGSession, context: ChannelHandlerContext) {
        // Answers that complete inline may add events; they are taken in the same loop.
        while let event = session.nextEvent() {
            switch event {
            case .message(let streamID, let message):
                if !self.incoming.isEmpty, let body = self.incoming.removeValue(forKey: streamID) {
                    body.finish(trailers: message.trailers)
                } else {
                    self.dispatch(streamID, Self.request(message), context: context)
                }
            case .head(let streamID, let head):
                // A streamed request body: the handler starts now and reads the body as it arrives.
                let body = StreamBridge(token: 0)
                self.incoming[streamID] = body
                let loop = context.eventLoop
                let handler = NIOLoopBound(self, eventLoop: loop)
                var request = Self.request(head)
                request.bodyStream = HTTP2RequestBody(bridge: body) { bytes in
                    loop.execute { handler.value.consumed(streamID, bytes) }
                }
                self.dispatch(streamID, request, context: context)
            case .data(let streamID, let piece):
                if let body = self.incoming[streamID] {
                    body.push(piece)
                } else {
                    session.consume(streamID, piece.readableBytes)
                }
            case .rejected(let streamID, let why, let head):
                let limit: HTTP2Rejection
                switch why {
                case .bodyTooLarge: limit = .bodyTooLarge(limit: self.configuration.maxBodyBytes)
                case .headersTooLarge: limit = .headersTooLarge(limit: self.configuration.maxHeaderListBytes)
                case .overloaded: limit = .overloaded(budget: self.configuration.bodyBudget?.limit ?? 0)
                }
                self.submit(streamID, self.service.reject(Self.request(head), limit), method: head.method)
            case .writable(let streamID):
                self.bodyWrites.sent(streamID)
            case .closed(let streamID, let code):
                if !self.incoming.isEmpty { self.incoming.removeValue(forKey: streamID)?.fail(HTTP2StreamClosed(errorCode: code)) }
                if !self.streamingStreams.isEmpty, self.streamingStreams[streamID] != nil {
                    // A waiting write learns the code now; otherwise the producer's next write does.
                    self.streamingStreams[streamID] = self.bodyWrites.fail(streamID, HTTP2StreamClosed(errorCode: code)) ? nil : .some(code)
                }
                if !self.streamWriters.isEmpty { self.streamWriters.removeValue(forKey: streamID)?.peerClosed() }
            case .goAway, .pingAck:
                break
            }
        }
    }

    private static func request(_ m: NGMessage) -> HTTP2Request {
        HTTP2Request(method: m.method, path: m.path, scheme: m.scheme, authority: m.authority, headers: m.headers, body: m.body)
    }

    /// A handler read `bytes` of a streamed request body: the peer may send that much more.
    private func consumed(_ streamID: Int32, _ bytes: Int) {
        guard let session = self.session else { return }
        session.consume(streamID, bytes)
        self.scheduleFlush()
    }

    private func dispatch(_ streamID: Int32, _ request: HTTP2Request, context: ChannelHandlerContext) {
        let method = request.method
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        self.service.answer(request, loop) { result in
            let response: HTTP2Response
            switch result {
            case .success(let r): response = r
            case .failure(let error):
                response = HTTP2Response(status: 500, headers: [("content-type", "text/plain; charset=utf-8")], body: ByteBuffer(string: "internal error: \(error)\n"))
            }
            if loop.inEventLoop {
                handler.value.submit(streamID, response, method: method)
            } else {
                loop.execute { handler.value.submit(streamID, response, method: method) }
            }
        }
    }

    private func submit(_ streamID: Int32, _ response: HTTP2Response, method: String) {
        guard let session = self.session else { return }
        if let producer = response.bodyStream, method != "HEAD" {
            return self.submitStreaming(streamID, response, producer: producer, session: session)
        }
        session.submitResponse(
            streamID: streamID, status: response.status, headers: response.headers,
            body: method == "HEAD" ? nil : response.body, trailers: response.trailers,
            contentLength: response.trailers.isEmpty ? response.body.readableBytes : nil
        )
        self.scheduleFlush()
    }

    /// Sends the head now and runs the producer in a task; its writes hop here and complete once sent.
    private func submitStreaming(_ streamID: Int32, _ response: HTTP2Response, producer: @escaping HTTP2BodyProducer, session: NGSession) {
        guard session.submitResponse(
            streamID: streamID, status: response.status, headers: response.headers, body: nil, trailers: response.trailers, streaming: true)
        else { return }
        self.streamingStreams[streamID] = .some(nil)
        self.scheduleFlush()
        guard let loop = self.context?.eventLoop else { return }
        let handler = NIOLoopBound(self, eventLoop: loop)
        let writer = HTTP2BodyWriter { piece, end, trailers in
            loop.flatSubmit { handler.value.writeBody(streamID, piece, end: end, trailers: trailers, loop: loop) }
        }
        self.streamWriters[streamID] = writer
        Task {
            do {
                try await producer(writer)
                try await writer.finish()
            } catch {
                loop.execute { handler.value.resetStream(streamID) }
            }
        }
    }

    private func writeBody(
        _ streamID: Int32, _ piece: ByteBuffer, end: Bool, trailers: HTTP2BodyWriter.Fields?, loop: any EventLoop
    ) -> EventLoopFuture<Void> {
        guard let session = self.session, let state = self.streamingStreams[streamID], !self.bodyWrites.isWaiting(streamID) else {
            return loop.makeFailedFuture(HTTP2StreamClosed(errorCode: nil))
        }
        if let code = state {
            self.streamingStreams[streamID] = nil
            return loop.makeFailedFuture(HTTP2StreamClosed(errorCode: code))
        }
        if end, let trailers { session.replaceTrailers(streamID, trailers) }
        let promise = loop.makePromise(of: Void.self)
        guard self.bodyWrites.write(piece, end: end, on: streamID, session: session, promise: promise) else {
            promise.fail(HTTP2StreamClosed(errorCode: nil))
            return promise.futureResult
        }
        if end {
            self.streamingStreams[streamID] = nil
            self.streamWriters[streamID] = nil
        }
        self.scheduleFlush()
        return promise.futureResult
    }

    private func resetStream(_ streamID: Int32) {
        self.streamWriters[streamID] = nil
        guard let session = self.session, let state = self.streamingStreams.removeValue(forKey: streamID), state == nil else { return }
        self.bodyWrites.fail(streamID, HTTP2StreamClosed(errorCode: NGHTTP2_INTERNAL_ERROR.rawValue))
        session.resetStream(streamID, errorCode: NGHTTP2_INTERNAL_ERROR.rawValue)
        self.scheduleFlush()
    }

    private func scheduleFlush() {
        guard !self.reading, !self.flushScheduled, let context = self.context else { return }
        self.flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            if let context = self.context { self.flush(context: context) }
        }
    }

    /// Frames produced per flush at most; more follow once the channel is writable again.
    static let drainLimit = 256 << 10

    private func flush(context: ChannelHandlerContext) {
        guard let session = self.session else { return }
        guard session.wantsWrite else { return self.closeIfDone(session, context: context) }
        guard context.channel.isWritable else {
            // The peer is not reading: keep the frames in nghttp2 (the response bodies are held
            // there once) until it does, or until the write timeout closes the connection.
            if self.writeBlockedSince == nil { self.writeBlockedSince = .now() }
            return
        }
        var out = context.channel.allocator.buffer(capacity: 16 << 10)
        do {
            try session.drainOutput(into: &out, limit: Self.drainLimit)
        } catch {
            self.session = nil
            context.close(promise: nil)
            return
        }
        self.handleEvents(session, context: context)
        if out.readableBytes > 0 {
            context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
        }
        // More queued: go on while writable. Once the peer stops taking bytes, the channel turns
        // unwritable and output waits (the write timeout runs from then).
        if !context.channel.isWritable {
            if self.writeBlockedSince == nil { self.writeBlockedSince = .now() }
        } else if session.wantsWrite {
            self.scheduleFlush()
        }
        self.closeIfDone(session, context: context)
    }

    private func closeIfDone(_ session: NGSession, context: ChannelHandlerContext) {
        if !session.wantsRead && !session.wantsWrite {
            self.session = nil
            context.close(promise: nil)
        }
    }
}
