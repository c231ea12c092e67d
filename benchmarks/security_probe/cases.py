"""The ~741 seeded payloads of probe 1, malformed or not; each knows the answers the docs allow and what it stores."""

from __future__ import annotations

import gzip
import json
import math
import random
import zlib

from security_probe.common import DAY_NS, JSON_CT, NOW_NS, PROTO
from security_probe.payloads import (
    HOSTILE,
    INVALID_UTF8,
    SIGNAL_PATH,
    items,
    log_request,
    metric_request,
    otlp_json,
    pb_modules,
    request_for,
    set_attr,
    trace_request,
)


class Case:
    """One malformed-or-not request; `expect`: the statuses the docs allow (None: any documented class); `count`:
    the items of `marker` to be found stored if it is acknowledged."""

    def __init__(self, kind: str, sig: str, body: bytes, headers: dict[str, str], expect: set[int] | None,
                 count: int, marker: str, path: str | None = None, grpc: bool = False, typed: int = 0) -> None:
        self.kind, self.sig, self.body, self.headers, self.expect = kind, sig, body, headers, expect
        self.count, self.marker, self.path, self.grpc, self.typed = count, marker, path or SIGNAL_PATH[sig], grpc, typed
        self.status: int | str | None = None


def _parsed_items(sig: str, body: bytes) -> int | None:
    cls = {"traces": pb_modules()[0].ExportTraceServiceRequest, "metrics": pb_modules()[1].ExportMetricsServiceRequest,
           "logs": pb_modules()[2].ExportLogsServiceRequest}[sig]
    try:
        return items(cls.FromString(body))
    except Exception:  # noqa: BLE001 - any parse failure
        return None


SIGS = ("traces", "metrics", "logs")


class _Cases:
    """The case generators of `malformed_cases`, one method per kind, all drawing on one seeded random stream
    (the order of the draws is what makes a seed reproduce a run)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cases: list[Case] = []

    def marker(self) -> str:
        return f"pm{len(self.cases)}"

    def add(self, kind, sig, body, headers, expect, count, m, **kw) -> None:
        self.cases.append(Case(kind, sig, body, headers, expect, count, m, **kw))

    def random_bytes(self) -> None:
        sig = self.rng.choice(SIGS)
        body = self.rng.randbytes(self.rng.choice([1, 2, 7, 64, 1000, 65536]))
        self.add("random bytes", sig, body, {"Content-Type": PROTO}, {200, 400}, 0, self.marker(), grpc=self.rng.random() < 0.3)

    def truncated_proto(self) -> None:
        sig, m = self.rng.choice(SIGS), self.marker()
        raw = request_for(sig, self.rng, m, self.rng.randrange(2, 20)).SerializeToString()
        cut = raw[:self.rng.randrange(1, len(raw))]
        parsed = _parsed_items(sig, cut)
        self.add("truncated protobuf", sig, cut, {"Content-Type": PROTO}, {400} if parsed is None else {200, 400},
                 parsed or 0, m, grpc=self.rng.random() < 0.3)

    def gzip_cases(self) -> None:
        sig, m = self.rng.choice(SIGS), self.marker()
        req = request_for(sig, self.rng, m, self.rng.randrange(2, 10))
        as_json = self.rng.random() < 0.3
        raw = otlp_json(req) if as_json else req.SerializeToString()
        ct = {"Content-Type": JSON_CT if as_json else PROTO}
        which = self.rng.choice(["flush", "flush", "bare", "trailing", "trailer", "empty", "ok", "members", "x-gzip"])
        if which == "flush":
            d = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            body = d.compress(raw[:self.rng.randrange(1, len(raw))]) + d.flush(zlib.Z_FULL_FLUSH)
            self.add("gzip cut after a full flush", sig, body, {**ct, "Content-Encoding": "gzip"}, {400}, 0, m)
        elif which == "bare":
            self.add("gzip bare 10-byte header", sig, gzip.compress(b"")[:10], {**ct, "Content-Encoding": "gzip"}, {400}, 0, m)
        elif which == "trailing":
            self.add("gzip trailing garbage", sig, gzip.compress(raw) + b"garbage", {**ct, "Content-Encoding": "gzip"},
                     {400}, 0, m)
        elif which == "trailer":
            self.add("gzip truncated trailer", sig, gzip.compress(raw)[:-4], {**ct, "Content-Encoding": "gzip"}, {400}, 0, m)
        elif which == "empty":
            self.add("gzip empty body", sig, b"", {**ct, "Content-Encoding": "gzip"}, {400}, 0, m)
        elif which == "members":
            cut = self.rng.randrange(1, len(raw))
            self.add("gzip two members", sig, gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]),
                     {**ct, "Content-Encoding": "gzip"}, {200}, items(req), m)
        else:
            enc = "x-gzip" if which == "x-gzip" else "gzip"
            self.add("gzip whole", sig, gzip.compress(raw), {**ct, "Content-Encoding": enc}, {200}, items(req), m)

    def content_types(self) -> None:
        sig, m = self.rng.choice(SIGS), self.marker()
        req = request_for(sig, self.rng, m, 3)
        ct = self.rng.choice([None, "", "text/plain", "application/xml", "application/protobuf", "application/grpc",
                         "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "application/jsonx",
                         "APPLICATION/X-PROTOBUF", "Application/Json; charset=utf-8", "application/x-protobuf; q=1"])
        ok = ct is not None and ct.lower().split(";")[0].strip() in (PROTO, JSON_CT)
        body = otlp_json(req) if ct and "json" in ct.lower() else req.SerializeToString()
        headers = {} if ct is None else {"Content-Type": ct}
        self.add(f"content type {'ok' if ok else 'wrong/absent'}", sig, body, headers, {200} if ok else {415},
                 items(req) if ok else 0, m)

    def encodings(self) -> None:
        sig, m = self.rng.choice(SIGS), self.marker()
        raw = request_for(sig, self.rng, m, 3).SerializeToString()
        enc = self.rng.choice(["br", "deflate", "zstd", "gzip, gzip", "compress", "gzip;q=1", "identity, br"])
        body = gzip.compress(gzip.compress(raw)) if enc == "gzip, gzip" else (zlib.compress(raw) if enc == "deflate" else raw)
        self.add(f"Content-Encoding {enc}", sig, body, {"Content-Type": PROTO, "Content-Encoding": enc}, {415}, 0, m)

    def json_shapes(self) -> None:
        sig, m = self.rng.choice(SIGS), self.marker()
        which = self.rng.choice(["[]", '"str"', "null", "123", "true", "{", "deep-array", "deep-object", "deep-anyvalue",
                            "wrong-types", "bad-ids", "empty-object"])
        if which == "deep-array":
            d = self.rng.choice([1000, 10000, 100000])
            self.add(f"JSON nested array x{d}", sig, b"[" * d + b"]" * d, {"Content-Type": JSON_CT}, {400}, 0, m)
        elif which == "deep-object":
            d = self.rng.choice([1000, 10000, 100000])
            self.add(f"JSON nested object x{d}", sig, b'{"a":' * d + b"1" + b"}" * d, {"Content-Type": JSON_CT},
                     {200, 400}, 0, m)
        elif which == "deep-anyvalue":
            d = self.rng.choice([50, 200, 5000])
            doc = json.loads(otlp_json(trace_request(self.rng, m, 1)))
            doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(
                {"key": "deep", "value": "DEEP-PLACEHOLDER"})
            deep = ('{"kvlistValue":{"values":[{"key":"k","value":' * d + '{"stringValue":"bottom"}'
                    + "}]}}" * d)  # written out: json.dumps itself would recurse too deep
            body = json.dumps(doc).replace('"DEEP-PLACEHOLDER"', deep).encode()
            self.add(f"JSON kvlist nested x{d}", "traces", body, {"Content-Type": JSON_CT}, {200, 400}, 1, m)
        elif which == "wrong-types":
            body = json.dumps({"resourceSpans": self.rng.choice(["x", 1, {"a": 1}, [1, 2], [{"scopeSpans": "x"}]])}).encode()
            self.add("JSON wrong field types", "traces", body, {"Content-Type": JSON_CT}, {400}, 0, m)
        elif which == "bad-ids":
            doc = json.loads(otlp_json(trace_request(self.rng, m, 2)))
            for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
                s["traceId"] = self.rng.choice(["zz", "", "0" * 31, "0" * 64, "AAAA"])
            self.add("JSON bad trace ids", "traces", json.dumps(doc).encode(), {"Content-Type": JSON_CT}, {200, 400}, 2, m)
        elif which == "empty-object":
            self.add("JSON empty object", sig, b"{}", {"Content-Type": JSON_CT}, {200}, 0, m)
        else:
            self.add(f"JSON {which}", sig, which.encode(), {"Content-Type": JSON_CT}, {400}, 0, m)

    def deep_proto(self) -> None:
        m = self.marker()
        req = trace_request(self.rng, m, 1)
        v = req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep").value
        for _ in range(self.rng.choice([60, 150, 2000])):
            v = v.kvlist_value.values.add(key="k").value
        v.string_value = "bottom"
        try:
            body = req.SerializeToString()
        except Exception:  # noqa: BLE001 - the protobuf runtime's own recursion limit
            return
        self.add("protobuf kvlist deeply nested", "traces", body, {"Content-Type": PROTO}, {200, 400}, 1, m,
                 grpc=self.rng.random() < 0.3)

    def huge_attrs(self) -> None:
        m = self.marker()
        k = self.rng.choice([1000, 10000, 60000])
        req = trace_request(self.rng, m, 1, attrs={f"a{i}": i for i in range(k)})
        self.add(f"{k} span attributes", "traces", req.SerializeToString(), {"Content-Type": PROTO}, {200, 400}, 1, m,
                 grpc=self.rng.random() < 0.3)

    def timestamps(self) -> None:
        sig, m = self.rng.choice(SIGS), self.marker()
        bad = self.rng.choice([0, 1, 2**63 - 1, 2**64 - 1, NOW_NS + 30 * DAY_NS, NOW_NS + 10**12 * 10**9 % 2**64,
                          946_684_799 * 10**9, NOW_NS - 120 * DAY_NS])
        good = self.rng.choice([NOW_NS - DAY_NS, NOW_NS + DAY_NS, NOW_NS])
        t = bad if self.rng.random() < 0.75 else good
        if sig == "logs" and t == 0:
            expect, n = {200}, 2  # both times unset: stored at the receiver's time (docs)
        else:
            expect = {200} if t == good else {400}
            n = 2
        req = request_for(sig, self.rng, m, n, **({"start": t} if sig == "traces" else {"t": t}))
        as_json = self.rng.random() < 0.3
        body = otlp_json(req) if as_json else req.SerializeToString()
        self.add(f"{sig} timestamp {'in range' if 200 in expect else t}", sig, body,
                 {"Content-Type": JSON_CT if as_json else PROTO}, expect, n if 200 in expect else 0, m,
                 grpc=not as_json and self.rng.random() < 0.3)

    def json_timestamps(self) -> None:
        m = self.marker()
        doc = json.loads(otlp_json(trace_request(self.rng, m, 1)))
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = self.rng.choice(
            ["18446744073709551615", "18446744073709551616", "-1", "1e30", "NaN", "", "9" * 40, 1.5])
        self.add("JSON timestamp not a uint64", "traces", json.dumps(doc).encode(), {"Content-Type": JSON_CT}, {400}, 0, m)

    def weights(self) -> None:
        m = self.marker()
        w = self.rng.choice([math.nan, math.inf, -math.inf, 9.2e18, -5.0, 0.0, 1e-300, 2**63 - 1, -1, "NaN", "abc", "",
                        "1e400", True, 1e6 + 1])
        req = trace_request(self.rng, m, 3, attrs={"ml.sampling.weight": w, "ml.sampling.reason": "random"})
        as_json = self.rng.random() < 0.3
        if as_json:
            try:
                body = otlp_json(req)
            except ValueError:  # NaN / inf in JSON: the protobuf mapping writes them as strings
                body = req.SerializeToString()
                as_json = False
        else:
            body = req.SerializeToString()
        self.add(f"weight {w!r}", "traces", body, {"Content-Type": JSON_CT if as_json else PROTO}, {200}, 3, m,
                 typed=3, grpc=not as_json and self.rng.random() < 0.3)

    def hostile_names(self) -> None:
        sig, m = self.rng.choice(SIGS), self.marker()
        h = self.rng.choice(HOSTILE)
        where = self.rng.choice(["name", "model", "key", "value", "service"])
        if sig == "traces":
            kw = {"name": h} if where == "name" else {"model": h} if where == "model" else \
                {"service": h} if where == "service" else {"attrs": {h or "empty": "v"} if where == "key" else {"v": h}}
            req = trace_request(self.rng, m, 2, **kw)
        elif sig == "metrics":
            req = metric_request(self.rng, m, 2, name=h or "x")
        else:
            req = log_request(self.rng, m, 2, body=h)
        as_json = self.rng.random() < 0.3
        self.add(f"hostile {sig} {where}", sig, otlp_json(req) if as_json else req.SerializeToString(),
                 {"Content-Type": JSON_CT if as_json else PROTO}, {200, 400}, 2, m, grpc=not as_json and self.rng.random() < 0.3)

    def invalid_utf8(self) -> None:
        m = self.marker()
        placeholder = "Q" * len(INVALID_UTF8)
        where = self.rng.choice(["name", "model", "value"])
        kw = {"name": placeholder} if where == "name" else {"model": placeholder} if where == "model" else \
            {"attrs": {"v": placeholder}}
        body = trace_request(self.rng, m, 2, **kw).SerializeToString().replace(placeholder.encode(), INVALID_UTF8)
        self.add(f"invalid UTF-8 in span {where}", "traces", body, {"Content-Type": PROTO}, {200, 400}, 2, m,
                 grpc=self.rng.random() < 0.3)

    def odd_paths(self) -> None:
        m = self.marker()
        req = trace_request(self.rng, m, 1)
        path = self.rng.choice(["/v1/traces/", "/V1/TRACES", "/v1/traces%00", "/v1//traces", "/v1/traces/../metrics",
                           "/v1/spans", "/v1/modelwatch/cli", "/" + "a" * 5000])
        self.add(f"path {path[:24]}", "traces", req.SerializeToString(), {"Content-Type": PROTO}, None, 1, m, path=path)

    def too_big(self) -> None:
        m = self.marker()
        which = self.rng.choice(["raw", "bomb"])
        req = trace_request(self.rng, m, 1, attrs={"big": "z" * (17 * 2**20)})
        raw = req.SerializeToString()
        if which == "raw":
            self.add("body over 16 MiB", "traces", raw, {"Content-Type": PROTO}, {413}, 0, m)
        else:
            self.add("gzip bomb over 16 MiB inflated", "traces", gzip.compress(raw, 9),
                     {"Content-Type": PROTO, "Content-Encoding": "gzip"}, {413}, 0, m)

    def valid(self) -> None:
        sig, m = self.rng.choice(SIGS), self.marker()
        req = request_for(sig, self.rng, m, self.rng.randrange(1, 30))
        as_json = self.rng.random() < 0.3
        self.add(f"valid {sig}", sig, otlp_json(req) if as_json else req.SerializeToString(),
                 {"Content-Type": JSON_CT if as_json else PROTO}, {200}, items(req), m,
                 typed=items(req) if sig == "traces" else 0, grpc=not as_json and self.rng.random() < 0.3)

    def hostile_metrics(self) -> None:
        m = self.marker()
        metrics_pb2 = pb_modules()[1]
        req = metrics_pb2.ExportMetricsServiceRequest()
        rm = req.resource_metrics.add()
        set_attr(rm.resource.attributes, "probe.case", m)
        met = rm.scope_metrics.add().metrics.add(name="probe.h")
        t = NOW_NS - self.rng.randrange(3600) * 10**9
        kind = self.rng.choice(["histogram, counts and bounds mismatched", "histogram, NaN sum", "histogram, no buckets",
                           "exponential histogram, scale -100", "exponential histogram, huge offset",
                           "summary, NaN quantiles", "sum, NaN and inf", "gauge, int64 extremes", "no data"])
        n = 2
        for i in range(n):
            if kind.startswith("histogram"):
                dp = met.histogram.data_points.add(time_unix_nano=t, count=self.rng.randrange(10**6))
                if "mismatched" in kind:
                    dp.bucket_counts.extend([1] * self.rng.randrange(0, 9))
                    dp.explicit_bounds.extend(sorted(self.rng.random() for _ in range(self.rng.randrange(0, 9))))
                elif "NaN" in kind:
                    dp.sum = math.nan
                    dp.bucket_counts.extend([1, 2])
                    dp.explicit_bounds.extend([math.inf])
            elif kind.startswith("exponential"):
                dp = met.exponential_histogram.data_points.add(time_unix_nano=t, count=3, zero_count=1)
                dp.scale = -100 if "scale" in kind else 20
                dp.positive.offset = 2**31 - 1 if "offset" in kind else -(2**31)
                dp.positive.bucket_counts.extend([1, 1])
            elif kind.startswith("summary"):
                dp = met.summary.data_points.add(time_unix_nano=t, count=1, sum=math.nan)
                dp.quantile_values.add(quantile=math.nan, value=math.inf)
                dp.quantile_values.add(quantile=2.0, value=-math.inf)
            elif kind.startswith("sum"):
                met.sum.data_points.add(time_unix_nano=t, as_double=self.rng.choice([math.nan, math.inf, -math.inf]))
                met.sum.aggregation_temporality = self.rng.choice([0, 1, 2, 7])
            elif kind.startswith("gauge"):
                met.gauge.data_points.add(time_unix_nano=t, as_int=self.rng.choice([2**63 - 1, -(2**63)]))
        count = 0 if kind == "no data" else n
        self.add(f"metrics {kind}", "metrics", req.SerializeToString(), {"Content-Type": PROTO}, {200, 400}, count, m,
                 grpc=self.rng.random() < 0.3)

    def lone_surrogate_json(self) -> None:
        m = self.marker()
        where = self.rng.choice(["name", "model", "value"])
        ph = "SURROGATE-PLACEHOLDER"
        kw = {"name": ph} if where == "name" else {"model": ph} if where == "model" else {"attrs": {"v": ph}}
        body = otlp_json(trace_request(self.rng, m, 2, **kw)).replace(ph.encode(), self.rng.choice([b"\\ud800", b"\\udfff",
                                                                                         b"a\\u0000b"]))
        self.add(f"JSON lone surrogate / NUL in span {where}", "traces", body, {"Content-Type": JSON_CT}, {200, 400}, 2, m)

    def odd_ids_and_types(self) -> None:
        m = self.marker()
        req = trace_request(self.rng, m, 2)
        span = req.resource_spans[0].scope_spans[0].spans[0]
        which = self.rng.choice(["ids", "types", "events"])
        if which == "ids":
            span.trace_id = self.rng.choice([b"", b"\x01\x02\x03", b"\x00" * 16, self.rng.randbytes(40)])
            span.span_id = self.rng.choice([b"", b"\x01", b"\x00" * 8, self.rng.randbytes(20)])
            span.parent_span_id = self.rng.choice([b"", self.rng.randbytes(3)])
        elif which == "types":
            for k in ("ml.model.name", "ml.prediction.id", "ml.feature.x", "ml.prediction.value", "ml.sampling.weight"):
                v = span.attributes.add(key=k).value
                pick = self.rng.randrange(4)
                if pick == 0:
                    v.array_value.values.add().double_value = math.nan
                elif pick == 1:
                    v.kvlist_value.values.add(key="a").value.string_value = "b"
                elif pick == 2:
                    v.bytes_value = self.rng.randbytes(8)
                # 3: an empty AnyValue
        else:
            for i in range(self.rng.choice([100, 5000])):
                ev = span.events.add(name=f"e{i}", time_unix_nano=self.rng.choice([0, 1, 2**64 - 1]))
                set_attr(ev.attributes, "k", "v")
            span.links.add(trace_id=b"\x01", span_id=b"")
            span.status.code = 7
            span.kind = 99
        self.add(f"span {which} odd", "traces", req.SerializeToString(), {"Content-Type": PROTO}, {200, 400}, 2, m,
                 grpc=self.rng.random() < 0.3)



def malformed_cases(n_total: int, seed: int) -> list[Case]:
    gen = _Cases(seed)
    weighted = [(gen.hostile_metrics, 5), (gen.lone_surrogate_json, 3), (gen.odd_ids_and_types, 5),
                (gen.random_bytes, 10), (gen.truncated_proto, 12), (gen.gzip_cases, 12), (gen.content_types, 8),
                (gen.encodings, 5), (gen.json_shapes, 10), (gen.deep_proto, 3), (gen.huge_attrs, 2),
                (gen.timestamps, 12), (gen.json_timestamps, 3), (gen.weights, 8), (gen.hostile_names, 12),
                (gen.invalid_utf8, 4), (gen.odd_paths, 3), (gen.valid, 8)]
    pool = [f for f, w in weighted for _ in range(w)]
    big = 0
    while len(gen.cases) < n_total:
        if big < 2 and len(gen.cases) in (n_total // 3, 2 * n_total // 3):
            big += 1
            gen.too_big()
            continue
        gen.rng.choice(pool)()
    return gen.cases[:n_total]
