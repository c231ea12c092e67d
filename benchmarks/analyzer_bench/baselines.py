"""The contenders modelwatch is measured against, on the same parquet files: a plain numpy/scipy pass and Evidently.

* :func:`run_numpy`: per numeric column ``ks_2samp``, PSI on reference
  deciles, ``wasserstein_distance`` (normalised by the reference std) and
  Jensen-Shannon on the decile bins; per categorical column
  ``chi2_contingency``, PSI and Jensen-Shannon on the category counts (from
  dictionary codes: no string sorting). Same verdict rule as modelwatch's
  defaults: PSI >= 0.1 and BH-adjusted test p < 0.05.
* :func:`run_evidently`: Evidently 0.7's ``DataDriftPreset()`` with its
  defaults, on DataFrames read from the parquet files. It runs in Evidently's
  own virtual environment, which has neither modelwatch nor its analyzer:
  this module imports nothing from them.

Each returns load time (not counted), compute time and CPU, and the drifted
columns under modelwatch's names (``prediction.score``, ``prediction.value``).
"""

from __future__ import annotations

import time

import numpy as np

from analyzer_bench.data import CATEGORICAL, NUMERIC
from analyzer_bench.harness import cpu

RENAME = {"score": "prediction.score", "prediction": "prediction.value"}
"""The model output's columns as modelwatch names them."""


def _psi(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index of counts `q` against counts `p`, each share floored at `eps`."""
    p = np.maximum(p / p.sum(), eps)
    q = np.maximum(q / q.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def run_numpy(ref_path: str, cur_path: str) -> dict:
    """The numpy/scipy pass over the two parquet files (load timed apart from the computation)."""
    import pyarrow.parquet as pq
    from scipy import stats as sps
    from scipy.spatial.distance import jensenshannon

    t0 = time.perf_counter()
    sides = []
    for path in (ref_path, cur_path):
        table = pq.read_table(path)
        cols = {}
        for name in NUMERIC + ["score"]:
            cols[name] = table.column(name).to_numpy()
        for name in list(CATEGORICAL) + ["prediction"]:
            col = table.column(name).combine_chunks()
            cols[name] = (col.indices.to_numpy(), col.dictionary.to_pylist())
        sides.append(cols)
        del table
    t_load = time.perf_counter() - t0
    ref, cur = sides
    t0, c0 = time.perf_counter(), cpu()
    results = {}
    for name in NUMERIC + ["score"]:
        r, c = ref[name], cur[name]
        r, c = r[~np.isnan(r)], c[~np.isnan(c)]
        ks = sps.ks_2samp(r, c)
        edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
        rb = np.bincount(np.searchsorted(edges, r, side="right"), minlength=len(edges) + 1)
        cb = np.bincount(np.searchsorted(edges, c, side="right"), minlength=len(edges) + 1)
        psi = _psi(rb.astype(float), cb.astype(float))
        wd = sps.wasserstein_distance(r, c) / r.std()
        js = float(jensenshannon(rb / rb.sum(), cb / cb.sum(), base=2))
        results[name] = {"psi": psi, "pvalue": float(ks.pvalue), "ks": float(ks.statistic), "wasserstein": wd, "js": js}
    for name in list(CATEGORICAL) + ["prediction"]:
        (rc, rd), (cc, cd) = ref[name], cur[name]
        rcount = dict(zip(rd, np.bincount(rc, minlength=len(rd))))
        ccount = dict(zip(cd, np.bincount(cc, minlength=len(cd))))
        cats = sorted(set(rcount) | set(ccount))
        table = np.array([[rcount.get(k, 0) for k in cats], [ccount.get(k, 0) for k in cats]], float)
        table = table[:, table.sum(axis=0) > 0]
        chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
        results[name] = {"psi": _psi(table[0], table[1]), "pvalue": float(p), "chi2": float(chi2),
                         "js": float(jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2))}
    names = list(results)
    adjusted = sps.false_discovery_control([results[k]["pvalue"] for k in names], method="bh")
    drifted = sorted(k for k, a in zip(names, adjusted) if results[k]["psi"] >= 0.1 and a < 0.05)
    t_compute, c_compute = time.perf_counter() - t0, cpu() - c0
    return {"load_s": t_load, "compute_s": t_compute, "compute_cpu": c_compute,
            "drifted": sorted(RENAME.get(k, k) for k in drifted), "psi": {RENAME.get(k, k): v["psi"] for k, v in results.items()}}


def run_evidently(ref_path: str, cur_path: str) -> dict:
    """Evidently's default data drift preset over the two parquet files (load timed apart)."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    frames = [pd.read_parquet(p).drop(columns=["ts", "id"]) for p in (ref_path, cur_path)]
    for df in frames:  # dictionary-encoded parquet columns arrive as categories; give Evidently plain strings
        for c in list(CATEGORICAL) + ["prediction"]:
            df[c] = df[c].astype(str)
    t_load = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), cpu()
    definition = DataDefinition(numerical_columns=NUMERIC + ["score"], categorical_columns=list(CATEGORICAL) + ["prediction"])
    ref = Dataset.from_pandas(frames[0], data_definition=definition)
    cur = Dataset.from_pandas(frames[1], data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    t_compute, c_compute = time.perf_counter() - t0, cpu() - c0
    found = snapshot.dict()
    drifted, count = [], None
    for m in found.get("metrics", []):
        config, value = m.get("config", {}), m.get("value")
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            count = value.get("count") if isinstance(value, dict) else value
        elif kind.endswith("ValueDrift") and isinstance(value, (int, float)):
            threshold = float(config.get("threshold", 0.1))
            p_value = "p_value" in str(config.get("method", ""))  # tests (small data) drift below, distances at or above
            if (value < threshold) if p_value else (value >= threshold):
                drifted.append(str(config.get("column")))
    return {"load_s": t_load, "compute_s": t_compute, "compute_cpu": c_compute,
            "drifted": sorted(RENAME.get(k, k) for k in drifted), "drifted_count": count}
