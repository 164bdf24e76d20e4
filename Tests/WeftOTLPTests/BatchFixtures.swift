import Foundation
import Testing
import WeftModel
import WeftOTLP

/// Batches for codec and split tests, and ways to compare them.
enum BatchFixtures {
    /// Now, in Unix nanoseconds.
    static var nowNanos: UInt64 { UInt64(Date().timeIntervalSince1970 * 1e9) }

    /// A JSON export with two resources, two scopes, events, links, every attribute value type, dropped
    /// counts, trace state, status messages and GenAI attributes, spread over three traces.
    static func richJSON(start: UInt64 = BatchFixtures.nowNanos) -> String {
        func span(_ trace: String, _ id: Int, _ name: String, extra: String = "") -> String {
            """
            {"traceId":"\(trace)","spanId":"\(String(format: "%016x", id))","name":"\(name)","kind":\(id % 5 + 1),
             "startTimeUnixNano":"\(start + UInt64(id) * 1000)","endTimeUnixNano":"\(start + UInt64(id) * 1000 + 500)"\(extra)}
            """
        }
        let traces = ["0af7651916cd43dd8448eb211c80319c", "1111651916cd43dd8448eb211c80319c", "2222651916cd43dd8448eb211c80319c"]
        let allValues = """
            "attributes":[
              {"key":"s","value":{"stringValue":"text"}},{"key":"b","value":{"boolValue":true}},
              {"key":"i","value":{"intValue":"-42"}},{"key":"d","value":{"doubleValue":2.5}},
              {"key":"a","value":{"arrayValue":{"values":[{"stringValue":"x"},{"intValue":"1"}]}}},
              {"key":"kv","value":{"kvlistValue":{"values":[{"key":"inner","value":{"boolValue":false}}]}}},
              {"key":"bytes","value":{"bytesValue":"AAEC/w=="}},{"key":"none","value":{}},
              {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
              {"key":"gen_ai.usage.input_tokens","value":{"intValue":"120"}},
              {"key":"gen_ai.usage.cost","value":{"doubleValue":0.0031}}],
            "droppedAttributesCount":2,"droppedEventsCount":1,"droppedLinksCount":3,"traceState":"k=v",
            "parentSpanId":"00000000000000aa","flags":257,"status":{"code":2,"message":"upstream timeout"},
            "events":[
              {"timeUnixNano":"\(start + 7)","name":"retry","attributes":[{"key":"attempt","value":{"intValue":"2"}}],"droppedAttributesCount":1},
              {"timeUnixNano":"\(start + 9)","name":"done"}],
            "links":[
              {"traceId":"\(traces[2])","spanId":"00000000000000bb","traceState":"l=1","flags":1,
               "attributes":[{"key":"link.kind","value":{"stringValue":"follows"}}],"droppedAttributesCount":4}]
            """
        return """
            {"resourceSpans":[
              {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"gateway"}},
                                         {"key":"region","value":{"stringValue":"eu-1"}}],"droppedAttributesCount":1},
               "schemaUrl":"https://opentelemetry.io/schemas/1.26.0",
               "scopeSpans":[
                 {"scope":{"name":"openai-instrumentation","version":"1.2","attributes":[{"key":"lib","value":{"stringValue":"py"}}]},
                  "schemaUrl":"https://scope","spans":[\(span(traces[0], 1, "chat", extra: "," + allValues)),\(span(traces[1], 2, "embed"))]},
                 {"scope":{"name":"http"},"spans":[\(span(traces[0], 3, "GET /v1")),\(span(traces[2], 4, "POST /v1", extra: ",\"attributes\":[{\"key\":\"http.status\",\"value\":{\"intValue\":\"503\"}}]"))]}]},
              {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}}]},
               "scopeSpans":[{"scope":{"name":"http"},"spans":[\(span(traces[1], 5, "charge")),\(span(traces[2], 6, "refund", extra: "," + allValues))]}]}
            ]}
            """
    }

    static func decode(json: String) throws -> SpanBatch {
        var batch = SpanBatch()
        var decoder = OTLPRequestDecoder(options: DecodeOptions())
        let outcome = try Array(json.utf8).withUnsafeBytes { try decoder.decode($0, encoding: .json, into: &batch) }
        #expect(outcome.rejectedSpans == 0, "\(outcome.rejectionMessage)")
        return batch
    }

    static func rich() throws -> SpanBatch { try Self.decode(json: Self.richJSON()) }

    /// Every column equal, strings byte for byte (cost compared by bit pattern: NaN means absent).
    static func expectIdentical(_ a: SpanBatch, _ b: SpanBatch, sourceLocation: SourceLocation = #_sourceLocation) {
        func attrs(_ x: AttributeColumns) -> [[UInt64]] { [x.keys.map(UInt64.init), x.types.map(UInt64.init), x.values] }
        func columns(_ s: SpanBatch) -> [[UInt64]] {
            var c: [[UInt64]] = [
                s.strings.bytes.map(UInt64.init), s.strings.offsets.map(UInt64.init),
                s.resourceAttrOffsets.map(UInt64.init), s.resourceDroppedAttrs.map(UInt64.init), s.resourceSchemaURL.map(UInt64.init),
                s.resourceServiceName.map(UInt64.init), s.scopeName.map(UInt64.init), s.scopeVersion.map(UInt64.init),
                s.scopeAttrOffsets.map(UInt64.init), s.scopeDroppedAttrs.map(UInt64.init), s.scopeSchemaURL.map(UInt64.init),
                s.traceHigh, s.traceLow, s.spanID, s.parentSpanID, s.traceState.map(UInt64.init), s.name.map(UInt64.init),
                s.kind.map(UInt64.init), s.startTime, s.endTime, s.flags.map(UInt64.init), s.statusCode.map(UInt64.init),
                s.statusMessage.map(UInt64.init), s.resourceIndex.map(UInt64.init), s.scopeIndex.map(UInt64.init),
                s.attrOffsets.map(UInt64.init), s.droppedAttrs.map(UInt64.init), s.droppedEvents.map(UInt64.init),
                s.droppedLinks.map(UInt64.init), s.eventOffsets.map(UInt64.init), s.linkOffsets.map(UInt64.init),
                s.genAIProvider.map(UInt64.init), s.genAIRequestModel.map(UInt64.init), s.genAIResponseModel.map(UInt64.init),
                s.inputTokens.map { UInt64(bitPattern: $0) }, s.outputTokens.map { UInt64(bitPattern: $0) }, s.cost.map(\.bitPattern),
                s.eventTime, s.eventName.map(UInt64.init), s.eventAttrOffsets.map(UInt64.init), s.eventDroppedAttrs.map(UInt64.init),
                s.linkTraceHigh, s.linkTraceLow, s.linkSpanID, s.linkTraceState.map(UInt64.init), s.linkFlags.map(UInt64.init),
                s.linkAttrOffsets.map(UInt64.init), s.linkDroppedAttrs.map(UInt64.init),
            ]
            for x in [s.resourceAttrs, s.scopeAttrs, s.attrs, s.eventAttrs, s.linkAttrs] { c += attrs(x) }
            return c
        }
        let ca = columns(a)
        let cb = columns(b)
        #expect(ca.count == cb.count, sourceLocation: sourceLocation)
        for (i, (x, y)) in zip(ca, cb).enumerated() {
            #expect(x == y, "column \(i) differs", sourceLocation: sourceLocation)
        }
    }

    /// Each span as text with every string resolved (resource, scope, attributes, events, links), so
    /// batches with different string tables compare by content.
    static func describeSpans(_ b: SpanBatch) -> [String] {
        func s(_ id: UInt32) -> String { b.strings.string(id) }
        func attrs(_ a: AttributeColumns, _ range: Range<Int>) -> String {
            range.map { i in
                let type = ValueType(rawValue: a.types[i])!
                return "\(s(a.keys[i]))=\(type):\(type.isInterned ? s(UInt32(a.values[i])) : String(a.values[i]))"
            }.joined(separator: ",")
        }
        return (0..<b.spanCount).map { row in
            let r = Int(b.resourceIndex[row])
            let c = Int(b.scopeIndex[row])
            var text = "\(b.traceID(row)) \(b.spanID[row]) \(b.parentSpanID[row]) \(s(b.name[row])) \(b.kind[row]) \(b.startTime[row])-\(b.endTime[row])"
            text += " ts=\(s(b.traceState[row])) flags=\(b.flags[row]) status=\(b.statusCode[row]):\(s(b.statusMessage[row]))"
            text += " dropped=\(b.droppedAttrs[row])/\(b.droppedEvents[row])/\(b.droppedLinks[row])"
            text += " genai=\(s(b.genAIProvider[row]))/\(s(b.genAIRequestModel[row]))/\(s(b.genAIResponseModel[row]))/\(b.inputTokens[row])/\(b.outputTokens[row])/\(b.cost[row].bitPattern)"
            text += " resource=[\(attrs(b.resourceAttrs, b.resourceAttrRange(r)))|\(b.resourceDroppedAttrs[r])|\(s(b.resourceSchemaURL[r]))|\(s(b.resourceServiceName[r]))]"
            text += " scope=[\(s(b.scopeName[c]))|\(s(b.scopeVersion[c]))|\(attrs(b.scopeAttrs, Int(b.scopeAttrOffsets[c])..<Int(b.scopeAttrOffsets[c + 1])))|\(b.scopeDroppedAttrs[c])|\(s(b.scopeSchemaURL[c]))]"
            text += " attrs=[\(attrs(b.attrs, b.attrRange(row)))]"
            for e in Int(b.eventOffsets[row])..<Int(b.eventOffsets[row + 1]) {
                text += " event=[\(b.eventTime[e]) \(s(b.eventName[e])) \(b.eventDroppedAttrs[e]) \(attrs(b.eventAttrs, Int(b.eventAttrOffsets[e])..<Int(b.eventAttrOffsets[e + 1])))]"
            }
            for l in Int(b.linkOffsets[row])..<Int(b.linkOffsets[row + 1]) {
                text += " link=[\(b.linkTraceHigh[l]) \(b.linkTraceLow[l]) \(b.linkSpanID[l]) \(s(b.linkTraceState[l])) \(b.linkFlags[l]) \(b.linkDroppedAttrs[l]) \(attrs(b.linkAttrs, Int(b.linkAttrOffsets[l])..<Int(b.linkAttrOffsets[l + 1])))]"
            }
            return text
        }
    }
}
