"""Per-prediction overhead of the modelwatch SDK, as ratios against baselines measured in the same run.

    python benchmarks/bench_sdk.py [--quick]

Baselines, same machine, same process, same 25 features (20 numeric, 5 strings):

  (a) the undecorated inference call;
  (b) the same call plus a bare OTel span carrying the 25 features as
      attributes, through a BatchSpanProcessor (a null exporter behind it).

modelwatch runs with all metrics on (counts, latency, score, confidence,
per-feature distributions and category counts) and the same kind of span
pipeline. Overheads are (time of variant - time of (a)); the ratios divide
them by the overhead of (b). Targets: dropped <= 0.5, kept <= 1.5,
default 10 % random sampling <= 0.7; batch of 100k rows x 25 features:
dropped rows tracked at >= 1M rows/s, a kept row costs no more than a kept
single prediction.

Each measurement is the median of several interleaved repetitions, so a
noisy neighbour slows baseline and candidate alike.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

import modelwatch
import numpy as np
import pandas as pd
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

N_NUMERIC, N_STRING = 20, 5


class NullSpans(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.count += len(spans)
        return SpanExportResult.SUCCESS


class NullMetrics(MetricExporter):
    def export(self, metrics_data, timeout_millis=10_000, **kw):  # type: ignore[no-untyped-def]
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis=10_000):  # type: ignore[no-untyped-def]
        return True

    def shutdown(self, timeout_millis=30_000, **kw):  # type: ignore[no-untyped-def]
        pass


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, N_NUMERIC)).round(6)
    cats = rng.choice(["alpha", "beta", "gamma", "delta"], size=(n, N_STRING))
    rows = []
    for i in range(n):
        row = {f"num_{j}": float(num[i, j]) for j in range(N_NUMERIC)}
        row.update({f"cat_{j}": str(cats[i, j]) for j in range(N_STRING)})
        rows.append(row)
    return rows


def model(features: dict) -> dict:
    """A stand-in inference: confident (score 0.05), so no sampling rule fires."""
    return {"prediction": 0, "score": 0.05}


def timed(fn, rows: list[dict]) -> float:  # type: ignore[no-untyped-def]
    gc.collect()
    t0 = time.perf_counter()
    for row in rows:
        fn(row)
    return (time.perf_counter() - t0) / len(rows)


def single(args: argparse.Namespace) -> dict:
    rows = make_rows(args.n)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullSpans()))  # default settings, as configure() uses
    tracer = provider.get_tracer("baseline")

    def bare_span(features: dict) -> dict:
        result = model(features)
        span = tracer.start_span("predict", attributes={f"ml.feature.{k}": v for k, v in features.items()})
        span.end()
        return result

    modelwatch.configure(span_exporter=NullSpans(), metric_exporter=NullMetrics(),
                         metric_export_interval_millis=1000, set_global=False)
    dropped = modelwatch.monitor(model, model="bench-dropped", sampling_rate=0.0)
    kept = modelwatch.monitor(model, model="bench-kept", sampling_rate=1.0)
    default = modelwatch.monitor(model, model="bench-default")  # 10 % random

    variants = {"a": model, "b": bare_span, "dropped": dropped, "kept": kept, "default": default}
    for fn in variants.values():  # warm up
        timed(fn, rows[:2000])
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            samples[name].append(timed(fn, rows))
    us = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
    base = us["b"] - us["a"]
    return {
        "us_per_call": {k: round(v, 2) for k, v in us.items()},
        "overhead_us": {k: round(us[k] - us["a"], 2) for k in ("b", "dropped", "kept", "default")},
        "ratio_vs_b": {k: round((us[k] - us["a"]) / base, 3) for k in ("dropped", "kept", "default")},
        "targets": {"dropped": 0.5, "kept": 1.5, "default": 0.7},
    }


def batch(args: argparse.Namespace) -> dict:
    n = args.batch_rows
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"num_{j}": rng.normal(size=n) for j in range(N_NUMERIC)})
    for j in range(N_STRING):
        frame[f"cat_{j}"] = rng.choice(["alpha", "beta", "gamma", "delta"], size=n)
    proba = np.c_[np.full(n, 0.95), np.full(n, 0.05)]  # confident: only random sampling keeps

    def predict_proba(df: pd.DataFrame) -> np.ndarray:
        return proba[: len(df)]

    dropped = modelwatch.monitor(predict_proba, model="batch-dropped", sampling_rate=0.0)
    sampled = modelwatch.monitor(predict_proba, model="batch-sampled", sampling_rate=0.1)
    for fn in (predict_proba, dropped, sampled):
        fn(frame.iloc[:1000])

    def run(fn) -> float:  # type: ignore[no-untyped-def]
        gc.collect()
        t0 = time.perf_counter()
        fn(frame)
        return time.perf_counter() - t0

    t_plain, t_dropped, t_sampled, kept = [], [], [], []
    for _ in range(max(3, args.repeats // 2)):
        t_plain.append(run(predict_proba))
        t_dropped.append(run(dropped))
        t_sampled.append(run(sampled))
        kept.append(int(modelwatch.last_prediction().kept.sum()))
    plain, drop, samp = (statistics.median(t) for t in (t_plain, t_dropped, t_sampled))
    n_kept = statistics.median(kept)
    per_kept_us = (samp - drop) / n_kept * 1e6
    return {
        "rows": n,
        "dropped_rows_per_s": round(n / (drop - plain)),
        "kept_rows": n_kept,
        "kept_row_us": round(per_kept_us, 2),
        "targets": {"dropped_rows_per_s": 1_000_000, "kept_row_us": "<= single kept overhead"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="single calls per repetition")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats, args.batch_rows = 2000, 3, 10_000
    s = single(args)
    b = batch(args)
    ok = (
        s["ratio_vs_b"]["dropped"] <= 0.5 and s["ratio_vs_b"]["kept"] <= 1.5 and s["ratio_vs_b"]["default"] <= 0.7
        and b["dropped_rows_per_s"] >= 1_000_000 and b["kept_row_us"] <= s["overhead_us"]["kept"]
    )
    report = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "single": s, "batch": b, "targets_met": ok}
    if args.json:
        print(json.dumps(report))
        return 0
    u, o, r = s["us_per_call"], s["overhead_us"], s["ratio_vs_b"]
    print(f"single prediction, 25 features ({N_NUMERIC} numeric, {N_STRING} strings), median of {args.repeats}:")
    print(f"  (a) undecorated call           {u['a']:8.2f} us")
    print(f"  (b) + bare OTel span, 25 attrs {u['b']:8.2f} us   overhead {o['b']:7.2f} us   = 1.00 x (b)")
    for key, label, target in (("dropped", "dropped by sampling", 0.5), ("kept", "kept (span + metrics)", 1.5),
                               ("default", "default 10 % sampling", 0.7)):
        flag = "ok" if r[key] <= target else "MISSED"
        print(f"  modelwatch {label:<22}{u[key]:8.2f} us   overhead {o[key]:7.2f} us   = {r[key]:.2f} x (b)  target <= {target}  {flag}")
    print(f"batch call, {b['rows']:,} rows x 25 features:")
    flag = "ok" if b["dropped_rows_per_s"] >= 1_000_000 else "MISSED"
    print(f"  dropped rows tracked at {b['dropped_rows_per_s']:,.0f} rows/s   target >= 1,000,000  {flag}")
    flag = "ok" if b["kept_row_us"] <= o["kept"] else "MISSED"
    print(f"  a kept row costs {b['kept_row_us']:.2f} us ({b['kept_rows']:.0f} kept)   single kept: {o['kept']:.2f} us  {flag}")
    print("all targets met" if ok else "SOME TARGETS MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
