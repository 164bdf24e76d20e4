import Dispatch
import Synchronization
import WeftRuntime
import WeftModel
import WeftQuery
import WeftStorageEngine

/// Tempo-shaped JSON bodies of the query API.
public enum QueryResponses {
    /// `SearchResponse`: `{"traces":[…],"metrics":{…}}`. Many traces are written in two halves at
    /// once (a search of every match can return thousands).
    public static func search(_ result: SearchResult) -> [UInt8] {
        let traces = result.traces
        @Sendable func write(_ range: Range<Int>) -> [UInt8] {
            var w = JSONWriter(capacity: 64 + range.count * 1024)
            for t in traces[range] { w.object { tr in writeTrace(&tr, t) } }
            return w.bytes
        }
        let parts: [[UInt8]]
        if traces.count >= 2000 {
            let halves = [0..<traces.count / 2, traces.count / 2..<traces.count]
            let written = Mutex<[[UInt8]]>([[], []])
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                let bytes = write(halves[i])
                written.withLock { $0[i] = bytes }
            }
            parts = written.withLock { $0 }
        } else {
            parts = [write(traces.indices)]
        }
        var w = JSONWriter(capacity: 1024 + parts.reduce(0) { $0 + $1.count })
        w.object { o in
            o.field("traces")
            o.array { a in
                // Each part is a run of trace objects, commas included.
                for part in parts where !part.isEmpty { a.raw(part) }
            }
            o.field("metrics")
            writeMetrics(&o, result.stats)
        }
        return w.bytes
    }

    /// One trace of a `SearchResponse`, inside its object.
    private static func writeTrace(_ tr: inout JSONWriter, _ t: TraceSummary) {
        tr.field("traceID")
        tr.string(trimmedHexHigh: t.traceID.high, low: t.traceID.low)
        tr.field("rootServiceName")
        tr.string(t.rootServiceName)
        if !t.rootTraceName.isEmpty {
            tr.field("rootTraceName")
            tr.string(t.rootTraceName)
        }
        tr.field("startTimeUnixNano")
        tr.string(decimal: t.startNanos)
        tr.field("durationMs")
        tr.number(Int(t.durationNanos / 1_000_000))
        tr.field("spanSets")
        tr.array { sets in
            sets.object { set in
                set.field("spans")
                set.array { spans in
                    for s in t.matchedSpans {
                        spans.object { so in
                            so.field("spanID")
                            so.string(hex: s.spanID)
                            so.field("name")
                            so.string(s.name)
                            so.field("startTimeUnixNano")
                            so.string(decimal: s.startNanos)
                            so.field("durationNanos")
                            so.string(decimal: s.durationNanos)
                            if !s.attributes.isEmpty { writeLabels(&so, s.attributes, key: "attributes") }
                        }
                    }
                }
                set.field("matched")
                set.number(t.matched)
            }
        }
        tr.field("serviceStats")
        tr.object { ss in
            for s in t.serviceStats {
                ss.key(s.service)
                ss.object { st in
                    st.field("spanCount")
                    st.number(s.spans)
                    if s.errors > 0 {
                        st.field("errorCount")
                        st.number(s.errors)
                    }
                }
            }
        }
    }

    /// `"metrics"` of every query answer: what was scanned, as Tempo's `SearchMetrics` (blocks, traces,
    /// spans, bytes). `weft` adds Weft's own figures (head chunks and row groups inspected and skipped,
    /// elapsed time); Tempo-shaped answers carry those in the `x-weft-scan` header instead (see
    /// ``scanSummary(_:)``), as Tempo's strict decoders reject unknown fields.
    package static func writeMetrics(_ w: inout JSONWriter, _ stats: ScanStats, weft: Bool = false) {
        w.object { m in
            m.key("inspectedTraces")
            m.number(stats.inspectedTraces)
            m.key("inspectedBytes")
            m.string(String(stats.inspectedBytes))
            m.key("inspectedSpans")
            m.string(String(stats.inspectedSpans))
            m.key("totalBlocks")
            m.number(stats.blocks)
            guard weft else { return }
            m.key("inspectedChunks")
            m.number(stats.chunks)
            m.key("skippedChunks")
            m.number(stats.skippedGroups)
            if stats.elapsedNanos > 0 {
                m.key("elapsedMs")
                m.number(Double(stats.elapsedNanos / 1000) / 1000)
            }
        }
    }

    /// `"metrics"` of tag answers, as Tempo's `MetadataMetrics` (which has no trace or span counts).
    package static func writeMetadataMetrics(_ w: inout JSONWriter, _ stats: ScanStats) {
        w.object { m in
            m.key("inspectedBytes")
            m.string(String(stats.inspectedBytes))
            m.key("totalBlocks")
            m.number(stats.blocks)
        }
    }

    /// Weft's figures of a scan for the `x-weft-scan` header of Tempo-shaped answers:
    /// `blocks=2 chunks=5 skippedChunks=1 traces=10 spans=300 bytes=4096 elapsedMs=1.25`.
    public static func scanSummary(_ stats: ScanStats) -> String {
        "blocks=\(stats.blocks) chunks=\(stats.chunks) skippedChunks=\(stats.skippedGroups) traces=\(stats.inspectedTraces) "
            + "spans=\(stats.inspectedSpans) bytes=\(stats.inspectedBytes) elapsedMs=\(Double(stats.elapsedNanos / 1000) / 1000)"
    }

    /// Tempo prints trace IDs in search results as hex without leading zeros.
    public static func tempoTraceID(_ id: TraceID) -> String {
        let hex = id.description
        let trimmed = hex.drop { $0 == "0" }
        return trimmed.isEmpty ? "0" : String(trimmed)
    }

    /// `{"tagNames":[…]}` (v1).
    public static func tagNames(_ catalog: TagCatalog.Names) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.key("tagNames")
            o.array { a in
                for n in (catalog.span + catalog.resource + (catalog.includeIntrinsics ? TagCatalog.intrinsics : [])).uniqueSorted() {
                    a.string(n)
                }
            }
            o.key("metrics")
            writeMetadataMetrics(&o, catalog.stats)
        }
        return w.bytes
    }

    /// `{"scopes":[{"name":"resource","tags":[…]},…]}` (v2).
    public static func tagNamesV2(_ catalog: TagCatalog.Names) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.key("scopes")
            o.array { a in
                for (name, tags) in [("resource", catalog.resource), ("span", catalog.span), ("intrinsic", catalog.includeIntrinsics ? TagCatalog.intrinsics : [])]
                where !tags.isEmpty {
                    a.object { s in
                        s.key("name")
                        s.string(name)
                        s.key("tags")
                        s.array { t in for tag in tags.uniqueSorted() { t.string(tag) } }
                    }
                }
            }
            o.key("metrics")
            writeMetadataMetrics(&o, catalog.stats)
        }
        return w.bytes
    }

    /// `{"tagValues":["a","b"]}` (v1) or typed values (v2).
    public static func tagValues(_ values: TagCatalog.Values, typed: Bool) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.key("tagValues")
            o.array { a in
                for v in values.values {
                    if typed {
                        a.object { tv in
                            tv.key("type")
                            tv.string(v.type)
                            tv.key("value")
                            tv.string(v.value)
                        }
                    } else {
                        a.string(v.value)
                    }
                }
            }
            o.key("metrics")
            writeMetadataMetrics(&o, values.stats)
        }
        return w.bytes
    }

    /// `{"error":"…"}` for non-OTLP errors of the query API.
    public static func error(_ message: String) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.key("error")
            o.string(message)
        }
        return w.bytes
    }
}

extension Array where Element == String {
    package func uniqueSorted() -> [String] { Array(Set(self)).sorted() }
}
