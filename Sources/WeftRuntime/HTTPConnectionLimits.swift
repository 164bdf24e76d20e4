import NIOCore
import Synchronization
import WeftHTTP2

/// How long an HTTP/1.1 peer may stall, and the request-body bytes a node holds at once. Every timeout
/// closes the connection; the checks run every quarter of the shortest timeout (at most every second).
public struct HTTPConnectionLimits: Sendable {
    /// A connection with no request in progress (keep-alive between requests, or never used) is closed
    /// after this long.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// A request's head must arrive within this long of its first byte, and its body may pause no
    /// longer than this; otherwise it is answered 408 and the connection closed.
    public var requestReadTimeout: TimeAmount = .seconds(30)
    /// A response that makes no progress for this long (the client reads nothing) closes the connection.
    /// Also given to h2c connections on the same port (output blocked this long).
    public var writeTimeout: TimeAmount = .seconds(30)
    /// Request-body bytes held at once, shared by every connection of the node (nil: no shared limit).
    public var bodyBudget: RequestBodyBudget? = nil
    /// Told each time a connection is closed for stalling (for metrics).
    public var onTimeout: (@Sendable (HTTPTimeout) -> Void)? = nil

    public init() {}

    /// How often a connection checks its deadlines.
    package var tick: TimeAmount {
        let shortest = min(self.idleTimeout, self.requestReadTimeout, self.writeTimeout)
        return .nanoseconds(min(max(shortest.nanoseconds / 4, 1_000_000), 1_000_000_000))
    }
}

/// Why a connection was closed for stalling.
public enum HTTPTimeout: String, Sendable, CaseIterable {
    /// No request in progress for ``HTTPConnectionLimits/idleTimeout``.
    case idle
    /// A request did not arrive within ``HTTPConnectionLimits/requestReadTimeout``.
    case read
    /// A response made no progress for ``HTTPConnectionLimits/writeTimeout``.
    case write
}
