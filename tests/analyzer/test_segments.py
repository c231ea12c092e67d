"""Segments: a drift planted in one segment is found there and nowhere else, with one BH family across segments."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import analyze, results
from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis.segments import KIND, SegmentSettings
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.cli import command as cli
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.outputs.metrics import metric_points
from modelwatch_analyzer.report import html
from modelwatch_analyzer.service.config import ModelConfig

REGIONS = ["north", "south", "east", "west"]
PODS = ["pod-a", "pod-b", "pod-c"]


def _rows(rng, n, north_income=1.0, pod_b_age=0.0):
    region = rng.choice(REGIONS, n, p=[0.4, 0.3, 0.2, 0.1])  # unequal segments: a region differs from the mean
    pod = rng.choice(PODS, n)
    income = rng.lognormal(10.8, 0.4, n) * np.where(region == "south", 1.3, 1.0) * np.where(region == "north", north_income, 1.0)
    age = rng.normal(40, 10, n) + np.where(pod == "pod-b", pod_b_age, 0.0)
    return ({"income": income, "age": age, "tenure": rng.exponential(3.0, n)},
            {"region": region, "plan": rng.choice(["a", "b", "c"], n)}, {"service.instance.id": pod})


def _window(store, rng, hours, n, prefix, **shift):
    num, cat, res = _rows(rng, n, **shift)
    start = T0 + timedelta(hours=hours)
    insert(store, "seg", start, numeric=num, categorical=cat, resource=res, id_prefix=prefix)
    return Window("seg", start, start + timedelta(hours=1))


def _segment_verdicts(rows):
    return {(r.segment, r.feature): r for r in rows if r.segment and r.kind == "drift" and r.details.get("score")}


BY_REGION = analyze.Settings(segments=SegmentSettings(["region"]))
BY_POD = analyze.Settings(segments=SegmentSettings(["service.instance.id"]))


def test_a_drift_in_one_region_is_found_in_that_region_only(store):
    rng = np.random.default_rng(0)
    base = baselines.from_window(store, _window(store, rng, 0, 12_000, "r"), "1")
    baselines.save(store, base)
    window = _window(store, rng, 3, 8000, "c", north_income=0.75)
    rows = analyze.run(store, window, BY_REGION)

    verdicts = _segment_verdicts(rows)
    drifted = {k for k, r in verdicts.items() if r.drifted}
    assert drifted == {("region=north", "income")}, drifted
    # every segment analysed against its own reference: south's higher incomes are not drift
    assert {s for s, _f in verdicts} == {f"region={r}" for r in REGIONS}
    assert verdicts["region=south", "income"].drifted is False
    summary = next(r for r in rows if r.method == "segment_drift")
    assert summary.details["concentrated"] == ["income drifted in region=north only (1 of 4 region segments)"]
    assert summary.statistic == pytest.approx(1 / 4) and summary.drifted
    assert all(r.baseline_id.startswith(base.id + ".") for r in verdicts.values())  # each against its segment's reference
    north = verdicts["region=north", "income"]
    assert north.details["trace_ids"]  # drill-down: the segment's own predictions

    # one Benjamini-Hochberg family over every segment's tests (scipy's BH as the oracle)
    tests = [r for r in rows if r.segment and r.kind == "drift" and r.method in ("ks", "chi_square") and r.status == "ok"]
    expected = sps.false_discovery_control([r.pvalue for r in tests], method="bh")
    assert [r.details["adjusted_pvalue"] for r in tests] == pytest.approx(expected, rel=1e-9)

    # stored apart from the population's, which they do not replace; metrics carry the segment
    population = results.load(store, "seg")
    assert population and not any(r.segment for r in population)
    stored = results.load(store, "seg", segments=True)
    assert {r.segment for r in stored} >= {"region=north", "region=west", ""}
    points = [p for p in metric_points([north]) if p.name == "ml.drift.score"]
    assert points[0].attributes["ml.segment"] == "region=north"
    page = html.render(store, ["seg"])
    assert 'id="m0-segments"' in page and "income drifted in region=north only (1 of 4 region segments)" in page


def test_a_pod_whose_inputs_broke_is_named_by_its_resource_attribute(store):
    rng = np.random.default_rng(1)
    baselines.save(store, baselines.from_window(store, _window(store, rng, 0, 12_000, "r"), "1"))
    rows = analyze.run(store, _window(store, rng, 3, 8000, "c", pod_b_age=8.0), BY_POD)
    drifted = {k for k, r in _segment_verdicts(rows).items() if r.drifted}
    assert ("service.instance.id=pod-b", "age") in drifted
    assert not {k for k in drifted if k[0] in ("service.instance.id=pod-a", "service.instance.id=pod-c")}
    summary = next(r for r in rows if r.method == "segment_drift")
    assert "age drifted in service.instance.id=pod-b only (1 of 3 service.instance.id segments)" in summary.details["concentrated"]


def test_clean_segments_do_not_multiply_false_alarms(store):
    """Twelve clean segments x four features over five windows: no drift verdict anywhere."""
    rng = np.random.default_rng(2)

    def rows(n):
        shop = rng.choice([f"s{i:02d}" for i in range(12)], n)
        return {"x": rng.normal(size=n), "y": rng.exponential(size=n) + (shop == "s03")}, {"shop": shop, "c": rng.choice(["u", "v"], n)}

    num, cat = rows(24_000)
    insert(store, "clean", T0, numeric=num, categorical=cat, id_prefix="r")
    baselines.save(store, baselines.from_window(store, Window("clean", T0, T0 + timedelta(hours=1)), "1"))
    settings = analyze.Settings(segments=SegmentSettings(["shop"]))
    flagged = []
    for k in range(5):
        start = T0 + timedelta(hours=2 + k)
        num, cat = rows(6000)
        insert(store, "clean", start, numeric=num, categorical=cat, id_prefix=f"c{k}")
        out = analyze.run(store, Window("clean", start, start + timedelta(hours=1)), settings, save=False)
        flagged += [(k, s, f) for (s, f), r in _segment_verdicts(out).items() if r.drifted]
        assert sum(len(v) for v in next(r for r in out if r.method == "segment_drift").details["segments"].values()) == 12
    assert flagged == []


def test_small_and_new_segments_are_reported_not_dropped(store):
    rng = np.random.default_rng(3)
    baselines.save(store, baselines.from_window(store, _window(store, rng, 0, 6000, "r"), "1"))
    num, cat, res = _rows(rng, 3000)
    cat["region"] = np.where(rng.random(3000) < 0.2, "central", cat["region"])  # a region the reference never saw
    cat["region"][:20] = "islands"  # and one with a handful of predictions
    start = T0 + timedelta(hours=3)
    insert(store, "seg", start, numeric=num, categorical=cat, resource=res, id_prefix="c")
    rows = analyze.run(store, Window("seg", start, start + timedelta(hours=1)),
                       analyze.Settings(segments=SegmentSettings(["region", "k8s.pod.name"])))
    left = {r.segment: r.details["reason"] for r in rows if r.kind == KIND and r.status == "insufficient_data"
            and r.method == KIND}
    assert "a new segment" in left["region=central"]
    assert "effective observations (< 100)" in left["region=islands"]
    assert "resource attribute 'k8s.pod.name'" in left["k8s.pod.name="]


def test_a_file_baseline_builds_feature_segments_with_it_and_the_cli_prints_where(store_dir, tmp_path, capsys):
    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.store.client import Store

    store = Store(f"chdb://{store_dir}")
    schema.apply(store)
    rng = np.random.default_rng(4)
    num, cat, _res = _rows(rng, 12_000)
    pd.DataFrame({**num, **cat}).to_parquet(tmp_path / "train.parquet")
    url = ["--url", f"chdb://{store_dir}"]
    assert cli.main(["baseline", "create", *url, "--model", "seg-cli", "--version", "1", "--file",
                     str(tmp_path / "train.parquet"), "--segment", "region"]) == 0
    assert "segments: the reference of 4 segment(s) of region" in capsys.readouterr().out
    num, cat, res = _rows(rng, 8000, north_income=0.75)
    insert(store, "seg-cli", T0, numeric=num, categorical=cat, resource=res)
    assert [b[2] for b in baselines.list_baselines(store, "seg-cli")] == [baselines.load(store, "seg-cli").id]  # segments hidden
    config = tmp_path / "mw.toml"
    config.write_text('[[models]]\nname = "seg-cli"\nsegments = ["region", "service.instance.id"]\n')
    window = ["--since", T0.strftime("%Y-%m-%dT%H:%M:%S"), "--until", (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")]
    assert cli.main(["analyze", *url, "--model", "seg-cli", "--config", str(config), *window]) == 0
    text = capsys.readouterr().out
    assert "SEGMENT DRIFT in 25% of 4 segments: income drifted in region=north only (1 of 4 region segments)" in text
    assert "has no resource attributes" in text  # pods: a file has none, said so


def test_segment_config_is_checked():
    assert ModelConfig.from_dict({"name": "m", "segments": ["region"]}, "m").settings.segments.keys == ["region"]
    cfg = ModelConfig.from_dict({"name": "m", "segments": {"keys": ["a"], "max_values": 5, "min_samples": 50}}, "m")
    assert (cfg.settings.segments.max_values, cfg.settings.segments.min_samples) == (5, 50)
    with pytest.raises(ConfigError, match="segments.keys"):
        ModelConfig.from_dict({"name": "m", "segments": {"keys": ["a", "a"]}}, "m")
    with pytest.raises(ConfigError, match="segments"):
        ModelConfig.from_dict({"name": "m", "segments": {"key": ["a"]}}, "m")
