import CNGHTTP2
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A libnghttp2 error: a negative `nghttp2_error` code and its library message.
public struct NGHTTP2Error: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String

    init(_ code: Int, _ operation: String) {
        self.code = Int32(truncatingIfNeeded: code)
        self.operation = operation
    }

    public var description: String {
        "\(self.operation): \(String(cString: nghttp2_strerror(Int32(self.code)))) (\(self.code))"
    }
}

/// Limits and flow-control settings for one session; the same shape serves both roles.
public struct NGSessionSettings: Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise (server: streams the peer may open).
    public var maxConcurrentStreams: UInt32 = 256
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce (RFC 9113 §6.5.2 accounting: name + value + 32).
    public var maxHeaderListBytes: Int = 64 << 10
    /// SETTINGS_INITIAL_WINDOW_SIZE (per-stream receive window).
    public var initialStreamWindow: Int32 = 1 << 20
    /// Connection receive window. On a server, body bytes are credited back to the connection only once
    /// the request is answered or dropped, so this also bounds the request-body memory of one connection
    /// (raised to at least `maxBodyBytes` + one stream window so a maximal body always fits).
    public var connectionWindow: Int32 = 64 << 20
    /// Largest message body kept; beyond it the stream is rejected and further DATA discarded.
    public var maxBodyBytes: Int = 64 << 20
    /// Server: request-body bytes shared with the node's other connections. Whole (not streamed) request
    /// bodies reserve their bytes from it as they arrive and give them back when the stream closes; a
    /// body that does not fit is rejected (``NGRejection/overloaded``). Nil: no shared limit.
    public var bodyBudget: RequestBodyBudget? = nil

    public init() {}
}

/// Why an inbound message was refused before it was complete.
public enum NGRejection: Sendable, Equatable {
    case bodyTooLarge
    case headersTooLarge
    /// The shared request-body budget (``NGSessionSettings/bodyBudget``) is spent: retry later.
    case overloaded
}

/// What happened during `receive` / `drainOutput`; the owner handles these after the call returns, so
/// nothing re-enters nghttp2 from inside its callbacks.
public enum NGEvent: Sendable {
    /// END_STREAM arrived: the message (request on a server, response on a client) is complete.
    case message(streamID: Int32, NGMessage)
    /// The inbound message broke a limit; a server should answer (413/431). Its DATA is discarded from
    /// now on. `head` has the pseudo-headers and the headers kept so far, and no body.
    case rejected(streamID: Int32, NGRejection, head: NGMessage)
    /// The stream is gone; a non-zero code is a reset (RST_STREAM or GOAWAY) rather than a clean finish.
    case closed(streamID: Int32, errorCode: UInt32)
    /// The peer sent GOAWAY.
    case goAway(lastStreamID: Int32, errorCode: UInt32)
    /// The peer acknowledged one of our PINGs.
    case pingAck
    /// Client, streaming stream: the final response head arrived (no body yet).
    case head(streamID: Int32, NGMessage)
    /// Client, streaming stream: a piece of the response body. Its bytes are credited back to the
    /// peer's flow-control windows only when the owner calls ``NGSession/consume(_:_:)``.
    case data(streamID: Int32, ByteBuffer)
    /// Streaming request body: what was written has gone out; more may be written.
    case writable(streamID: Int32)
}

/// One assembled HTTP/2 message (request or response).
public struct NGMessage: Sendable {
    public var method = ""
    public var path = ""
    public var scheme = ""
    public var authority = ""
    /// `:status` on responses, 0 on requests.
    public var status = 0
    /// Regular (non-pseudo) header fields, in arrival order; names are lowercase.
    public var headers: [(name: String, value: String)] = []
    public var trailers: [(name: String, value: String)] = []
    public var body: ByteBuffer

    init(body: ByteBuffer) { self.body = body }
}

/// Owns one `nghttp2_session` (server or client side) and the per-stream state; confined to one thread
/// (the channel's event loop). Bytes go in with ``receive(_:)``, frames come out of ``drainOutput(into:)``,
/// and what happened is read from ``nextEvent()`` afterwards.
public final class NGSession {
    public enum Role: Sendable { case server, client }

    final class Stream {
        var message: NGMessage
        var headerBytes = 0
        var inTrailers = false
        var rejection: NGRejection? = nil
        var remoteClosed = false
        /// Body bytes received but not yet credited back to the connection window.
        var unconsumed = 0
        /// Body bytes reserved from the settings' body budget, given back when the stream closes.
        var budgeted = 0
        var outBody: ByteBuffer? = nil
        var outEnded = true
        /// Trailer fields sent after the body (HEADERS with END_STREAM); nil for none.
        var outTrailers: [(name: String, value: String)]? = nil
        var delivered = false
        /// Client: response head and DATA go out as events as they arrive; windows follow consumption.
        var streamingIn = false
        var headDelivered = false
        /// The request body is written piecewise (``writeBody``); DEFERRED while nothing is buffered.
        var streamingOut = false
        /// We reset the stream: nothing more of its body goes out.
        var resetLocally = false

        init(message: NGMessage) { self.message = message }
    }

    public let role: Role
    public let settings: NGSessionSettings
    private var session: OpaquePointer?
    private var streams = StreamTable<Stream>()
    /// The stream the last callback touched: header and data callbacks come in runs for one stream.
    private var lastStream: (id: Int32, stream: Stream)? = nil
    private var events: [NGEvent] = []
    private var eventHead = 0
    private var fields = HeaderFieldScratch()
    private var recentStrings = RecentStrings()
    private let allocator: ByteBufferAllocator

    public init(role: Role, settings: NGSessionSettings = NGSessionSettings(), allocator: ByteBufferAllocator = ByteBufferAllocator()) throws {
        self.role = role
        self.settings = settings
        self.allocator = allocator

        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { throw NGHTTP2Error(-901, "callbacks_new") }
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, ud in
            NGSession.from(ud).onBeginHeaders(frame!)
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLen, value, valueLen, _, ud in
            NGSession.from(ud).onHeader(frame!, UnsafeBufferPointer(start: name, count: nameLen), UnsafeBufferPointer(start: value, count: valueLen))
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, len, ud in
            NGSession.from(ud).onData(streamID, UnsafeRawBufferPointer(start: data, count: len))
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, ud in
            NGSession.from(ud).onFrameReceived(frame!)
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, ud in
            NGSession.from(ud).onFrameSent(frame!)
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, code, ud in
            NGSession.from(ud).onStreamClose(streamID, code)
        }

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0, let option else { throw NGHTTP2Error(-901, "option_new") }
        defer { nghttp2_option_del(option) }
        // Window updates follow consumption (see `connectionWindow`), not mere arrival.
        nghttp2_option_set_no_auto_window_update(option, 1)
        // Until the peer's SETTINGS arrive, assume a conservative stream limit.
        nghttp2_option_set_peer_max_concurrent_streams(option, 100)

        let me = Unmanaged.passUnretained(self).toOpaque()
        let rv = role == .server
            ? nghttp2_session_server_new2(&self.session, callbacks, me, option)
            : nghttp2_session_client_new2(&self.session, callbacks, me, option)
        guard rv == 0 else { throw NGHTTP2Error(Int(rv), "session_new") }

        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(settings.initialStreamWindow)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(settings.maxHeaderListBytes)),
        ]
        if role == .server {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        let sv = nghttp2_submit_settings(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), entries, entries.count)
        guard sv == 0 else { throw NGHTTP2Error(Int(sv), "submit_settings") }
        // A server holds connection credit until it answers, so one maximal body must always fit.
        let window = role == .server
            ? max(settings.connectionWindow, Int32(clamping: settings.maxBodyBytes + Int(settings.initialStreamWindow)))
            : settings.connectionWindow
        let wv = nghttp2_session_set_local_window_size(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, window)
        guard wv == 0 else { throw NGHTTP2Error(Int(wv), "set_local_window_size") }
    }

    deinit {
        nghttp2_session_del(self.session)
        if let budget = self.settings.bodyBudget {
            for st in self.streams.allValues { budget.release(st.budgeted) }
        }
    }

    private func stream(_ id: Int32) -> Stream? {
        if let last = self.lastStream, last.id == id { return last.stream }
        guard let stream = self.streams[id] else { return nil }
        self.lastStream = (id, stream)
        return stream
    }

    private func removeStream(_ id: Int32) {
        self.streams[id] = nil
        if self.lastStream?.id == id { self.lastStream = nil }
    }

    private static func from(_ ud: UnsafeMutableRawPointer?) -> NGSession {
        Unmanaged<NGSession>.fromOpaque(ud!).takeUnretainedValue()
    }

    // MARK: - Driving the session

    /// Feeds received bytes (in place, no copy). Throws on a fatal error: the caller flushes what is
    /// queued (usually a GOAWAY) and closes the connection.
    public func receive(_ buffer: ByteBuffer) throws {
        let n = buffer.withUnsafeReadableBytes { raw -> Int in
            guard let base = raw.baseAddress, raw.count > 0 else { return 0 }
            return nghttp2_session_mem_recv(self.session, base.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        if n < 0 { throw NGHTTP2Error(n, "mem_recv") }
    }

    /// Serializes queued frames into `buffer`, every one or (with `limit`) whole frames until at least
    /// `limit` bytes; the rest stay queued (``wantsWrite``). Returns the number of bytes appended.
    @discardableResult
    public func drainOutput(into buffer: inout ByteBuffer, limit: Int = .max) throws -> Int {
        var total = 0
        while total < limit {
            var chunk: UnsafePointer<UInt8>? = nil
            let n = nghttp2_session_mem_send(self.session, &chunk)
            if n < 0 { throw NGHTTP2Error(n, "mem_send") }
            if n == 0 { break }
            buffer.writeBytes(UnsafeRawBufferPointer(start: chunk, count: n))
            total += n
        }
        return total
    }

    /// The events gathered since the last call, in order.
    public func takeEvents() -> [NGEvent] {
        var taken: [NGEvent] = []
        while let event = self.nextEvent() { taken.append(event) }
        return taken
    }

    /// The oldest event not yet taken (moved out, not copied), or nil when there is none. Events that
    /// arrive while the owner is taking them (a submit from inside its handling) come in order.
    public func nextEvent() -> NGEvent? {
        guard self.eventHead < self.events.count else {
            if self.eventHead > 0 {
                self.events.removeAll(keepingCapacity: true)
                self.eventHead = 0
            }
            return nil
        }
        var event = NGEvent.pingAck
        swap(&event, &self.events[self.eventHead])
        self.eventHead += 1
        return event
    }

    /// False once the session has nothing more to read (after a GOAWAY with no active streams, or a fatal error).
    public var wantsRead: Bool { nghttp2_session_want_read(self.session) != 0 }
    /// False when nothing is queued to send.
    public var wantsWrite: Bool { nghttp2_session_want_write(self.session) != 0 }
    /// Streams with state held here.
    public var openStreams: Int { self.streams.count }
    /// Outbound body bytes queued on open streams and not yet serialised (a scan of the streams).
    public var queuedBodyBytes: Int { self.streams.allValues.reduce(0) { $0 + ($1.outBody?.readableBytes ?? 0) } }
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until its SETTINGS arrive is reported as 100).
    public var peerMaxConcurrentStreams: Int {
        Int(nghttp2_session_get_remote_settings(self.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
    }

    // MARK: - Submitting

    /// Server: answers a stream. With non-empty `trailers`, the body (possibly empty) is followed by a
    /// trailing HEADERS frame that ends the stream (as gRPC needs). `contentLength`, when given, is sent
    /// as `content-length` after `headers`. With `streaming`, the body follows through
    /// ``writeBody(_:_:end:)``. Returns false if the stream is gone (reset or closed meanwhile).
    @discardableResult
    public func submitResponse(
        streamID: Int32, status: Int, headers: [(name: String, value: String)], body: ByteBuffer?,
        trailers: [(name: String, value: String)] = [], contentLength: Int? = nil, streaming: Bool = false
    ) -> Bool {
        precondition(self.role == .server)
        guard let st = self.stream(streamID) else { return false }
        if !st.streamingIn { self.creditConnection(st) }  // a streamed body is credited as it is consumed
        let hasBody = (body?.readableBytes ?? 0) > 0
        st.outBody = hasBody ? body : nil
        // A streamed body is written later with ``writeBody(_:_:end:)``; until then the provider defers.
        st.outEnded = !streaming
        st.streamingOut = streaming
        st.outTrailers = trailers.isEmpty ? nil : trailers
        let needsProvider = hasBody || !trailers.isEmpty || streaming
        self.fields.start()
        self.fields.add(":status", integer: status)
        self.fields.add(headers)
        if let contentLength { self.fields.add("content-length", integer: contentLength) }
        let rv = self.fields.withList { nva, count in
            if needsProvider {
                var provider = NGSession.bodyProvider()
                return nghttp2_submit_response(self.session, streamID, nva, count, &provider)
            }
            return nghttp2_submit_response(self.session, streamID, nva, count, nil)
        }
        return rv == 0
    }

    /// Client: opens a stream with a request. Returns the stream ID. With `streaming`, the body is
    /// written later with ``writeBody(_:_:end:)`` and the response arrives as `.head` / `.data` events.
    /// `contentLength`, when given, is sent as `content-length` after `headers`.
    public func submitRequest(
        method: String, path: String, scheme: String = "http", authority: String,
        headers: [(name: String, value: String)] = [], body: ByteBuffer? = nil, streaming: Bool = false, contentLength: Int? = nil
    ) throws -> Int32 {
        precondition(self.role == .client)
        self.fields.start()
        self.fields.add(":method", method)
        self.fields.add(":path", path)
        self.fields.add(":scheme", scheme)
        self.fields.add(":authority", authority)
        self.fields.add(headers)
        if let contentLength { self.fields.add("content-length", integer: contentLength) }
        let hasBody = (body?.readableBytes ?? 0) > 0 || streaming
        let sid = self.fields.withList { nva, count in
            if hasBody {
                var provider = NGSession.bodyProvider()
                return nghttp2_submit_request(self.session, nil, nva, count, &provider, nil)
            }
            return nghttp2_submit_request(self.session, nil, nva, count, nil, nil)
        }
        guard sid > 0 else { throw NGHTTP2Error(Int(sid), "submit_request") }
        let stream = Stream(message: NGMessage(body: self.allocator.buffer(capacity: 0)))
        stream.outBody = (body?.readableBytes ?? 0) > 0 ? body : nil
        if streaming {
            stream.streamingIn = true
            stream.streamingOut = true
            stream.outEnded = false
        }
        self.streams[sid] = stream
        return sid
    }

    /// Streaming request or response body: queues `chunk` (and the end of the body when `end`) and
    /// wakes the deferred body; `.writable` follows once it has gone out. Returns false if the stream is gone.
    @discardableResult
    public func writeBody(_ streamID: Int32, _ chunk: ByteBuffer, end: Bool) -> Bool {
        guard let st = self.stream(streamID), st.streamingOut, !st.outEnded, !st.resetLocally else { return false }
        if chunk.readableBytes > 0 {
            if st.outBody == nil { st.outBody = chunk } else { st.outBody!.writeImmutableBuffer(chunk) }
        }
        st.outEnded = end
        nghttp2_session_resume_data(self.session, streamID)
        return true
    }

    /// Credits `bytes` of a streamed body (a client's response, a server's request) back to the peer,
    /// on the stream and the connection. Bytes of a stream that has closed were credited to the
    /// connection when it closed.
    public func consume(_ streamID: Int32, _ bytes: Int) {
        guard bytes > 0, let st = self.stream(streamID) else { return }
        let n = min(bytes, st.unconsumed)
        guard n > 0 else { return }
        st.unconsumed -= n
        nghttp2_session_consume_connection(self.session, n)
        _ = nghttp2_session_consume_stream(self.session, streamID, n)
    }

    /// Server: which requests hand their body over piece by piece (a `.head` event when the headers
    /// arrive, then `.data` events credited through ``consume(_:_:)``, then `.message` with the
    /// trailers) instead of whole. Called with the method and path of each request that has a body.
    public var streamsRequestBody: ((_ method: String, _ path: String) -> Bool)? = nil

    /// Resets one stream (RST_STREAM); the `.closed` event follows once the frame is sent. Whatever of its
    /// body has not gone out is dropped now, not when the frame is sent (which may wait behind a backed-up
    /// socket for as long as the connection lives).
    public func resetStream(_ streamID: Int32, errorCode: UInt32 = NGHTTP2_CANCEL.rawValue) {
        if let st = self.stream(streamID) {
            st.outBody = nil
            st.outTrailers = nil
            st.resetLocally = true
        }
        nghttp2_submit_rst_stream(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// Graceful shutdown: GOAWAY(NO_ERROR) naming the last stream we processed. Streams up to it run to
    /// completion; `wantsRead` turns false when the last one closes.
    public func submitGoAway(errorCode: UInt32 = NGHTTP2_NO_ERROR.rawValue) {
        let last = nghttp2_session_get_last_proc_stream_id(self.session)
        nghttp2_submit_goaway(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, nil, 0)
    }

    /// Sends a PING (acknowledged automatically by the peer's library).
    public func submitPing() {
        nghttp2_submit_ping(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    // MARK: - Callbacks (no re-entry into mem_recv/mem_send from here; submit_* and consume_* are allowed)

    private func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let sid = frame.pointee.hd.stream_id
        if let st = self.stream(sid) {
            if frame.pointee.headers.cat == NGHTTP2_HCAT_HEADERS, st.message.status >= 200 || self.role == .server {
                st.inTrailers = true
            }
        } else {
            let st = Stream(message: NGMessage(body: self.allocator.buffer(capacity: 0)))
            self.streams[sid] = st
            self.lastStream = (sid, st)
        }
        return 0
    }

    private func onHeader(_ frame: UnsafePointer<nghttp2_frame>, _ name: UnsafeBufferPointer<UInt8>, _ value: UnsafeBufferPointer<UInt8>) -> Int32 {
        guard let st = self.stream(frame.pointee.hd.stream_id) else { return 0 }
        st.headerBytes += name.count + value.count + 32
        if st.headerBytes > self.settings.maxHeaderListBytes {
            // Keep decoding (HPACK state must advance) but keep nothing; answered after END_HEADERS.
            if st.rejection == nil { st.rejection = .headersTooLarge }
            return 0
        }
        if st.rejection != nil { return 0 }
        let v = self.recentStrings.string(value)
        if st.inTrailers {
            st.message.trailers.append((self.recentStrings.string(name), v))
            return 0
        }
        if name.first == UInt8(ascii: ":") {
            switch name.count {
            case 7 where name[1] == UInt8(ascii: "m"): st.message.method = v  // :method
            case 5 where name[1] == UInt8(ascii: "p"): st.message.path = v  // :path
            case 7 where name[1] == UInt8(ascii: "s") && name[2] == UInt8(ascii: "c"): st.message.scheme = v  // :scheme
            case 10 where name[1] == UInt8(ascii: "a"): st.message.authority = v  // :authority
            case 7 where name[1] == UInt8(ascii: "s") && name[2] == UInt8(ascii: "t"): st.message.status = Int(v) ?? 0  // :status
            default: break  // nghttp2 has already rejected unknown pseudo-headers
            }
        } else {
            let n = self.recentStrings.string(name)
            st.message.headers.append((n, v))
            if self.role == .server, name.count == 14, n == "content-length", let length = Int(v), length > self.settings.maxBodyBytes {
                st.rejection = .bodyTooLarge
            }
        }
        return 0
    }

    private func onData(_ sid: Int32, _ data: UnsafeRawBufferPointer) -> Int32 {
        let n = data.count
        guard let st = self.stream(sid), st.rejection == nil else {
            // Nobody keeps these bytes: credit both windows right away.
            nghttp2_session_consume(self.session, sid, n)
            return 0
        }
        if st.streamingIn {
            // Credited when the owner consumes it (``consume``): the windows bound what is buffered.
            st.unconsumed += n
            var piece = self.allocator.buffer(capacity: n)
            piece.writeBytes(data)
            self.events.append(.data(streamID: sid, piece))
            return 0
        }
        if self.role == .server {
            // The stream window reopens at once (one stream may carry up to maxBodyBytes); the connection
            // window only when the request is answered or dropped, which bounds a connection's buffered bodies.
            nghttp2_session_consume_stream(self.session, sid, n)
            st.unconsumed += n
        } else {
            // Whole responses are credited on arrival (bounded by maxBodyBytes).
            nghttp2_session_consume(self.session, sid, n)
        }
        if st.message.body.readableBytes + n > self.settings.maxBodyBytes {
            self.reject(sid, st, .bodyTooLarge)
            return 0
        }
        if self.role == .server, let budget = self.settings.bodyBudget {
            guard budget.reserve(n) else {
                self.reject(sid, st, .overloaded)
                return 0
            }
            st.budgeted += n
        }
        st.message.body.writeBytes(data)
        return 0
    }

    private func onFrameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(hd.type) {
        case NGHTTP2_HEADERS.rawValue, NGHTTP2_DATA.rawValue:
            guard let st = self.stream(hd.stream_id) else { return 0 }
            let isHeaders = UInt32(hd.type) == NGHTTP2_HEADERS.rawValue
            if isHeaders, let why = st.rejection, !st.delivered {
                self.reject(hd.stream_id, st, why)
            }
            // A 1xx response head is not the final one.
            if self.role == .client, isHeaders, !endStream, (100..<200).contains(st.message.status) {
                st.message.status = 0
                st.headerBytes = 0
                return 0
            }
            if self.role == .server, isHeaders, !endStream, !st.headDelivered, st.rejection == nil,
               let streams = self.streamsRequestBody, streams(st.message.method, st.message.path) {
                st.streamingIn = true
                st.headDelivered = true
                var head = NGMessage(body: self.allocator.buffer(capacity: 0))
                head.method = st.message.method
                head.path = st.message.path
                head.scheme = st.message.scheme
                head.authority = st.message.authority
                head.headers = st.message.headers
                self.events.append(.head(streamID: hd.stream_id, head))
            }
            if self.role == .client, isHeaders, st.streamingIn, !st.headDelivered, st.message.status >= 200 {
                st.headDelivered = true
                var head = NGMessage(body: self.allocator.buffer(capacity: 0))
                head.status = st.message.status
                head.headers = st.message.headers
                self.events.append(.head(streamID: hd.stream_id, head))
            }
            if endStream {
                st.remoteClosed = true
                if st.rejection == nil {
                    let message = self.moveMessage(st)
                    // A client owns the response from here; a server credits the window when it answers.
                    if self.role == .client { self.creditConnection(st) }
                    self.events.append(.message(streamID: hd.stream_id, message))
                }
            }
        case NGHTTP2_GOAWAY.rawValue:
            self.events.append(.goAway(lastStreamID: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code))
        case NGHTTP2_PING.rawValue where hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0:
            self.events.append(.pingAck)
        default:
            break
        }
        return 0
    }

    private func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        // We answered before the request body ended (a rejected request, or a streamed body the
        // handler did not wait for); tell the peer to stop sending it.
        if self.role == .server, hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0,
           let st = self.stream(hd.stream_id), st.rejection != nil || st.streamingIn, !st.remoteClosed {
            nghttp2_submit_rst_stream(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), hd.stream_id, NGHTTP2_NO_ERROR.rawValue)
        }
        return 0
    }

    private func onStreamClose(_ sid: Int32, _ code: UInt32) -> Int32 {
        guard let st = self.stream(sid) else { return 0 }
        self.creditConnection(st)
        self.releaseBudget(st)
        self.removeStream(sid)
        self.events.append(.closed(streamID: sid, errorCode: code))
        return 0
    }

    private func reject(_ sid: Int32, _ st: Stream, _ why: NGRejection) {
        guard !st.delivered else { return }
        st.rejection = why
        // Drop what was buffered; the head (minus headers over the limit) goes with the event.
        var head = self.moveMessage(st)
        head.body = self.allocator.buffer(capacity: 0)
        self.creditConnection(st)
        self.releaseBudget(st)
        self.events.append(.rejected(streamID: sid, why, head: head))
    }

    private func moveMessage(_ st: Stream) -> NGMessage {
        var message = NGMessage(body: self.allocator.buffer(capacity: 0))
        swap(&message, &st.message)
        st.delivered = true
        return message
    }

    private func releaseBudget(_ st: Stream) {
        if st.budgeted > 0 {
            self.settings.bodyBudget?.release(st.budgeted)
            st.budgeted = 0
        }
    }

    private func creditConnection(_ st: Stream) {
        if st.unconsumed > 0 {
            nghttp2_session_consume_connection(self.session, st.unconsumed)
            st.unconsumed = 0
        }
    }

    // MARK: - Outbound bodies

    fileprivate func readBody(_ sid: Int32, _ dest: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let st = self.stream(sid) else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        // Reset by us: the RST_STREAM frame closes it; no DATA (nor END_STREAM) before that.
        if st.resetLocally { return Int(NGHTTP2_ERR_DEFERRED.rawValue) }
        guard st.outBody != nil else {
            if st.outEnded {
                self.endBody(sid, st, flags)
                return 0
            }
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        let n = min(length, st.outBody!.readableBytes)
        st.outBody!.readWithUnsafeReadableBytes { raw in
            UnsafeMutableRawPointer(dest).copyMemory(from: raw.baseAddress!, byteCount: n)
            return n
        }
        if st.outBody!.readableBytes == 0 {
            st.outBody = nil
            if st.outEnded { self.endBody(sid, st, flags) } else if st.streamingOut { self.events.append(.writable(streamID: sid)) }
        }
        return n
    }

    /// The last DATA frame: EOF, and when trailers are pending, no END_STREAM on it; the trailing
    /// HEADERS frame carries END_STREAM instead (submitting it from the read callback is allowed).
    private func endBody(_ sid: Int32, _ st: Stream, _ flags: UnsafeMutablePointer<UInt32>) {
        flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        guard let trailers = st.outTrailers else { return }
        st.outTrailers = nil
        self.fields.start()
        self.fields.add(trailers)
        let rv = self.fields.withList { nva, count in
            nghttp2_submit_trailer(self.session, sid, nva, count)
        }
        if rv == 0 {
            flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
        }
        // If the trailers could not be queued, END_STREAM goes on this DATA frame instead.
    }

    /// Server: replaces the trailers of a response submitted with trailers, before its body ends.
    public func replaceTrailers(_ streamID: Int32, _ trailers: [(name: String, value: String)]) {
        guard let st = self.stream(streamID), st.outTrailers != nil, !trailers.isEmpty else { return }
        st.outTrailers = trailers
    }

    private static func bodyProvider() -> nghttp2_data_provider {
        nghttp2_data_provider(source: nghttp2_data_source(ptr: nil)) { _, sid, buf, length, flags, _, ud in
            NGSession.from(ud).readBody(sid, buf!, length, flags!)
        }
    }
}

/// A header list laid out for nghttp2: field bytes in one reused buffer and an `nghttp2_nv` array over
/// them. nghttp2 copies the fields during `submit_*` (NV_FLAG_NONE), so one scratch list per session
/// serves every submit without allocating once it has grown.
struct HeaderFieldScratch: ~Copyable {
    private var bytes: UnsafeMutableRawBufferPointer
    private var used = 0
    /// Per field: name offset, name length, value offset, value length.
    private var spans: [Int] = []

    init() {
        self.bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 1)
        self.spans.reserveCapacity(64)
    }

    deinit { self.bytes.deallocate() }

    mutating func start() {
        self.used = 0
        self.spans.removeAll(keepingCapacity: true)
    }

    private mutating func reserve(_ n: Int) {
        guard self.used + n > self.bytes.count else { return }
        let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: max(self.bytes.count * 2, self.used + n), alignment: 1)
        grown.baseAddress!.copyMemory(from: self.bytes.baseAddress!, byteCount: self.used)
        self.bytes.deallocate()
        self.bytes = grown
    }

    private mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            self.reserve(utf8.count)
            if let base = utf8.baseAddress { (self.bytes.baseAddress! + self.used).copyMemory(from: base, byteCount: utf8.count) }
            self.used += utf8.count
        }
    }

    private mutating func append(integer: Int) {
        self.reserve(20)
        var v = integer.magnitude
        var digits = 0
        repeat {
            digits += 1
            v /= 10
        } while v > 0
        if integer < 0 {
            self.bytes[self.used] = UInt8(ascii: "-")
            self.used += 1
        }
        v = integer.magnitude
        for i in stride(from: digits - 1, through: 0, by: -1) {
            self.bytes[self.used + i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        }
        self.used += digits
    }

    mutating func add(_ name: String, _ value: String) {
        let n = self.used
        self.append(name)
        let v = self.used
        self.append(value)
        self.addSpans(name: n, value: v)
    }

    mutating func add(_ name: String, integer: Int) {
        let n = self.used
        self.append(name)
        let v = self.used
        self.append(integer: integer)
        self.addSpans(name: n, value: v)
    }

    /// Records the field whose name starts at `name` and whose value runs from `value` to the end.
    private mutating func addSpans(name n: Int, value v: Int) {
        self.spans.append(n)
        self.spans.append(v - n)
        self.spans.append(v)
        self.spans.append(self.used - v)
    }

    mutating func add(_ fields: [(name: String, value: String)]) {
        for i in fields.indices { self.add(fields[i].name, fields[i].value) }
    }

    /// Calls `body` with the `nghttp2_nv` array of the fields added since ``start()``.
    func withList<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        let count = self.spans.count / 4
        let base = self.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(1, count)) { nva in
            for i in 0..<count {
                let s = 4 * i
                nva[i] = nghttp2_nv(
                    name: base + self.spans[s], value: base + self.spans[s + 2], namelen: self.spans[s + 1], valuelen: self.spans[s + 3],
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
            }
            return body(UnsafePointer(nva.baseAddress!), count)
        }
    }
}

/// Strings of recently received header names and values. HPACK makes most fields repeats of earlier
/// ones, so a repeat gets the String made last time (a compare and a retain) instead of a new one (an
/// allocation). Strings of up to 15 bytes are stored inline and skip the table; strings over `longest`
/// bytes skip it too, so a connection's table keeps at most 64 × 256 bytes of text whatever its peer sends.
struct RecentStrings {
    static let longest = 256
    private var slots: [String?] = Array(repeating: nil, count: 64)

    mutating func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let n = bytes.count
        guard n > 15, n <= Self.longest, let base = bytes.baseAddress else { return String(decoding: bytes, as: UTF8.self) }
        let key = (n &* 31 &+ Int(base[0]) &* 7 &+ Int(base[n / 2]) &* 3 &+ Int(base[n - 1])) & (64 - 1)
        if var cached = self.slots[key] {
            let same = cached.withUTF8 { utf8 in utf8.count == n && memcmp(utf8.baseAddress!, base, n) == 0 }
            if same { return cached }
        }
        let made = String(decoding: bytes, as: UTF8.self)
        self.slots[key] = made
        return made
    }
}
