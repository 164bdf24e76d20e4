"""Tempo's query API messages (package `tempopb`, field names and numbers as documented in Tempo's
tempo.proto), built as protobuf descriptors at import time so answers can be parsed strictly:
`json_format.Parse` rejects unknown fields, and `parse_binary` rejects unknown protobuf fields.
OTLP parts are the reference `opentelemetry-proto` classes."""

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, unknown_fields
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

F = descriptor_pb2.FieldDescriptorProto
TYPES = {
    "string": F.TYPE_STRING, "uint32": F.TYPE_UINT32, "uint64": F.TYPE_UINT64, "int64": F.TYPE_INT64,
    "double": F.TYPE_DOUBLE, "bool": F.TYPE_BOOL,
}
KEY_VALUE = "." + common_pb2.KeyValue.DESCRIPTOR.full_name
RESOURCE_SPANS = "." + trace_pb2.ResourceSpans.DESCRIPTOR.full_name

# name: [(field name, number, type, repeated, json name or None)]; a type starting with "." or a
# capital letter is a message (or enum, see ENUMS); "map<k,v>" a map.
MESSAGES = {
    "TraceV1": [("batches", 1, RESOURCE_SPANS, True)],
    "Trace": [("resourceSpans", 1, RESOURCE_SPANS, True)],
    "TraceByIDResponse": [("trace", 1, "Trace", False), ("metrics", 2, "TraceByIDMetrics", False),
                          ("status", 3, "PartialStatus", False), ("message", 4, "string", False)],
    "TraceByIDMetrics": [("inspectedBytes", 1, "uint64", False), ("backendReads", 2, "uint64", False),
                         ("backendBytes", 3, "uint64", False), ("additionalMetrics", 4, "map<string,int64>", False)],
    "SearchRequest": [("Tags", 1, "map<string,string>", False), ("MinDurationMs", 2, "uint32", False),
                      ("MaxDurationMs", 3, "uint32", False), ("Limit", 4, "uint32", False), ("start", 5, "uint32", False),
                      ("end", 6, "uint32", False), ("Query", 8, "string", False), ("SpansPerSpanSet", 9, "uint32", False)],
    "SearchResponse": [("traces", 1, "TraceSearchMetadata", True), ("metrics", 2, "SearchMetrics", False)],
    "TraceSearchMetadata": [("traceID", 1, "string", False), ("rootServiceName", 2, "string", False),
                            ("rootTraceName", 3, "string", False), ("startTimeUnixNano", 4, "uint64", False),
                            ("durationMs", 5, "uint32", False), ("spanSet", 6, "SpanSet", False),
                            ("spanSets", 7, "SpanSet", True), ("serviceStats", 8, "map<string,ServiceStats>", False)],
    "ServiceStats": [("spanCount", 1, "uint32", False), ("errorCount", 2, "uint32", False)],
    "SpanSet": [("spans", 1, "Span", True), ("matched", 2, "uint32", False), ("attributes", 3, KEY_VALUE, True)],
    "Span": [("spanID", 1, "string", False), ("name", 2, "string", False), ("startTimeUnixNano", 3, "uint64", False),
             ("durationNanos", 4, "uint64", False), ("attributes", 5, KEY_VALUE, True)],
    "SearchMetrics": [("inspectedTraces", 1, "uint32", False), ("inspectedBytes", 2, "uint64", False),
                      ("totalBlocks", 3, "uint32", False), ("completedJobs", 4, "uint32", False),
                      ("totalJobs", 5, "uint32", False), ("totalBlockBytes", 6, "uint64", False),
                      ("inspectedSpans", 7, "uint64", False), ("backendReads", 8, "uint64", False),
                      ("backendBytes", 9, "uint64", False), ("additionalMetrics", 10, "map<string,int64>", False)],
    "MetadataMetrics": [("inspectedBytes", 1, "uint64", False), ("totalJobs", 2, "uint32", False),
                        ("completedJobs", 3, "uint32", False), ("totalBlocks", 4, "uint32", False),
                        ("totalBlockBytes", 5, "uint64", False), ("backendReads", 6, "uint64", False),
                        ("backendBytes", 7, "uint64", False), ("additionalMetrics", 8, "map<string,int64>", False)],
    "SearchTagsResponse": [("tagNames", 1, "string", True), ("metrics", 2, "MetadataMetrics", False)],
    "SearchTagsV2Response": [("scopes", 1, "SearchTagsV2Scope", True), ("metrics", 2, "MetadataMetrics", False)],
    "SearchTagsV2Scope": [("name", 1, "string", False), ("tags", 2, "string", True)],
    "SearchTagValuesResponse": [("tagValues", 1, "string", True), ("metrics", 2, "MetadataMetrics", False)],
    "TagValue": [("type", 1, "string", False), ("value", 2, "string", False)],
    "SearchTagValuesV2Response": [("tagValues", 1, "TagValue", True), ("metrics", 2, "MetadataMetrics", False)],
    "QueryRangeRequest": [("query", 1, "string", False), ("start", 2, "uint64", False), ("end", 3, "uint64", False),
                          ("step", 4, "uint64", False)],
    "QueryInstantRequest": [("query", 1, "string", False), ("start", 2, "uint64", False), ("end", 3, "uint64", False)],
    "QueryRangeResponse": [("series", 1, "TimeSeries", True), ("metrics", 2, "SearchMetrics", False),
                           ("status", 3, "PartialStatus", False), ("message", 4, "string", False)],
    "TimeSeries": [("labels", 1, KEY_VALUE, True), ("samples", 2, "Sample", True), ("exemplars", 4, "Exemplar", True)],
    "Sample": [("timestamp_ms", 2, "int64", False), ("value", 1, "double", False)],
    "Exemplar": [("labels", 1, KEY_VALUE, True), ("value", 2, "double", False), ("timestamp_ms", 3, "int64", False)],
    "QueryInstantResponse": [("series", 1, "InstantSeries", True), ("metrics", 2, "SearchMetrics", False),
                             ("status", 3, "PartialStatus", False), ("message", 4, "string", False)],
    "InstantSeries": [("labels", 1, KEY_VALUE, True), ("value", 2, "double", False)],
}
ENUMS = {"PartialStatus": [("COMPLETE", 0), ("PARTIAL", 1)]}


def _json_name(name):
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _set_type(field, type_name):
    if type_name in TYPES:
        field.type = TYPES[type_name]
    elif type_name in ENUMS:
        field.type = F.TYPE_ENUM
        field.type_name = ".tempopb." + type_name
    else:
        field.type = F.TYPE_MESSAGE
        field.type_name = type_name if type_name.startswith(".") else ".tempopb." + type_name


def _file():
    f = descriptor_pb2.FileDescriptorProto(name="weft_tests/tempopb.proto", package="tempopb", syntax="proto3")
    f.dependency.extend([common_pb2.DESCRIPTOR.name, trace_pb2.DESCRIPTOR.name])
    for name, values in ENUMS.items():
        e = f.enum_type.add(name=name)
        for value_name, number in values:
            e.value.add(name=value_name, number=number)
    for name, fields in MESSAGES.items():
        m = f.message_type.add(name=name)
        for field_name, number, type_name, repeated in fields:
            field = m.field.add(name=field_name, number=number, json_name=_json_name(field_name))
            field.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
            if type_name.startswith("map<"):
                key, value = type_name[4:-1].split(",")
                entry_name = field_name[:1].upper() + field_name[1:] + "Entry"
                entry = m.nested_type.add(name=entry_name)
                entry.options.map_entry = True
                _set_type(entry.field.add(name="key", number=1, json_name="key", label=F.LABEL_OPTIONAL), key)
                _set_type(entry.field.add(name="value", number=2, json_name="value", label=F.LABEL_OPTIONAL), value)
                field.label = F.LABEL_REPEATED
                field.type = F.TYPE_MESSAGE
                field.type_name = ".tempopb.%s.%s" % (name, entry_name)
            else:
                _set_type(field, type_name)
    return f


_pool = descriptor_pool.Default()
_pool.Add(_file())
classes = {name: message_factory.GetMessageClass(_pool.FindMessageTypeByName("tempopb." + name)) for name in MESSAGES}


def parse_json(text, name):
    """`text` as message `name`; unknown fields raise `json_format.ParseError`."""
    return json_format.Parse(text, classes[name]())


def _check_no_unknown(message, path):
    assert len(unknown_fields.UnknownFieldSet(message)) == 0, "unknown protobuf fields in " + path
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = [v for v in value.values() if hasattr(v, "ListFields")]
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for i, item in enumerate(items):
            _check_no_unknown(item, "%s.%s[%d]" % (path, field.name, i))


def parse_binary(data, name):
    """`data` as message `name`, with no field unknown to the message definitions at any depth."""
    message = classes[name].FromString(data)
    _check_no_unknown(message, name)
    return message
