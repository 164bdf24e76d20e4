import Foundation
import Testing
import WeftCluster

/// The formulas behind the defaults.
struct SWIMSettingsTests {
    @Test(arguments: [1, 2, 5, 10, 64, 100, 1000, 12345])
    func test_suspicionTimeout_followsTheLog10Formula(members: Int) {
        let settings = SWIMSettings()
        let expected = max(settings.minimumSuspicionPeriods, settings.suspicionMultiplier * log10(Double(members))) * Double(settings.protocolPeriod)
        #expect(abs(Double(settings.suspicionTimeout(memberCount: members)) - expected) < 1_000)
    }

    @Test func test_retransmitLimit_isLambdaTimesCeilLog2OfNPlusOne() {
        let settings = SWIMSettings()
        #expect(settings.retransmitLimit(memberCount: 1) == 3)
        #expect(settings.retransmitLimit(memberCount: 3) == 6)
        #expect(settings.retransmitLimit(memberCount: 4) == 9)
        #expect(settings.retransmitLimit(memberCount: 64) == 21)
    }
}
