import WeftModel
/// Tests that import this kit keep finding the seeded generator here (it lives in WeftModel).
@_exported import struct WeftModel.SplitMix64
import WeftOTLP

/// Builds OTLP `ExportTraceServiceRequest` protobuf bytes for tests (not used by the product).
public struct TestSpan: Sendable {
    public var traceID: TraceID
    public var spanID: UInt64
    public var parentSpanID: UInt64 = 0
    public var name: String
    public var kind: Int = 1
    public var start: UInt64
    public var end: UInt64
    public var statusCode: Int = 0
    public var attributes: [(String, TestValue)] = []

    public init(
        traceID: TraceID, spanID: UInt64, parentSpanID: UInt64 = 0, name: String, kind: Int = 1,
        start: UInt64, end: UInt64, statusCode: Int = 0, attributes: [(String, TestValue)] = []
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.name = name
        self.kind = kind
        self.start = start
        self.end = end
        self.statusCode = statusCode
        self.attributes = attributes
    }
}

public enum TestValue: Sendable {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
}

public enum RequestBuilder {
    /// One request; each element of `resources` is (service.name, spans).
    public static func request(_ resources: [(service: String, spans: [TestSpan])]) -> [UInt8] {
        var w = ProtoWriter()
        for (service, spans) in resources {
            w.message(1) { rs in
                rs.message(1) { r in
                    r.message(1) { kv in
                        kv.stringField(1, "service.name")
                        kv.message(2) { v in v.stringField(1, service) }
                    }
                }
                rs.message(2) { ss in
                    ss.message(1) { scope in scope.stringField(1, "test") }
                    for s in spans {
                        ss.message(2) { sp in
                            sp.traceIDField(1, s.traceID)
                            sp.id64Field(2, s.spanID)
                            if s.parentSpanID != 0 { sp.id64Field(4, s.parentSpanID) }
                            sp.stringField(5, s.name)
                            sp.varintField(6, UInt64(s.kind))
                            sp.fixed64Field(7, s.start)
                            sp.fixed64Field(8, s.end)
                            for (k, v) in s.attributes {
                                sp.message(9) { kv in
                                    kv.stringField(1, k)
                                    kv.message(2) { av in
                                        switch v {
                                        case .string(let x): av.stringField(1, x)
                                        case .bool(let x): av.varintField(2, x ? 1 : 0)
                                        case .int(let x): av.varintField(3, UInt64(bitPattern: x))
                                        case .double(let x): av.doubleField(4, x)
                                        }
                                    }
                                }
                            }
                            if s.statusCode != 0 {
                                sp.message(15) { st in st.varintField(3, UInt64(s.statusCode)) }
                            }
                        }
                    }
                }
            }
        }
        return w.bytes
    }
}
