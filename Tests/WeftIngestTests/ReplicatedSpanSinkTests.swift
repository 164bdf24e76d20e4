import NIOCore
import NIOPosix
import Synchronization
import Testing
import WeftCluster
import WeftIngest
import WeftModel
import WeftRuntime

struct ReplicatedSpanSinkTests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func sink(
        _ transport: ScriptedTransport, nodes: [String] = ["a", "b", "c"], me: String = "ingest", local: LocalReplicaWrite? = nil,
        budget: PushBudget = PushBudget(maxBytes: 1 << 30, maxBytesPerPeer: 1 << 30), hintAfter: Duration = .milliseconds(20)
    ) -> ReplicatedSpanSink {
        let ring = ring(nodes)
        return ReplicatedSpanSink(localNode: NodeID(me)!, ring: { ring }, transport: transport, local: local, budget: budget, hintAfter: hintAfter)
    }

    static func write(_ sink: ReplicatedSpanSink, _ batch: SpanBatch) async throws -> Result<Void, IngestFailure> {
        try await sink.write(batch, org: "acme", on: Self.group.next()).get()
    }

    @Test func test_everyReplicaDurable_acknowledges_andEachReplicaGetsEverySpanOnce() async throws {
        let batch = try generatedBatch(spans: 500, seed: 2)
        let transport = ScriptedTransport()
        let result = try await Self.write(Self.sink(transport), batch)
        #expect(throws: Never.self) { try result.get() }
        for host in ["a", "b", "c"] {
            let ids = transport.pushes.filter { $0.host == host }.flatMap(\.spanIDs)
            #expect(ids.sorted() == batch.spanID.sorted(), "replica \(host)")
        }
    }

    @Test func test_oneReplicaDown_quorumHolds() async throws {
        let transport = ScriptedTransport(["b": .fail])
        let result = try await Self.write(Self.sink(transport), try generatedBatch(spans: 100, seed: 3))
        #expect(throws: Never.self) { try result.get() }
    }

    /// The hint is kept by every replica that stored the part, so losing one of them (killed, wiped)
    /// does not lose the knowledge that b lacks it.
    @Test func test_oneReplicaDown_itsPartIsLeftAsAHintWithEveryReplicaThatStoredIt_beforeTheAnswer() async throws {
        let batch = try generatedBatch(spans: 100, seed: 13)
        let transport = ScriptedTransport(["b": .fail])
        let result = try await Self.write(Self.sink(transport), batch)
        #expect(throws: Never.self) { try result.get() }
        let hints = transport.hints
        #expect(hints.map(\.holder).sorted() == ["a", "c"])
        #expect(hints.allSatisfy { $0.target == NodeID("b")! && $0.spanIDs.sorted() == batch.spanID.sorted() })
    }

    /// Whether `future` has completed once the loop has run what was queued before this call.
    static func completed<T>(_ future: EventLoopFuture<T>) async throws -> Bool {
        let done = Mutex(false)
        future.whenComplete { _ in done.withLock { $0 = true } }
        try await future.eventLoop.submit {}.get()
        return done.withLock { $0 }
    }

    @Test func test_answerWaitsForTheSlowReplica_noHintWhenItStores_aHintWhenItFails() async throws {
        let stored = ScriptedTransport(["c": .hold])
        let first = Self.sink(stored, hintAfter: .seconds(3600)).write(try generatedBatch(spans: 100, seed: 14), org: "acme", on: Self.group.next())
        #expect(try await !Self.completed(first))
        stored.releaseHeld(.durable)
        #expect(throws: Never.self) { try first.wait().get() }
        #expect(stored.hints.isEmpty)

        let timedOut = ScriptedTransport(["c": .hold])
        let second = Self.sink(timedOut, hintAfter: .seconds(3600)).write(try generatedBatch(spans: 100, seed: 15), org: "acme", on: Self.group.next())
        #expect(try await !Self.completed(second))
        #expect(timedOut.hints.isEmpty)
        timedOut.releaseHeld(.timedOut)
        #expect(throws: Never.self) { try second.wait().get() }
        #expect(timedOut.hints.map(\.target) == [NodeID("c")!, NodeID("c")!])
    }

    @Test func test_replicaSilentPastHintAfter_getsAHint_andTheClientItsAnswer_once() async throws {
        let batch = try generatedBatch(spans: 100, seed: 5)
        let transport = ScriptedTransport(["c": .hold])
        let budget = PushBudget(maxBytes: 1 << 30, maxBytesPerPeer: 1 << 30)
        let result = try await Self.write(Self.sink(transport, budget: budget), batch)
        #expect(throws: Never.self) { try result.get() }
        let hints = transport.hints
        #expect(hints.map(\.target) == [NodeID("c")!, NodeID("c")!])
        #expect(hints.map(\.holder).sorted() == ["a", "b"])
        #expect(hints.allSatisfy { $0.spanIDs.sorted() == batch.spanID.sorted() })
        // The slow replica's push still holds its bytes until it answers.
        #expect(budget.inFlightBytes(to: NodeID("c")!) > 0)
        #expect(budget.inFlightBytes(to: NodeID("a")!) == 0)
        // Its failure, once it comes, leaves no second hint.
        transport.releaseHeld(.timedOut)
        try await Self.group.next().submit {}.get()
        #expect(budget.inFlightBytes == 0)
        #expect(transport.hints.count == 2)
    }

    /// a and b store the part but cannot keep c's hint (unreachable, failing): nothing would tell a
    /// coordinator that c lacks it, so the write is not acknowledged and the client retries.
    @Test func test_noHolderTakesTheHint_theWriteFails() async throws {
        let transport = ScriptedTransport(["c": .fail], refusingHints: ["a", "b"])
        let result = try await Self.write(Self.sink(transport), try generatedBatch(spans: 50, seed: 17))
        #expect(Set(transport.hints.map(\.holder)) == ["a", "b"])
        guard case .failure(.unavailable(let why)) = result else {
            Issue.record("expected unavailable, got \(result)")
            return
        }
        #expect(why.contains("c missed its part") && why.contains("could keep a hint"))
    }

    /// Full hints logs mean c has been missing parts for long (anti-entropy repairs it): the write is
    /// acknowledged, as it is when one holder stores the hint and the other cannot.
    @Test func test_fullHintsLogs_orOneHolderStoring_stillAcknowledge() async throws {
        let full = ScriptedTransport(["c": .fail], fullHints: ["a", "b"])
        let first = try await Self.write(Self.sink(full), try generatedBatch(spans: 50, seed: 18))
        #expect(throws: Never.self) { try first.get() }
        let oneFails = ScriptedTransport(["c": .fail], refusingHints: ["a"])
        let second = try await Self.write(Self.sink(oneFails), try generatedBatch(spans: 50, seed: 19))
        #expect(throws: Never.self) { try second.get() }
        #expect(oneFails.hints.map(\.holder).sorted() == ["a", "b"])
    }

    @Test func test_failedWrite_leavesNoHint() async throws {
        let transport = ScriptedTransport(["b": .fail, "c": .fail])
        let result = try await Self.write(Self.sink(transport), try generatedBatch(spans: 100, seed: 16))
        #expect((try? result.get()) == nil)
        try await Self.group.next().submit {}.get()
        #expect(transport.hints.isEmpty)
    }

    @Test func test_twoReplicasLost_failsWithWhatThePlacementReached() async throws {
        let transport = ScriptedTransport(["b": .fail, "c": .timeOut])
        let result = try await Self.write(Self.sink(transport), try generatedBatch(spans: 100, seed: 4))
        guard case .failure(.unavailable(let why)) = result else {
            Issue.record("expected unavailable, got \(result)")
            return
        }
        // Decided on the second failure, whether or not the healthy replica had answered by then.
        #expect(why.contains("placement a+b+c reached only"))
        #expect(why.contains("of the 2 replicas it needs"))
        #expect(why.contains("disk full"))
        #expect(why.contains("did not answer in time"))
    }

    @Test func test_thisNodeAsReplica_writesLocally_notOverTheNetwork() async throws {
        let localSpans = Mutex(0)
        let local: LocalReplicaWrite = { batch, _, placement, loop in
            #expect(placement.replicas.contains(NodeID("a")!))
            localSpans.withLock { $0 += batch.spanCount }
            return loop.makeSucceededFuture(.success(()))
        }
        let batch = try generatedBatch(spans: 300, seed: 6)
        let transport = ScriptedTransport()
        let result = try await Self.write(Self.sink(transport, me: "a", local: local), batch)
        #expect(throws: Never.self) { try result.get() }
        #expect(localSpans.withLock { $0 } == batch.spanCount)
        #expect(!transport.pushes.contains { $0.host == "a" })
        #expect(transport.pushes.filter { $0.host == "b" }.flatMap(\.spanIDs).count == batch.spanCount)
    }

    @Test func test_localFailure_countsAgainstTheQuorum() async throws {
        let local: LocalReplicaWrite = { _, _, _, loop in loop.makeSucceededFuture(.failure(.unavailable("WAL failed"))) }
        let transport = ScriptedTransport(["b": .fail])
        let result = try await Self.write(Self.sink(transport, me: "a", local: local), try generatedBatch(spans: 50, seed: 7))
        guard case .failure(.unavailable(let why)) = result else {
            Issue.record("expected unavailable, got \(result)")
            return
        }
        #expect(why.contains("WAL failed"))
    }

    @Test func test_noActiveStorageNode_isUnavailable() async throws {
        let sink = Self.sink(ScriptedTransport(), nodes: [])
        #expect(sink.refusal == .unavailable("no storage node is active"))
        let result = try await Self.write(sink, try generatedBatch(spans: 5, seed: 8))
        guard case .failure(let failure) = result else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure == .unavailable("no storage node is active"))
    }

    @Test func test_peerOverItsBudget_isSkipped_whileTheQuorumHolds() async throws {
        let transport = ScriptedTransport(["c": .hold])
        let budget = PushBudget(maxBytes: 1 << 30, maxBytesPerPeer: 1)
        let sink = Self.sink(transport, budget: budget)
        let first = try await Self.write(sink, try generatedBatch(spans: 100, seed: 9))
        #expect(throws: Never.self) { try first.get() }
        let pushesToC = transport.pushes.filter { $0.host == "c" }.count
        // c still holds the first write's bytes: the second write does not go to c, yet succeeds on a and b.
        let second = try await Self.write(sink, try generatedBatch(spans: 100, seed: 10))
        #expect(throws: Never.self) { try second.get() }
        #expect(transport.pushes.filter { $0.host == "c" }.count == pushesToC)
        transport.releaseHeld(.durable)
        try await Self.group.next().submit {}.get()
        #expect(budget.inFlightBytes == 0)
    }

    @Test func test_nodeBudgetFull_refusesWrites_untilPushesEnd() async throws {
        let transport = ScriptedTransport(["a": .hold, "b": .hold, "c": .hold])
        let budget = PushBudget(maxBytes: 1, maxBytesPerPeer: 1 << 30)
        let sink = Self.sink(transport, budget: budget)
        let first = sink.write(try generatedBatch(spans: 100, seed: 11), org: "acme", on: Self.group.next())
        guard case .unavailable(let why)? = sink.refusal else {
            Issue.record("expected a refusal while the budget is full")
            return
        }
        #expect(why.contains("on their way to replicas"))
        let second = try await Self.write(sink, try generatedBatch(spans: 100, seed: 12))
        guard case .failure(.unavailable) = second else {
            Issue.record("expected the second write to be refused, got \(second)")
            return
        }
        transport.releaseHeld(.durable)
        #expect(throws: Never.self) { try first.wait().get() }
        #expect(budget.inFlightBytes == 0)
        #expect(sink.refusal == nil)
    }

    /// With a history, the sink places by the history's ring, not by a compiled ring that lost a
    /// restarting member: spans stay on three-replica placements.
    @Test func test_memberRestartingBelowRF_writesStillGoToFullPlacements() async throws {
        let transport = ScriptedTransport()
        let full = ring(["a", "b", "c"])
        var history = WriteRingHistory(requestedReplicationFactor: 3)
        history.observe(full.writes, now: 1)
        // c restarts: JOINING, so the compiled ring places on a and b only.
        let shrunk = Ring(
            state: RingState(["a", "b", "c"].map {
                RingEntry(nodeID: NodeID($0)!, version: 2, state: $0 == "c" ? .joining : .active, address: NodeAddress(host: $0, port: 9400)!)
            }),
            replicationFactor: 3
        )
        #expect(shrunk.writes.replicationFactor == 2)
        history.observe(shrunk.writes, now: 2, restarting: [NodeID("c")!])
        let sink = ReplicatedSpanSink(
            localNode: NodeID("ingest")!, rings: { [history] in (shrunk, history) }, transport: transport, local: nil,
            budget: PushBudget(maxBytes: 1 << 30, maxBytesPerPeer: 1 << 30)
        )
        try (try await Self.write(sink, try generatedBatch(spans: 200, seed: 41))).get()
        #expect(Set(transport.pushes.map(\.placement.rawValue)) == ["a+b+c"])
        #expect(Set(transport.pushes.map(\.host)) == ["a", "b", "c"])
    }

    /// A request sent again after a node joined reaches the same replicas under the same placement key.
    @Test func test_resendAfterAJoin_goesToTheSamePlacements() async throws {
        let batch = try generatedBatch(spans: 400, seed: 31)
        let transport = ScriptedTransport()
        let before = ring(["a", "b", "c", "d"])
        let after = ring(["a", "b", "c", "d", "e"])
        let rings = Mutex((ring: before, history: WriteRingHistory(requestedReplicationFactor: 3)))
        let now = Mutex(batch.startTime.max()! + 1_000_000)
        rings.withLock { $0.history.observe(before.writes, now: batch.startTime.min()! - 1) }
        let sink = ReplicatedSpanSink(
            localNode: NodeID("ingest")!, rings: { rings.withLock { ($0.ring, $0.history) } }, wallClock: { now.withLock { $0 } },
            transport: transport, local: nil, budget: PushBudget(maxBytes: 1 << 30, maxBytesPerPeer: 1 << 30)
        )
        try (try await Self.write(sink, batch)).get()
        let first = transport.pushes.map { "\($0.host) \($0.placement) \($0.spanIDs.sorted())" }.sorted()
        now.withLock { $0 += 5_000_000_000 }
        rings.withLock {
            $0.ring = after
            $0.history.observe(after.writes, now: now.withLock { $0 })
        }
        try (try await Self.write(sink, batch)).get()
        let second = transport.pushes.dropFirst(first.count).map { "\($0.host) \($0.placement) \($0.spanIDs.sorted())" }.sorted()
        #expect(second == first)
        // New spans (started after the join) follow the new ring.
        var fresh = try generatedBatch(spans: 400, seed: 32)
        for row in 0..<fresh.spanCount { fresh.startTime[row] = now.withLock { $0 } + UInt64(row) }
        let count = transport.pushes.count
        try (try await Self.write(sink, fresh)).get()
        let keys = Set(transport.pushes.dropFirst(count).map(\.placement))
        #expect(keys == Set((0..<fresh.spanCount).map { PlacementKey(replicas: after.writeReplicas(for: fresh.traceID($0))) }))
    }
    /// A placement of an earlier write ring is written to its current targets: after a drain, a stand-in
    /// for the drained node. A stand-in that fails gets the hint (and the answer waits for it); the
    /// drained node, which was never a target, gets none.
    @Test func test_failingStandIn_getsTheHint_notTheNodeItStandsFor() async throws {
        let batch = try generatedBatch(spans: 400, seed: 51)
        let transport = ScriptedTransport(["d": .fail])
        let before = ring(["a", "b", "c", "d"])
        let draining = Ring(
            state: RingState(["a", "b", "c", "d"].map {
                RingEntry(nodeID: NodeID($0)!, version: 2, state: $0 == "c" ? .leaving : .active, address: NodeAddress(host: $0, port: 9400)!)
            }),
            replicationFactor: 3
        )
        var history = WriteRingHistory(requestedReplicationFactor: 3)
        history.observe(before.writes, now: batch.startTime.min()! - 1)
        let later = batch.startTime.max()! + 1_000_000
        history.observe(draining.writes, now: later)
        let sink = ReplicatedSpanSink(
            localNode: NodeID("ingest")!, rings: { [history] in (draining, history) }, wallClock: { later },
            transport: transport, local: nil, budget: PushBudget(maxBytes: 1 << 30, maxBytesPerPeer: 1 << 30), hintAfter: .milliseconds(20)
        )
        try (try await Self.write(sink, batch)).get()
        let c = NodeID("c")!
        let pushes = transport.pushes
        #expect(!pushes.contains { $0.host == "c" })
        #expect(pushes.contains { $0.placement.replicas.contains(c) && $0.host == "d" }, "d stood in for c")
        let hints = transport.hints
        #expect(!hints.contains { $0.target == c })
        #expect(Set(hints.filter { $0.target == NodeID("d")! }.map(\.placement)) == Set(pushes.filter { $0.host == "d" }.map(\.placement)))
    }
}
