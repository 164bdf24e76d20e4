import NIOCore
import WeftCluster
import WeftHTTP2
import WeftModel

/// The cluster admin API served under `/api/cluster/` on every node's query port (JSON):
/// `GET members`, `GET ring`, `GET status`, `POST drain?node=ID`, `POST forget?node=ID`,
/// `POST repair[?node=ID]` (storage nodes deliver their hints now; with a node, only hints for it).
public struct AdminAPI: Sendable {
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var body: [UInt8]
    }

    let shell: MembershipShell
    let pool: HTTP2ClientPool
    let secret: String?
    /// This node's own status as a JSON object.
    let localStatus: @Sendable () async -> [UInt8]
    /// This node's hints log, for repair.
    let hints: HintStoreReference

    public init(shell: MembershipShell, pool: HTTP2ClientPool, secret: String?, hints: HintStoreReference, localStatus: @escaping @Sendable () async -> [UInt8]) {
        self.shell = shell
        self.pool = pool
        self.secret = secret
        self.hints = hints
        self.localStatus = localStatus
    }

    /// Answers `method path` with the query parameters `query`; nil when the path is not an admin path.
    public func handle(method: String, path: String, query: [String: String]) async -> Response? {
        switch (method, path) {
        case ("GET", "/api/cluster/members"): return Self.ok(Self.members(await self.shell.view()))
        case ("GET", "/api/cluster/ring"): return Self.ok(Self.ring(await self.shell.view(), self.shell.ring))
        case ("GET", "/api/cluster/status"): return await self.status()
        case ("POST", "/api/cluster/drain"): return await self.drain(query["node"])
        case ("POST", "/api/cluster/forget"): return await self.forget(query["node"])
        case ("POST", "/api/cluster/repair"): return await self.repair(query["node"])
        case (_, "/api/cluster/members"), (_, "/api/cluster/ring"), (_, "/api/cluster/status"):
            return Self.error(405, "use GET for \(path)")
        case (_, "/api/cluster/drain"), (_, "/api/cluster/forget"), (_, "/api/cluster/repair"):
            return Self.error(405, "use POST for \(path)")
        default:
            return path.hasPrefix("/api/cluster/") ? Self.error(404, "no such endpoint: \(path)") : nil
        }
    }

    // MARK: members

    static func members(_ view: ClusterView) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.key("self")
            o.string(view.me.rawValue)
            o.key("members")
            o.array { a in
                for m in view.members {
                    a.object { r in
                        r.key("id")
                        r.string(m.update.node.rawValue)
                        r.key("address")
                        r.string(m.update.address.description)
                        r.key("roles")
                        r.array { roles in
                            for role in (m.entry?.roles ?? []).names { roles.string(role) }
                        }
                        r.key("zone")
                        r.string(m.entry?.zone.rawValue ?? "")
                        r.key("status")
                        r.string(m.update.status.description)
                        r.key("state")
                        r.string(m.entry?.state.description ?? "UNKNOWN")
                        r.key("incarnation")
                        r.number(m.update.incarnation)
                        r.key("lastHeardMs")
                        if let ago = m.lastHeardNanosAgo { r.number(Int(ago / 1_000_000)) } else { r.null() }
                        r.key("self")
                        r.bool(m.isSelf)
                    }
                }
            }
        }
        return w.bytes
    }

    // MARK: ring

    static func ring(_ view: ClusterView, _ ring: Ring) -> [UInt8] {
        let ownership = RingOwnership(ring.writes)
        let shares = Dictionary(uniqueKeysWithValues: ownership.shares.map { ($0.node, $0) })
        var w = JSONWriter()
        w.object { o in
            o.key("version")
            o.number(ring.version)
            o.key("replicationFactor")
            o.number(ownership.replicationFactor)
            o.key("requestedReplicationFactor")
            o.number(ring.requestedReplicationFactor)
            o.key("placements")
            o.number(ring.writes.replicaSetCount)
            o.key("nodes")
            o.array { a in
                for entry in view.ringState.sortedEntries {
                    a.object { n in
                        n.key("id")
                        n.string(entry.nodeID.rawValue)
                        n.key("state")
                        n.string(entry.state.description)
                        n.key("zone")
                        n.string(entry.zone.rawValue)
                        n.key("tokens")
                        n.number(Int(entry.placesTokens ? entry.tokenCount : 0))
                        n.key("primaryShare")
                        n.number(shares[entry.nodeID]?.primary ?? 0)
                        n.key("replicaShare")
                        n.number(shares[entry.nodeID]?.replica ?? 0)
                        n.key("version")
                        n.number(entry.version)
                    }
                }
            }
            let replica = ownership.shares.map(\.replica)
            o.key("balance")
            o.object { b in
                b.key("idealReplicaShare")
                b.number(ownership.shares.isEmpty ? 0 : Double(ownership.replicationFactor) / Double(ownership.shares.count))
                b.key("minReplicaShare")
                b.number(replica.min() ?? 0)
                b.key("maxReplicaShare")
                b.number(replica.max() ?? 0)
            }
        }
        return w.bytes
    }

    // MARK: status

    /// Every reachable member's own status (asked over the internal port), and the ones that did not answer.
    func status() async -> Response {
        let view = await self.shell.view()
        let others = view.members.filter { !$0.isSelf && $0.update.status != .left }
        let answers = await withTaskGroup(of: (ClusterView.Member, Result<[UInt8], any Error>).self) { group in
            for member in others {
                group.addTask { [pool = self.pool, secret = self.secret] in
                    do {
                        let response = try await Self.internalRequest("GET", InternalAPI.statusPath, to: member.update.address, pool: pool, secret: secret)
                        return (member, .success(Array(response.body.readableBytesView)))
                    } catch {
                        return (member, .failure(error))
                    }
                }
            }
            var all: [(ClusterView.Member, Result<[UInt8], any Error>)] = []
            for await answer in group { all.append(answer) }
            return all.sorted { $0.0.update.node < $1.0.update.node }
        }
        let mine = await self.localStatus()
        var w = JSONWriter()
        w.object { o in
            o.key("nodes")
            o.array { a in
                a.raw(mine)
                for case (_, .success(let body)) in answers { a.raw(body) }
            }
            o.key("unreachable")
            o.array { a in
                for case (let member, .failure(let error)) in answers {
                    a.object { u in
                        u.key("id")
                        u.string(member.update.node.rawValue)
                        u.key("address")
                        u.string(member.update.address.description)
                        u.key("status")
                        u.string(member.update.status.description)
                        u.key("error")
                        u.string("\(error)")
                    }
                }
            }
        }
        return Self.ok(w.bytes)
    }

    // MARK: drain and forget

    func drain(_ node: String?) async -> Response {
        let view = await self.shell.view()
        guard let member = Self.find(node, in: view) else { return Self.unknown(node) }
        if member.isSelf {
            await self.shell.setOwnState(.leaving)
        } else {
            guard member.update.status.isReachable else {
                return Self.error(503, "node '\(member.update.node)' is \(member.update.status): a drain needs it running (use forget for a dead node)")
            }
            do {
                _ = try await Self.internalRequest("POST", InternalAPI.drainPath, to: member.update.address, pool: self.pool, secret: self.secret)
            } catch {
                return Self.error(503, "node '\(member.update.node)' at \(member.update.address) did not take the drain: \(error)")
            }
        }
        return Self.ok(Self.message("node '\(member.update.node)' is LEAVING"))
    }

    func forget(_ node: String?) async -> Response {
        let view = await self.shell.view()
        guard let member = Self.find(node, in: view) else { return Self.unknown(node) }
        // A node that has left (drained, or forgotten before) owns nothing: forgetting it again changes nothing.
        if member.entry?.state == .left { return Self.ok(Self.message("node '\(member.update.node)' is LEFT already")) }
        guard !member.isSelf, !member.update.status.isReachable else {
            return Self.error(409, "node '\(member.update.node)' is \(member.isSelf ? "this node" : member.update.status.description): only a dead node can be forgotten (drain a live one)")
        }
        await self.shell.forget(member.update.node)
        return Self.ok(Self.message("node '\(member.update.node)' is LEFT"))
    }

    static func find(_ node: String?, in view: ClusterView) -> ClusterView.Member? {
        guard let node, let id = NodeID(node) else { return nil }
        return view.members.first { $0.update.node == id }
    }

    static func unknown(_ node: String?) -> Response {
        guard let node, !node.isEmpty else { return Self.error(400, "parameter 'node': the ID of a member is required") }
        return Self.error(404, "unknown node '\(node.prefix(80))': see /api/cluster/members")
    }

    // MARK: helpers

    static func internalRequest(_ method: String, _ path: String, to address: NodeAddress, pool: HTTP2ClientPool, secret: String?) async throws -> HTTP2ClientResponse {
        var headers: [(name: String, value: String)] = []
        if let secret { headers.append((ClusterSettings.secretHeader, secret)) }
        let response = try await pool.send(
            HTTP2ClientRequest(method: method, path: path, headers: headers), to: .init(host: address.host, port: Int(address.port)),
            deadline: .now + .seconds(3)
        )
        guard response.status / 100 == 2 else { throw ClusterRequestError(status: response.status, body: String(buffer: response.body)) }
        return response
    }

    static func ok(_ body: [UInt8]) -> Response { Response(status: 200, body: body) }

    static func message(_ text: String) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.key("message")
            o.string(text)
        }
        return w.bytes
    }

    static func error(_ status: Int, _ text: String) -> Response {
        var w = JSONWriter()
        w.object { o in
            o.key("error")
            o.string(text)
        }
        return Response(status: status, body: w.bytes)
    }
}
