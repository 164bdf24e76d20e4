import WeftCluster
import WeftHTTP2
import WeftModel

extension AdminAPI {
    /// Asks every reachable storage node (this one included) to deliver its hints and run an anti-entropy
    /// sync round now (hints: only those for
    /// `node` when given); answers which nodes were asked and which could not be.
    func repair(_ node: String?) async -> Response {
        let view = await self.shell.view()
        var target: NodeID? = nil
        if let node, !node.isEmpty {
            guard let member = Self.find(node, in: view) else { return Self.unknown(node) }
            target = member.update.node
        }
        let storage = view.members.filter { $0.update.status.isReachable && ($0.entry?.roles.contains(.storage) ?? false) }
        var asked: [String] = []
        var failed: [String] = []
        for member in storage {
            if member.isSelf {
                if self.hints.repair(target) { asked.append(member.update.node.rawValue) } else { failed.append(member.update.node.rawValue) }
                continue
            }
            var headers: [(name: String, value: String)] = []
            if let secret = self.secret { headers.append((ClusterSettings.secretHeader, secret)) }
            if let target { headers.append((HintAPI.repairTargetHeader, target.rawValue)) }
            let request = HTTP2ClientRequest(method: "POST", path: HintAPI.repairPath, headers: headers)
            let response = try? await self.pool.send(request, to: .init(host: member.update.address.host, port: Int(member.update.address.port)), deadline: .now + .seconds(3))
            if response?.status == 200 { asked.append(member.update.node.rawValue) } else { failed.append(member.update.node.rawValue) }
        }
        var w = JSONWriter()
        w.object { o in
            o.key("message")
            o.string("asked \(asked.count) storage node(s) to deliver their hints\(target.map { " for \($0)" } ?? "") and run an anti-entropy round now" + (failed.isEmpty ? "" : "; not reached: \(failed.joined(separator: ", "))"))
            o.key("asked")
            o.array { a in for n in asked { a.string(n) } }
            o.key("failed")
            o.array { a in for n in failed { a.string(n) } }
        }
        return Self.ok(w.bytes)
    }
}
