"""``modelwatch baseline`` / ``analyze`` / ``analyzer`` as a script sees them: output, JSON, exit codes, errors."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import baseline, scan
from modelwatch_analyzer.cli import command as cli
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.service import config
from modelwatch_analyzer.store import schema
from modelwatch_analyzer.store.client import Store

ISO = "%Y-%m-%dT%H:%M:%S"


@pytest.fixture
def default_db(store_dir):
    """The CLI's default database in the session's chDB directory (models are unique per test)."""
    st = Store(f"chdb://{store_dir}")
    schema.apply(st)
    return st


def _fill(st, model, shift=0.8):
    rng = np.random.default_rng(0)
    insert(st, model, T0, {"age": rng.normal(40, 10, 3000), "income": rng.lognormal(10, 1, 3000)},
           {"plan": rng.choice(["basic", "pro"], 3000)}, score=rng.uniform(size=3000),
           prediction=list(rng.choice(["approve", "review"], 3000)))
    insert(st, model, T0 + timedelta(hours=2), {"age": rng.normal(40 + 10 * shift, 10, 3000),
                                               "income": rng.lognormal(10, 1, 3000)},
           {"plan": rng.choice(["basic", "pro"], 3000)}, score=rng.uniform(size=3000),
           prediction=list(rng.choice(["approve", "review"], 3000)), id_prefix="c")


def test_baseline_then_analyze_text_json_and_exit_codes(default_db, store_dir, capsys):
    _fill(default_db, "credit")
    url = f"chdb://{store_dir}"
    ref = ["--since", T0.strftime(ISO), "--until", (T0 + timedelta(hours=1)).strftime(ISO)]
    cur = ["--since", (T0 + timedelta(hours=2)).strftime(ISO), "--until", (T0 + timedelta(hours=3)).strftime(ISO)]
    assert cli.main(["baseline", "create", "--url", url, "--model", "credit", "--version", "1", *ref]) == 0
    out = capsys.readouterr().out
    assert "for credit version 1: 5 columns (3 numeric, 2 categorical), 3,000 reference rows" in out
    assert cli.main(["baseline", "list", "--url", url, "--model", "credit"]) == 0
    assert "credit" in capsys.readouterr().out

    assert cli.main(["analyze", "--url", url, "--model", "credit", *cur]) == 0
    text = capsys.readouterr().out
    assert "DRIFT: 1 of 3 features drifted" in text and "! age" in text and "e.g. traces" in text
    assert "performance: not enough labels yet" in text

    assert cli.main(["analyze", "--url", url, "--model", "credit", *cur, "--format", "json", "--fail-on-drift"]) == 3
    rows = json.loads(capsys.readouterr().out)
    keys = {"model", "version", "feature", "method", "statistic", "pvalue", "threshold", "drifted", "severity",
            "n_reference", "n_current"}
    assert rows and all(keys <= set(r) for r in rows)
    age_psi = next(r for r in rows if r["feature"] == "age" and r["method"] == "psi")
    assert age_psi["drifted"] is True and age_psi["severity"] == "critical" and age_psi["n_current"] == 3000

    # no drift: exit 0 even with --fail-on-drift
    assert cli.main(["analyze", "--url", url, "--model", "credit", *ref, "--fail-on-drift", "--no-save"]) == 0

    # a numeric sample: features from a ~1,000-row sample of the 1,500 rows of a half hour (not kept before),
    # said in the text and in every numeric row
    half = ["--since", (T0 + timedelta(hours=2, minutes=30)).strftime(ISO), "--until", (T0 + timedelta(hours=3)).strftime(ISO)]
    rate = scan.sample_rate(1500, 1000)
    assert cli.main(["analyze", "--url", url, "--model", "credit", *half, "--no-save", "--numeric-sample-rows", "1000"]) == 0
    text = capsys.readouterr().out
    assert f"numeric features read from a uniform {rate:.1%} sample" in text and "! age" in text
    assert cli.main(["analyze", "--url", url, "--model", "credit", *half, "--no-save", "--numeric-sample-rows", "1000",
                     "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["details"].get("sample_rate") == rate for r in rows if r["feature"] in ("age", "income"))
    assert not any("sample_rate" in r["details"] for r in rows if r["feature"] == "plan")
    assert cli.main(["analyze", "--url", url, "--model", "credit", *cur, "--numeric-sample-rows", "-5"]) == 2


def test_baseline_from_a_file_and_clear_errors(default_db, store_dir, tmp_path, capsys):
    url = f"chdb://{store_dir}"
    rng = np.random.default_rng(1)
    path = tmp_path / "train.csv"
    pd.DataFrame({"age": rng.normal(40, 10, 500), "plan": rng.choice(["basic", "pro"], 500),
                  "proba": rng.uniform(size=500), "id": np.arange(500)}).to_csv(path, index=False)
    assert cli.main(["baseline", "create", "--url", url, "--model", "filed", "--version", "2", "--file", str(path),
                     "--score", "proba", "--exclude", "id"]) == 0
    assert "3 columns (2 numeric, 1 categorical)" in capsys.readouterr().out
    b = baseline.load(default_db, "filed", "2")
    assert set(b.features) == {"age", "plan", "prediction.score"}

    # the errors say what to do next, with exit codes a script can use
    assert cli.main(["analyze", "--url", url, "--model", "nobody", "--last", "24h"]) == 1
    assert "modelwatch baseline create --model nobody" in capsys.readouterr().err
    assert cli.main(["analyze", "--url", url, "--model", "filed", "--since", "yesterday-ish"]) == 2
    assert "neither an ISO time" in capsys.readouterr().err
    assert cli.main(["analyze", "--url", url, "--model", "filed"]) == 2
    assert "which window?" in capsys.readouterr().err
    assert cli.main(["baseline", "create", "--url", url, "--model", "x", "--version", "1",
                     "--file", str(tmp_path / "nope.parquet")]) == 1
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models]]\nname = "filed"\nthresholds = { psi = "high" }\n')
    assert cli.main(["analyze", "--url", url, "--model", "filed", "--last", "1h", "--config", str(bad)]) == 2
    assert "models[0].thresholds.psi: expected a number" in capsys.readouterr().err


def test_config_validation_names_the_place():
    good = config.Config.from_dict({
        "schedule": {"every_minutes": 15, "window_hours": 6},
        "models": [{"name": "m", "categorical": ["zip"], "thresholds": {"psi": 0.2}, "bands": {"psi": [0.2, 0.3, 0.4]},
                    "features": {"income": {"thresholds": {"psi": 0.5}}}, "quality": {"out_of_range": 0.1}}],
        "alerts": {"cooldown_seconds": 60}, "detectors": [{"detector": "cusum", "threshold": 1.0}]})
    m = good.model("m")
    assert m.settings.drift.rule("income", "psi").threshold == 0.5
    assert m.settings.drift.rule("age", "psi").threshold == 0.2
    assert m.settings.drift.rule("age", "psi").bands == (0.2, 0.3, 0.4)
    assert m.settings.drift.categorical == ("zip",) and m.settings.quality.out_of_range == 0.1
    assert good.model("other").name == "other"  # unlisted models get the defaults
    assert good.model("m").settings.numeric_sample_rows == 0
    assert config.Config.from_dict({"models": [{"name": "m", "numeric_sample_rows": 2_000_000}]}).model("m").settings.numeric_sample_rows \
        == 2_000_000
    for bad, message in [
        ({"modles": []}, "unknown key(s) modles"),
        ({"models": [{"version": "1"}]}, "models[0].name"),
        ({"models": [{"name": "m", "bands": {"psi": [0.3, 0.2, 0.1]}}]}, "three increasing numbers"),
        ({"models": [{"name": "m", "score": "ks"}]}, "models[0].score: 'ks' is not one of"),
        ({"models": [{"name": "m"}, {"name": "m"}]}, "listed twice"),
        ({"schedule": {"every_minutes": -1}}, "schedule.every_minutes: must be >= 0.1"),
        ({"detectors": [{"detector": "magic"}]}, "detectors[0].detector"),
        ({"models": [{"name": "m", "numeric_sample_rows": -1}]}, "models[0].numeric_sample_rows: must be >= 0"),
    ]:
        with pytest.raises(ConfigError, match=__import__("re").escape(message)):
            config.Config.from_dict(bad)
