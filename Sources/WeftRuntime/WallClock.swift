#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The system's real-time clock, read in one place.
package enum WallClock {
    /// Unix time in nanoseconds.
    package static func nowNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
