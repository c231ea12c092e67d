"""The analyzer benchmark's data: 27 seeded columns per side, written to parquet and loaded into a fresh store.

20 numeric features of varied shape (normal, lognormal, exponential,
uniform, bimodal, integer counts, heavy tails, three with missing values), 5
categorical features of cardinality 2 to 1,000, and the model's output (a
score and a class); :data:`DRIFTED` lists the 7 columns that drift in the
current side (5 numeric, 2 categorical). Every contender reads the same
data: :func:`write_parquet` generates one side in chunks of :data:`CHUNK`
rows (seeded per chunk), :func:`load_store` puts the parquet files into a
store's ``ml_predictions`` by one ``INSERT ... SELECT FROM file()`` each.
The reference side is one hour of day -3 (:data:`T0`), the current one an
hour of day -2 (:func:`windows`).

modelwatch_analyzer is imported inside the functions that need it: the
Evidently contender runs this package in a virtual environment without it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np

MODEL = "bench"
CHUNK = 1_000_000
NUMERIC = [f"f{i:02d}" for i in range(20)]
CATEGORICAL = {"c0": 2, "c1": 10, "c2": 50, "c3": 200, "c4": 1000}
DRIFTED = ["f01", "f02", "f05", "f07", "f11", "c1", "c4"]
PREFIXES = {"c0": "flag", "c1": "region", "c2": "city", "c3": "merchant", "c4": "sku"}
CLASSES = np.array(["approve", "review", "reject"])
T0 = (datetime.now(timezone.utc) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
"""Midnight (UTC) three days ago, when this module is imported: the reference hour starts here."""
HOUR_NS = 3600 * 10**9


def _zipf(k: int, s: float) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** s
    return p / p.sum()


def _category_probs(name: str, drifted: bool, rng_fixed: np.random.Generator) -> np.ndarray:
    k = CATEGORICAL[name]
    if name == "c0":
        return np.array([0.3, 0.7])
    if name == "c1":
        p = np.linspace(1.0, 2.0, k)
        if drifted:
            p = p[::-1] ** 2  # mass moves to the first regions
        return p / p.sum()
    if name == "c4":
        p = _zipf(k, 1.1)
        if drifted:  # the popular items change: the top 50 ranks are shuffled
            p = p.copy()
            top = rng_fixed.permutation(50)
            p[:50] = p[:50][top]
        return p
    return _zipf(k, 0.8 if name == "c2" else 1.0)


def chunk(side: int, index: int, n: int, seed: int, total: int) -> dict[str, np.ndarray]:
    """Rows [index*CHUNK, index*CHUNK + n) of one side (0 reference, 1 current), seeded per chunk."""
    rng = np.random.default_rng([seed, side, index])
    d = side == 1
    cols: dict[str, np.ndarray] = {}
    cols["f00"] = rng.normal(0.0, 1.0, n)
    cols["f01"] = rng.normal(55.0 if d else 50.0, 10.0, n)  # drift: mean +0.5 sd
    cols["f02"] = rng.lognormal(3.0, 1.5 if d else 1.0, n)  # drift: wider
    cols["f03"] = rng.exponential(2.0, n)
    cols["f04"] = rng.uniform(0.0, 100.0, n)
    mix = rng.random(n) < (0.6 if d else 0.3)  # drift: the modes swap weight
    cols["f05"] = np.where(mix, rng.normal(10.0, 1.0, n), rng.normal(0.0, 2.0, n))
    cols["f06"] = rng.poisson(3.0, n).astype(float)
    cols["f07"] = rng.poisson(24.0 if d else 20.0, n).astype(float)  # drift: counts up
    cols["f08"] = rng.standard_t(2.5, n)
    cols["f09"] = (rng.pareto(1.5, n) + 1.0) * 10.0
    x = rng.normal(100.0, 15.0, n)
    x[rng.random(n) < 0.1] = np.nan
    cols["f10"] = x
    x = rng.lognormal(1.0 if d else 0.5, 0.8, n)  # drift: shift, and more missing
    x[rng.random(n) < (0.4 if d else 0.3)] = np.nan
    cols["f11"] = x
    cols["f12"] = rng.beta(2.0, 5.0, n)
    cols["f13"] = rng.gamma(2.0, 2.0, n)
    cols["f14"] = rng.integers(0, 6, n).astype(float)
    cols["f15"] = rng.normal(1000.0, 50.0, n)
    cols["f16"] = rng.laplace(0.0, 3.0, n)
    cols["f17"] = rng.weibull(1.5, n) * 5.0
    x = rng.exponential(1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    cols["f18"] = x
    cols["f19"] = rng.chisquare(4.0, n)
    fixed = np.random.default_rng(seed + 1)
    for name, k in CATEGORICAL.items():
        cdf = np.cumsum(_category_probs(name, d and name in DRIFTED, fixed))
        cols[name] = np.minimum(np.searchsorted(cdf, rng.random(n)), k - 1).astype(np.int32)
    score = rng.beta(2.0, 3.0, n)
    cols["score"] = score
    cols["prediction"] = np.where(score < 0.35, 0, np.where(score < 0.7, 1, 2)).astype(np.int32)
    start = int(T0.timestamp()) * 10**9 + side * 86400 * 10**9
    cols["ts"] = start + (index * CHUNK + np.arange(n, dtype=np.int64)) * (HOUR_NS // max(total, 1))
    cols["id"] = side * 10**12 + index * CHUNK + np.arange(n, dtype=np.int64)
    return cols


def write_parquet(path: str, side: int, rows: int, seed: int) -> None:
    """One side (0 reference, 1 current) of `rows` rows as a parquet file; categories dictionary-encoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dicts = {name: pa.array([f"{PREFIXES[name]}_{i:04d}" for i in range(k)]) for name, k in CATEGORICAL.items()}
    dicts["prediction"] = pa.array(CLASSES.tolist())
    writer = None
    for index in range(0, (rows + CHUNK - 1) // CHUNK):
        n = min(CHUNK, rows - index * CHUNK)
        cols = chunk(side, index, n, seed, rows)
        arrays = {}
        for k, v in cols.items():
            if k in dicts:
                arrays[k] = pa.DictionaryArray.from_arrays(pa.array(v), dicts[k])
            elif k == "ts":
                arrays[k] = pa.array(v.astype(np.int64))
            else:
                arrays[k] = pa.array(v)
        table = pa.table(arrays)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="lz4")
        writer.write_table(table)
    assert writer is not None
    writer.close()


def load_store(url: str, files: list[str]) -> dict[str, float]:
    """Schema on a fresh store, each parquet file inserted by one INSERT ... SELECT FROM file(), then merged."""
    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.store.client import Store

    store = Store(url)
    schema.apply(store)
    numeric = ", ".join(NUMERIC)
    keys = ", ".join(f"'{k}'" for k in NUMERIC)
    categorical = ", ".join(f"'{k}', {k}" for k in CATEGORICAL)
    times = {}
    t0 = time.perf_counter()
    for path in files:
        store.command(f"""INSERT INTO {store.table('ml_predictions')} (Timestamp, ModelName, ModelVersion, OwnPredictionId,
    TraceId, SpanId, ServiceName, Weight, Reason, Prediction, PredictionNumber, Score, Numeric, Categorical)
SELECT fromUnixTimestamp64Nano(ts), '{MODEL}', '1', toString(id), leftPad(lower(hex(id)), 32, '0'),
    leftPad(lower(hex(id)), 16, '0'), 'bench', 1., 'random', toString(prediction), NULL, score,
    mapFromArrays(arrayFilter((k, v) -> NOT isNaN(v), [{keys}], [{numeric}]), arrayFilter(v -> NOT isNaN(v), [{numeric}])),
    map({categorical})
FROM file('{path}', Parquet)
SETTINGS max_insert_threads = 2""")
    times["insert"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.command(f"OPTIMIZE TABLE {store.table('ml_predictions')} FINAL")
    times["merge"] = time.perf_counter() - t0
    parts = store.query("SELECT count(), sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND "
                        "database = {db:String} AND table = 'ml_predictions'", {"db": store.database})
    times["parts"], times["rows"], times["bytes"] = (float(x) for x in parts[0])
    store.close()
    return times


def windows() -> tuple:
    """The reference and current windows: the first hour of day -3 and the first hour of day -2."""
    from modelwatch_analyzer.analysis.window import Window

    ref = Window(MODEL, T0, T0 + timedelta(hours=1), "1")
    cur = Window(MODEL, T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1), "1")
    return ref, cur
