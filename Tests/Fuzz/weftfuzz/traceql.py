"""Seeded TraceQL: valid and near-valid span filters and metrics queries, the shapes that stress a parser
(deep parentheses, long `||` chains, pathological regexes, overflowing numbers and durations, unicode),
and truncations and mutations of valid queries."""

INTRINSICS = ["name", "status", "kind", "duration", "statusMessage", "rootServiceName", "rootName", "traceDuration"]
ATTRIBUTES = ["tenant_id", "gen_ai.request.model", "gen_ai.provider.name", "gen_ai.system", "gen_ai.usage.input_tokens",
              "gen_ai.usage.output_tokens", "gen_ai.usage.cost", "region", "cached", "fuzz.text", "fuzz.marker",
              "service.name", "deployment.environment", "nope", "http.status_code", "ünïcødé", "a-b/c"]
SCOPES = ["span.", "resource.", ".", ""]
OPERATORS = ["=", "!=", ">", ">=", "<", "<=", "=~", "!~"]
STATUSES = ["ok", "error", "unset"]
KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"]
REGEXES = ["gpt-4.*", "^acme$", ".*", "", "a|b", "[a-z]+", "(?i)GPT", "\\d+", "claude-.*-sonnet",
           # pathological for backtracking engines, against the `fuzz.text` bait values
           "(a+)+$", "(a|a)*$", "(a|aa)+$", "(.*a){20}$", "^(\\w+\\s?)*$", "(x+x+)+y", "((a*)*)*b$", "(a*)*$",
           "^(a|ab)*c$", "(.*){30}z", "(?:a?){40}a{40}",
           # invalid or odd
           "(", "[", "a{2,1}", "\\", "(?<n>a)\\k<m>", "a{99999999999}", "\\p{Nope}", "[z-a]", "*"]
DURATIONS = ["0", "0s", "1ns", "250ms", "1.5s", "2m", "1h", "10us", "10µs", "5ns", "1e300h", "20000000000h",
             "1e19ns", "18446744073709551615ns", "18446744073709551616ns", "1e308s", "1e-300s", ".5s", "-1s",
             "9999999999999h", "1.8e10s", "5124095h", "5124096h", "inf", "nan"]
NUMBERS = ["0", "1", "-1", "42", "0.5", ".5", "-.5", "1e3", "1e300", "1e309", "-1e309", "9223372036854775807",
           "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551616",
           "123456789012345678901234567890", "1.7976931348623157e308", "4.9e-324", "0x10", "1_000", "00001"]
STRINGS = ["acme", "gpt-4o", "", "eu-west-1", "support-bot", "POST /chat", "rate limited", "café", "cafe\u0301",
           "\u212b", "😀", "\u202etxet", "a\\\"b", "\\n\\t", "x" * 300, "\u0000", "日本語", "\\u0041"]
METRICS = ["rate()", "count_over_time()", "sum_over_time({f})", "avg_over_time({f})", "min_over_time({f})",
           "max_over_time({f})", "quantile_over_time({f}, {q})", "histogram_over_time({f})"]
NUMERIC_FIELDS = ["duration", "span.gen_ai.usage.input_tokens", "span.gen_ai.usage.cost", "traceDuration",
                  "gen_ai.usage.output_tokens", "name", "span.nope"]


def field(rng):
    if rng.random() < 0.35:
        return rng.choice(INTRINSICS)
    return rng.choice(SCOPES) + rng.choice(ATTRIBUTES)


def quoted(rng, text):
    if rng.random() < 0.1:
        return "`" + text.replace("`", "") + "`"
    return '"' + text.replace('"', '\\"') + '"'


def value_for(rng, f, op):
    if op in ("=~", "!~"):
        return quoted(rng, rng.choice(REGEXES))
    if f in ("duration", "traceDuration") or rng.random() < 0.1:
        return rng.choice(DURATIONS)
    if f == "status" or rng.random() < 0.03:
        return rng.choice(STATUSES)
    if f == "kind" or rng.random() < 0.03:
        return rng.choice(KINDS)
    r = rng.random()
    if r < 0.5:
        return quoted(rng, rng.choice(STRINGS))
    if r < 0.85:
        return rng.choice(NUMBERS)
    return rng.choice(["true", "false"])


def comparison(rng):
    f = field(rng)
    op = rng.choice(OPERATORS)
    return "%s %s %s" % (f, op, value_for(rng, f, op))


def expression(rng, depth=0):
    r = rng.random()
    if depth > 4 or r < 0.4:
        return comparison(rng)
    if r < 0.6:
        return "(" + expression(rng, depth + 1) + ")"
    return "%s %s %s" % (expression(rng, depth + 1), rng.choice(["&&", "||"]), expression(rng, depth + 1))


def span_filter(rng):
    if rng.random() < 0.05:
        return "{}"
    return "{ " + expression(rng) + " }"


def metrics_stage(rng):
    m = rng.choice(METRICS)
    qs = ", ".join(rng.choice(["0.5", ".95", ".99", "0", "1", "1.5", "-0.1", "1e-300", "nan"]) for _ in range(rng.randrange(1, 5)))
    text = "| " + m.format(f=rng.choice(NUMERIC_FIELDS), q=qs)
    if rng.random() < 0.6:
        text += " by (" + ", ".join(field(rng) for _ in range(rng.randrange(1, 5))) + ")"
    if rng.random() < 0.3:
        text += " | %s(%s)" % (rng.choice(["topk", "bottomk"]), rng.choice(["1", "10", "0", "-1", "99999999999999999999", "1e3"]))
    return text


def valid_query(rng):
    q = span_filter(rng)
    if rng.random() < 0.4:
        q += " " + metrics_stage(rng)
    return q


def deep_parentheses(rng):
    n = rng.choice([100, 1000, 5000, 10_000, 30_000, 50_000])
    inner = comparison(rng)
    if rng.random() < 0.2:
        return "{ " + "(" * n + inner + " }"  # unbalanced
    return "{ " + "(" * n + inner + ")" * n + " }"


def long_chain(rng):
    n = rng.choice([100, 1000, 5000, 20_000])
    op = rng.choice(["||", "&&"])
    return "{ " + (" %s " % op).join(comparison(rng) if rng.random() < 0.2 else 'span.tenant_id = "t%d"' % i for i in range(n)) + " }"


def overflow(rng):
    f = rng.choice(["duration", "traceDuration", "span.gen_ai.usage.input_tokens", "span.gen_ai.usage.cost"])
    op = rng.choice([">", "<", ">=", "<=", "=", "!="])
    v = rng.choice(["1e300h", "20000000000h", "1e19ns", "18446744073709551616", "1e309", "9223372036854775808",
                    "1e308s", "5124096h", "-9223372036854775809", "99999999999999999999999999999999ms"])
    q = "{ %s %s %s }" % (f, op, v)
    if rng.random() < 0.3:
        q += " | quantile_over_time(duration, .99)"
    return q


def pathological_regex(rng):
    f = rng.choice(["span.fuzz.text", "fuzz.text", "name", "resource.service.name", "span.tenant_id"])
    return "{ %s %s %s }" % (f, rng.choice(["=~", "!~"]), quoted(rng, rng.choice(REGEXES[9:20])))


def unicode_query(rng):
    pieces = ["{ span.ünïcødé = \"日本\" }", "{ .😀 = \"x\" }", "{ name = \"\u0301\" }", "{ span.\u200b = \"a\" }",
              "{ name =~ \"\\p{L}+\" }", "{ span.tenant_id = \"\udcff\" }".encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
              "｛ name = \"x\" ｝", "{ name ＝ \"x\" }", "{ ٣ > 1 }", "{ duration > ١s }", "{ span.a\u0000b = \"c\" }"]
    return rng.choice(pieces)


JUNK = list("{}()=<>|,!~&\"`. -_\\\n\t") + ["&&", "||", "=~", "!~", "by", "|", "rate()", "\u00e9", "😀", "\x00"]


def mutate(rng, q):
    chars = list(q)
    for _ in range(rng.randrange(1, 4)):
        op = rng.random()
        i = rng.randrange(len(chars) + 1)
        if op < 0.3 and chars:
            del chars[min(i, len(chars) - 1)]
        elif op < 0.6:
            chars.insert(i, rng.choice(JUNK))
        elif op < 0.8 and chars:
            j = rng.randrange(len(chars))
            chars[i - 1 if i else 0], chars[j] = chars[j], chars[i - 1 if i else 0]
        else:
            chars[i:i] = chars[i:i + rng.randrange(1, 10)]
    return "".join(chars)


def truncate(rng, q):
    return q[:rng.randrange(len(q) + 1)]


def query(rng):
    """One query and the name of its shape."""
    r = rng.random()
    if r < 0.35:
        return "random-filter", valid_query(rng)
    if r < 0.45:
        return "mutated", mutate(rng, valid_query(rng))
    if r < 0.52:
        return "truncated", truncate(rng, valid_query(rng))
    if r < 0.62:
        return "overflow", overflow(rng)
    if r < 0.72:
        return "regex", pathological_regex(rng)
    if r < 0.80:
        return "deep-parentheses", deep_parentheses(rng)
    if r < 0.87:
        return "long-chain", long_chain(rng)
    if r < 0.93:
        return "unicode", unicode_query(rng)
    return "junk", "".join(rng.choice(JUNK) for _ in range(rng.randrange(0, 40)))
