"""Label-free performance estimation against the labels, on full and tail-sampled traffic, through a real store.

    python benchmarks/bench_estimation.py [--windows 40] [--window-rows 5000] [--reference-rows 50000]
                                          [--seed 0] [--nannyml-python /tmp/venv-nannyml/bin/python]

Data (seeded; every window drawn afresh):

* **Binary classifier.** Three features; the true P(y = 1) is logistic in
  ``x0, x1, x2²``; the model is a logistic regression fitted on a separate
  training set with those inputs, so its scores are calibrated where the
  reference lives. Windows move ``x0``'s mean from -1 to +1 and widen ``x2``
  (covariate shift): accuracy and AUC change, the relation x → y does not.
* **Regressor.** ``y = 2·x0 + x1 + ε`` with ``ε``'s spread growing with
  ``|x0|`` and with a category; the model predicts the mean. Windows shift
  ``x0``: the errors grow where the features go.
* **Tail sampling** as the SDK does it: a classifier's uncertain predictions
  (confidence ``|2p − 1| < 0.5``) always kept with weight 1, 10% of the rest
  kept with weight 10; for the regressor the edge cases (``|x0| > 1.5``)
  always kept, 10% of the rest.
* **Concept shift** (last part): the same features, the labels drawn from a
  changed relation (``x1``'s sign flipped).

Every window is written to a fresh embedded store's ``ml_predictions`` (and
its labels to ``ml_labels``); the estimator is fitted on the labelled
reference (``estimation_data.reference_from_frame``, as ``baseline create
--label`` does) and each window estimated by ``estimation.evaluate``, the
analyzer's own path. The truth is the metric over *all* the window's
predictions and labels (numpy / scikit-learn), also for the sampled
traffic. "unweighted" is the same estimator on the same sampled rows with
every weight set to 1.

Targets: |estimated − realized| <= 0.02 for accuracy and ROC AUC and <= 10%
relative for MAE, on full and on sampled traffic; the confidence interval
covers the realized value in >= 90% of windows; unweighted estimates on
sampled traffic visibly off. NannyML's CBPE (its own virtual environment:
``python -m venv /tmp/venv-nannyml && /tmp/venv-nannyml/bin/pip install nannyml statsmodels 'pandas<3' pyarrow``)
on the same unsampled reference and windows (chunks of ``--window-rows``):
our estimates within 0.01 of its; skipped, with the reason, when not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "sdk"), os.path.join(ROOT, "analyzer")]

from modelwatch_analyzer.analysis import baseline as baselines  # noqa: E402
from modelwatch_analyzer.analysis import estimation, estimation_data, estimator  # noqa: E402
from modelwatch_analyzer.analysis.window import Window  # noqa: E402
from modelwatch_analyzer.store import schema  # noqa: E402
from modelwatch_analyzer.store.client import Store  # noqa: E402
from sklearn import metrics  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

T0 = (datetime.now(timezone.utc) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
PRED_COLUMNS = ("Timestamp", "ModelName", "ModelVersion", "OwnPredictionId", "TraceId", "SpanId", "ServiceName", "Weight",
                "Reason", "Prediction", "PredictionNumber", "Score", "Numeric", "Categorical")
LABEL_COLUMNS = ("Timestamp", "ModelName", "ModelVersion", "PredictionId", "Label", "LabelNumber", "TraceId")


# -- data -------------------------------------------------------------------------------------


def classifier_features(rng: np.random.Generator, n: int, shift: float = 0.0, spread: float = 1.0) -> np.ndarray:
    return np.column_stack([rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n), rng.normal(0.0, spread, n)])


def true_p(x: np.ndarray, concept: bool = False) -> np.ndarray:
    return 1 / (1 + np.exp(-(-0.4 + 1.4 * x[:, 0] + (0.9 if concept else -0.9) * x[:, 1] + 0.6 * x[:, 2] ** 2)))


def model_inputs(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x[:, 0], x[:, 1], x[:, 2] ** 2])


def regression_rows(rng: np.random.Generator, n: int, shift: float = 0.0):
    x0, x1 = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    sigma = 0.4 + 0.7 * np.abs(x0) + 0.6 * (region == "south")
    mean = 2.0 * x0 + x1
    return x0, x1, region, mean, mean + sigma * rng.normal(size=n)


def tail_sample(rng: np.random.Generator, always: np.ndarray, rate: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    keep = always | (rng.random(always.size) < rate)
    return keep, np.where(always, 1.0, 1.0 / rate)[keep]


# -- the store ------------------------------------------------------------------------------------


class Loader:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.next_id = 0

    def window(self, model: str, start: datetime, numeric: dict[str, np.ndarray], categorical: dict[str, np.ndarray],
               prediction: np.ndarray, score: np.ndarray | None, labels: np.ndarray, weights: np.ndarray) -> None:
        n = len(prediction)
        rows, lab = [], []
        for i in range(n):
            pid = f"{self.next_id:032x}"
            self.next_id += 1
            t = start + timedelta(seconds=3000 * i / n)
            pred = str(prediction[i]) if not isinstance(prediction[i], float) else repr(float(prediction[i]))
            num_pred = float(prediction[i]) if isinstance(prediction[i], (float, np.floating)) else None
            rows.append((t, model, "1", "", pid, pid[:16], "bench", float(weights[i]), "random", pred, num_pred,
                         None if score is None else float(score[i]), {k: float(v[i]) for k, v in numeric.items()},
                         {k: str(v[i]) for k, v in categorical.items()}))
            label = labels[i]
            lab.append((t + timedelta(hours=1), model, "1", pid, str(label) if not isinstance(label, float)
                        else repr(float(label)), float(label) if isinstance(label, float) else None, ""))
        self.store.insert("ml_predictions", rows, PRED_COLUMNS)
        self.store.insert("ml_labels", lab, LABEL_COLUMNS)


def _unweighted(store: Store, window: Window, est: estimator.Estimator) -> dict[str, float]:
    features = None
    if est.task == estimator.REGRESSION and est.loss:
        features = {e.name: e.kind == "numeric" for e in est.loss.inputs if e.name != "prediction.value"}
    data, _has, _rate = estimation_data.from_store(store, window, labelled_only=False, max_rows=10**9,
                                                   features=features)
    data.weight = np.ones(len(data))
    return {e.metric: e.value for e in estimation.estimates(data, est)[0]}


# -- the runs --------------------------------------------------------------------------------------------


def classifier(store: Store, loader: Loader, args: argparse.Namespace, rng: np.random.Generator) -> dict:
    train = classifier_features(rng, 40_000)
    model = LogisticRegression(C=100.0, max_iter=1000).fit(model_inputs(train), rng.random(40_000) < true_p(train))
    ref_x = classifier_features(rng, args.reference_rows)
    ref_s = model.predict_proba(model_inputs(ref_x))[:, 1]
    ref_y = (rng.random(ref_x.shape[0]) < true_p(ref_x)).astype(int)
    frame = pd.DataFrame({"x0": ref_x[:, 0], "x1": ref_x[:, 1], "x2": ref_x[:, 2], "score": ref_s,
                          "pred": (ref_s >= 0.5).astype(int), "y": ref_y})
    t = time.perf_counter()
    fitted = {}
    for name in ("clf-full", "clf-sampled", "clf-concept"):
        base = baselines.from_frame(frame, name, "1", prediction="pred", score="score", exclude=["y"])
        baselines.save(store, base)
        est = estimator.fit(estimation_data.reference_from_frame(frame, label="y", prediction="pred", score="score"),
                            name, "1", base.id)
        estimator.save(store, est)
        fitted[name] = est
    fit_s = (time.perf_counter() - t) / 3
    rows: list[dict] = []
    windows_for_nannyml = []
    for k, shift in enumerate(np.linspace(-1.0, 1.0, args.windows)):
        x = classifier_features(rng, args.window_rows, shift, 1.0 + 0.5 * k / max(args.windows - 1, 1))
        s = model.predict_proba(model_inputs(x))[:, 1]
        pred = (s >= 0.5).astype(int)
        y = (rng.random(x.shape[0]) < true_p(x)).astype(int)
        truth = {"accuracy": metrics.accuracy_score(y, pred), "roc_auc": metrics.roc_auc_score(y, s)}
        start = T0 + timedelta(hours=k)
        window_full = Window("clf-full", start, start + timedelta(hours=1))
        num = {"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2]}
        loader.window("clf-full", start, num, {}, pred, s, y, np.ones(len(y)))
        keep, w = tail_sample(rng, np.abs(2 * s - 1) < 0.5)
        loader.window("clf-sampled", start, {k2: v[keep] for k2, v in num.items()}, {}, pred[keep], s[keep], y[keep], w)
        windows_for_nannyml.append(pd.DataFrame({"score": s, "pred": pred, "y": y}))
        t = time.perf_counter()
        full = {r.method: r for r in estimation.evaluate(store, window_full, fitted["clf-full"])}
        sampled = {r.method: r for r in estimation.evaluate(store, Window("clf-sampled", start, start + timedelta(hours=1)),
                                                             fitted["clf-sampled"])}
        evaluate_s = (time.perf_counter() - t) / 2
        flat = _unweighted(store, Window("clf-sampled", start, start + timedelta(hours=1)), fitted["clf-sampled"])
        rows.append({"shift": shift, "truth": truth, "full": full, "sampled": sampled, "flat": flat,
                     "kept": int(keep.sum()), "evaluate_s": evaluate_s})
    # concept shift: the same features as the reference, labels from a changed relation
    start = T0 + timedelta(hours=args.windows + 1)
    x = classifier_features(rng, args.window_rows)
    s = model.predict_proba(model_inputs(x))[:, 1]
    pred = (s >= 0.5).astype(int)
    y = (rng.random(x.shape[0]) < true_p(x, concept=True)).astype(int)
    loader.window("clf-concept", start, {"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2]}, {}, pred, s, y, np.ones(len(y)))
    concept = {r.method: r for r in estimation.evaluate(store, Window("clf-concept", start, start + timedelta(hours=1)),
                                                         fitted["clf-concept"])}
    return {"rows": rows, "fit_s": fit_s, "concept": concept, "reference": frame, "windows": windows_for_nannyml,
            "estimator": fitted["clf-full"]}


def regressor(store: Store, loader: Loader, args: argparse.Namespace, rng: np.random.Generator) -> dict:
    x0, x1, region, mean, y = regression_rows(rng, args.reference_rows)
    frame = pd.DataFrame({"x0": x0, "x1": x1, "region": region, "pred": mean, "y": y})
    t = time.perf_counter()
    fitted = {}
    for name in ("reg-full", "reg-sampled"):
        base = baselines.from_frame(frame, name, "1", prediction="pred", exclude=["y"])
        baselines.save(store, base)
        est = estimator.fit(estimation_data.reference_from_frame(frame, label="y", prediction="pred"), name, "1", base.id)
        estimator.save(store, est)
        fitted[name] = est
    fit_s = (time.perf_counter() - t) / 2
    rows = []
    for k, shift in enumerate(np.linspace(-1.0, 1.0, args.windows)):
        x0, x1, region, mean, y = regression_rows(rng, args.window_rows, shift)
        truth = {"mae": float(np.abs(mean - y).mean()), "rmse": float(np.sqrt(((mean - y) ** 2).mean()))}
        start = T0 + timedelta(hours=k)
        num, cat = {"x0": x0, "x1": x1}, {"region": region}
        loader.window("reg-full", start, num, cat, mean.astype(float), None, y.astype(float), np.ones(len(y)))
        keep, w = tail_sample(rng, np.abs(x0) > 1.5)
        loader.window("reg-sampled", start, {k2: v[keep] for k2, v in num.items()}, {"region": region[keep]},
                      mean[keep].astype(float), None, y[keep].astype(float), w)
        full = {r.method: r for r in estimation.evaluate(store, Window("reg-full", start, start + timedelta(hours=1)),
                                                          fitted["reg-full"])}
        sampled = {r.method: r for r in estimation.evaluate(store, Window("reg-sampled", start, start + timedelta(hours=1)),
                                                             fitted["reg-sampled"])}
        flat = _unweighted(store, Window("reg-sampled", start, start + timedelta(hours=1)), fitted["reg-sampled"])
        rows.append({"shift": shift, "truth": truth, "full": full, "sampled": sampled, "flat": flat, "kept": int(keep.sum())})
    return {"rows": rows, "fit_s": fit_s}


# -- NannyML ------------------------------------------------------------------------------------------------

NANNYML_SCRIPT = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd, nannyml as nml
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2]); size = int(sys.argv[3])
cbpe = nml.CBPE(y_pred_proba="score", y_pred="pred", y_true="y", problem_type="classification_binary",
                metrics=["roc_auc", "accuracy"], chunk_size=size)
cbpe.fit(ref)
res = cbpe.estimate(cur).filter(period="analysis").to_df()
print(json.dumps({"version": nml.__version__,
                  "accuracy": res[("accuracy", "value")].tolist(), "roc_auc": res[("roc_auc", "value")].tolist()}))
"""


def nannyml(args: argparse.Namespace, clf: dict, tmp: str) -> dict | str:
    py = args.nannyml_python
    if not os.path.exists(py) or subprocess.run([py, "-c", "import nannyml"], capture_output=True).returncode != 0:
        return f"not installed in {py} (see the module docstring); skipped"
    ref = clf["reference"][["score", "pred", "y"]]
    ref_path, cur_path = os.path.join(tmp, "nml_ref.parquet"), os.path.join(tmp, "nml_cur.parquet")
    ref.to_parquet(ref_path)
    pd.concat(clf["windows"], ignore_index=True).to_parquet(cur_path)
    done = subprocess.run([py, "-c", NANNYML_SCRIPT, ref_path, cur_path, str(args.window_rows)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        return "failed: " + done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the printout ---------------------------------------------------------------------------------------------


def _summary(rows: list[dict], metric: str, mode: str, relative: bool = False) -> dict:
    errors, covered = [], []
    for r in rows:
        truth = r["truth"][metric]
        value = r[mode][metric] if mode == "flat" else r[mode][metric].statistic
        errors.append((value - truth) / truth if relative else value - truth)
        if mode != "flat":
            d = r[mode][metric].details
            covered.append(d["lower"] <= truth <= d["upper"])
    e = np.asarray(errors)
    return {"mean": float(np.abs(e).mean()), "max": float(np.abs(e).max()), "bias": float(e.mean()),
            "coverage": float(np.mean(covered)) if covered else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--window-rows", type=int, default=5000)
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nannyml-python", default="/tmp/venv-nannyml/bin/python")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"chdb://{tmp}/store", database="bench")
        schema.apply(store)
        loader = Loader(store)
        clf = classifier(store, loader, args, rng)
        reg = regressor(store, loader, args, rng)
        nml = nannyml(args, clf, tmp)

    print(f"performance estimation: {args.windows} windows of {args.window_rows:,} predictions, covariate shift, "
          f"reference {args.reference_rows:,} labelled rows, seed {args.seed}")
    kept = np.mean([r["kept"] for r in clf["rows"]])
    print(f"classifier: estimator fitted in {clf['fit_s']:.2f} s; a window estimated in "
          f"{np.mean([r['evaluate_s'] for r in clf['rows']]) * 1000:.0f} ms; tail sampling keeps {kept:,.0f} of "
          f"{args.window_rows:,} per window")
    print(f"\n  {'metric':<10} {'traffic':<24} {'mean err':>9} {'mean |err|':>10} {'max |err|':>10} {'interval covers':>16}  target")
    checks = []
    for metric, limit, relative, block in (("accuracy", 0.02, False, clf), ("roc_auc", 0.02, False, clf),
                                           ("mae", 0.10, True, reg), ("rmse", 0.10, True, reg)):
        for mode, label in (("full", "full"), ("sampled", "tail-sampled, weighted"), ("flat", "tail-sampled, unweighted")):
            s = _summary(block["rows"], metric, mode, relative)
            fmt = (lambda v: f"{v:.1%}") if relative else (lambda v: f"{v:.4f}")
            cov = f"{s['coverage']:.0%}" if s["coverage"] is not None else "-"
            target = f"max <= {limit:.0%}" if relative else f"max <= {limit}"
            if mode == "flat":
                target = "visibly off"
                passed = s["mean"] > limit
            else:
                passed = s["max"] <= limit and s["coverage"] >= 0.9
                target += ", covers >= 90%"
            checks.append(passed)
            bias = f"{s['bias']:+.1%}" if relative else f"{s['bias']:+.4f}"
            print(f"  {metric:<10} {label:<24} {bias:>9} {fmt(s['mean']):>10} {fmt(s['max']):>10} {cov:>16}  {target}"
                  f" {'ok' if passed else 'MISSED'}")
    c = clf["concept"]
    print(f"\nconcept shift (labels from a changed relation, features as in the reference): estimated accuracy "
          f"{c['accuracy'].statistic:.3f} (reference band from {c['accuracy'].details['reference_lower']:.3f}), "
          f"realized {c['accuracy'].details['realized']:.3f}: estimation cannot see it, the labels do")
    checks.append(abs(c["accuracy"].details["realized"] - c["accuracy"].statistic) > 0.05)
    if isinstance(nml, dict):
        ours = {m: [r["full"][m].statistic for r in clf["rows"]] for m in ("accuracy", "roc_auc")}
        print(f"\nNannyML {nml['version']} CBPE, same reference and unsampled windows (chunks of {args.window_rows:,}):")
        for m in ("accuracy", "roc_auc"):
            theirs = np.asarray(nml[m][:len(ours[m])])
            d = np.abs(np.asarray(ours[m]) - theirs)
            truth = np.asarray([r["truth"][m] for r in clf["rows"]])
            passed = bool(d.max() <= 0.01)
            checks.append(passed)
            print(f"  {m:<10} |modelwatch - NannyML| mean {d.mean():.4f}, max {d.max():.4f}  target max <= 0.01 "
                  f"{'ok' if passed else 'MISSED'}; against the truth: modelwatch mean |err| "
                  f"{np.abs(np.asarray(ours[m]) - truth).mean():.4f}, NannyML {np.abs(theirs - truth).mean():.4f}")
    else:
        print(f"\nNannyML: {nml}")
    ok = all(checks)
    print("\nall targets met" if ok else "\nTARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
