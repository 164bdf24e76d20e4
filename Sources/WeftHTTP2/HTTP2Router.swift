import NIOCore

/// Sends each request to the handler registered for its method and path: exact paths first, then the
/// longest matching prefix. A path nobody serves gets 404; a served path with another method gets 405
/// with `allow`. The query string takes no part in matching.
public struct HTTP2Router: Sendable {
    public typealias Handler = @Sendable (HTTP2Request, any EventLoop) -> EventLoopFuture<HTTP2Response>

    private var exact: [String: [String: Handler]] = [:]
    /// Longest prefix first.
    private var prefixes: [(prefix: String, methods: [String: Handler])] = []

    public init() {}

    /// Serves `method` on exactly `path`.
    public mutating func on(_ method: String, _ path: String, _ handler: @escaping Handler) {
        self.exact[path, default: [:]][method] = handler
    }

    /// Serves `method` on every path that starts with `prefix` (and has no longer registered prefix).
    public mutating func on(_ method: String, prefix: String, _ handler: @escaping Handler) {
        if let i = self.prefixes.firstIndex(where: { $0.prefix == prefix }) {
            self.prefixes[i].methods[method] = handler
        } else {
            self.prefixes.append((prefix, [method: handler]))
            self.prefixes.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
        }
    }

    /// The handlers for `path` (without its query), by method; nil when no route matches.
    func methods(for path: String) -> [String: Handler]? {
        if let m = self.exact[path] { return m }
        return self.prefixes.first { path.hasPrefix($0.prefix) }?.methods
    }

    /// Answers a request: its handler's response, or 404 / 405.
    public func respond(_ request: HTTP2Request, on loop: any EventLoop) -> EventLoopFuture<HTTP2Response> {
        let path = request.path.utf8.firstIndex(of: UInt8(ascii: "?")).map { String(request.path[..<$0]) } ?? request.path
        guard let methods = self.methods(for: path) else {
            return loop.makeSucceededFuture(Self.text(404, "no route for \(path)\n"))
        }
        guard let handler = methods[request.method] else {
            var response = Self.text(405, "\(request.method) is not allowed on \(path)\n")
            response.headers.append(("allow", methods.keys.sorted().joined(separator: ", ")))
            return loop.makeSucceededFuture(response)
        }
        return handler(request, loop)
    }

    /// The routes as a service (limits answered with ``HTTP2Service/plainRejection(_:_:)``).
    public var service: HTTP2Service {
        let router = self
        return HTTP2Service { request, loop in router.respond(request, on: loop) }
    }

    private static func text(_ status: Int, _ text: String) -> HTTP2Response {
        HTTP2Response(status: status, headers: [("content-type", "text/plain; charset=utf-8")], body: ByteBuffer(string: text))
    }
}
