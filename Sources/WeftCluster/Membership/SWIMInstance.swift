import WeftModel

/// SWIM failure detection and dissemination (Das, Gupta, Motivala 2002) with Lifeguard's local health
/// (Dadgar et al. 2018), as a pure state machine: events in, `SWIMDirective`s out.
///
/// - Time is the caller's monotonic clock in nanoseconds (`now:`); randomness comes from a seeded
///   generator the instance holds, so a run replays exactly from its seed.
/// - Each protocol period the instance pings the next member of a shuffled round-robin list. No ack
///   within the probe timeout: it asks k other members to ping the target (ping-req); still no ack by
///   the end of the period: the target becomes `suspect`. A suspect that does not refute within the
///   suspicion timeout becomes `dead`.
/// - Claims are ordered `alive(i) < suspect(i) < dead(i) < left(i) < alive(i+1)`. A node that hears
///   itself suspected or dead raises its incarnation above the claim (refutation); a restarted node,
///   which starts at incarnation 0, comes back this way.
/// - Lifeguard's buddy system: a node that starts suspecting a member pings it with the suspicion at
///   once, and every probe of a suspect carries it, so a live suspect refutes quickly.
/// - Lifeguard local health: a failed probe whose relays did not all nack, or a refutation, raises the
///   node's own health score; a successful probe lowers it. The probe interval and timeouts are scaled
///   by 1 + score, so a slow node slows down instead of accusing healthy peers.
/// - Every message piggybacks up to `maxGossipPerMessage` updates, each sent at most
///   `retransmitMultiplier` × ⌈log2(n+1)⌉ times; while updates are queued, gossip-only messages go to
///   `gossipFanout` random members every `gossipInterval`, suspects included.
/// - Ring state rides along: changed `RingEntry`s are gossiped like member updates, and every message
///   carries the sender's ring digest; a mismatch that lasts `ringSyncInterval` starts a push-pull of
///   full state with that peer. Push-pull also runs on join and every `pushPullInterval`.
/// - Every `reconnectInterval` a node push-pulls with one random dead member, so the two sides of a
///   healed partition merge again.
/// - A node is the only writer of its own ring entry (its intent wins over any other version of it),
///   except a `left` tombstone (an operator's `forget`), which it accepts.
public struct SWIMInstance: Sendable {
    public let settings: SWIMSettings
    public let myself: NodeID
    public let address: NodeAddress
    public private(set) var incarnation: UInt64 { didSet { self.snapshotCache = nil } }
    /// Lifeguard's local health score, 0...`maxLocalHealth`.
    public private(set) var localHealth = 0
    /// Every other member ever heard of (dead and left ones stay, as tombstones).
    public private(set) var members: [NodeID: MemberState] = [:] { didSet { self.snapshotCache = nil } }
    /// The number of live members, this node included (n in the protocol's formulas).
    public private(set) var clusterSize = 1
    /// The merged ring state.
    public private(set) var ring = RingState() { didSet { self.snapshotCache = nil } }
    /// True once `onLeave` was called: no more probing, and no refutation of the `left` claim.
    public private(set) var isLeaving = false { didSet { self.snapshotCache = nil } }

    /// The members currently suspect (an index into `members`, kept so deadlines cost O(suspects)).
    private var suspects: Set<NodeID> = []
    /// `snapshot`, kept until the state changes (push-pull sends it often, sorting is not free).
    private var snapshotCache: MembershipSnapshot?
    private var ownRingEntry: RingEntry?
    private let seeds: [NodeAddress]
    private var rng: SplitMix64
    private var sequence: UInt64 = 0
    private var probeOrder: [NodeID] = []
    private var probeCursor = 0
    private var probe: Probe?
    private var relays: [UInt64: Relay] = [:]
    private var gossip = Dissemination()
    private var nextProbeAt: UInt64 = 0
    private var nextJoinAt: UInt64?
    private var nextPushPullAt: UInt64 = 0
    private var nextReconnectAt: UInt64 = 0
    private var nextGossipAt: UInt64 = 0
    private var nextRingSyncAt: UInt64 = 0
    private var ringMismatchSince: UInt64?
    private var scheduledTick: UInt64?

    /// The probe of the current protocol period.
    struct Probe: Sendable {
        enum Phase: Sendable { case direct, indirect }
        var target: NodeID
        var targetAddress: NodeAddress
        var sequence: UInt64
        var directDeadline: UInt64
        var periodEnd: UInt64
        var phase: Phase
        var relaysAsked = 0
        var nacks = 0
    }

    /// A ping this node sends on behalf of another (ping-req).
    struct Relay: Sendable {
        var origin: NodeAddress
        var originSequence: UInt64
        var target: NodeID
        var deadline: UInt64
    }

    /// Creates a member that has not started yet (call `onStart`).
    /// - Parameters:
    ///   - ringEntry: this node's own ring entry (its intent), if it takes part in the ring.
    ///   - seeds: addresses to join through (`--join`); empty for the first node.
    ///   - incarnation: the starting incarnation (a shell may persist it; 0 is fine, refutation raises it).
    ///   - seed: seeds the instance's random generator.
    public init(
        myself: NodeID, address: NodeAddress, ringEntry: RingEntry? = nil, seeds: [NodeAddress] = [],
        incarnation: UInt64 = 0, settings: SWIMSettings = SWIMSettings(), seed: UInt64
    ) {
        precondition(ringEntry.map { $0.nodeID == myself } ?? true, "the own ring entry must be this node's")
        self.myself = myself
        self.address = address
        self.ownRingEntry = ringEntry
        self.seeds = seeds.filter { $0 != address }
        self.incarnation = incarnation
        self.settings = settings
        self.rng = SplitMix64(seed: seed)
        if let ringEntry { self.ring.apply(ringEntry) }
    }

    // ==== ------------------------------------------------------------------------------------------
    // MARK: Views

    /// This node's own claim.
    public var selfUpdate: MemberUpdate {
        MemberUpdate(node: self.myself, address: self.address, status: self.isLeaving ? .left : .alive, incarnation: self.incarnation)
    }

    /// Members currently alive or suspect (not this node).
    public var reachableMembers: [MemberState] {
        self.members.values.filter { $0.status.isReachable }.sorted { $0.update.node < $1.update.node }
    }

    /// The full state sent in push-pull.
    public var snapshot: MembershipSnapshot {
        let others = self.members.values.map(\.update).sorted { $0.node < $1.node }
        return MembershipSnapshot(members: [self.selfUpdate] + others, ring: self.ring.sortedEntries)
    }

    private mutating func currentSnapshot() -> MembershipSnapshot {
        if let cached = self.snapshotCache { return cached }
        let snapshot = self.snapshot
        self.snapshotCache = snapshot
        return snapshot
    }

    /// The probe interval scaled by local health.
    var probeInterval: UInt64 { self.settings.protocolPeriod * UInt64(1 + self.localHealth) }
    /// The probe timeout scaled by local health.
    var probeTimeout: UInt64 { self.settings.probeTimeout * UInt64(1 + self.localHealth) }

    // ==== ------------------------------------------------------------------------------------------
    // MARK: Start

    /// Starts the protocol: first probe within one period, join through the seeds.
    public mutating func onStart(now: UInt64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        self.nextProbeAt = now + self.rng.next() % self.settings.protocolPeriod
        self.nextPushPullAt = now + self.settings.pushPullInterval
        self.nextReconnectAt = now + self.settings.reconnectInterval
        self.gossip.enqueue(.member(self.selfUpdate))
        if let own = self.ownRingEntry { self.gossip.enqueue(.ring(own)) }
        if !self.seeds.isEmpty { self.join(now: now, &out) }
        self.finish(now: now, &out)
        return out
    }

    private mutating func join(now: UInt64, _ out: inout [SWIMDirective]) {
        for seed in self.seeds { self.send(.syncRequest(self.currentSnapshot()), to: seed, &out) }
        self.nextJoinAt = now + self.settings.protocolPeriod
    }

    // ==== ------------------------------------------------------------------------------------------
    // MARK: Tick

    /// Handles every deadline that has passed: suspicion timeouts, the probe's timeouts, relays that
    /// must nack, join retries, push-pull, reconnects, gossip-only messages, and the next probe.
    public mutating func onTick(now: UInt64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        // 1) Suspects that did not refute in time are dead.
        let timeout = self.settings.suspicionTimeout(memberCount: self.clusterSize)
        let expired = self.suspects.compactMap { self.members[$0] }.filter { ($0.suspectedAt ?? now) + timeout <= now }
        for member in expired.sorted(by: { $0.update.node < $1.update.node }) {
            var dead = member.update
            dead.status = .dead
            self.apply(dead, now: now, &out)
        }
        // 2) The current probe: ask relays after the direct timeout, suspect at the end of the period.
        if var probe = self.probe {
            if probe.phase == .direct, now >= probe.directDeadline {
                probe.phase = .indirect
                let relays = self.randomReachableMembers(count: self.settings.indirectProbeCount, excluding: probe.target)
                for relay in relays {
                    self.send(.pingRequest(sequence: probe.sequence, target: probe.target, targetAddress: probe.targetAddress), to: relay.address, &out)
                }
                probe.relaysAsked = relays.count
                self.probe = probe
            }
            if now >= probe.periodEnd { self.probeFailed(probe, now: now, &out) }
        }
        // 3) Relayed pings that got no answer: tell their origin.
        for (sequence, relay) in self.relays.sorted(by: { $0.key < $1.key }) where relay.deadline <= now {
            self.relays[sequence] = nil
            self.send(.nack(sequence: relay.originSequence, target: relay.target), to: relay.origin, &out)
        }
        // 4) Keep knocking on the seeds until someone answers.
        if let nextJoin = self.nextJoinAt, now >= nextJoin {
            if self.clusterSize > 1 { self.nextJoinAt = nil } else { self.join(now: now, &out) }
        }
        // 5) Anti-entropy with a random member.
        if now >= self.nextPushPullAt {
            self.nextPushPullAt = now + self.settings.pushPullInterval
            if let peer = self.randomReachableMembers(count: 1, excluding: nil).first {
                self.send(.syncRequest(self.currentSnapshot()), to: peer.address, &out)
            }
        }
        // 6) Knock on a dead member's door: if it is alive after all (a healed partition), it refutes.
        if now >= self.nextReconnectAt {
            self.nextReconnectAt = now + self.settings.reconnectInterval
            let dead = self.members.values.filter { $0.status == .dead }.map(\.update).sorted { $0.node < $1.node }
            if !dead.isEmpty {
                self.send(.syncRequest(self.currentSnapshot()), to: dead[Int(self.rng.next() % UInt64(dead.count))].address, &out)
            }
        }
        // 7) Spread queued news to a few members (suspects included: they must hear their suspicion).
        if now >= self.nextGossipAt, !self.gossip.isEmpty {
            self.nextGossipAt = now + self.settings.gossipInterval
            for member in self.randomReachableMembers(count: self.settings.gossipFanout, excluding: nil, includingSuspects: true) {
                self.send(.gossip, to: member.address, &out, first: self.claimIfSuspect(member.node))
            }
        }
        // 8) The next probe.
        if !self.isLeaving, now >= self.nextProbeAt { self.startProbe(now: now, &out) }
        self.finish(now: now, &out)
        return out
    }

    private mutating func startProbe(now: UInt64, _ out: inout [SWIMDirective]) {
        if let unfinished = self.probe { self.probeFailed(unfinished, now: now, &out) }
        self.nextProbeAt = now + self.probeInterval
        guard let target = self.nextProbeTarget() else { return }
        let sequence = self.nextSequence()
        self.probe = Probe(
            target: target.node, targetAddress: target.address, sequence: sequence,
            directDeadline: now + self.probeTimeout, periodEnd: now + self.probeInterval, phase: .direct
        )
        // Lifeguard's buddy system: a suspect hears of its suspicion from whoever probes it.
        self.send(.ping(sequence: sequence), to: target.address, &out, first: target.status == .suspect ? .member(target) : nil)
    }

    private mutating func probeFailed(_ probe: Probe, now: UInt64, _ out: inout [SWIMDirective]) {
        self.probe = nil
        // Lifeguard: relays that neither acked nor nacked point at this node's own links.
        if probe.relaysAsked > probe.nacks { self.adjustLocalHealth(+1) }
        guard let member = self.members[probe.target], member.status == .alive else { return }
        var suspect = member.update
        suspect.status = .suspect
        self.apply(suspect, now: now, &out)
        // Tell the suspect at once, so that a live one can refute before the others time out.
        self.send(.ping(sequence: self.nextSequence()), to: suspect.address, &out, first: .member(suspect))
    }

    /// The next reachable member of the round-robin list, reshuffling at the end of each round.
    private mutating func nextProbeTarget() -> MemberUpdate? {
        for _ in 0..<2 {
            while self.probeCursor < self.probeOrder.count {
                let node = self.probeOrder[self.probeCursor]
                self.probeCursor += 1
                if let member = self.members[node], member.status.isReachable { return member.update }
            }
            self.probeOrder = self.reachableMembers.map(\.update.node)
            self.probeOrder.shuffle(using: &self.rng)
            self.probeCursor = 0
        }
        return nil
    }

    // ==== ------------------------------------------------------------------------------------------
    // MARK: Messages

    /// Handles a message from a peer.
    public mutating func onMessage(_ message: SWIMMessage, now: UInt64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        var ringChanges: [RingEntry] = []
        if message.sender != self.myself {
            self.apply(MemberUpdate(node: message.sender, address: message.senderAddress, status: .alive, incarnation: message.senderIncarnation), now: now, &out)
        }
        for update in message.gossip {
            switch update {
            case .member(let member): self.apply(member, now: now, &out)
            case .ring(let entry): self.applyRing(entry, &ringChanges)
            }
        }
        switch message.kind {
        case .ping(let sequence):
            self.send(.ack(sequence: sequence, target: self.myself), to: message.senderAddress, &out, first: self.claimIfSuspect(message.sender))
        case .pingRequest(let sequence, let target, let targetAddress):
            if target == self.myself {
                self.send(.ack(sequence: sequence, target: self.myself), to: message.senderAddress, &out)
            } else {
                let relaySequence = self.nextSequence()
                let deadline = now + self.probeTimeout * self.settings.relayTimeoutPercent / 100
                self.relays[relaySequence] = Relay(origin: message.senderAddress, originSequence: sequence, target: target, deadline: deadline)
                self.send(.ping(sequence: relaySequence), to: targetAddress, &out)
            }
        case .ack(let sequence, let target):
            if let probe = self.probe, probe.sequence == sequence, probe.target == target {
                self.probe = nil
                self.adjustLocalHealth(-1)
            } else if let relay = self.relays[sequence], relay.target == target {
                self.relays[sequence] = nil
                self.send(.ack(sequence: relay.originSequence, target: target), to: relay.origin, &out)
            }
        case .gossip:
            break
        case .nack(let sequence, let target):
            if let probe = self.probe, probe.sequence == sequence, probe.target == target { self.probe?.nacks += 1 }
        case .syncRequest(let snapshot):
            self.merge(snapshot, now: now, &out, &ringChanges)
            self.send(.syncResponse(self.currentSnapshot()), to: message.senderAddress, &out)
        case .syncResponse(let snapshot):
            self.merge(snapshot, now: now, &out, &ringChanges)
        }
        self.checkRingDigest(of: message, now: now, &out)
        if !ringChanges.isEmpty { out.append(.ringChanged(ringChanges)) }
        self.finish(now: now, &out)
        return out
    }

    private mutating func merge(_ snapshot: MembershipSnapshot, now: UInt64, _ out: inout [SWIMDirective], _ ringChanges: inout [RingEntry]) {
        for member in snapshot.members { self.apply(member, now: now, &out) }
        for entry in snapshot.ring { self.applyRing(entry, &ringChanges) }
    }

    /// A digest mismatch that outlives `ringSyncInterval` pulls the peer's full state (and pushes ours).
    private mutating func checkRingDigest(of message: SWIMMessage, now: UInt64, _ out: inout [SWIMDirective]) {
        switch message.kind {
        case .syncRequest, .syncResponse: return
        default: break
        }
        guard message.ringDigest != self.ring.digest else {
            self.ringMismatchSince = nil
            return
        }
        guard let since = self.ringMismatchSince else {
            self.ringMismatchSince = now
            return
        }
        if now - since >= self.settings.ringSyncInterval, now >= self.nextRingSyncAt {
            self.ringMismatchSince = nil
            self.nextRingSyncAt = now + self.settings.ringSyncInterval
            self.send(.syncRequest(self.currentSnapshot()), to: message.senderAddress, &out)
        }
    }

    // ==== ------------------------------------------------------------------------------------------
    // MARK: Local changes

    /// Changes this node's own ring entry (join → ACTIVE, drain → LEAVING, handed off → LEFT) or
    /// writes another node's tombstone (`forget`: state `left`). The version is set above the current one.
    public mutating func onRingUpdate(_ entry: RingEntry, now: UInt64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        var changes: [RingEntry] = []
        var updated = entry
        updated.version = max(entry.version, (self.ring[entry.nodeID]?.version ?? 0) + 1)
        if entry.nodeID == self.myself { self.ownRingEntry = updated }
        self.applyRing(updated, &changes)
        if !changes.isEmpty { out.append(.ringChanged(changes)) }
        self.finish(now: now, &out)
        return out
    }

    /// Leaves gracefully: stops probing and tells a few members (the claim spreads by gossip).
    public mutating func onLeave(now: UInt64) -> [SWIMDirective] {
        var out: [SWIMDirective] = []
        self.isLeaving = true
        self.probe = nil
        self.gossip.enqueue(.member(self.selfUpdate))
        for member in self.randomReachableMembers(count: 2 * self.settings.indirectProbeCount, excluding: nil) {
            self.send(.ping(sequence: self.nextSequence()), to: member.address, &out)
        }
        self.finish(now: now, &out)
        return out
    }

    // ==== ------------------------------------------------------------------------------------------
    // MARK: Applying claims

    /// Applies a claim about any member (this node included: that is where refutation happens).
    private mutating func apply(_ update: MemberUpdate, now: UInt64, _ out: inout [SWIMDirective]) {
        guard update.node != self.myself else {
            self.refuteIfNeeded(update)
            return
        }
        let existing = self.members[update.node]
        if let existing, !update.supersedes(existing.update) { return }
        self.members[update.node] = MemberState(update: update, suspectedAt: update.status == .suspect ? now : nil)
        if update.status == .suspect { self.suspects.insert(update.node) } else { self.suspects.remove(update.node) }
        self.clusterSize += (update.status.isReachable ? 1 : 0) - (existing?.status.isReachable == true ? 1 : 0)
        if update.status.isReachable, existing?.status.isReachable != true, !self.probeOrder.contains(update.node) {
            // SWIM: a new member goes to a random place in the round-robin list.
            let position = self.probeCursor + Int(self.rng.next() % UInt64(self.probeOrder.count - self.probeCursor + 1))
            self.probeOrder.insert(update.node, at: position)
        }
        self.gossip.enqueue(.member(update))
        if existing?.status != update.status {
            out.append(.memberStatusChanged(MemberStatusChange(member: update, previous: existing?.status)))
        }
    }

    private mutating func refuteIfNeeded(_ update: MemberUpdate) {
        if update.status == .alive {
            // An alive claim from an earlier life of this node: continue above it.
            if update.incarnation > self.incarnation {
                self.incarnation = update.incarnation
                self.gossip.enqueue(.member(self.selfUpdate))
            }
            return
        }
        guard !self.isLeaving, update.incarnation >= self.incarnation else { return }
        self.incarnation = update.incarnation + 1
        if update.status == .suspect { self.adjustLocalHealth(+1) }
        self.gossip.enqueue(.member(self.selfUpdate))
    }

    private mutating func applyRing(_ entry: RingEntry, _ changes: inout [RingEntry]) {
        guard self.ring.apply(entry) else { return }
        self.gossip.enqueue(.ring(entry))
        changes.append(entry)
        // This node's intent for its own entry wins over other versions of it, except a tombstone.
        guard let own = self.ownRingEntry, entry.nodeID == self.myself, entry != own else { return }
        if entry.state == .left || Self.sameIntent(entry, own) {
            self.ownRingEntry = entry
            return
        }
        var restated = own
        restated.version = entry.version + 1
        self.ownRingEntry = restated
        self.ring.apply(restated)
        self.gossip.enqueue(.ring(restated))
        changes.append(restated)
    }

    private static func sameIntent(_ a: RingEntry, _ b: RingEntry) -> Bool {
        a.state == b.state && a.address == b.address && a.zone == b.zone && a.tokenCount == b.tokenCount && a.roles == b.roles
    }

    // ==== ------------------------------------------------------------------------------------------
    // MARK: Helpers

    private mutating func adjustLocalHealth(_ delta: Int) {
        self.localHealth = min(max(self.localHealth + delta, 0), self.settings.maxLocalHealth)
    }

    private mutating func nextSequence() -> UInt64 {
        self.sequence += 1
        return self.sequence
    }

    /// The suspicion of `node`, when this node holds one (sent first to the suspect itself: buddy system).
    private func claimIfSuspect(_ node: NodeID) -> GossipUpdate? {
        guard let member = self.members[node], member.status == .suspect else { return nil }
        return .member(member.update)
    }

    /// Up to `count` distinct alive members (and suspects, when asked), chosen at random.
    private mutating func randomReachableMembers(count: Int, excluding excluded: NodeID?, includingSuspects: Bool = false) -> [MemberUpdate] {
        var candidates = self.members.values.filter {
            ($0.status == .alive || (includingSuspects && $0.status == .suspect)) && $0.update.node != excluded
        }.map(\.update)
        candidates.sort { $0.node < $1.node }
        var chosen: [MemberUpdate] = []
        while chosen.count < count, !candidates.isEmpty {
            chosen.append(candidates.remove(at: Int(self.rng.next() % UInt64(candidates.count))))
        }
        return chosen
    }

    /// Sends `kind` with piggybacked gossip; `first`, when given, rides first (outside the retransmit count).
    private mutating func send(_ kind: SWIMMessage.Kind, to address: NodeAddress, _ out: inout [SWIMDirective], first: GossipUpdate? = nil) {
        var gossip = self.gossip.take(
            maxCount: self.settings.maxGossipPerMessage - (first == nil ? 0 : 1),
            limit: self.settings.retransmitLimit(memberCount: self.clusterSize)
        )
        if let first {
            gossip.removeAll { $0 == first }
            gossip.insert(first, at: 0)
        }
        let message = SWIMMessage(
            sender: self.myself, senderAddress: self.address, senderIncarnation: self.incarnation,
            ringDigest: self.ring.digest, kind: kind, gossip: gossip
        )
        out.append(.send(message, to: address))
    }

    /// The earliest pending deadline.
    private var nextDeadline: UInt64? {
        var deadlines: [UInt64] = []
        if !self.isLeaving { deadlines.append(self.nextProbeAt) }
        if let probe = self.probe { deadlines.append(probe.phase == .direct ? probe.directDeadline : probe.periodEnd) }
        let timeout = self.settings.suspicionTimeout(memberCount: self.clusterSize)
        for node in self.suspects {
            if let since = self.members[node]?.suspectedAt { deadlines.append(since + timeout) }
        }
        for relay in self.relays.values { deadlines.append(relay.deadline) }
        if let nextJoin = self.nextJoinAt { deadlines.append(nextJoin) }
        deadlines.append(self.nextPushPullAt)
        deadlines.append(self.nextReconnectAt)
        if !self.gossip.isEmpty { deadlines.append(self.nextGossipAt) }
        return deadlines.min()
    }

    /// Asks for a tick at the earliest deadline when that changed.
    private mutating func finish(now: UInt64, _ out: inout [SWIMDirective]) {
        guard let deadline = self.nextDeadline.map({ max($0, now) }) else { return }
        if deadline != self.scheduledTick || deadline <= now {
            self.scheduledTick = deadline
            out.append(.scheduleTick(at: deadline))
        }
    }
}
