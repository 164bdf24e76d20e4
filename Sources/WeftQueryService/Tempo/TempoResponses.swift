import WeftRuntime
import WeftModel
import WeftOTLP
import WeftQuery

/// Tempo's gRPC query answers (`tempopb` messages) in protobuf.
package enum TempoResponses {
    /// `SearchResponse{traces = 1, metrics = 2}`.
    package static func search(_ traces: [TraceSummary], _ stats: ScanStats, completedJobs: Int, totalJobs: Int) -> [UInt8] {
        var w = ProtoWriter(capacity: 256 + traces.count * 200)
        for t in traces {
            w.message(1) { tm in
                tm.stringField(1, QueryResponses.tempoTraceID(t.traceID))
                tm.stringField(2, t.rootServiceName)
                if !t.rootTraceName.isEmpty { tm.stringField(3, t.rootTraceName) }
                tm.varintField(4, t.startNanos)
                tm.varintField(5, min(t.durationNanos / 1_000_000, UInt64(UInt32.max)))
                tm.message(7) { set in
                    for s in t.matchedSpans {
                        set.message(1) { span in
                            span.stringField(1, Hex.encode(s.spanID))
                            span.stringField(2, s.name)
                            span.varintField(3, s.startNanos)
                            span.varintField(4, s.durationNanos)
                            Self.writeLabels(&span, field: 5, s.attributes)
                        }
                    }
                    set.varintField(2, UInt64(t.matched))
                }
                for s in t.serviceStats {
                    // map<string, ServiceStats>: entries {key = 1, value = 2}.
                    tm.message(8) { entry in
                        entry.stringField(1, s.service)
                        entry.message(2) { st in
                            st.varintField(1, UInt64(s.spans))
                            if s.errors > 0 { st.varintField(2, UInt64(s.errors)) }
                        }
                    }
                }
            }
        }
        Self.writeMetrics(&w, field: 2, stats, completedJobs: completedJobs, totalJobs: totalJobs)
        return w.bytes
    }

    /// `QueryRangeResponse{series = 1: TimeSeries{labels = 1, samples = 2: Sample{value = 1, timestamp_ms = 2}}, metrics = 2}`.
    package static func queryRange(_ series: [AggregationSeries], _ stats: ScanStats, completedJobs: Int, totalJobs: Int) -> [UInt8] {
        var w = ProtoWriter(capacity: 256 + series.count * 256)
        for s in series {
            w.message(1) { ts in
                Self.writeLabels(&ts, field: 1, s.labels)
                for (t, v) in s.samples {
                    ts.message(2) { sample in
                        sample.doubleField(1, v)
                        sample.varintField(2, t / 1_000_000)
                    }
                }
            }
        }
        Self.writeMetrics(&w, field: 2, stats, completedJobs: completedJobs, totalJobs: totalJobs)
        return w.bytes
    }

    /// `QueryInstantResponse{series = 1: InstantSeries{labels = 1, value = 2}, metrics = 2}`.
    package static func queryInstant(_ series: [AggregationSeries], _ stats: ScanStats, completedJobs: Int, totalJobs: Int) -> [UInt8] {
        var w = ProtoWriter(capacity: 256 + series.count * 128)
        for s in series {
            w.message(1) { inst in
                Self.writeLabels(&inst, field: 1, s.labels)
                inst.doubleField(2, s.samples.first?.value ?? 0)
            }
        }
        Self.writeMetrics(&w, field: 2, stats, completedJobs: completedJobs, totalJobs: totalJobs)
        return w.bytes
    }

    /// `SearchMetrics{inspectedTraces = 1, inspectedBytes = 2, totalBlocks = 3, completedJobs = 4,
    /// totalJobs = 5, inspectedSpans = 7}`; a job is one step of a streamed scan.
    private static func writeMetrics(_ w: inout ProtoWriter, field: UInt32, _ stats: ScanStats, completedJobs: Int, totalJobs: Int) {
        w.message(field) { m in
            m.varintField(1, UInt64(stats.inspectedTraces))
            m.varintField(2, UInt64(stats.inspectedBytes))
            m.varintField(3, UInt64(stats.blocks))
            m.varintField(4, UInt64(completedJobs))
            m.varintField(5, UInt64(totalJobs))
            m.varintField(7, UInt64(stats.inspectedSpans))
        }
    }

    /// Repeated OTLP `KeyValue`s in `field`.
    private static func writeLabels(_ w: inout ProtoWriter, field: UInt32, _ labels: [(key: String, value: GroupValue)]) {
        for l in labels {
            w.message(field) { kv in
                kv.stringField(1, l.key)
                kv.message(2) { v in
                    switch l.value {
                    case .absent: v.stringField(1, "")
                    case .string(let s): v.stringField(1, s)
                    case .bool(let b): v.varintField(2, b ? 1 : 0)
                    case .int(let i): v.varintField(3, UInt64(bitPattern: i))
                    case .double(let d): v.doubleField(4, d)
                    }
                }
            }
        }
    }
}
