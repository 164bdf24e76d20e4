import NIOCore
import NIOHTTP1
import WeftHTTP2
import WeftQuery

/// Collects one request at a time (the pipeline handler orders pipelined requests) and answers it.
/// Request bodies count against the node's ``RequestBodyBudget`` until answered; responses go out in
/// pieces as the peer reads them (channel writability), and are dropped if the peer has gone.
package final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        /// The body so far; nil until its first piece (it grows as bytes arrive, never sized from the
        /// declared length).
        case receiving(HTTPRequestHead, ByteBuffer?)
        /// The request was refused (413 or 503) while its body was arriving: the answer was sent and
        /// the connection closes after it.
        case discarding
    }

    /// A response body being written, piece by piece while the channel is writable.
    private struct Outgoing {
        var body: [UInt8]
        var offset: Int
        var keepAlive: Bool
    }

    /// The most bytes written at once; more follow when the channel is writable again.
    package static let writePiece = 64 << 10

    private let maxBodyBytes: Int
    private let bodyBudget: RequestBodyBudget?
    private let timeouts: HTTPConnectionTimeouts?
    private let responder: HTTPResponder
    private var state = State.idle
    /// Bytes of the current request reserved from the budget (its declared length, or what arrived).
    private var reserved = 0
    /// The declared length was reserved up front, so arriving pieces need no reservation.
    private var reservedUpFront = false
    /// The request being answered, cancelled if the connection closes first.
    private var inFlight: QueryCancellation? = nil
    private var outgoing: Outgoing? = nil
    private var closed = false

    package init(maxBodyBytes: Int, bodyBudget: RequestBodyBudget? = nil, timeouts: HTTPConnectionTimeouts? = nil, responder: @escaping HTTPResponder) {
        self.maxBodyBytes = maxBodyBytes
        self.bodyBudget = bodyBudget
        self.timeouts = timeouts
        self.responder = responder
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.timeouts?.requestHeadReceived()
            let declared = head.headers.first(name: "content-length").flatMap(Int.init)
            if let declared, declared > self.maxBodyBytes {
                return self.refuse(context: context, head: head, overloaded: false)
            }
            if let budget = self.bodyBudget, let declared, declared > 0 {
                guard budget.reserve(declared) else { return self.refuse(context: context, head: head, overloaded: true) }
                self.reserved = declared
                self.reservedUpFront = true
            }
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            self.state = .receiving(head, nil)
        case .body(var part):
            guard case .receiving(let head, let received) = self.state else { return }
            let size = (received?.readableBytes ?? 0) + part.readableBytes
            if size > self.maxBodyBytes {
                return self.refuse(context: context, head: head, overloaded: false)
            }
            if let budget = self.bodyBudget, !self.reservedUpFront {
                guard budget.reserve(part.readableBytes) else { return self.refuse(context: context, head: head, overloaded: true) }
                self.reserved += part.readableBytes
            }
            guard var body = received else {
                self.state = .receiving(head, part)
                return
            }
            self.state = .idle  // drop our reference so the append does not copy
            body.writeBuffer(&part)
            self.state = .receiving(head, body)
        case .end:
            guard case .receiving(let head, let body) = self.state else { return }
            self.state = .idle
            self.timeouts?.requestReceived()
            self.dispatch(context: context, head: head, body: body ?? context.channel.allocator.buffer(capacity: 0))
        }
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.continueWriting(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// The peer has gone: its request is cancelled, its answer (if any) dropped, its bytes released.
    package func channelInactive(context: ChannelHandlerContext) {
        self.connectionEnded()
        context.fireChannelInactive()
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.connectionEnded()
    }

    /// A malformed request (the protocol error handler has already answered 400) or a socket error:
    /// this connection is done.
    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func connectionEnded() {
        self.closed = true
        self.outgoing = nil
        self.state = .idle
        self.inFlight?.cancel()
        self.inFlight = nil
        self.releaseBody()
    }

    private func releaseBody() {
        self.bodyBudget?.release(self.reserved)
        self.reserved = 0
        self.reservedUpFront = false
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        var request = HTTPRequest(method: head.method, uri: head.uri, headers: head.headers, body: body)
        let cancellation = QueryCancellation()
        request.cancellation = cancellation
        self.inFlight = cancellation
        let keepAlive = head.isKeepAlive
        let version = head.version
        let future = self.responder(request, context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let boundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        future.hop(to: context.eventLoop).whenComplete { result in
            let response: HTTPResponse
            switch result {
            case .success(let r): response = r
            case .failure(let error): response = .text(.internalServerError, "internal error: \(error)\n")
            }
            boundSelf.value.inFlight = nil
            boundSelf.value.write(context: boundContext.value, response: response, version: version, keepAlive: keepAlive)
        }
    }

    /// 413 (the body is over the limit) or 503 with a retry hint (the node holds its budget of request
    /// bodies); the rest of the body is discarded and the connection closes after the answer.
    private func refuse(context: ChannelHandlerContext, head: HTTPRequestHead, overloaded: Bool) {
        self.state = .discarding
        self.releaseBody()
        let contentType = head.headers.first(name: "content-type")
        let isOTLP = contentType.map { $0.lowercased().hasPrefix("application/x-protobuf") || $0.lowercased().hasPrefix("application/json") } ?? false
        var response: HTTPResponse
        if overloaded {
            let text = "the server holds its limit of \(self.bodyBudget?.limit ?? 0) bytes of request bodies; retry shortly"
            if isOTLP {
                response = OTLPErrors.response(.serviceUnavailable, code: 14, text, contentType: contentType, retryAfter: 1)
            } else {
                response = .text(.serviceUnavailable, text + "\n")
                response.headers.add(name: "retry-after", value: "1")
            }
        } else {
            let text = "request body exceeds the limit of \(self.maxBodyBytes) bytes"
            response = isOTLP ? OTLPErrors.response(.payloadTooLarge, code: 8, text, contentType: contentType) : .text(.payloadTooLarge, text + "\n")
        }
        self.write(context: context, response: response, version: head.version, keepAlive: false)
    }

    private func write(context: ChannelHandlerContext, response: HTTPResponse, version: HTTPVersion, keepAlive: Bool) {
        guard !self.closed else { return }  // nobody to answer: drop it
        var headers = response.headers
        headers.replaceOrAdd(name: "content-length", value: String(response.body.count))
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        self.outgoing = Outgoing(body: response.body, offset: 0, keepAlive: keepAlive)
        self.continueWriting(context: context)
    }

    /// Writes pieces of the response body while the channel is writable; ends the response once all
    /// of it is written. Otherwise waits for writability (the write timeout closes a peer that never reads).
    private func continueWriting(context: ChannelHandlerContext) {
        guard var out = self.outgoing else { return }
        self.outgoing = nil
        while out.offset < out.body.count {
            guard context.channel.isWritable else {
                self.outgoing = out
                context.flush()
                return
            }
            let n = min(Self.writePiece, out.body.count - out.offset)
            var piece = context.channel.allocator.buffer(capacity: n)
            piece.writeBytes(out.body[out.offset..<out.offset + n])
            out.offset += n
            context.write(self.wrapOutboundOut(.body(.byteBuffer(piece))), promise: nil)
        }
        self.releaseBody()
        self.timeouts?.responseFinishing()
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: done)
        if !out.keepAlive {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
