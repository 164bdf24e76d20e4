import WeftRuntime
import WeftModel
import WeftQuery
import WeftStorageEngine

/// JSON bodies of the metrics, dependencies and aggregation endpoints. Every one carries `metrics`
/// (see ``writeMetrics(_:_:weft:)``); callers set the stats' elapsed time.
extension QueryResponses {
    package static func writeValue(_ w: inout JSONWriter, _ v: GroupValue) {
        w.object { o in
            switch v {
            case .absent:
                o.field("stringValue")
                o.string("")
            case .string(let s):
                o.field("stringValue")
                o.string(s)
            case .int(let i):
                o.field("intValue")
                o.string(String(i))
            case .double(let d):
                o.field("doubleValue")
                o.number(d)
            case .bool(let b):
                o.field("boolValue")
                o.bool(b)
            }
        }
    }

    /// `"labels"` (or `key`): OTLP key-values.
    package static func writeLabels(_ w: inout JSONWriter, _ labels: [(key: String, value: GroupValue)], key: String = "labels") {
        w.key(key)
        w.array { a in
            for l in labels {
                a.object { o in
                    o.field("key")
                    o.string(l.key)
                    o.field("value")
                    writeValue(&o, l.value)
                }
            }
        }
    }

    /// Tempo's `QueryRangeResponse`: series of samples `{"timestampMs":"…","value":x}`.
    public static func metricsRange(_ series: [AggregationSeries], _ stats: ScanStats) -> [UInt8] {
        self.metrics(series, stats) { so, s in
            so.key("samples")
            so.array { samples in
                for (t, v) in s.samples {
                    samples.object { p in
                        p.key("timestampMs")
                        p.string(decimal: t / 1_000_000)
                        p.key("value")
                        p.number(v)
                    }
                }
            }
        }
    }

    /// Tempo's instant form: one `value` per series.
    public static func metricsInstant(_ series: [AggregationSeries], _ stats: ScanStats) -> [UInt8] {
        self.metrics(series, stats) { so, s in
            so.key("value")
            so.number(s.samples.first?.value ?? 0)
        }
    }

    /// The envelope shared by both forms; `values` writes a series' data after its labels.
    private static func metrics(
        _ series: [AggregationSeries], _ stats: ScanStats, values: (inout JSONWriter, AggregationSeries) -> Void
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 1024 + series.count * 256)
        w.object { o in
            o.key("series")
            o.array { a in
                for s in series {
                    a.object { so in
                        writeLabels(&so, s.labels)
                        values(&so, s)
                    }
                }
            }
            o.key("metrics")
            writeMetrics(&o, stats)
            o.key("status")
            o.string("COMPLETE")
            o.key("message")
            o.string("")
        }
        return w.bytes
    }

    /// Jaeger's `GET /api/dependencies` envelope: `{"data":[{"parent","child","callCount"}…],…}`, with
    /// Weft's error count and child-latency quantiles (ms) on each link.
    public static func dependencies(_ edges: [ServiceMapEdge], _ stats: ScanStats) -> [UInt8] {
        var w = JSONWriter(capacity: 256 + edges.count * 200)
        w.object { o in
            o.key("data")
            o.array { a in
                for e in edges {
                    a.object { d in
                        d.key("parent")
                        d.string(e.parent)
                        d.key("child")
                        d.string(e.child)
                        d.key("callCount")
                        d.number(e.calls)
                        d.key("errorCount")
                        d.number(e.errors)
                        for (name, q) in [("p50Ms", 0.5), ("p95Ms", 0.95), ("p99Ms", 0.99)] {
                            d.key(name)
                            d.number((e.latency.quantile(q) ?? 0) / 1e6)
                        }
                    }
                }
            }
            o.key("total")
            o.number(edges.count)
            o.key("limit")
            o.number(0)
            o.key("offset")
            o.number(0)
            o.key("errors")
            o.null()
            o.key("metrics")
            writeMetrics(&o, stats, weft: true)
        }
        return w.bytes
    }

    /// An aggregation table: `{"columns":[…],"rows":[[…]…],"metrics":{…}}`. Group values are plain
    /// JSON values (null when absent); quantiles are arrays; histograms are `[[upperBound, count]…]`.
    public static func aggregateTable(_ query: AggregationQuery, _ rows: [AggregationRow], groups: Int, _ stats: ScanStats) -> [UInt8] {
        var w = JSONWriter(capacity: 1024 + rows.count * 128)
        w.object { o in
            o.key("columns")
            o.array { a in
                for f in query.groupBy { a.string(f.labelName) }
                for g in query.aggregates { a.string(g.name) }
            }
            o.key("rows")
            o.array { a in
                for row in rows {
                    a.array { r in
                        for v in row.key {
                            switch v {
                            case .absent: r.null()
                            case .string(let s): r.string(s)
                            case .int(let i): r.number(i)
                            case .double(let d): r.number(d)
                            case .bool(let b): r.bool(b)
                            }
                        }
                        for v in row.values {
                            switch v {
                            case .number(let x):
                                if let x { r.number(x) } else { r.null() }
                            case .quantiles(let qs):
                                r.array { q in for x in qs { if let x { q.number(x) } else { q.null() } } }
                            case .histogram(let buckets):
                                r.array { h in
                                    for (b, c) in buckets {
                                        h.array { p in
                                            p.number(Heatmap.valueBucketUpperBound(b))
                                            p.number(c)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            o.key("groups")
            o.number(groups)
            o.key("metrics")
            writeMetrics(&o, stats, weft: true)
        }
        return w.bytes
    }
}
