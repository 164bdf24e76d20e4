import Testing
import WeftClusterService

struct SyncBucketsTests {
    /// The keys route takes one bucket (as before) or many, comma-separated, and refuses anything else.
    @Test func test_bucketHeader_parsesOneOrMany_andRefusesTheRest() {
        #expect(SyncAPI.buckets("42") == [42])
        #expect(SyncAPI.buckets("1,2,3,2") == [1, 2, 3])
        let most = (0..<SyncAPI.maxBucketsPerRequest).map(String.init).joined(separator: ",")
        #expect(SyncAPI.buckets(most)?.count == SyncAPI.maxBucketsPerRequest)
        for bad in [nil, "", "x", "1,,2", "1,-2", "1,2,", most + ",999"] as [String?] {
            #expect(SyncAPI.buckets(bad) == nil, "\(bad ?? "nil")")
        }
    }
}
