/// The binary encoding of `SWIMMessage`, version 1.
///
/// Layout: version byte, sender ID, sender address, sender incarnation (varint), ring digest (8 bytes),
/// kind tag and fields, then the piggybacked updates (count, then tag and fields each). Strings are
/// varint-length-prefixed UTF-8, integers big-endian or LEB128. The decoder checks every length and
/// count against explicit limits and the bytes left, validates every identifier, rejects trailing
/// bytes, and throws `ClusterDecodingError` rather than trapping.
public enum SWIMCodec {
    /// The encoding version written by `encode`, and the only one `decode` accepts.
    public static let version: UInt8 = 1
    /// Messages larger than this are rejected before decoding.
    public static let maxMessageSize = 4 << 20
    /// At most this many piggybacked updates per message.
    public static let maxGossipCount = 256
    /// At most this many members (and ring entries) in a snapshot.
    public static let maxSnapshotCount = 16_384

    public static func encode(_ message: SWIMMessage) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.write(Self.version)
        w.writeString(message.sender.rawValue)
        w.write(message.senderAddress)
        w.writeVarint(message.senderIncarnation)
        w.write(message.ringDigest)
        switch message.kind {
        case .ping(let sequence):
            w.write(Tag.ping.rawValue)
            w.writeVarint(sequence)
        case .pingRequest(let sequence, let target, let targetAddress):
            w.write(Tag.pingRequest.rawValue)
            w.writeVarint(sequence)
            w.writeString(target.rawValue)
            w.write(targetAddress)
        case .ack(let sequence, let target):
            w.write(Tag.ack.rawValue)
            w.writeVarint(sequence)
            w.writeString(target.rawValue)
        case .nack(let sequence, let target):
            w.write(Tag.nack.rawValue)
            w.writeVarint(sequence)
            w.writeString(target.rawValue)
        case .gossip:
            w.write(Tag.gossip.rawValue)
        case .syncRequest(let snapshot):
            w.write(Tag.syncRequest.rawValue)
            w.write(snapshot)
        case .syncResponse(let snapshot):
            w.write(Tag.syncResponse.rawValue)
            w.write(snapshot)
        }
        w.writeVarint(UInt64(message.gossip.count))
        for update in message.gossip {
            switch update {
            case .member(let member):
                w.write(GossipTag.member.rawValue)
                w.write(member)
            case .ring(let entry):
                w.write(GossipTag.ring.rawValue)
                w.write(entry)
            }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(ClusterDecodingError) -> SWIMMessage {
        guard bytes.count <= Self.maxMessageSize else { throw ClusterDecodingError("message larger than \(Self.maxMessageSize) bytes", at: 0) }
        var r = ByteReader(bytes)
        let version = try r.readUInt8()
        guard version == Self.version else { throw ClusterDecodingError("unsupported version \(version)", at: 0) }
        let sender = try r.readNodeID()
        let senderAddress = try r.readNodeAddress()
        let incarnation = try r.readVarint()
        let digest = try r.readUInt64()
        let kind: SWIMMessage.Kind
        switch Tag(rawValue: try r.readUInt8()) {
        case .ping: kind = .ping(sequence: try r.readVarint())
        case .pingRequest: kind = .pingRequest(sequence: try r.readVarint(), target: try r.readNodeID(), targetAddress: try r.readNodeAddress())
        case .ack: kind = .ack(sequence: try r.readVarint(), target: try r.readNodeID())
        case .nack: kind = .nack(sequence: try r.readVarint(), target: try r.readNodeID())
        case .gossip: kind = .gossip
        case .syncRequest: kind = .syncRequest(try r.readSnapshot())
        case .syncResponse: kind = .syncResponse(try r.readSnapshot())
        case nil: throw r.error("unknown message kind")
        }
        let gossipCount = try r.readCount(limit: Self.maxGossipCount, minimumSize: 2)
        var gossip: [GossipUpdate] = []
        gossip.reserveCapacity(gossipCount)
        for _ in 0..<gossipCount {
            switch GossipTag(rawValue: try r.readUInt8()) {
            case .member: gossip.append(.member(try r.readMemberUpdate()))
            case .ring: gossip.append(.ring(try r.readRingEntry()))
            case nil: throw r.error("unknown gossip kind")
            }
        }
        guard r.remaining == 0 else { throw r.error("\(r.remaining) trailing bytes") }
        return SWIMMessage(sender: sender, senderAddress: senderAddress, senderIncarnation: incarnation, ringDigest: digest, kind: kind, gossip: gossip)
    }

    enum Tag: UInt8 {
        case ping = 1, pingRequest, ack, nack, syncRequest, syncResponse, gossip
    }

    enum GossipTag: UInt8 {
        case member = 1, ring
    }
}

extension ByteWriter {
    mutating func write(_ address: NodeAddress) {
        self.writeString(address.host)
        self.write(address.port)
    }

    mutating func write(_ update: MemberUpdate) {
        self.writeString(update.node.rawValue)
        self.write(update.address)
        self.write(update.status.rawValue)
        self.writeVarint(update.incarnation)
    }

    /// The ring entry's encoding (also what `RingState.digest` hashes).
    mutating func write(_ entry: RingEntry) {
        self.writeString(entry.nodeID.rawValue)
        self.writeVarint(entry.version)
        self.write(entry.state.rawValue)
        self.write(entry.address)
        self.writeString(entry.zone.rawValue)
        self.write(entry.tokenCount)
        self.write(entry.roles.rawValue)
    }

    mutating func write(_ snapshot: MembershipSnapshot) {
        self.writeVarint(UInt64(snapshot.members.count))
        for member in snapshot.members { self.write(member) }
        self.writeVarint(UInt64(snapshot.ring.count))
        for entry in snapshot.ring { self.write(entry) }
    }
}

extension ByteReader {
    mutating func readNodeID() throws(ClusterDecodingError) -> NodeID {
        let bytes = try self.readLengthPrefixed(limit: NodeID.maxLength)
        guard let id = NodeID(utf8: bytes) else { throw self.error("invalid node ID") }
        return id
    }

    mutating func readNodeAddress() throws(ClusterDecodingError) -> NodeAddress {
        let host = try self.readLengthPrefixed(limit: NodeAddress.maxHostLength)
        let port = try self.readUInt16()
        guard NodeAddress.isValidHost(host), let address = NodeAddress(host: String(decoding: host, as: UTF8.self), port: port) else {
            throw self.error("invalid address")
        }
        return address
    }

    mutating func readMemberUpdate() throws(ClusterDecodingError) -> MemberUpdate {
        let node = try self.readNodeID()
        let address = try self.readNodeAddress()
        guard let status = MemberStatus(rawValue: try self.readUInt8()) else { throw self.error("invalid member status") }
        return MemberUpdate(node: node, address: address, status: status, incarnation: try self.readVarint())
    }

    mutating func readRingEntry() throws(ClusterDecodingError) -> RingEntry {
        let node = try self.readNodeID()
        let version = try self.readVarint()
        guard let state = NodeState(rawValue: try self.readUInt8()) else { throw self.error("invalid ring state") }
        let address = try self.readNodeAddress()
        let zoneBytes = try self.readLengthPrefixed(limit: Zone.maxLength)
        guard Zone.isValid(zoneBytes) else { throw self.error("invalid zone") }
        let tokenCount = try self.readUInt16()
        let roles = NodeRoles(rawValue: try self.readUInt8())
        guard NodeRoles.all.isSuperset(of: roles) else { throw self.error("unknown roles") }
        return RingEntry(
            nodeID: node, version: version, state: state, address: address,
            zone: Zone(unchecked: String(decoding: zoneBytes, as: UTF8.self)), tokenCount: tokenCount, roles: roles
        )
    }

    mutating func readSnapshot() throws(ClusterDecodingError) -> MembershipSnapshot {
        let memberCount = try self.readCount(limit: SWIMCodec.maxSnapshotCount, minimumSize: 6)
        var members: [MemberUpdate] = []
        members.reserveCapacity(memberCount)
        for _ in 0..<memberCount { members.append(try self.readMemberUpdate()) }
        let ringCount = try self.readCount(limit: SWIMCodec.maxSnapshotCount, minimumSize: 8)
        var ring: [RingEntry] = []
        ring.reserveCapacity(ringCount)
        for _ in 0..<ringCount { ring.append(try self.readRingEntry()) }
        return MembershipSnapshot(members: members, ring: ring)
    }
}
