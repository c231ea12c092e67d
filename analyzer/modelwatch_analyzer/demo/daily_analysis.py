"""The demo's monitoring: a baseline from day 1, then each later day analysed, with alerts fired and delivered.

The analyzer runs as the scheduled analyzer would
(:func:`modelwatch_analyzer.service.scheduler.analyse_model`), with the
demo's configuration (:func:`demo_config`): drift, an accuracy floor and a
missing-values rule, routed to the local webhook, and a retrain trigger on
critical drift. Alerts fire at the simulated end of each day. Feature names
printed from the store pass through :func:`modelwatch_analyzer.textsafe.escape`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from modelwatch_analyzer.analysis import baseline, estimation_data, estimator, multivariate
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.demo.traffic import Day
from modelwatch_analyzer.demo.world import MODEL, VERSION
from modelwatch_analyzer.outputs.alerts.firing import Alerter
from modelwatch_analyzer.service import config
from modelwatch_analyzer.service.scheduler import analyse_model
from modelwatch_analyzer.store.client import Store
from modelwatch_analyzer.textsafe import escape as e


class DayAnalysis(NamedTuple):
    """One analysed day: its number (1-based), the analyzer's results, the alerts that fired."""

    day: int
    results: list[Any]
    fired: list[Any]


def demo_config(webhook: str) -> config.Config:
    """The analyzer and alert configuration of the demo's model, delivering to `webhook`."""
    return config.Config.from_dict({
        "models": [{"name": MODEL, "version": VERSION}],
        "alerts": {
            "cooldown_seconds": 7 * 86400,  # the same alert at most once a week; a worsening fires
            "rules": [
                {"name": "drift", "type": "drift", "min_severity": "warning"},
                {"name": "accuracy-floor", "type": "performance", "metric": "accuracy", "min": 0.72,
                 "severity": "critical"},
                {"name": "missing-values", "type": "data_quality", "metric": "missing_rate"},
            ],
            "routes": [{"name": "demo-webhook", "url": f"{webhook}/alerts"}],
            "retrain": {"url": f"{webhook}/retrain", "min_severity": "critical"},
        },
        "emit": {"enabled": False},
    })


def analyse_days(say: Callable[[str], None], store: Store, days: list[Day], webhook: str) -> list[DayAnalysis]:
    """Save day 1 as the baseline, then analyse days 2.. against it, printing one line a day."""
    say("\nanalysing")
    ref = baseline.from_window(store, Window(MODEL, days[0][0], days[0][1], VERSION), VERSION)
    baseline.save(store, ref)
    say(f"  baseline {ref.id} from day 1 ({ref.rows:,.0f} predictions, weighted; {len(ref.features)} columns)")
    mv = multivariate.fit_window(store, Window(MODEL, days[0][0], days[0][1], VERSION), ref)
    if mv is not None:
        multivariate.save(store, mv)
    labelled = estimation_data.reference_from_window(store, Window(MODEL, days[0][0], days[0][1], VERSION), ref,
                                                     estimator.EstimationSettings().max_rows)
    if len(labelled) >= estimator.EstimationSettings().min_effective:
        fitted = estimator.fit(labelled, MODEL, VERSION, ref.id, estimator.EstimationSettings(chunk_size=500))
        estimator.save(store, fitted)
        say(f"  {estimator.describe(fitted)}")
    cfg = demo_config(webhook)
    alerter = Alerter(store, cfg.alerts)
    model_cfg = cfg.model(MODEL)
    per_day: list[DayAnalysis] = []
    for d, (start, end) in enumerate(days[1:], start=2):
        rep = analyse_model(store, model_cfg, Window(MODEL, start, end, VERSION), cfg, alerter=None)
        fired = alerter.process(rep.results, now=end)  # alerts fire at the simulated end of the day
        per_day.append(DayAnalysis(d, rep.results, fired))
        say(_day_line(per_day[-1]))
    return per_day


def _day_line(a: DayAnalysis) -> str:
    """``day 3: 3 feature(s) drifted (...); accuracy 67.3%; 8 alert(s)``."""
    s = next((r for r in a.results if r.method == "drift_share"), None)
    acc_r = next((r for r in a.results if r.kind == "performance" and r.method == "accuracy"), None)
    est_r = next((r for r in a.results if r.kind == "estimated_performance" and r.method == "accuracy"), None)
    drifted_f = s.details.get("drifted_features", []) if s is not None else []
    return (f"  day {a.day}: {len(drifted_f)} feature(s) drifted"
            + (f" ({e(', '.join(drifted_f))})" if drifted_f else "")
            + (f"; accuracy {acc_r.statistic:.1%}" if acc_r is not None and acc_r.statistic is not None
               else "; accuracy: no labels yet")
            + (f"; estimated before labels {est_r.statistic:.1%}" if est_r is not None and est_r.statistic is not None
               else "")
            + (f"; {len(a.fired)} alert(s)" if a.fired else ""))
