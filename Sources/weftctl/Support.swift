import ArgumentParser
import NIOCore
import NIOPosix
import WeftClient

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Shell helpers shared by the subcommands: clocks, formatting, durations, URL encoding, stderr.
enum CLI {
    /// Wall-clock time in ns since the epoch (the CLI is the only place that reads it).
    static func wallClockNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func printError(_ message: String) {
        var line = message
        line.append("\n")
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
    }

    /// Parses `100ms`, `1.5s`, `2m`, `1h`, `250us`, `10ns` or a plain number of seconds into seconds.
    static func parseDuration(_ text: String) -> Double? {
        let s = text.trimmingCharacters(in: " ")
        guard !s.isEmpty else { return nil }
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            let number = s.dropLast(suffix.count)
            // "ms" must not be read as "m" + "s": longer suffixes are tried first.
            if let v = Double(number), v >= 0 { return v * scale }
        }
        if let v = Double(s), v >= 0 { return v }
        return nil
    }

    /// `1234567` → `1,234,567`.
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    /// Fixed-point formatting without Foundation.
    static func fixed(_ v: Double, _ decimals: Int) -> String {
        guard v.isFinite else { return "\(v)" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (abs(v) * scale).rounded()
        let whole = Int(rounded / scale)
        var frac = String(Int(rounded - Double(whole) * scale))
        while frac.count < decimals { frac = "0" + frac }
        let sign = v < 0 && rounded != 0 ? "-" : ""
        return decimals == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(frac)"
    }

    static func padLeft(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }

    static func padRight(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    /// Percent-encodes everything except RFC 3986 unreserved characters.
    static func percentEncode(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `2024-05-01 12:34:56.789` (UTC) for ns since the epoch.
    static func utcTimestamp(nanos: UInt64) -> String {
        let secs = Int64(nanos / 1_000_000_000)
        let millis = Int((nanos / 1_000_000) % 1000)
        var days = secs / 86_400
        var rem = secs % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        // Civil date from days since 1970-01-01 (proleptic Gregorian).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        var year = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        if month <= 2 { year += 1 }
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = millis < 10 ? "00\(millis)" : (millis < 100 ? "0\(millis)" : "\(millis)")
        return "\(year)-\(two(month))-\(two(day)) \(two(rem / 3600)):\(two(rem % 3600 / 60)):\(two(rem % 60)).\(ms)"
    }

    /// One GET request on a fresh connection.
    static func get(_ url: URLParts, org: String?, accept: String = "application/json") async throws -> HTTPResponse {
        let connection = try await HTTPConnection.connect(host: url.host, port: url.port, group: MultiThreadedEventLoopGroup.singleton)
        defer { connection.close() }
        var headers = [("Accept", accept)]
        if let org { headers.append(("X-Scope-OrgID", org)) }
        return try await connection.request(method: .GET, path: url.path, headers: headers, timeout: .seconds(60))
    }

    /// GETs `path` under the base URL of a query API and returns a 200 response; on a connection error,
    /// a 404 (when `notFound` is given) or another status, prints why and exits with ``Exit/connection`` or ``Exit/failure``.
    static func getOK(_ command: String, baseURL: String, path: String, org: String?, notFound: String? = nil) async throws -> HTTPResponse {
        let base = try CLI.url(baseURL)
        let prefix = base.path == "/" ? "" : String(base.path.reversed().drop { $0 == "/" }.reversed())
        let response: HTTPResponse
        do {
            response = try await CLI.get(base.with(path: prefix + path), org: org)
        } catch {
            CLI.printError("weftctl \(command): \(error)")
            throw Exit.connection
        }
        if response.status == 404, let notFound {
            CLI.printError(notFound)
            throw Exit.failure
        }
        guard response.status == 200 else {
            CLI.printError("weftctl \(command): HTTP \(response.status): \(response.bodyString)")
            throw Exit.failure
        }
        return response
    }

    /// Parses a URL option, turning a parse error into a validation error.
    static func url(_ text: String) throws -> URLParts {
        do {
            return try URLParts(parsing: text)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
