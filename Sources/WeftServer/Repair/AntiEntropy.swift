import Logging
import NIOCore
import NIOPosix
import Prometheus
import Synchronization
import WeftCluster
import WeftClusterService
import WeftHTTP2
import WeftIngest
import WeftModel
import WeftQueryService
import WeftRuntime
import WeftStorageEngine

/// Anti-entropy between the replicas of each placement this node holds: a sync round compares the
/// bucket digests of every (org, placement) with each other desired holder (``DesiredHolders``),
/// fetches the span keys of differing buckets, and pushes the spans the peer lacks over the push
/// route (idempotent there). The peer's own rounds send what this node lacks.
///
/// Rounds run at start, every `interval`, when the ring or the set of long-dead nodes changes, on
/// ``repairNow()``, and back to back while this node drains: once a round finds every placement it
/// holds complete on its desired holders, a LEAVING node marks itself LEFT.
final class AntiEntropy: Sendable {
    struct Settings: Sendable {
        var interval: Duration
        /// A node dead for longer than this is replaced as a holder of its placements.
        var replaceAfterNanos: UInt64
        /// Spans per push (a pushed body stays well under 4 MiB).
        var maxPushSpans = 4_000
        /// The node was started with seeds: a first round that reached no peer's catalog knows nothing.
        var expectsPeers = false
        var requestTimeout: Duration = .seconds(10)
    }

    /// What `weftctl status` shows of repair.
    struct Progress: Sendable {
        var rounds = 0
        var placementsChecked = 0
        var spansSent = 0
        var bytesSent = 0
        var lastRoundUnixNanos: UInt64 = 0
        /// Partitions whose last check found a difference or an unreachable holder.
        var outOfSync: Set<PartitionKey> = []
        /// Partitions for which a peer holds spans this node lacks (they arrive through the peer's round).
        var lacking: Set<PartitionKey> = []
        var drained = false
        var running = false
        /// Consecutive rounds that could not sync with a holder SWIM calls alive (an address that just
        /// changed, a one-way partition): the next round comes after a backoff, not the interval.
        var failedLiveSyncs = 0
        /// What the node may call in sync, by what rounds have compared since it started.
        var verification = PlacementVerification()
    }

    private let engine: StorageEngine
    private let shell: MembershipShell
    private let me: NodeID
    private let pool: HTTP2ClientPool
    private let transport: HTTP2ReplicaTransport
    private let secret: String?
    private let threads: NIOThreadPool
    private let loop: any EventLoop
    private let logger: Logger
    private let settings: Settings
    private let metrics: (bytes: Counter, spans: Counter, rounds: Counter, outOfSync: Gauge, surplus: Gauge)
    private let state = Mutex(Progress())
    private let requested = Mutex(false)
    /// Monotonic nanoseconds at which each node was first seen dead.
    private let deadSince = Mutex<[NodeID: UInt64]>([:])
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(
        engine: StorageEngine, shell: MembershipShell, me: NodeID, pool: HTTP2ClientPool, secret: String?, pushTimeout: Duration, threads: NIOThreadPool,
        loop: any EventLoop, registry: PrometheusCollectorRegistry, logger: Logger, settings: Settings
    ) {
        self.engine = engine
        self.shell = shell
        self.me = me
        self.pool = pool
        self.secret = secret
        self.transport = HTTP2ReplicaTransport(pool: pool, secret: secret.map { (ClusterSettings.secretHeader, $0) }, timeout: pushTimeout)
        self.threads = threads
        self.loop = loop
        self.logger = logger
        self.settings = settings
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: .init(namespace: "weft", metricName: name, unitName: "total", helpText: help))
        }
        self.metrics = (
            counter("repair_bytes", "Span payload bytes sent to other replicas by anti-entropy."),
            counter("repair_spans", "Spans sent to other replicas by anti-entropy."),
            counter("repair_rounds", "Anti-entropy sync rounds run."),
            registry.makeGauge(descriptor: .init(namespace: "weft", metricName: "placements_out_of_sync", helpText: "Placements whose last sync check found a difference or an unreachable holder.")),
            registry.makeGauge(descriptor: .init(
                namespace: "weft", metricName: "placements_surplus", helpText: "Placements held here that this node is no desired holder of and every holder has: left out of reads."
            ))
        )
    }

    var progress: Progress { self.state.withLock { $0 } }

    /// The placements this node's catalog marks not in sync (see ``PlacementVerification``).
    func notInSync() -> Set<PartitionKey> {
        let (verification, lacking) = self.state.withLock { ($0.verification, $0.lacking) }
        return verification.notInSync(lacking: lacking, held: { self.engine.heldPartitions() })
    }

    /// The answers of this node's digest routes, read on `threads`.
    static func answers(_ engine: StorageEngine, threads: NIOThreadPool) -> ReplicaSyncAnswers {
        ReplicaSyncAnswers(
            digest: { org, placement in
                try await threads.runIfActive { SpanDigest.encode(engine.digest(PartitionKey(org: org, placement: placement))) }
            },
            keys: { org, placement, buckets in
                try await threads.runIfActive { SpanDigest.encode(keys: engine.spanKeys(PartitionKey(org: org, placement: placement), buckets: buckets)) }
            }
        )
    }

    /// Asks for a round now (it runs within a fraction of a second).
    func repairNow() { self.requested.withLock { $0 = true } }

    /// Another holder's round pushed spans of `partition` that this node lacked: it is not in sync
    /// until this node's own round compares it (soon: a round is asked for now).
    func received(repairOf partition: PartitionKey) {
        self.state.withLock { $0.verification.received(repairOf: partition) }
        self.repairNow()
    }

    func start() {
        let task = Task { [self] in
            var lastSignature: [String]? = nil
            var lastRound = ContinuousClock.now
            while !Task.isCancelled {
                let view = await self.shell.view()
                let signature = self.observe(view)
                let leaving = view.ringState[self.me]?.state == .leaving
                let asked = self.requested.withLock { r in defer { r = false }; return r }
                // While this node lacks spans, rounds repeat (each asks the holders that have them to send);
                // so they do while placements wait for a first comparison (their holders were unreachable).
                let progress = self.progress
                let catchingUp = !(progress.lacking.isEmpty && progress.verification.unverified.isEmpty) && ContinuousClock.now - lastRound >= .seconds(1)
                let retrying = progress.failedLiveSyncs > 0 && ContinuousClock.now - lastRound >= Self.retryDelay(afterFailedRounds: progress.failedLiveSyncs)
                if asked || leaving || catchingUp || retrying || signature != lastSignature || ContinuousClock.now - lastRound >= self.settings.interval {
                    lastSignature = signature
                    lastRound = ContinuousClock.now
                    await self.round(leaving: leaving)
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        self.task.withLock { $0 = task }
    }

    func shutdown() async {
        let task = self.task.withLock { $0 }
        task?.cancel()
        await task?.value
    }

    /// How long after a round that could not sync with a live holder the next one runs: 2 s, doubling
    /// with each such round in a row, at most 60 s (rounds read every placement, so they are not free).
    static func retryDelay(afterFailedRounds n: Int) -> Duration {
        .seconds(min(60, 2 << min(max(0, n - 1), 5)))
    }

    /// Updates when nodes were first seen dead; returns what decides holders besides the ring: the
    /// ring digest and the nodes dead for longer than the replacement delay.
    private func observe(_ view: ClusterView) -> [String] {
        let now = Head.monotonicNanos()
        let dead = Set(view.members.filter { $0.update.status == .dead }.map(\.update.node))
        let overdue = self.deadSince.withLock { since -> [String] in
            for node in since.keys where !dead.contains(node) { since.removeValue(forKey: node) }
            for node in dead where since[node] == nil { since[node] = now }
            return since.filter { now - $0.value >= self.settings.replaceAfterNanos }.keys.map(\.rawValue).sorted()
        }
        return ["\(view.ringState.digest)"] + overdue
    }

    private func deadFor() -> [NodeID: UInt64] {
        let now = Head.monotonicNanos()
        return self.deadSince.withLock { $0.mapValues { now - $0 } }
    }

    /// One sync round over every partition this node holds.
    private func round(leaving: Bool) async {
        self.state.withLock { $0.running = true }
        let ring = self.shell.ring.state
        let deadFor = self.deadFor()
        let held = self.engine.heldPartitions().filter { PlacementKey(parsing: $0.placement).map { $0 != .local } ?? false }
        // Who holds what: this node, and every live peer that serves reads, by its catalog.
        var holding: [String: Set<NodeID>] = [:]
        // A surplus copy is left out of this node's catalog, so the others do not count it: neither does this node.
        let wasSurplus = self.engine.surplusPartitions
        for partition in held where !wasSurplus.contains(partition) { holding[partition.placement, default: []].insert(self.me) }
        var catalogs: [(NodeID, PlacementCatalog)] = []
        // Until this node has seen every live peer's catalog once, it cannot know which placements it
        // should hold (a wiped node that just started may not even know its peers yet).
        var catalogsComplete = true
        for peer in ring.sortedEntries where peer.nodeID != self.me && peer.roles.contains(.storage) && peer.state.ownsReads && deadFor[peer.nodeID] == nil {
            guard let catalog = try? PlacementCatalog.decode(await self.get(NodeQueryRoute.catalogPath, to: peer.address)) else {
                catalogsComplete = false
                continue
            }
            catalogs.append((peer.nodeID, catalog))
            for e in catalog.entries { holding[e.placement, default: []].insert(peer.nodeID) }
        }
        var holdersOf: [String: [NodeID]] = [:]
        func holders(_ key: PlacementKey) -> [NodeID] {
            if let known = holdersOf[key.rawValue] { return known }
            let found = DesiredHolders.holders(
                of: key, ring: ring, deadForNanos: deadFor, replaceAfterNanos: self.settings.replaceAfterNanos, holding: holding[key.rawValue] ?? []
            )
            holdersOf[key.rawValue] = found
            return found
        }
        var wanted = Set(held)
        // Placements other nodes hold that this node should hold too (after a wiped data directory,
        // or as a replacement holder): checked so this node knows what it lacks.
        for (_, catalog) in catalogs {
            for e in catalog.entries {
                guard let key = PlacementKey(parsing: e.placement), key != .local, holders(key).contains(self.me) else { continue }
                wanted.insert(PartitionKey(org: e.org, placement: e.placement))
            }
        }
        let partitions = wanted.sorted()
        var outOfSync: Set<PartitionKey> = []
        var lacking: Set<PartitionKey> = []
        // What the last rounds found lacking stays lacking until a round compares it with every holder.
        let lackingBefore = self.state.withLock { $0.lacking }
        var compared: Set<PartitionKey> = []
        var handedOff = true
        var surplus: Set<PartitionKey> = []
        let knowsPlacements = PlacementVerification.roundKnewPlacements(
            catalogsComplete: catalogsComplete, catalogsRead: catalogs.count, expectsPeers: self.settings.expectsPeers,
            joined: ring.sortedEntries.contains { $0.nodeID != self.me },
            storagePeers: ring.sortedEntries.filter { $0.nodeID != self.me && $0.roles.contains(.storage) && $0.state != .left }.count
        )
        var failedLive = !knowsPlacements
        var sent = (spans: 0, bytes: 0)
        for partition in partitions {
            let key = PlacementKey(parsing: partition.placement)!
            let holders = holders(key)
            let engine = self.engine
            // With no other holder there is nothing to compare (a one-node cluster): no digest either.
            let mine: [UInt64: BucketDigest]
            if !holders.contains(where: { $0 != self.me }) {
                compared.insert(partition)
                mine = [:]
            } else {
                guard let digest = try? await self.threads.runIfActive({ engine.digest(partition) }) else { continue }
                mine = digest
            }
            // Whether every other desired holder was reached, and whether one lacked spans this node holds.
            var reachedAll = true
            var sentSome = false
            for peer in holders where peer != self.me {
                guard deadFor[peer] == nil, let address = ring[peer]?.address else {
                    outOfSync.insert(partition)
                    handedOff = false
                    reachedAll = false
                    continue
                }
                do {
                    let result = try await self.sync(partition, key: key, mine: mine, with: address)
                    compared.insert(partition)
                    sent.spans += result.spans
                    sent.bytes += result.bytes
                    if result.spans > 0 || result.lacking { outOfSync.insert(partition) }
                    if result.lacking {
                        lacking.insert(partition)
                        await self.askToRepair(address)
                    }
                    if result.spans > 0 {
                        handedOff = false
                        sentSome = true
                    }
                } catch {
                    self.logger.warning("anti-entropy: cannot sync a placement with a holder", metadata: [
                        "org": "\(partition.org)", "placement": "\(partition.placement)", "peer": "\(peer)", "error": "\(error)",
                    ])
                    outOfSync.insert(partition)
                    handedOff = false
                    reachedAll = false
                    failedLive = true
                }
            }
            if !reachedAll && lackingBefore.contains(partition) { lacking.insert(partition) }
            if SurplusCopy.isSurplus(isHolder: holders.contains(self.me), otherHolders: holders.count(where: { $0 != self.me }), replicas: key.replicas.count, handedOff: reachedAll && !sentSome) {
                surplus.insert(partition)
            }
        }
        if surplus != wasSurplus {
            self.logger.info("anti-entropy: surplus copies (this node is no desired holder; every holder has their spans) left out of reads", metadata: [
                "surplus": "\(surplus.sorted().map { "\($0.org)/\($0.placement)" })",
            ])
        }
        self.engine.setSurplus(surplus)
        self.metrics.surplus.set(Double(surplus.count))
        self.metrics.rounds.increment()
        self.metrics.spans.increment(by: Int64(sent.spans))
        self.metrics.bytes.increment(by: Int64(sent.bytes))
        self.metrics.outOfSync.set(Double(outOfSync.count))
        if sent.spans > 0 {
            self.logger.info("anti-entropy sent spans other replicas lacked", metadata: ["spans": "\(sent.spans)", "bytes": "\(sent.bytes)"])
        }
        let drained = leaving && handedOff
        self.state.withLock { p in
            p.rounds += 1
            p.placementsChecked = partitions.count
            p.spansSent += sent.spans
            p.bytesSent += sent.bytes
            p.lastRoundUnixNanos = WallClock.nowNanos()
            p.outOfSync = outOfSync
            p.lacking = lacking
            // The first round counts only once it knew what to compare: before, every placement held stays not in sync.
            if knowsPlacements || p.verification.rounds > 0 {
                p.verification.roundEnded(compared: compared, uncompared: Set(partitions).subtracting(compared))
            }
            p.running = false
            p.failedLiveSyncs = failedLive ? p.failedLiveSyncs + 1 : 0
            if drained { p.drained = true }
        }
        if drained {
            self.logger.info("drained: every placement this node holds is complete on its desired holders; now LEFT", metadata: ["placements": "\(partitions.count)"])
            await self.shell.setOwnState(.left)
        }
    }

    /// Compares one partition with one peer and pushes the spans it lacks.
    private func sync(_ partition: PartitionKey, key: PlacementKey, mine: [UInt64: BucketDigest], with address: NodeAddress) async throws -> (spans: Int, bytes: Int, lacking: Bool) {
        let theirs = try SpanDigest.decodeDigests(try await self.post(SyncAPI.digestPath, partition, buckets: [], to: address))
        var missing: [ReplicaSpanKey] = []
        var lacking = false
        let engine = self.engine
        // Buckets only the peer has: this node lacks them all (the peer's round sends them).
        let differing = SpanDigest.differing(mine, theirs)
        if differing.contains(where: { mine[$0] == nil }) { lacking = true }
        let compared = differing.filter { mine[$0] != nil }
        if !compared.isEmpty {
            // The peer's keys of the buckets both hold, a few requests for many buckets; this node's in one pass.
            let asked = compared.filter { theirs[$0] != nil }
            var theirKeys: [ReplicaSpanKey] = []
            for at in stride(from: 0, to: asked.count, by: SyncAPI.maxBucketsPerRequest) {
                let part = Array(asked[at..<min(asked.count, at + SyncAPI.maxBucketsPerRequest)])
                theirKeys += try SpanDigest.decodeKeys(try await self.post(SyncAPI.keysPath, partition, buckets: part, to: address))
            }
            let wanted = Set(compared)
            let myKeys = try await self.threads.runIfActive { engine.spanKeys(partition, buckets: wanted) }
            missing = SpanDigest.missing(myKeys, from: theirKeys)
            if !SpanDigest.missing(theirKeys, from: myKeys).isEmpty { lacking = true }
        }
        guard !missing.isEmpty else { return (0, 0, lacking) }
        let wanted = Set(missing)
        let maxSpans = self.settings.maxPushSpans
        let batches = try await self.threads.runIfActive { engine.spans(partition, keys: wanted, maxSpans: maxSpans) }
        var spans = 0
        var bytes = 0
        for batch in batches {
            let payload = SpanBatchCodec.encode(batch)
            let outcome = try await self.transport.pushRepair(ByteBuffer(bytes: payload), org: partition.org, placement: key, to: address, on: self.loop).get()
            guard outcome == .durable else { throw RepairFailure(description: "push refused: \(outcome)") }
            spans += batch.spanCount
            bytes += payload.count
        }
        return (spans, bytes, lacking)
    }

    /// Asks a holder with spans this node lacks to run a round now (and deliver its hints for this node).
    private func askToRepair(_ address: NodeAddress) async {
        var headers: [(name: String, value: String)] = [(HintAPI.repairTargetHeader, self.me.rawValue)]
        if let secret = self.secret { headers.append((ClusterSettings.secretHeader, secret)) }
        _ = try? await self.pool.send(
            HTTP2ClientRequest(method: "POST", path: HintAPI.repairPath, headers: headers), to: .init(host: address.host, port: Int(address.port)),
            deadline: .now + self.settings.requestTimeout
        )
    }

    private func get(_ path: String, to address: NodeAddress) async throws -> [UInt8] {
        try await self.send("GET", path, headers: [], to: address)
    }

    private func post(_ path: String, _ partition: PartitionKey, buckets: [UInt64], to address: NodeAddress) async throws -> [UInt8] {
        var headers: [(name: String, value: String)] = [(ReplicaPush.orgHeader, partition.org), (ReplicaPush.placementHeader, partition.placement)]
        if !buckets.isEmpty { headers.append((SyncAPI.bucketHeader, buckets.map(String.init).joined(separator: ","))) }
        return try await self.send("POST", path, headers: headers, to: address)
    }

    /// One internal request with the cluster secret; the body of a 200 answer, else a failure naming
    /// the path, the status and the start of the answer.
    private func send(_ method: String, _ path: String, headers: [(name: String, value: String)], to address: NodeAddress) async throws -> [UInt8] {
        var headers = headers
        if let secret = self.secret { headers.append((ClusterSettings.secretHeader, secret)) }
        let response = try await self.pool.send(
            HTTP2ClientRequest(method: method, path: path, headers: headers), to: .init(host: address.host, port: Int(address.port)),
            deadline: .now + self.settings.requestTimeout
        )
        guard response.status == 200 else {
            throw RepairFailure(description: "\(path) answered \(response.status): \(String(decoding: response.body.readableBytesView.prefix(200), as: UTF8.self))")
        }
        return Array(response.body.readableBytesView)
    }

    /// The `repair` object of `weftctl status`.
    static func write(_ p: Progress, into o: inout JSONWriter) {
        o.key("repair")
        o.object { r in
            r.key("rounds")
            r.number(p.rounds)
            r.key("placementsChecked")
            r.number(p.placementsChecked)
            r.key("spansSent")
            r.number(p.spansSent)
            r.key("bytesSent")
            r.number(p.bytesSent)
            r.key("lastRoundUnixNanos")
            r.number(p.lastRoundUnixNanos)
            r.key("inSync")
            r.bool(p.rounds > 0 && p.outOfSync.isEmpty)
            r.key("placementsOutOfSync")
            r.number(p.outOfSync.count)
            r.key("drained")
            r.bool(p.drained)
        }
    }
}

struct RepairFailure: Error, CustomStringConvertible {
    let description: String
}
