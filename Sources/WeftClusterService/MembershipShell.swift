import Logging
import NIOCore
import Synchronization
import WeftCluster
import WeftHTTP2

/// Runs a `SWIMInstance` over the internal HTTP/2 port: every directive the instance returns is
/// carried out here (messages sent as `POST /internal/v1/swim`, one timer for the next tick), and
/// every message received is fed back to it. The instance decides; this actor only does the I/O.
public actor MembershipShell {
    public static let swimPath = "/internal/v1/swim"

    public let settings: ClusterSettings
    private let pool: HTTP2ClientPool
    private let logger: Logger
    private let metrics: ClusterMetrics
    private var instance: SWIMInstance
    private let origin = ContinuousClock.now
    private var timer: Task<Void, Never>?
    private var timerDeadline: UInt64?
    private var started = false
    private var stopped = false
    /// Whether this node set its own ring entry LEFT (its drain finished), rather than being forgotten.
    private var leftByDrain = false
    /// Monotonic nanoseconds at which each member was last heard from.
    private var lastHeard: [NodeID: UInt64] = [:]
    /// The ring compiled from the merged state and the recent write rings, readable without entering the actor.
    private let compiled: Mutex<(ring: Ring, history: WriteRingHistory)>
    /// Nanoseconds since the Unix epoch: when a write ring was first seen here.
    private let wallClock: @Sendable () -> UInt64

    public init(
        settings: ClusterSettings, pool: HTTP2ClientPool, metrics: ClusterMetrics, logger: Logger, seeds: [NodeAddress], wallClock: @escaping @Sendable () -> UInt64
    ) {
        self.settings = settings
        self.wallClock = wallClock
        self.pool = pool
        self.metrics = metrics
        self.logger = logger
        let entry = RingEntry(
            nodeID: settings.nodeID, version: 1, state: .joining, address: settings.address, zone: settings.zone,
            tokenCount: settings.roles.contains(.storage) ? settings.tokenCount : 0, roles: settings.roles
        )
        var rng = SystemRandomNumberGenerator()
        self.instance = SWIMInstance(
            myself: settings.nodeID, address: settings.address, ringEntry: entry, seeds: seeds, settings: settings.swim, seed: rng.next()
        )
        let ring = Ring(state: RingState([entry]), replicationFactor: settings.replicationFactor)
        var history = WriteRingHistory(requestedReplicationFactor: settings.replicationFactor)
        history.observe(ring.writes, now: wallClock())
        self.compiled = Mutex((ring, history))
    }

    /// Monotonic nanoseconds since the shell was made (never 0).
    private var now: UInt64 {
        let d = ContinuousClock.now - self.origin
        return UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000) + 1
    }

    // MARK: Lifecycle

    /// Starts probing and joins through the seeds.
    public func start() {
        guard !self.started else { return }
        self.started = true
        self.perform(self.instance.onStart(now: self.now))
    }

    /// Marks this node ACTIVE in the ring (a storage node once its WAL is replayed).
    public func activate() {
        self.setOwnState(.active)
    }

    /// Announces that this node leaves (peers record it as left, not dead) and stops the timer.
    public func stop() async {
        guard self.started, !self.stopped else { return }
        let directives = self.instance.onLeave(now: self.now)
        // Deliver the announcement before going quiet, briefly.
        await withTaskGroup(of: Void.self) { group in
            for case .send(let message, let address) in directives {
                group.addTask { [pool = self.pool, secret = self.settings.secret] in
                    _ = try? await Self.post(message, to: address, pool: pool, secret: secret, timeout: .milliseconds(300))
                }
            }
        }
        self.stopped = true
        self.timer?.cancel()
        self.timer = nil
    }

    // MARK: Events

    /// A message from a peer (the body of `POST /internal/v1/swim`).
    public func receive(_ bytes: [UInt8]) throws(ClusterDecodingError) {
        let message = try SWIMCodec.decode(bytes)
        guard self.started, !self.stopped else { return }
        let now = self.now
        self.lastHeard[message.sender] = now
        self.perform(self.instance.onMessage(message, now: now))
    }

    /// Puts this node into `state` in the ring (drain: `leaving`).
    public func setOwnState(_ state: NodeState) {
        guard var entry = self.instance.ring[self.settings.nodeID] else { return }
        guard entry.state != state else { return }
        if state == .left { self.leftByDrain = true }
        entry.state = state
        self.perform(self.instance.onRingUpdate(entry, now: self.now))
    }

    /// Writes a `left` tombstone for another node (an operator's `forget`).
    public func forget(_ node: NodeID) {
        guard var entry = self.instance.ring[node] else { return }
        entry.state = .left
        self.perform(self.instance.onRingUpdate(entry, now: self.now))
    }

    private func tick() {
        self.timerDeadline = nil
        guard !self.stopped else { return }
        self.perform(self.instance.onTick(now: self.now))
    }

    // MARK: Directives

    private func perform(_ directives: [SWIMDirective]) {
        for directive in directives {
            switch directive {
            case .send(let message, let address):
                self.send(message, to: address)
            case .scheduleTick(let at):
                self.schedule(at: at)
            case .memberStatusChanged(let change):
                self.metrics.memberChanged(change)
                let level: Logger.Level = change.member.status == .alive ? .info : .warning
                self.logger.log(level: level, "member \(change.member.node) is \(change.member.status)", metadata: [
                    "address": "\(change.member.address)", "incarnation": "\(change.member.incarnation)",
                    "was": "\(change.previous.map(\.description) ?? "unknown")",
                ])
            case .ringChanged(let entries):
                let ring = Ring(state: self.instance.ring, replicationFactor: self.settings.replicationFactor)
                let now = self.wallClock()
                self.compiled.withLock { compiled in
                    compiled.ring = ring
                    let restarting = Set(ring.state.sortedEntries.filter { $0.state == .joining && $0.placesTokens }.map(\.nodeID))
                    compiled.history.observe(ring.writes, now: now, restarting: restarting)
                }
                self.metrics.ringVersion(ring.version)
                for entry in entries {
                    self.logger.info("ring: \(entry.nodeID) is \(entry.state)", metadata: ["version": "\(entry.version)", "tokens": "\(entry.tokenCount)"])
                    if entry.nodeID == self.settings.nodeID, entry.state == .left {
                        // Leaving is final for an ID: the node keeps running but owns no ranges.
                        if self.leftByDrain {
                            self.logger.notice(
                                "this node has drained and left the cluster (its ring entry is LEFT): it owns no ranges and can be stopped; to rejoin, start it with a new --node-id and an empty data directory"
                            )
                        } else {
                            self.logger.error(
                                "this node was forgotten by the cluster (its ring entry is LEFT) and owns no ranges; to rejoin, start it with a new --node-id and an empty data directory"
                            )
                        }
                    }
                }
            }
        }
        self.metrics.members(self.instance.members.values.map(\.status))
    }

    private func schedule(at deadline: UInt64) {
        guard !self.stopped, self.timerDeadline != deadline else { return }
        self.timer?.cancel()
        self.timerDeadline = deadline
        let delay = deadline > self.now ? deadline - self.now : 0
        self.timer = Task { [weak self] in
            try? await Task.sleep(for: .nanoseconds(Int64(min(delay, UInt64(Int64.max)))))
            guard !Task.isCancelled else { return }
            await self?.tick()
        }
    }

    private func send(_ message: SWIMMessage, to address: NodeAddress) {
        let bytes = SWIMCodec.encode(message)
        self.metrics.gossipBytes(bytes.count)
        let isProbe: Bool
        if case .ping = message.kind { isProbe = true } else { isProbe = false }
        let timeout = Duration.nanoseconds(Int64(self.settings.swim.protocolPeriod))
        Task { [pool = self.pool, secret = self.settings.secret, metrics = self.metrics, logger = self.logger] in
            let started = ContinuousClock.now
            do {
                try await Self.post(bytes, to: address, pool: pool, secret: secret, timeout: timeout)
                if isProbe { metrics.probeRoundTrip(ContinuousClock.now - started) }
            } catch {
                logger.debug("membership message not delivered", metadata: ["to": "\(address)", "error": "\(error)"])
            }
        }
    }

    private static func post(_ message: SWIMMessage, to address: NodeAddress, pool: HTTP2ClientPool, secret: String?, timeout: Duration) async throws {
        try await self.post(SWIMCodec.encode(message), to: address, pool: pool, secret: secret, timeout: timeout)
    }

    private static func post(_ bytes: [UInt8], to address: NodeAddress, pool: HTTP2ClientPool, secret: String?, timeout: Duration) async throws {
        var headers: [(name: String, value: String)] = [("content-type", "application/octet-stream")]
        if let secret { headers.append((ClusterSettings.secretHeader, secret)) }
        let request = HTTP2ClientRequest(method: "POST", path: Self.swimPath, headers: headers, body: ByteBuffer(bytes: bytes))
        let response = try await pool.send(request, to: .init(host: address.host, port: Int(address.port)), deadline: .now + timeout)
        guard response.status / 100 == 2 else { throw ClusterRequestError(status: response.status, body: String(buffer: response.body)) }
    }

    // MARK: Views

    /// The ring as last compiled (callable from any thread).
    public nonisolated var ring: Ring { self.compiled.withLock { $0.ring } }

    /// The ring as last compiled and the write rings of the last minutes, read together (callable from any thread).
    public nonisolated var writeRings: (ring: Ring, history: WriteRingHistory) { self.compiled.withLock { $0 } }

    /// What `GET /api/cluster/members` shows.
    public func view() -> ClusterView {
        let now = self.now
        var rows: [ClusterView.Member] = []
        let ring = self.instance.ring
        let me = self.instance.selfUpdate
        rows.append(.init(update: me, entry: ring[me.node], lastHeardNanosAgo: 0, isSelf: true))
        for member in self.instance.members.values {
            let heard = self.lastHeard[member.update.node].map { now - min($0, now) }
            rows.append(.init(update: member.update, entry: ring[member.update.node], lastHeardNanosAgo: heard, isSelf: false))
        }
        rows.sort { $0.update.node < $1.update.node }
        return ClusterView(me: self.settings.nodeID, members: rows, ringState: ring, localHealth: self.instance.localHealth)
    }
}

/// A snapshot of what one node knows about the cluster.
public struct ClusterView: Sendable {
    public struct Member: Sendable {
        public var update: MemberUpdate
        /// The member's ring entry (roles, zone, state), if known.
        public var entry: RingEntry?
        /// Nil when never heard from directly.
        public var lastHeardNanosAgo: UInt64?
        public var isSelf: Bool
    }

    public var me: NodeID
    public var members: [Member]
    public var ringState: RingState
    public var localHealth: Int
}

/// An internal request answered with an error status.
public struct ClusterRequestError: Error, CustomStringConvertible, Sendable {
    public var status: Int
    public var body: String
    public var description: String { "HTTP \(self.status): \(self.body.prefix(200))" }
}
