"""Label-free performance estimation: calibration, CBPE, the loss model, and the whole path through a real store.

Oracles: scikit-learn's metrics on the same arrays (realized definitions),
the labels actually drawn (estimates), numpy for the trees' predictions.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from analyzer_data import T0, insert, insert_labels
from modelwatch_analyzer.analysis import analyze, calibration, cbpe, estimation, estimation_data, estimator, loss_model
from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.errors import BaselineError
from sklearn import metrics


def _binary(rng: np.random.Generator, n: int, shift: float = 0.0, miscalibrate: bool = False):
    """Features, calibrated P(y=1), drawn labels, the model's score (p, or p² when miscalibrated), predictions."""
    x = rng.normal(shift, 1.0, (n, 2))
    p = 1 / (1 + np.exp(-(0.3 + 1.6 * x[:, 0] - 0.9 * x[:, 1])))
    y = (rng.random(n) < p).astype(int)
    score = p ** 2 if miscalibrate else p
    return x, p, y, score, (score >= 0.5).astype(int)


def _labelled(score, y, pred, w=None) -> estimator.Labelled:
    n = len(y)
    w = np.ones(n) if w is None else w
    return estimator.Labelled(w, np.array([str(v) for v in pred], object), np.array([str(v) for v in y], object),
                              pd.to_numeric(pd.Series(pred), errors="coerce").to_numpy(float),
                              pd.to_numeric(pd.Series(y), errors="coerce").to_numpy(float), np.asarray(score, float))


# -- calibration -------------------------------------------------------------------------


def test_calibration_fixes_miscalibrated_scores_and_leaves_calibrated_ones_alone():
    rng = np.random.default_rng(1)
    _x, p, y, score, _ = _binary(rng, 20_000, miscalibrate=True)
    cal = calibration.fit(score, y == 1)
    assert not cal.identity and cal.ece_calibrated < cal.ece_raw / 3
    fixed = cal.apply(score)
    assert calibration.ece(fixed, y.astype(float), np.ones_like(fixed)) < 0.02
    assert np.abs(fixed - p).mean() < 0.03
    same = calibration.fit(p, y == 1)
    assert same.identity and np.array_equal(same.apply(p), p)
    again = calibration.Calibration.from_json(cal.to_json())
    assert np.array_equal(again.apply(score), fixed)


def test_calibrated_rows_sum_to_one():
    rng = np.random.default_rng(2)
    raw = rng.dirichlet(np.ones(4), 500)
    cals = [calibration.Calibration((0.0, 1.0), (0.1, 0.7))] * 4
    out = calibration.calibrate_rows(raw, cals)
    assert np.allclose(out.sum(axis=1), 1.0) and (out >= 0).all()


# -- CBPE against realized metrics -------------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 4])
def test_realized_definitions_match_sklearn_with_weights(seed):
    """With one-hot "probabilities" (the labels), CBPE's metric functions are the realized metrics: scikit-learn's."""
    rng = np.random.default_rng(seed)
    _x, _p, y, score, pred = _binary(rng, 3000)
    w = rng.choice([1.0, 10.0], 3000)
    est = estimator.Estimator("m", "1", "b", estimator.BINARY, ["0", "1"], [calibration.Calibration()])
    got = estimator.realized(_labelled(score, y, pred, w), est)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred, sample_weight=w), abs=1e-12)
    assert got["precision"] == pytest.approx(metrics.precision_score(y, pred, sample_weight=w), abs=1e-12)
    assert got["recall"] == pytest.approx(metrics.recall_score(y, pred, sample_weight=w), abs=1e-12)
    assert got["f1"] == pytest.approx(metrics.f1_score(y, pred, sample_weight=w), abs=1e-12)
    assert got["specificity"] == pytest.approx(metrics.recall_score(1 - y, 1 - pred, sample_weight=w), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, score, sample_weight=w), abs=1e-12)


def test_multiclass_realized_is_macro_one_vs_rest_as_sklearn():
    rng = np.random.default_rng(5)
    n, k = 4000, 3
    probs = rng.dirichlet(np.ones(k) * 0.7, n)
    y = np.array([rng.choice(k, p=row) for row in probs])
    pred = probs.argmax(axis=1)
    classes = ["a", "b", "c"]
    data = estimator.Labelled(np.ones(n), np.array([classes[i] for i in pred], object),
                              np.array([classes[i] for i in y], object), np.full(n, np.nan), np.full(n, np.nan), None,
                              {c: probs[:, i] for i, c in enumerate(classes)})
    est = estimator.Estimator("m", "1", "b", estimator.MULTICLASS, classes, [calibration.Calibration()] * k)
    got = estimator.realized(data, est)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred), abs=1e-12)
    for name, fn in (("precision", metrics.precision_score), ("recall", metrics.recall_score), ("f1", metrics.f1_score)):
        assert got[name] == pytest.approx(fn(y, pred, average="macro"), abs=1e-12), name
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-9)


def test_estimates_from_calibrated_scores_track_the_labels_and_their_errors_are_honest():
    """Over 40 seeded windows of 2,000, |estimate − realized| / standard error behaves like a standard normal."""
    z = {m: [] for m in cbpe.BINARY_METRICS}
    est = estimator.Estimator("m", "1", "b", estimator.BINARY, ["0", "1"], [calibration.Calibration()])
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        _x, _p, y, score, pred = _binary(rng, 2000, shift=rng.uniform(-0.8, 0.8))
        data = _labelled(score, y, pred)
        real = estimator.realized(data, est)
        for e in estimation.estimates(data, est)[0]:
            z[e.metric].append((e.value - real[e.metric]) / e.se)
    for metric, values in z.items():
        v = np.asarray(values)
        assert np.mean(np.abs(v) < 1.96) >= 0.85, (metric, v)
        assert abs(v.mean()) < 0.6 and 0.6 < v.std() < 1.5, (metric, v.mean(), v.std())


def test_weights_remove_the_bias_of_tail_sampling():
    """Uncertain predictions always kept, 10% of the rest (weight 10): weighted estimates match the full population's
    realized accuracy and AUC, unweighted ones do not."""
    rng = np.random.default_rng(7)
    _x, _p, y, score, pred = _binary(rng, 50_000)
    est = estimator.Estimator("m", "1", "b", estimator.BINARY, ["0", "1"], [calibration.Calibration()])
    truth = estimator.realized(_labelled(score, y, pred), est)
    uncertain = np.abs(2 * score - 1) < 0.5
    keep = uncertain | (rng.random(y.size) < 0.1)
    w = np.where(uncertain, 1.0, 10.0)[keep]
    weighted = {e.metric: e for e in estimation.estimates(_labelled(score[keep], y[keep], pred[keep], w), est)[0]}
    flat = {e.metric: e for e in estimation.estimates(_labelled(score[keep], y[keep], pred[keep]), est)[0]}
    for metric in ("accuracy", "roc_auc"):
        assert abs(weighted[metric].value - truth[metric]) < max(0.015, 3 * weighted[metric].se), metric
        assert abs(flat[metric].value - truth[metric]) > 0.05, metric


# -- the loss model ----------------------------------------------------------------------------


def test_trees_predict_what_scikit_learn_predicts():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(8)
    x = rng.normal(size=(3000, 4))
    x[:, 3] = rng.integers(-1, 5, 3000)
    target = np.abs(x[:, 0]) + 0.5 * (x[:, 3] == 2) + rng.normal(0, 0.1, 3000)
    model = HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=15, early_stopping=False, random_state=0)
    model.fit(x, target)
    trees = loss_model.copy_trees(model)
    fresh = rng.normal(size=(2000, 4))
    fresh[:, 3] = rng.integers(-1, 7, 2000)
    assert np.allclose(trees.predict(fresh), model.predict(fresh), rtol=0, atol=1e-9)
    again = loss_model.Trees.from_json(trees.to_json())
    assert np.array_equal(again.predict(fresh), trees.predict(fresh))


def _regression(rng: np.random.Generator, n: int, shift: float = 0.0):
    x = rng.normal(shift, 1.0, n)
    region = rng.choice(["north", "south"], n)
    noise = (0.3 + 0.8 * np.abs(x) + 0.5 * (region == "south")) * rng.normal(size=n)
    y = 2.0 * x + noise
    return x, region, 2.0 * x, y


def test_loss_model_estimates_mae_and_rmse_under_covariate_shift():
    rng = np.random.default_rng(9)
    x, region, pred, y = _regression(rng, 20_000)
    ref = estimator.Labelled(np.ones(x.size), pred.astype(str).astype(object), y.astype(str).astype(object), pred, y,
                             columns={"x": x, "region": region.astype(object)}, numeric={"x": True, "region": False})
    est = estimator.fit(ref, "m", "1", "b")
    assert est.task == estimator.REGRESSION
    x2, region2, pred2, y2 = _regression(rng, 5000, shift=1.0)  # larger |x|: larger errors
    cur = estimator.Labelled(np.ones(x2.size), pred2.astype(object), y2.astype(object), pred2, y2,
                             columns={"x": x2, "region": region2.astype(object)}, numeric={"x": True, "region": False})
    found = {e.metric: e for e in estimation.estimates(cur, est)[0]}
    real_mae = np.abs(pred2 - y2).mean()
    real_rmse = np.sqrt(((pred2 - y2) ** 2).mean())
    assert abs(found["mae"].value - real_mae) / real_mae < 0.08
    assert abs(found["rmse"].value - real_rmse) / real_rmse < 0.08
    assert found["mae"].value > est.reference["mae"]["mean"] + 3 * est.reference["mae"]["std"]


# -- fitting and storage -----------------------------------------------------------------------------


def test_infer_task_names_what_it_needs():
    rng = np.random.default_rng(10)
    _x, _p, y, score, pred = _binary(rng, 500)
    no_score = _labelled(score, y, pred)
    no_score.score = None
    with pytest.raises(BaselineError, match="needs its scores"):
        estimator.infer_task(no_score)
    odd = _labelled(score, np.where(y == 1, "spam", "ham"), np.where(pred == 1, "spam", "ham"))
    with pytest.raises(BaselineError, match="positive_label"):
        estimator.infer_task(odd)
    assert estimator.infer_task(odd, positive_label="spam") == (estimator.BINARY, ["ham", "spam"])


def test_estimator_round_trips_through_the_store(store):
    rng = np.random.default_rng(11)
    _x, _p, y, score, pred = _binary(rng, 8000, miscalibrate=True)
    est = estimator.fit(_labelled(score, y, pred), "m", "1", "base1")
    estimator.save(store, est)
    back = estimator.load(store, "m", "base1")
    assert back is not None and back.to_json() == est.to_json()
    assert estimator.load(store, "m", "other") is None
    assert "recalibrated" in estimator.describe(est)


def test_window_estimates_with_realized_next_to_them_through_the_store(store):
    """A calibrated binary model, tail-sampled, stored; the estimate is within its band of what the labels show."""
    rng = np.random.default_rng(12)
    x, _p, y, score, pred = _binary(rng, 20_000, miscalibrate=True)
    frame = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "score": score, "pred": pred, "y": y})
    ref = estimation_data.reference_from_frame(frame, label="y", prediction="pred", score="score")
    base = baselines.from_frame(frame, "m", "1", prediction="pred", score="score", exclude=["y"])
    baselines.save(store, base)
    estimator.save(store, estimator.fit(ref, "m", "1", base.id))

    x, _p, y, score, pred = _binary(rng, 30_000, shift=0.7, miscalibrate=True)
    uncertain = np.abs(2 * score - 1) < 0.6
    keep = uncertain | (rng.random(y.size) < 0.1)
    w = np.where(uncertain, 1.0, 10.0)[keep]
    ids = insert(store, "m", T0, numeric={"x0": x[keep, 0], "x1": x[keep, 1]}, score=score[keep],
                 prediction=[str(v) for v in pred[keep]], weights=w)
    window = Window("m", T0, T0 + timedelta(hours=1))
    rows = analyze.run(store, window, baseline=base, save=True)
    by = {r.method: r for r in rows if r.kind == estimation.KIND}
    truth = metrics.accuracy_score(y, pred)
    acc = by["accuracy"]
    assert abs(acc.statistic - truth) < 0.02 and acc.details["lower"] < truth < acc.details["upper"]
    assert "realized" not in acc.details and acc.details["label_coverage"] == 0
    assert acc.details["calibrated"] and acc.details["effective_n"] < keep.sum()

    insert_labels(store, "m", ids, [str(v) for v in y[keep]], T0 + timedelta(hours=2))
    rows = analyze.run(store, window, baseline=base, save=True)
    acc = next(r for r in rows if r.kind == estimation.KIND and r.method == "accuracy")
    realized_acc = next(r for r in rows if r.kind == "performance" and r.method == "accuracy").statistic
    assert acc.details["realized"] == pytest.approx(realized_acc, abs=1e-9)
    assert acc.details["error"] == pytest.approx(acc.statistic - realized_acc)
    assert acc.details["label_coverage"] == pytest.approx(1.0)

    from modelwatch_analyzer.report import html

    page = html.render(store, ["m"])
    assert "Estimated before the labels, and realized once they arrived" in page
    assert "accuracy: estimated vs realized" in page and f"{acc.details['realized']:.3f}" in page


def test_multiclass_window_reads_per_class_probabilities(store):
    rng = np.random.default_rng(13)
    classes = ["cat", "dog", "eel"]

    def draw(n, bias):
        logits = rng.normal(size=(n, 3)) * 1.5 + np.array(bias)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = np.array([rng.choice(3, p=row) for row in probs])
        return probs, y, probs.argmax(axis=1)

    probs, y, pred = draw(15_000, [0, 0, 0])
    frame = pd.DataFrame({**{f"p_{c}": probs[:, i] for i, c in enumerate(classes)},
                          "pred": [classes[i] for i in pred], "y": [classes[i] for i in y]})
    ref = estimation_data.reference_from_frame(frame, label="y", prediction="pred", probabilities="p_")
    est = estimator.fit(ref, "mc", "1", "b")
    assert est.task == estimator.MULTICLASS and est.classes == classes
    probs, y, pred = draw(6000, [1.0, 0, -1.0])
    insert(store, "mc", T0, prediction=[classes[i] for i in pred],
           probabilities={c: probs[:, i] for i, c in enumerate(classes)})
    rows = estimation.evaluate(store, Window("mc", T0, T0 + timedelta(hours=1)), est)
    acc = next(r for r in rows if r.method == "accuracy")
    assert abs(acc.statistic - metrics.accuracy_score(y, pred)) < 0.025
    auc = next(r for r in rows if r.method == "roc_auc")
    assert abs(auc.statistic - metrics.roc_auc_score(y, probs, multi_class="ovr")) < 0.025


def test_few_predictions_are_insufficient_not_an_estimate(store):
    rng = np.random.default_rng(14)
    _x, _p, y, score, pred = _binary(rng, 5000)
    est = estimator.fit(_labelled(score, y, pred), "m", "1", "b")
    insert(store, "m", T0, numeric={"x": np.zeros(10)}, score=score[:10], prediction=[str(v) for v in pred[:10]])
    rows = estimation.evaluate(store, Window("m", T0, T0 + timedelta(hours=1)), est)
    assert len(rows) == 1 and rows[0].status == "insufficient_data" and "effective" in rows[0].details["reason"]


# -- the scheduled analyzer, alerts, metrics, the CLI ---------------------------------------------------------


def _fitted_baseline(store, model="m", seed=20):
    rng = np.random.default_rng(seed)
    x, _p, y, score, pred = _binary(rng, 20_000)
    frame = pd.DataFrame({"x0": x[:, 0], "score": score, "pred": pred, "y": y})
    base = baselines.from_frame(frame, model, "1", prediction="pred", score="score", exclude=["y"])
    baselines.save(store, base)
    estimator.save(store, estimator.fit(estimation_data.reference_from_frame(frame, label="y", prediction="pred",
                                                                             score="score"), model, "1", base.id))
    return base


def test_late_labels_reconcile_earlier_estimates_once(store):
    from modelwatch_analyzer.service.config import Config, ModelConfig
    from modelwatch_analyzer.service.scheduler import AnalyzerService, reconcile

    _fitted_baseline(store)
    rng = np.random.default_rng(21)
    x, _p, y, score, pred = _binary(rng, 4000, shift=-0.5)
    ids = insert(store, "m", T0, numeric={"x0": x[:, 0]}, score=score, prediction=[str(v) for v in pred])
    cfg = Config(models=[ModelConfig("m")])
    cfg.schedule.every_minutes, cfg.schedule.window_hours = 60, 1
    service = AnalyzerService(store, cfg)
    service.run_once(end=T0 + timedelta(hours=1))
    assert reconcile(store, cfg.models[0], T0 + timedelta(hours=5), cfg) == []  # no labels yet: nothing to redo

    insert_labels(store, "m", ids[:3000], [str(v) for v in y[:3000]], T0 + timedelta(hours=3))
    redone = reconcile(store, cfg.models[0], T0 + timedelta(hours=5), cfg)
    acc = next(r for r in redone if r.method == "accuracy")
    assert acc.window_start == T0 and acc.details["label_coverage"] == pytest.approx(0.75)
    assert acc.details["realized"] == pytest.approx(metrics.accuracy_score(y[:3000], pred[:3000]))
    stored = [r for r in results_of(store, "m") if r.kind == estimation.KIND and r.method == "accuracy"]
    assert len(stored) == 1 and stored[0].details["realized"] == pytest.approx(acc.details["realized"])
    assert reconcile(store, cfg.models[0], T0 + timedelta(hours=5), cfg) == []  # the same labels: done


def results_of(store, model):
    from modelwatch_analyzer.analysis import results

    return results.load(store, model)


def test_estimated_performance_alert_rules_and_metric_points():
    from modelwatch_analyzer.analysis.results import Result
    from modelwatch_analyzer.errors import ConfigError
    from modelwatch_analyzer.outputs.alerts.payload import describe
    from modelwatch_analyzer.outputs.alerts.rules import Rule
    from modelwatch_analyzer.outputs.metrics import metric_points

    r = Result("m", "1", None, "accuracy", estimation.KIND, 0.81, threshold=0.84, drifted=True, severity="warning",
               details={"lower": 0.79, "upper": 0.83})
    band = Rule.from_dict({"name": "est", "type": "estimated_performance", "metric": "accuracy"})
    floor = Rule.from_dict({"name": "floor", "type": "estimated_performance", "metric": "accuracy", "min": 0.8,
                            "severity": "critical"})
    assert band.match(r) == "warning" and floor.match(r) is None
    assert "past the reference band's edge 0.84" in describe(band, r) and "no labels yet" in describe(band, r)
    mae = Result("m", "1", None, "mae", estimation.KIND, 3.2, threshold=2.5, drifted=True)
    assert Rule.from_dict({"name": "x", "type": "estimated_performance", "metric": "mae", "max": 3.0}).match(mae)
    with pytest.raises(ConfigError, match="min"):
        Rule.from_dict({"name": "x", "type": "estimated_performance", "metric": "mae", "max": 3.0, "min": 1.0})
    names = {p.name: p.value for p in metric_points([r])}
    assert names["ml.performance.estimated.accuracy"] == 0.81 and names["ml.performance.estimated.accuracy.lower"] == 0.79
    assert names["ml.performance.estimated.accuracy.threshold"] == 0.84 and names["ml.performance.degraded"] == 1.0


def test_estimation_config_is_validated():
    from modelwatch_analyzer.errors import ConfigError
    from modelwatch_analyzer.service.config import Config

    cfg = Config.from_dict({"models": [{"name": "m", "estimation": {"confidence": 0.9, "threshold_std": 2}}],
                            "schedule": {"label_lookback_hours": 48}})
    assert cfg.models[0].settings.estimation.confidence == 0.9 and cfg.schedule.label_lookback_hours == 48
    with pytest.raises(ConfigError, match="estimation"):
        Config.from_dict({"models": [{"name": "m", "estimation": {"chunks": 3}}]})


def test_cli_builds_the_estimator_from_a_labelled_file_and_analyze_prints_estimates(store_dir, tmp_path, capsys):
    from modelwatch_analyzer.cli import command as cli
    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.store.client import Store

    st = Store(f"chdb://{store_dir}")
    schema.apply(st)
    rng = np.random.default_rng(22)
    x, _p, y, score, pred = _binary(rng, 12_000, miscalibrate=True)
    path = tmp_path / "valid.csv"
    pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "proba": score, "label": pred, "y": y}).to_csv(path, index=False)
    url = f"chdb://{store_dir}"
    assert cli.main(["baseline", "create", "--url", url, "--model", "est-cli", "--version", "1", "--file", str(path),
                     "--score", "proba", "--prediction", "label", "--label", "y"]) == 0
    out = capsys.readouterr().out
    assert "4 columns" in out and "performance estimator: binary (positive class '1'), scores recalibrated" in out
    x, _p, y, score, pred = _binary(rng, 3000, shift=0.5, miscalibrate=True)
    insert(st, "est-cli", T0, numeric={"x0": x[:, 0], "x1": x[:, 1]}, score=score, prediction=[str(v) for v in pred])
    window = ["--since", T0.strftime("%Y-%m-%dT%H:%M:%S"), "--until", (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")]
    assert cli.main(["analyze", "--url", url, "--model", "est-cli", *window]) == 0
    text = capsys.readouterr().out
    assert "estimated performance (binary, 95% interval" in text and "accuracy" in text and "no labels yet" in text
    capsys.readouterr()
    assert cli.main(["baseline", "create", "--url", url, "--model", "est-cli", "--version", "1", "--file", str(path),
                     "--score", "proba", "--prediction", "label", "--label", "nope"]) != 0
    assert "label column 'nope' not in the data" in capsys.readouterr().err


def test_baseline_from_a_labelled_window_fits_the_estimator(store_dir, capsys):
    from modelwatch_analyzer.cli import command as cli
    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.store.client import Store

    st = Store(f"chdb://{store_dir}")
    schema.apply(st)
    rng = np.random.default_rng(23)
    x, _p, y, score, pred = _binary(rng, 6000)
    ids = insert(st, "est-window", T0, numeric={"x0": x[:, 0]}, score=score, prediction=[str(v) for v in pred])
    insert_labels(st, "est-window", ids[:5000], [str(v) for v in y[:5000]], T0 + timedelta(hours=2))
    url = f"chdb://{store_dir}"
    since = ["--since", T0.strftime("%Y-%m-%dT%H:%M:%S"), "--until", (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")]
    assert cli.main(["baseline", "create", "--url", url, "--model", "est-window", "--version", "1", *since]) == 0
    out = capsys.readouterr().out
    assert "performance estimator: binary (positive class '1')" in out and "5,000 labelled rows" in out
    bid = out.split("baseline ")[1].split()[0]
    est = estimator.load(st, "est-window", bid)
    assert est is not None and est.rows == 5000
    band = est.reference["accuracy"]
    assert abs(band["mean"] - metrics.accuracy_score(y[:5000], pred[:5000])) < 0.01
    insert(st, "no-labels", T0, numeric={"x0": x[:, 0]}, score=score, prediction=[str(v) for v in pred])
    assert cli.main(["baseline", "create", "--url", url, "--model", "no-labels", "--version", "1", *since]) == 0
    assert "no performance estimator: 0 of the window's predictions have labels" in capsys.readouterr().out


def test_a_window_beyond_max_rows_is_read_as_a_weighted_hash_sample(store):
    rng = np.random.default_rng(24)
    _x, _p, y, score, pred = _binary(rng, 9000)
    est = estimator.fit(_labelled(score, y, pred), "m", "1", "b")
    _x, _p, y, score, pred = _binary(rng, 12_000, shift=0.4)
    insert(store, "m", T0, numeric={"x": np.zeros(12_000)}, score=score, prediction=[str(v) for v in pred])
    window = Window("m", T0, T0 + timedelta(hours=1))
    full = {r.method: r for r in estimation.evaluate(store, window, est)}
    part = {r.method: r for r in estimation.evaluate(store, window, est, estimator.EstimationSettings(max_rows=4000))}
    assert full["accuracy"].details["sample_rate"] == 1 and part["accuracy"].details["sample_rate"] == pytest.approx(1 / 3)
    assert 3000 < part["accuracy"].details["rows"] < 5000
    assert part["accuracy"].n_current == pytest.approx(12_000, rel=0.05)  # weights scaled by the sampling
    assert part["accuracy"].details["standard_error"] > full["accuracy"].details["standard_error"]
    assert abs(part["accuracy"].statistic - full["accuracy"].statistic) < 3 * part["accuracy"].details["standard_error"]
