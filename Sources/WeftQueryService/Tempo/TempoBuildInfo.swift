import WeftRuntime
import WeftModel

/// `GET /api/status/buildinfo` in Tempo's shape. Grafana's Tempo data source turns features on by the
/// `version` it reads here (streaming search from 2.2.0, streaming metrics from 2.7.0), so `version`
/// names the Tempo API level Weft serves; Weft's own version is in `weftVersion`.
package enum TempoBuildInfo {
    /// The Tempo release whose query API (HTTP and `tempopb.StreamingQuerier`) Weft answers.
    package static let tempoAPIVersion = "2.7.0"

    package static func json(weftVersion: String) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            for (key, value) in [
                ("version", Self.tempoAPIVersion), ("revision", ""), ("branch", ""), ("buildUser", ""), ("buildDate", ""),
                ("goVersion", ""), ("weftVersion", weftVersion),
            ] {
                o.key(key)
                o.string(value)
            }
        }
        return w.bytes
    }
}
