"""The web UI on a store of 10M predictions: how long each page takes to render, queries included.

    python benchmarks/bench_ui.py [--rows 10000000] [--days 10] [--repeat 5]

A real embedded store gets ``--rows`` predictions of one model spread over
``--days`` days (five numeric features, two categorical, tail-sampling weights;
one numeric feature drifts from the middle day on), inserted by one
``INSERT ... SELECT FROM numbers()``. The first day is the baseline; every later
day is analysed (``analyze.run``) and the drift alert fired, as the scheduled
analyzer does. Then each page (overview, model, feature, alert) is rendered
``--repeat`` times through the UI's own application, and the first (cold) and
median times printed against the target (1 s), with one full scan of the
predictions' time column (``count()`` by hour) as the same-run yardstick.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "sdk"), os.path.join(ROOT, "analyzer")]

from modelwatch_analyzer.analysis import analyze  # noqa: E402
from modelwatch_analyzer.analysis import baseline as baselines  # noqa: E402
from modelwatch_analyzer.analysis.window import Window  # noqa: E402
from modelwatch_analyzer.outputs.alerts.firing import Alerter  # noqa: E402
from modelwatch_analyzer.outputs.alerts.rules import AlertConfig  # noqa: E402
from modelwatch_analyzer.store import schema  # noqa: E402
from modelwatch_analyzer.store.client import Store  # noqa: E402
from modelwatch_analyzer.ui import pages  # noqa: E402
from modelwatch_analyzer.ui.server import UiApp  # noqa: E402

MODEL = "ui-bench"


def fill(store: Store, rows: int, days: int, start: datetime) -> None:
    seconds = days * 86400
    drift_from = days // 2
    t0 = int(start.timestamp())
    store.command(f"""INSERT INTO {store.table('ml_predictions')} (Timestamp, ModelName, ModelVersion, OwnPredictionId,
    TraceId, SpanId, ServiceName, Weight, Reason, Prediction, PredictionNumber, Score, Numeric, Categorical)
SELECT toDateTime64({t0} + intDiv(number * {seconds}, {rows}), 9) AS ts, '{MODEL}', '1', '',
    lower(hex(cityHash64(number, 1))) || lower(hex(cityHash64(number, 2))), lower(hex(cityHash64(number, 3))), 'bench',
    if(number % 10 < 3, 1, 10) AS w, if(w = 1, 'low_confidence', 'random'),
    if(s > 0.5, 'true', 'false'), NULL, (cityHash64(number, 4) % 10000) / 10000 AS s,
    map('x0', (cityHash64(number, 5) % 10000) / 1000 + if(intDiv(number * {days}, {rows}) >= {drift_from}, 2, 0),
        'x1', (cityHash64(number, 6) % 10000) / 1000, 'x2', (cityHash64(number, 7) % 1000) * 1.0,
        'x3', log1p(cityHash64(number, 8) % 100000), 'x4', (cityHash64(number, 9) % 50) * 1.0),
    map('plan', ['basic', 'plus', 'pro'][1 + cityHash64(number, 10) % 3],
        'region', ['north', 'south', 'east', 'west'][1 + cityHash64(number, 11) % 4])
FROM numbers({rows}) SETTINGS max_insert_threads = 2""")
    store.command(f"OPTIMIZE TABLE {store.table('ml_predictions')} FINAL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    start = (datetime.now(timezone.utc) - timedelta(days=args.days + 1)).replace(hour=0, minute=0, second=0,
                                                                              microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"chdb://{tmp}/store", database="bench")
        schema.apply(store)
        t = time.perf_counter()
        fill(store, args.rows, args.days, start)
        print(f"ui on {args.rows:,} predictions over {args.days} days: inserted in {time.perf_counter() - t:.1f} s")
        day = timedelta(days=1)
        base = baselines.from_window(store, Window(MODEL, start, start + day), "1")
        baselines.save(store, base)
        alerter = Alerter(store, AlertConfig.from_dict({"rules": [{"name": "drift", "type": "drift"}]}))
        t = time.perf_counter()
        for d in range(1, args.days):
            w = Window(MODEL, start + d * day, start + (d + 1) * day)
            alerter.process(analyze.run(store, w, baseline=base), now=w.end)
        print(f"  {args.days - 1} daily analyses: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        store.query(f"SELECT toStartOfHour(Timestamp) h, count() FROM {store.table('ml_predictions')} GROUP BY h")
        yardstick = time.perf_counter() - t
        app = UiApp(store.connect_again())
        alert_id = store.query(f"SELECT AlertId FROM {store.table('ml_alerts')} FINAL LIMIT 1")[0][0]
        paths = {"overview": "/", "model": pages.model_url(MODEL), "feature": pages.feature_url(MODEL, "x0"),
                 "alert": pages.alert_url(MODEL, alert_id)}
        ok = True
        print(f"  yardstick: one scan of every prediction's time, counted by hour: {yardstick * 1000:.0f} ms\n")
        print(f"  {'page':<10} {'first (ms)':>11} {'median (ms)':>12} {'max (ms)':>9}  target 1,000 ms")
        for name, path in paths.items():
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                status, html = app._render(path, None)
                times.append(time.perf_counter() - t)
                assert status == 200, (name, status, html[:300])
            med = statistics.median(times)
            ok &= med <= 1.0
            print(f"  {name:<10} {times[0] * 1000:>11.0f} {med * 1000:>12.0f} {max(times) * 1000:>9.0f}  "
                  f"{'ok' if med <= 1.0 else 'SLOWER'} ({med / yardstick:.1f}x the yardstick)")
    print("\nall pages within target" if ok else "\nTARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
