import Testing
import WeftCluster
import WeftModel

/// The SWIM wire format round-trips, and bad input is rejected with an error, never a trap.
struct CodecTests {
    static func randomMember(_ rng: inout SplitMix64) -> MemberUpdate {
        MemberUpdate(
            node: node("m\(rng.next() % 100)"), address: address(Int(rng.next() % 250)),
            status: MemberStatus(rawValue: UInt8(rng.next() % 4))!, incarnation: rng.next() >> (rng.next() % 64)
        )
    }

    static func randomMessage(_ rng: inout SplitMix64) -> SWIMMessage {
        let kind: SWIMMessage.Kind
        switch rng.next() % 7 {
        case 0: kind = .ping(sequence: rng.next())
        case 1: kind = .pingRequest(sequence: rng.next(), target: node("t\(rng.next() % 9)"), targetAddress: address(7))
        case 2: kind = .ack(sequence: rng.next() % 1000, target: node("t"))
        case 3: kind = .nack(sequence: rng.next() % 1000, target: node("t"))
        case 4: kind = .syncRequest(MembershipSnapshot(members: (0..<(rng.next() % 5)).map { _ in randomMember(&rng) }, ring: (0..<(rng.next() % 5)).map { _ in randomEntry(&rng) }))
        case 5: kind = .gossip
        default: kind = .syncResponse(MembershipSnapshot(members: [randomMember(&rng)], ring: [randomEntry(&rng)]))
        }
        let gossip: [GossipUpdate] = (0..<(rng.next() % 6)).map { _ in rng.next() % 2 == 0 ? .member(randomMember(&rng)) : .ring(randomEntry(&rng)) }
        return SWIMMessage(sender: node("sender-\(rng.next() % 10)"), senderAddress: address(3), senderIncarnation: rng.next() % 50, ringDigest: rng.next(), kind: kind, gossip: gossip)
    }

    @Test(arguments: 0..<300)
    func test_encodeDecode_roundTrips(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let message = Self.randomMessage(&rng)
        #expect(try SWIMCodec.decode(SWIMCodec.encode(message)) == message)
    }

    @Test(arguments: 0..<40)
    func test_decode_everyTruncation_throws(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let bytes = SWIMCodec.encode(Self.randomMessage(&rng))
        for length in 0..<bytes.count {
            #expect(throws: ClusterDecodingError.self) { try SWIMCodec.decode(Array(bytes.prefix(length))) }
        }
    }

    @Test func test_decode_rejectsTrailingBytesAndOtherVersions() {
        var rng = SplitMix64(seed: 1)
        let bytes = SWIMCodec.encode(Self.randomMessage(&rng))
        #expect(throws: ClusterDecodingError.self) { try SWIMCodec.decode(bytes + [0]) }
        var otherVersion = bytes
        otherVersion[0] = 2
        #expect(throws: ClusterDecodingError.self) { try SWIMCodec.decode(otherVersion) }
    }

    /// Random bytes and bit flips of valid messages either decode to something valid or throw.
    @Test(arguments: 0..<20)
    func test_decode_garbage_neverTraps(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<500 {
            var bytes: [UInt8]
            if rng.next() % 2 == 0 {
                bytes = (0..<(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if !bytes.isEmpty { bytes[0] = SWIMCodec.version }
            } else {
                bytes = SWIMCodec.encode(Self.randomMessage(&rng))
                for _ in 0..<(1 + rng.next() % 3) {
                    let i = Int(rng.next() % UInt64(bytes.count))
                    bytes[i] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
                }
            }
            if let message = try? SWIMCodec.decode(bytes) {
                // Whatever decodes must encode back to the same bytes (no lenient parsing).
                #expect(SWIMCodec.encode(message) == bytes)
            }
        }
    }

    @Test func test_decode_hugeCounts_areRejectedBeforeAllocating() {
        var writer = ByteWriter()
        writer.write(SWIMCodec.version)
        writer.writeString("a")
        writer.writeString("h")
        writer.write(UInt16(1))
        writer.writeVarint(0)
        writer.write(UInt64(0))
        writer.write(UInt8(5))  // syncRequest
        writer.writeVarint(UInt64.max >> 1)  // absurd member count
        #expect(throws: ClusterDecodingError.self) { try SWIMCodec.decode(writer.bytes) }
    }
}
