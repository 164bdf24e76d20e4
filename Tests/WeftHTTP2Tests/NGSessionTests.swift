import NIOCore
import Testing
import WeftHTTP2
import WeftTestSupport

/// A client session and a server session exchanging bytes in memory (no sockets, no event loop).
final class SessionPair {
    let client: NGSession
    let server: NGSession
    /// Client side: completed responses and stream closes.
    var responses: [Int32: NGMessage] = [:]
    var clientClosed: [Int32: UInt32] = [:]
    var clientGoAway: (lastStreamID: Int32, errorCode: UInt32)? = nil
    /// Client, streaming streams: heads, body bytes received (not yet consumed) and writable signals.
    var heads: [Int32: NGMessage] = [:]
    var streamed: [Int32: [UInt8]] = [:]
    var writable: [Int32: Int] = [:]
    /// Server side: requests seen (in order), rejections and closes.
    var requests: [(Int32, NGMessage)] = []
    var rejections: [Int32: NGRejection] = [:]
    var serverClosed: [Int32: UInt32] = [:]
    /// Server, streamed request bodies: heads, and body bytes received (not yet consumed).
    var serverHeads: [Int32: NGMessage] = [:]
    var serverStreamed: [Int32: [UInt8]] = [:]
    /// The server application; the default echoes the request body with 200.
    var onRequest: (SessionPair, Int32, NGMessage) -> Void = SessionPair.echo
    var onRejected: (SessionPair, Int32, NGRejection) -> Void = { pair, id, why in
        pair.server.submitResponse(streamID: id, status: why == .bodyTooLarge ? 413 : 431, headers: [], body: nil)
    }

    init(server: NGSessionSettings = NGSessionSettings(), client: NGSessionSettings = NGSessionSettings()) throws {
        self.client = try NGSession(role: .client, settings: client)
        self.server = try NGSession(role: .server, settings: server)
    }

    /// Moves bytes both ways until neither side has anything to send; returns how many rounds that took.
    @discardableResult
    func run(maxRounds: Int = 100_000) throws -> Int {
        var rounds = 0
        while rounds < maxRounds {
            var c2s = ByteBuffer()
            let a = try self.client.drainOutput(into: &c2s)
            self.handleClient()
            if a > 0 { try self.server.receive(c2s) }
            self.handleServer()
            var s2c = ByteBuffer()
            let b = try self.server.drainOutput(into: &s2c)
            self.handleServer()
            if b > 0 { try self.client.receive(s2c) }
            self.handleClient()
            if a == 0 && b == 0 { break }
            rounds += 1
        }
        return rounds
    }

    private func handleServer() {
        var events = self.server.takeEvents()
        while !events.isEmpty {
            for e in events {
                switch e {
                case .message(let id, let m):
                    self.requests.append((id, m))
                    self.onRequest(self, id, m)
                case .rejected(let id, let why, _):
                    self.rejections[id] = why
                    self.onRejected(self, id, why)
                case .closed(let id, let code):
                    self.serverClosed[id] = code
                case .head(let id, let m):
                    self.serverHeads[id] = m
                case .data(let id, let b):
                    self.serverStreamed[id, default: []] += Array(b.readableBytesView)
                case .goAway, .pingAck, .writable:
                    break
                }
            }
            events = self.server.takeEvents()
        }
    }

    private func handleClient() {
        for e in self.client.takeEvents() {
            switch e {
            case .message(let id, let m): self.responses[id] = m
            case .closed(let id, let code): self.clientClosed[id] = code
            case .goAway(let last, let code): self.clientGoAway = (last, code)
            case .head(let id, let m): self.heads[id] = m
            case .data(let id, let b): self.streamed[id, default: []] += Array(b.readableBytesView)
            case .writable(let id): self.writable[id, default: 0] += 1
            case .rejected, .pingAck: break
            }
        }
    }

    func post(_ path: String, _ body: [UInt8], headers: [(name: String, value: String)] = []) throws -> Int32 {
        try self.client.submitRequest(method: "POST", path: path, authority: "test", headers: headers, body: ByteBuffer(bytes: body))
    }
}

private func pattern(_ n: Int, seed: Int = 0) -> [UInt8] {
    (0..<n).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ ($0 >> 8) &+ seed) }
}

private func header(_ m: NGMessage, _ name: String) -> String? {
    m.headers.first(where: { $0.name == name })?.value
}

struct NGSessionTests {
    /// A streamed response is credited only as it is consumed: without `consume` the peer stops at the
    /// stream window; each consumption lets about that much more through, until the end.
    @Test func test_streamingResponse_flowsOnlyAsItIsConsumed() throws {
        let pair = try SessionPair()
        let big = pattern(4 << 20)
        pair.onRequest = { pair, id, _ in pair.server.submitResponse(streamID: id, status: 200, headers: [], body: ByteBuffer(bytes: big)) }
        let id = try pair.client.submitRequest(method: "POST", path: "/download", authority: "test", streaming: true)
        #expect(pair.client.writeBody(id, ByteBuffer(bytes: [1, 2, 3]), end: true))
        try pair.run()
        #expect(pair.heads[id]?.status == 200)
        var consumed = 0
        var rounds = 0
        while pair.responses[id] == nil {
            let buffered = (pair.streamed[id]?.count ?? 0) - consumed
            #expect(buffered > 0 && buffered <= 1 << 20, "round \(rounds): \(buffered) bytes buffered")
            pair.client.consume(id, buffered)
            consumed += buffered
            try pair.run()
            rounds += 1
            if rounds > 100 { break }
        }
        #expect(rounds >= 3, "4 MiB through a 1 MiB window needs several consumptions")
        #expect(pair.streamed[id] == big)
        #expect(pair.clientClosed[id] == 0)
    }

    /// A streaming request body is deferred until written; each piece signals `writable` once sent.
    @Test func test_streamingRequestBody_isSentAsItIsWritten() throws {
        let pair = try SessionPair()
        let id = try pair.client.submitRequest(method: "POST", path: "/upload", authority: "test", streaming: true)
        try pair.run()
        #expect(pair.requests.isEmpty)
        let first = pattern(100_000, seed: 1)
        let second = pattern(50_000, seed: 2)
        #expect(pair.client.writeBody(id, ByteBuffer(bytes: first), end: false))
        try pair.run()
        #expect(pair.writable[id] == 1)
        #expect(pair.requests.isEmpty, "the body is not finished")
        #expect(pair.client.writeBody(id, ByteBuffer(bytes: second), end: true))
        try pair.run()
        #expect(pair.requests.count == 1)
        #expect(Array(pair.requests[0].1.body.readableBytesView) == first + second)
        // The echo comes back streamed.
        #expect(pair.streamed[id] == first + second)
        #expect(pair.responses[id]?.status == 200)
        #expect(!pair.client.writeBody(id, ByteBuffer(bytes: [0]), end: true), "the stream is finished")
    }

    /// A server that streams a request body: the head comes first, the body arrives only as far as the
    /// server has consumed it plus one stream window, and the request ends with its trailers.
    @Test func test_streamedRequestBody_arrivesOnlyAsFarAsConsumedPlusOneWindow() throws {
        var settings = NGSessionSettings()
        settings.initialStreamWindow = 128 << 10
        let pair = try SessionPair(server: settings)
        pair.server.streamsRequestBody = { method, path in method == "POST" && path == "/stream" }
        // Streamed requests are answered by the test itself, below.
        pair.onRequest = { pair, id, m in if m.path != "/stream" { SessionPair.echo(pair, id, m) } }
        let whole = try pair.post("/whole", pattern(300_000, seed: 3))
        let id = try pair.client.submitRequest(method: "POST", path: "/stream", authority: "test", streaming: true)
        let body = pattern(1_000_000, seed: 4)
        #expect(pair.client.writeBody(id, ByteBuffer(bytes: body), end: true))
        try pair.run()
        #expect(pair.serverHeads[id]?.path == "/stream")
        #expect(pair.requests.map(\.0) == [whole], "other paths still arrive whole")
        var consumed = 0
        while (pair.serverStreamed[id]?.count ?? 0) < body.count {
            let arrived = pair.serverStreamed[id]?.count ?? 0
            #expect(arrived <= consumed + (128 << 10), "\(arrived) bytes arrived with \(consumed) consumed")
            #expect(arrived > consumed, "nothing new arrived after consuming")
            guard arrived > consumed else { break }
            // Consume half of what is waiting, then let the bytes move.
            let step = max(1, (arrived - consumed) / 2)
            pair.server.consume(id, step)
            consumed += step
            try pair.run()
        }
        #expect(pair.serverStreamed[id] == body)
        // The end of the body comes as the message (no body of its own), then the answer closes the stream.
        #expect(pair.requests.map(\.0) == [whole, id])
        #expect(pair.requests.last?.1.body.readableBytes == 0)
        pair.server.submitResponse(streamID: id, status: 204, headers: [], body: nil)
        try pair.run()
        #expect(pair.responses[id]?.status == 204)
        #expect(pair.server.openStreams == 0)
    }

    @Test func test_manyConcurrentStreams_allAnsweredInOneConnection() throws {
        let pair = try SessionPair()
        var ids: [Int32: [UInt8]] = [:]
        // More than the server's 256 concurrent streams: nghttp2 queues the rest client-side.
        for i in 0..<600 {
            let body = pattern(1024, seed: i)
            ids[try pair.post("/r/\(i)", body, headers: [("content-type", "application/octet-stream")])] = body
        }
        try pair.run()
        #expect(pair.requests.count == 600)
        #expect(pair.responses.count == 600)
        for (id, body) in ids {
            let r = try #require(pair.responses[id])
            #expect(r.status == 200)
            #expect(Array(r.body.readableBytesView) == body)
            #expect(pair.clientClosed[id] == 0)
        }
        #expect(pair.requests.allSatisfy { header($0.1, "content-type") == "application/octet-stream" && $0.1.method == "POST" })
        #expect(pair.server.openStreams == 0)
        #expect(pair.client.openStreams == 0)
    }

    @Test func test_largeBody_exhaustsTheStreamWindow_andResumes() throws {
        var server = NGSessionSettings()
        server.initialStreamWindow = 65_535
        var client = NGSessionSettings()
        client.initialStreamWindow = 65_535
        let pair = try SessionPair(server: server, client: client)
        let body = pattern(3 << 20)
        let id = try pair.post("/big", body)
        let rounds = try pair.run()
        // 3 MiB through a 64 KiB window each way needs many WINDOW_UPDATE round trips.
        #expect(rounds >= 40)
        let r = try #require(pair.responses[id])
        #expect(r.status == 200)
        #expect(r.body.readableBytes == body.count)
        #expect(Array(r.body.readableBytesView) == body)
    }

    @Test func test_connectionCredit_isHeldUntilTheServerAnswers() throws {
        // Two uploads that together exceed the connection window: the second makes progress only once the
        // first is answered, so buffered request bodies stay bounded by the window.
        var server = NGSessionSettings()
        server.maxBodyBytes = 1 << 20
        server.connectionWindow = 1 << 20
        server.initialStreamWindow = 1 << 20
        let pair = try SessionPair(server: server)
        var held: [(Int32, NGMessage)] = []
        pair.onRequest = { _, id, m in held.append((id, m)) }
        let a = try pair.post("/a", pattern(1_500_000 / 2))
        let b = try pair.post("/b", pattern(1_500_000 / 2, seed: 7))
        try pair.run()
        // The window is maxBodyBytes + one stream window = 2 MiB, so both fit; now fill it completely.
        #expect(held.count == 2)
        let c = try pair.post("/c", pattern(1 << 20, seed: 3))
        try pair.run()
        #expect(held.count == 2)  // stalled: 1.5 MB held + 1 MiB > 2 MiB
        for (id, m) in held { pair.server.submitResponse(streamID: id, status: 200, headers: [], body: m.body) }
        held.removeAll()
        try pair.run()
        #expect(held.map(\.0) == [c])
        #expect(pair.responses[a]?.status == 200 && pair.responses[b]?.status == 200)
    }

    @Test func test_rstStreamFromClient_closesOnlyThatStream() throws {
        let pair = try SessionPair()
        var held: [Int32] = []
        pair.onRequest = { _, id, _ in held.append(id) }
        let a = try pair.post("/a", pattern(100))
        let b = try pair.post("/b", pattern(100))
        try pair.run()
        #expect(held == [a, b])
        pair.client.resetStream(a)
        try pair.run()
        #expect(pair.serverClosed[a] == 8)  // CANCEL
        // Answering the reset stream is a no-op; the other one still completes.
        #expect(pair.server.submitResponse(streamID: a, status: 200, headers: [], body: nil) == false)
        #expect(pair.server.submitResponse(streamID: b, status: 204, headers: [], body: nil))
        try pair.run()
        #expect(pair.responses[a] == nil)
        #expect(pair.responses[b]?.status == 204)
        // And the connection keeps working.
        pair.onRequest = SessionPair.echo
        let c = try pair.post("/c", pattern(10))
        try pair.run()
        #expect(pair.responses[c]?.status == 200)
        #expect(pair.server.openStreams == 0)
    }

    /// A stream reset while its body is still queued (behind a backed-up socket, say) drops that body at
    /// once, before the RST_STREAM frame goes out: the session keeps none of it and sends none of it.
    @Test func test_resetStream_dropsItsUnsentBody_atOnce() throws {
        let pair = try SessionPair()
        pair.onRequest = { _, _, _ in }
        try pair.run()  // SETTINGS both ways: a 1 MiB stream window
        let a = try pair.post("/a", pattern(512 << 10))
        #expect(pair.client.queuedBodyBytes == 512 << 10)
        var sent = ByteBuffer()
        try pair.client.drainOutput(into: &sent, limit: 32 << 10)
        #expect(pair.client.queuedBodyBytes > 400 << 10)
        pair.client.resetStream(a)
        #expect(pair.client.queuedBodyBytes == 0)
        var rest = ByteBuffer()
        try pair.client.drainOutput(into: &rest)
        #expect(rest.readableBytes < 64, "only RST_STREAM follows, not \(rest.readableBytes) bytes")
        try pair.server.receive(sent)
        try pair.server.receive(rest)
        try pair.run()
        #expect(pair.serverClosed[a] == 8)  // CANCEL
        #expect(pair.requests.isEmpty)
        #expect(pair.client.openStreams == 0)
    }

    @Test func test_goAway_completesInFlightStreams_thenTheSessionIsDone() throws {
        let pair = try SessionPair()
        var held: [Int32] = []
        pair.onRequest = { _, id, _ in held.append(id) }
        let ids = try (0..<3).map { try pair.post("/\($0)", pattern(10)) }
        try pair.run()
        #expect(held == ids)
        pair.server.submitGoAway()
        try pair.run()
        #expect(pair.clientGoAway?.lastStreamID == ids.last)
        #expect(pair.clientGoAway?.errorCode == 0)
        #expect(pair.server.wantsRead)  // streams still in flight
        for id in held { pair.server.submitResponse(streamID: id, status: 200, headers: [], body: ByteBuffer(string: "done")) }
        try pair.run()
        for id in ids { #expect(pair.responses[id]?.status == 200) }
        #expect(!pair.server.wantsRead && !pair.server.wantsWrite)
        // The client cannot open new streams on this connection.
        #expect(!pair.client.wantsRead)
    }

    @Test func test_bodyOverTheLimit_isRejected_andTheConnectionContinues() throws {
        var server = NGSessionSettings()
        server.maxBodyBytes = 1000
        let pair = try SessionPair(server: server)
        let big = try pair.post("/big", pattern(50_000))
        let declared = try pair.client.submitRequest(
            method: "POST", path: "/declared", authority: "t", headers: [("content-length", "5000")], body: ByteBuffer(bytes: pattern(5000))
        )
        let ok = try pair.post("/ok", pattern(1000))
        try pair.run()
        #expect(pair.rejections[big] == .bodyTooLarge)
        #expect(pair.rejections[declared] == .bodyTooLarge)
        #expect(pair.responses[big]?.status == 413)
        #expect(pair.responses[declared]?.status == 413)
        #expect(pair.responses[ok]?.status == 200)
        #expect(pair.requests.map(\.0) == [ok])
        #expect(pair.server.openStreams == 0)
        let again = try pair.post("/again", pattern(10))
        try pair.run()
        #expect(pair.responses[again]?.status == 200)
    }

    /// Bodies held by unanswered requests count against the shared budget: a body that does not fit is
    /// rejected as overloaded (and its bytes never kept), and answering a request gives its bytes back.
    @Test func test_sharedBodyBudget_rejectsWhatDoesNotFit_andIsReleasedOnAnswer() throws {
        let budget = RequestBodyBudget(limit: 5000)
        var server = NGSessionSettings()
        server.bodyBudget = budget
        let pair = try SessionPair(server: server)
        var held: [Int32] = []
        pair.onRequest = { _, id, _ in held.append(id) }  // not answered yet: the bodies stay
        pair.onRejected = { pair, id, why in
            pair.server.submitResponse(streamID: id, status: why == .overloaded ? 503 : 500, headers: [], body: nil)
        }
        let first = try pair.post("/a", pattern(3000))
        try pair.run()
        #expect(held == [first])
        #expect(budget.reserved == 3000)
        let second = try pair.post("/b", pattern(3000, seed: 1))
        try pair.run()
        #expect(pair.rejections[second] == .overloaded)
        #expect(pair.responses[second]?.status == 503)
        #expect(budget.reserved == 3000)  // the rejected body kept nothing

        pair.server.submitResponse(streamID: first, status: 200, headers: [], body: nil)
        try pair.run()
        #expect(pair.responses[first]?.status == 200)
        #expect(budget.reserved == 0)
        let third = try pair.post("/c", pattern(4000, seed: 2))
        try pair.run()
        #expect(held == [first, third])
        #expect(budget.reserved == 4000)
    }

    /// A session that goes away (the connection closed) gives back what its unanswered requests held.
    @Test func test_sharedBodyBudget_isReleasedWhenTheSessionEnds() throws {
        let budget = RequestBodyBudget(limit: 1 << 20)
        var server = NGSessionSettings()
        server.bodyBudget = budget
        do {
            let pair = try SessionPair(server: server)
            pair.onRequest = { _, _, _ in }
            _ = try pair.post("/a", pattern(2000))
            _ = try pair.post("/b", pattern(3000))
            try pair.run()
            #expect(budget.reserved == 5000)
        }
        #expect(budget.reserved == 0)
    }

    @Test func test_headerListOverTheLimit_isRejectedWith431() throws {
        var server = NGSessionSettings()
        server.maxHeaderListBytes = 8 << 10
        let pair = try SessionPair(server: server)
        let big = try pair.client.submitRequest(
            method: "GET", path: "/", authority: "t", headers: [("x-big", String(repeating: "a", count: 20_000))]
        )
        let ok = try pair.client.submitRequest(method: "GET", path: "/fine", authority: "t")
        try pair.run()
        #expect(pair.rejections[big] == .headersTooLarge)
        #expect(pair.responses[big]?.status == 431)
        #expect(pair.responses[ok]?.status == 200)
        #expect(pair.responses[ok].flatMap { header($0, "x-path") } == "/fine")
    }

    @Test func test_malformedFrame_getsGoAway_andEndsTheSession() throws {
        let server = try NGSession(role: .server)
        var bytes = ByteBuffer(bytes: http2ClientPreface)
        // An empty SETTINGS, then a HEADERS frame on stream 0 (a connection error).
        bytes.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
        bytes.writeBytes([0, 0, 1, 1, 4, 0, 0, 0, 0, 0x82])
        try? server.receive(bytes)
        var out = ByteBuffer()
        try server.drainOutput(into: &out)
        // The reply holds a GOAWAY frame (type 7) and the session wants no more input.
        var frames: [UInt8] = []
        while out.readableBytes >= 9 {
            let length = Int(out.readInteger(as: UInt16.self)!) << 8 | Int(out.readInteger(as: UInt8.self)!)
            frames.append(out.readInteger(as: UInt8.self)!)
            out.moveReaderIndex(forwardBy: 5 + length)
        }
        #expect(frames.contains(7))
        #expect(!server.wantsRead)
    }

    /// Header lists larger than the session's first scratch buffer, long values repeated across
    /// streams (received strings are reused) and in colliding slots, and content-length written as
    /// digits: every field arrives exactly as sent, in order, on both sides.
    @Test func test_headerFields_arriveExactly_acrossGrowthAndRepeats() throws {
        let pair = try SessionPair()
        pair.onRequest = { pair, id, m in
            pair.server.submitResponse(
                streamID: id, status: 203, headers: m.headers.filter { $0.name.hasPrefix("x-") }, body: m.body,
                contentLength: m.body.readableBytes)
        }
        var rng = SplitMix64(seed: 9)
        var sent: [Int32: [(name: String, value: String)]] = [:]
        var bodies: [Int32: [UInt8]] = [:]
        for round in 0..<40 {
            var fields: [(name: String, value: String)] = []
            // Long values from a small set, so most are repeats of earlier strings; some differ only
            // in their middle bytes, some only in their length.
            for f in 0..<(round % 2 == 0 ? 6 : 120) {
                let long = String(repeating: "v", count: 16 + (f * 7 + round) % 40)
                let variant = round % 3 == 0 ? long : String(long.prefix(long.count / 2)) + "\(round % 5)" + String(long.dropFirst(long.count / 2 + 1))
                fields.append(("x-field-\(f % 30)-long-header-name", variant))
            }
            fields.append(("x-random", String(UInt64.random(in: 0...UInt64.max, using: &rng), radix: 16) + String(repeating: "r", count: 20)))
            let body = pattern(round * 37, seed: round)
            let id = try pair.client.submitRequest(
                method: "POST", path: "/h/\(round)", authority: "test", headers: fields, body: ByteBuffer(bytes: body), contentLength: body.count)
            sent[id] = fields
            bodies[id] = body
        }
        try pair.run()
        #expect(pair.requests.count == 40)
        for (id, m) in pair.requests {
            let expected = sent[id]!
            #expect(m.headers.filter { $0.name.hasPrefix("x-") }.map { "\($0.name)=\($0.value)" } == expected.map { "\($0.name)=\($0.value)" })
            #expect(header(m, "content-length") == String(bodies[id]!.count))
            let r = pair.responses[id]!
            #expect(r.status == 203)
            #expect(r.headers.filter { $0.name.hasPrefix("x-") }.map { "\($0.name)=\($0.value)" } == expected.map { "\($0.name)=\($0.value)" })
            #expect(header(r, "content-length") == String(bodies[id]!.count))
            #expect(Array(r.body.readableBytesView) == bodies[id]!)
        }
    }

    @Test func test_garbageInsteadOfPreface_throws() throws {
        let server = try NGSession(role: .server)
        #expect(throws: NGHTTP2Error.self) {
            try server.receive(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        }
    }
}

extension SessionPair {
    static func echo(_ pair: SessionPair, _ id: Int32, _ m: NGMessage) {
        pair.server.submitResponse(streamID: id, status: 200, headers: [("x-path", m.path)], body: m.body)
    }
}
