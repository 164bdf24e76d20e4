#!/usr/bin/env python3
"""Turn the requests capture_proxy.py kept into the span TSV of Benchmarks/query
(same columns, see its README) and choose the benchmark's parameters.

Usage:
    otlp_to_tsv.py --requests requests.bin --params params.json [--params-requests 30]
    otlp_to_tsv.py --requests requests.bin --tsv spans.tsv

Token counts read gen_ai.usage.input_tokens/output_tokens, else the older
prompt_tokens/completion_tokens, as Weft does; cost is gen_ai.usage.cost.  A
span sent twice (same trace and span ID) is written once.  Parameters come
from the first --params-requests requests only, so that they are known
seconds after the load ends: the most frequent (tenant, model, region), one of
its traces, the user with the fewest spans there, and the most frequent
service (for the heatmap).
"""

import argparse
import collections
import json
import struct
import time

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

COLUMNS = ["trace_id", "span_id", "parent_span_id", "service", "name", "kind", "status", "start_ns", "duration_ns",
           "tenant_id", "user_id", "region", "model", "input_tokens", "output_tokens", "cost"]
KEYS = {"tenant_id": "tenant_id", "user_id": "user_id", "region": "region", "gen_ai.request.model": "model"}


def requests(path, limit=None):
    with open(path, "rb") as f:
        n = 0
        while limit is None or n < limit:
            head = f.read(4)
            if len(head) < 4:
                return
            (size,) = struct.unpack("<I", head)
            yield f.read(size)
            n += 1


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def spans(path, limit=None):
    """Span rows as dicts, each (trace, span) once."""
    seen = set()
    message = trace_service_pb2.ExportTraceServiceRequest()
    for body in requests(path, limit):
        message.ParseFromString(body)
        for rs in message.resource_spans:
            service = None
            for a in rs.resource.attributes:
                if a.key == "service.name":
                    service = value(a.value)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    key = (s.trace_id, s.span_id)
                    if key in seen:
                        continue
                    seen.add(key)
                    row = {"trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(), "parent_span_id": s.parent_span_id.hex() or None,
                           "service": service, "name": s.name, "kind": s.kind, "status": s.status.code,
                           "start_ns": s.start_time_unix_nano,
                           "duration_ns": max(0, s.end_time_unix_nano - s.start_time_unix_nano),
                           "tenant_id": None, "user_id": None, "region": None, "model": None,
                           "input_tokens": None, "output_tokens": None, "cost": None}
                    prompt = completion = None
                    for a in s.attributes:
                        k = a.key
                        if k in KEYS:
                            v = value(a.value)
                            if isinstance(v, str):
                                row[KEYS[k]] = v
                        elif k == "gen_ai.usage.input_tokens":
                            row["input_tokens"] = int(value(a.value))
                        elif k == "gen_ai.usage.output_tokens":
                            row["output_tokens"] = int(value(a.value))
                        elif k == "gen_ai.usage.prompt_tokens":
                            prompt = int(value(a.value))
                        elif k == "gen_ai.usage.completion_tokens":
                            completion = int(value(a.value))
                        elif k == "gen_ai.usage.cost":
                            row["cost"] = float(value(a.value))
                    if row["input_tokens"] is None:
                        row["input_tokens"] = prompt
                    if row["output_tokens"] is None:
                        row["output_tokens"] = completion
                    yield row


def write_tsv(path, rows):
    n = 0
    with open(path, "w") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join("" if r[c] is None else repr(r[c]) if isinstance(r[c], float) else str(r[c]) for c in COLUMNS) + "\n")
            n += 1
    return n


def choose_params(rows):
    combos = collections.Counter()
    traces = {}
    users = collections.Counter()
    services = collections.Counter()
    for r in rows:
        services[r["service"]] += 1
        if r["tenant_id"] and r["model"] and r["region"]:
            c = (r["tenant_id"], r["model"], r["region"])
            combos[c] += 1
            traces[c] = r["trace_id"]
        if r["user_id"]:
            users[r["user_id"]] += 1
    (combo, _), = combos.most_common(1)
    rare = min(users.items(), key=lambda kv: (kv[1], kv[0]))[0]
    (service, _), = services.most_common(1)
    return {"now_s": int(time.time()), "tenant": combo[0], "model": combo[1], "region": combo[2], "trace_id": traces[combo], "user_id": rare, "service": service}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", required=True)
    ap.add_argument("--tsv")
    ap.add_argument("--params")
    ap.add_argument("--params-requests", type=int, default=30)
    args = ap.parse_args()
    if args.params:
        with open(args.params, "w") as f:
            json.dump(choose_params(spans(args.requests, args.params_requests)), f)
    if args.tsv:
        print("wrote %d spans to %s" % (write_tsv(args.tsv, spans(args.requests)), args.tsv))


if __name__ == "__main__":
    main()
