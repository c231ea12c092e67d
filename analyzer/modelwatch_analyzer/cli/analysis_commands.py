"""``modelwatch baseline``, ``analyze`` and ``analyzer``: the analyzer's commands (parsing lives in cli.py).

``baseline list`` and ``analyze`` open the store without creating it (a
chDB directory holding no store is an error; ``baseline create`` and the
service create theirs). Names from the store are printed through
:func:`.textsafe.escape`.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from modelwatch_analyzer.analysis import anomalies, baseline, completeness, estimation_data, estimator, multivariate, results, segments
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result
from modelwatch_analyzer.analysis.window import Window, parse_time
from modelwatch_analyzer.errors import BaselineError, ConfigError
from modelwatch_analyzer.service import config as configuration
from modelwatch_analyzer.service.scheduler import AnalyzerService, analyse_model
from modelwatch_analyzer.store.client import Store
from modelwatch_analyzer.textsafe import escape as e

DRIFT_EXIT = 3

def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(args: Any) -> int:
    if args.command == "baseline":
        return _baseline(args)
    if args.command == "analyze":
        return _analyze(args)
    return _service(args)


# -- baseline ----------------------------------------------------------------------------


def _baseline(args: Any) -> int:
    from modelwatch_analyzer.store import schema

    if args.action == "list":  # read-only: no store, no schema created
        store = Store(args.url, create=False)
        rows = baseline.list_baselines(store, args.model) if "ml_baselines" in store.tables() else []
        if not rows:
            print("no baselines yet: modelwatch baseline create --model M --version V --file train.parquet")
            return 0
        print(f"{'model':<24} {'version':<10} {'baseline':<18} {'created (UTC)':<20} {'features':>8}  source")
        for model, version, bid, created, source, n in rows:
            print(f"{e(model):<24} {e(version):<10} {e(bid):<18} {created:%Y-%m-%d %H:%M:%S} {n:>8}  {e(source)}")
        return 0
    store = Store(args.url)
    schema.ensure(store)
    now = datetime.now(timezone.utc)
    if bool(args.file) == bool(args.since):
        raise ConfigError("baseline create: give either --file (training data) or --since/--until (stored predictions)")
    categorical = _split(args.categorical)
    if args.chunk_size < 1:
        raise ConfigError("--chunk-size: a number of rows, at least 1")
    if (args.probabilities or args.positive_label) and not (args.label or args.since):
        raise ConfigError("--probabilities and --positive-label are for the performance estimator: give --label")
    settings = estimator.EstimationSettings(chunk_size=args.chunk_size)
    if args.file:
        frame = baseline.read_frame(args.file)
        exclude = _split(args.exclude) + ([args.label] if args.label else [])
        exclude += [c for c in frame.columns if args.probabilities and str(c).startswith(args.probabilities)]
        b = baseline.from_frame(frame, args.model, args.version, categorical=categorical, weight=args.weight,
                                prediction=args.prediction, score=args.score, exclude=exclude, source=f"file:{Path(args.file).name}")
        labelled = estimation_data.reference_from_frame(
            frame, label=args.label, prediction=args.prediction, score=args.score, probabilities=args.probabilities,
            weight=args.weight, exclude=_split(args.exclude), categorical=categorical) if args.label else None
        mv = multivariate.fit_frame(frame, b, args.weight)

        def build(sub: Any, source: str) -> baseline.Baseline:
            return baseline.from_frame(sub, args.model, args.version, categorical=categorical, weight=args.weight,
                                       prediction=args.prediction, score=args.score, exclude=exclude, source=source)

        segment_refs = [ref for key in args.segment for ref in segments.from_frame(frame, b, key, build)]
    else:
        window = Window(args.model, parse_time(args.since, now, "--since"), parse_time(args.until, now, "--until"),
                        args.window_version)
        if window.end <= window.start:
            raise ConfigError("--since must be before --until")
        b = baseline.from_window(store, window, args.version, categorical=categorical)
        # the labelled rows are read apart: a sample of every row would keep few of them when labels are sparse
        labelled = estimation_data.reference_from_window(store, window, b, settings.max_rows)
        mv = multivariate.fit_window(store, window, b, settings.max_rows)
        segment_refs = []
        limit = segments.SegmentSettings().max_values
        for key in args.segment:
            for value, _w, _w2 in segments.values(store, window, key, segments.segment(b, key, "").resource, limit)[:limit]:
                ref, _why = segments.reference(store, b, segments.segment(b, key, value), save=False)
                segment_refs += [ref] if ref is not None else []
    fitted = None
    if labelled is not None and len(labelled) >= settings.min_effective:
        fitted = estimator.fit(labelled, b.model, b.version, b.id, settings, args.task, args.positive_label)
    elif args.label:
        raise BaselineError(f"{len(labelled) if labelled is not None else 0} labelled rows: too few to fit the "
                            f"performance estimator (at least {settings.min_effective:g})")
    baseline.save(store, b)
    for ref in segment_refs:
        baseline.save(store, ref)
    kinds = [f.kind for f in b.features.values()]
    print(f"baseline {e(b.id)} for {e(b.model)} version {e(b.version)}: {len(kinds)} columns "
          f"({kinds.count('numeric')} numeric, {kinds.count('categorical')} categorical), "
          f"{b.rows:,.0f} reference rows, from {e(b.source)}")
    if segment_refs:
        print(f"segments: the reference of {len(segment_refs)} segment(s) of {', '.join(e(k) for k in args.segment)}")
    if mv is not None:
        multivariate.save(store, mv)
        print(f"multivariate drift: PCA of {len(mv.numeric)} numeric features ({len(mv.components)} components, "
              f"{mv.explained:.0%} of the variance), domain classifier on {len(mv.features)} features"
              if mv.components else f"multivariate drift: domain classifier on {len(mv.features)} features")
    if fitted is not None:
        estimator.save(store, fitted)
        print(estimator.describe(fitted))
    elif args.since:
        print(f"no performance estimator: {len(labelled) if labelled is not None else 0} of the window's predictions "
              "have labels (record labels, or build from a labelled file with --label)")
    return 0


# -- analyze -----------------------------------------------------------------------------


def _analyze(args: Any) -> int:
    now = datetime.now(timezone.utc)
    if args.last and args.since:
        raise ConfigError("give --last or --since, not both")
    if not (args.last or args.since):
        raise ConfigError("which window? --last 24h, or --since T [--until T]")
    start = parse_time(args.last if args.last else args.since, now, "--last" if args.last else "--since")
    end = parse_time(args.until, now, "--until")
    if end <= start:
        raise ConfigError("the window is empty: --since must be before --until")
    cfg = configuration.load(args.config)
    model = cfg.model(args.model)
    if args.version:
        model.version = args.version
    if args.baseline:
        model.baseline = args.baseline
    if args.numeric_sample_rows is not None:
        if args.numeric_sample_rows < 0:
            raise ConfigError("--numeric-sample-rows: a number of rows, 0 for every row")
        model.settings.numeric_sample_rows = args.numeric_sample_rows
    store = Store(args.url, create=False)
    from modelwatch_analyzer.store import schema

    if not schema.version(store):
        raise BaselineError(f"no baseline for model {args.model!r}: the store {store.location} (database "
                            f"{store.database}) holds no modelwatch tables yet; create one with `modelwatch baseline "
                            f"create --model {args.model} --version V --file train.parquet`")
    schema.ensure(store)
    window = Window(args.model, start, end, model.version)
    alerter = None
    if args.alert:
        from modelwatch_analyzer.outputs.alerts.firing import Alerter

        alerter = Alerter(store, cfg.alerts)
    report = analyse_model(store, model, window, cfg, alerter=alerter, save=not args.no_save)
    rows = report.results
    if args.format == "json":
        json.dump([r.to_json() for r in rows], sys.stdout, indent=1)
        print()
    else:
        print(summary(rows, window, report.baseline))
    drifted = any(r.kind == "drift" and r.drifted and r.details.get("score") for r in rows)
    return DRIFT_EXIT if (args.fail_on_drift and drifted) else 0


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:.0e}"
    return f"{x:.{digits}f}"


def summary(rows: Sequence[Result], window: Window, base: baseline.Baseline | None = None) -> str:
    """The readable report of one analysis (names from the store escaped for the terminal)."""
    by_segment = [r for r in rows if r.segment or r.kind == segments.KIND]
    rows = [r for r in rows if not (r.segment or r.kind == segments.KIND)]
    gap = next((r for r in rows if r.method == completeness.METHOD and r.feature == completeness.FEATURE), None)
    gap_flagged = gap is not None and bool(gap.drifted)
    out = _verdict(rows, window, base, gap)
    out += _multivariate(rows)
    out += _feature_table(rows)
    out += _data_quality(rows, gap_flagged)
    out += _performance(rows)
    out += _estimated(rows)
    out += _segments(by_segment)
    out += [f"change detected by {r.method} on {e(r.feature)} (score {_fmt(r.details.get('score'))})"
            for r in rows if r.kind == "drift" and r.details.get("detector") and r.drifted]
    return "\n".join(out)


def _verdict(rows: Sequence[Result], window: Window, base: baseline.Baseline | None, gap: Result | None) -> list[str]:
    """The window, the baseline, a pipeline gap, and the drift verdict."""
    out = []
    version = f"version {e(window.version)}" if window.version else "all versions"
    out.append(f"{e(window.model)} ({version})  {window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M} UTC")
    if base is not None:
        out.append(f"baseline {e(base.id)} ({e(base.source)}, {base.created_at:%Y-%m-%d %H:%M}, {base.rows:,.0f} rows)")
    if gap is not None and gap.drifted:
        out.append(f"PIPELINE GAP: {e(completeness.describe(gap))}. The stored volume and every statistic below cover "
                   "only the predictions that arrived: this is not low traffic, and drift may be a biased sample.")
    s = next((r for r in rows if r.method == "drift_share"), None)
    if s is None or s.status == INSUFFICIENT:
        reason = s.details.get("reason") if s else "no summary"
        out.append(f"\nINSUFFICIENT DATA: {e(reason)}; no verdict.")
        return out
    drifted = s.details["drifted_features"]
    rows_n = s.details.get("rows", 0)
    out.append(f"{rows_n:,} stored predictions standing for {s.n_current:,.0f} "
               f"(effective sample {s.details.get('effective_rows', 0):,.0f})")
    if s.details.get("sample_rate"):
        out.append(f"numeric features read from a uniform {s.details['sample_rate']:.1%} sample of the scanned rows "
                   "(--numeric-sample-rows; categories and totals from every row)")
    verdict = "DRIFT" if drifted else "no drift"
    out.append(f"\n{verdict}: {len(drifted)} of {s.details['features']} features drifted "
               f"({s.statistic:.0%}); worst severity: {s.severity}")
    return out


def _multivariate(rows: Sequence[Result]) -> list[str]:
    """How the features move together: PCA reconstruction error and the domain classifier's AUC."""
    mv = {r.method: r for r in rows if r.feature == multivariate.FEATURE and r.kind == "drift"}
    out = _anomalies(next((r for r in rows if r.method == anomalies.METHOD), None))
    if not mv:
        return out
    parts = []
    for method, what in (("pca_reconstruction", "PCA reconstruction error"), ("domain_classifier", "domain classifier AUC")):
        r = mv.get(method)
        if r is None:
            continue
        if r.status == INSUFFICIENT:
            parts.append(f"{what}: insufficient data")
        else:
            edge = "reference band up to" if method == "pca_reconstruction" else "drift from"
            parts.append(f"{what} {_fmt(r.statistic)} ({edge} {_fmt(r.threshold)}){' ' + r.severity.upper() if r.drifted else ''}")
    drifted = any(r.drifted for r in mv.values())
    return [f"{'MULTIVARIATE DRIFT' if drifted else 'no multivariate drift'} (how the features move together): "
            + "; ".join(parts)] + out


def _anomalies(r: Result | None) -> list[str]:
    """The share of predictions made on inputs outside the reference, and the worst of them with their trace ids."""
    if r is None or r.status == INSUFFICIENT or r.statistic is None:
        return []
    d = r.details
    head = (f"{'ANOMALOUS PREDICTIONS' if r.drifted else 'anomalous predictions'}: {r.statistic:.2%} of the window "
            f"({d.get('anomalous_rows', 0):,} stored; the reference has {d.get('expected_share', 0):.2%} beyond the same "
            f"limits; flagged from {_fmt(r.threshold)})")
    out = [head]
    for t in d.get("top", [])[:3] if r.drifted else []:
        why = ", ".join(f"{e(f['feature'])} = {f['value']:.4g} (z {f['z']:+.1f})" for f in t.get("features", [])[:2])
        unseen = ", ".join(f"{e(k)} = {e(v)!r} (unseen)" for k, v in t.get("unseen_categories", {}).items())
        out.append(f"  trace {e(t['trace_id'])}  score {t['score']:.1f}: {'; '.join(x for x in (unseen, why) if x)}")
    return out


def _segments(rows: Sequence[Result]) -> list[str]:
    """Where drift concentrates among the segments, and the segments left out with why."""
    s = next((r for r in rows if r.method == "segment_drift"), None)
    if s is None:
        return []
    if s.status == INSUFFICIENT:
        return [f"segments: insufficient data ({e(s.details.get('reason', ''))})"]
    d = s.details
    analysed = sum(len(v) for v in d.get("segments", {}).values())
    head = (f"SEGMENT DRIFT in {s.statistic:.0%} of {analysed} segments" if s.drifted
            else f"no segment drift ({analysed} segments)")
    out = [head + (": " + "; ".join(e(x) for x in d.get("concentrated", [])) if s.drifted else "")]
    left = [r for r in rows if r.kind == segments.KIND and r.status == INSUFFICIENT and r.method == segments.KIND]
    if left:
        out.append("  not analysed: " + "; ".join(f"{e(r.segment)} ({e(r.details.get('reason', ''))})" for r in left[:8])
                   + (f"; and {len(left) - 8} more" if len(left) > 8 else ""))
    beyond = {k: n for k, n in d.get("beyond_max_values", {}).items() if n}
    if beyond:
        out.append("  beyond max_values (not analysed): " + ", ".join(f"{e(k)}: {n} more values" for k, n in beyond.items()))
    return out


def _score(methods: dict[str, Result]) -> Result | None:
    """A feature's headline drift result (the one its details mark as the score)."""
    return next((r for r in methods.values() if r.details.get("score")), None)


def _feature_table(rows: Sequence[Result]) -> list[str]:
    """One line per feature, worst first: score, method, severity, test p-value, W1, JS, n; example traces."""
    by: dict[str, dict[str, Result]] = {}
    for r in rows:
        if r.kind == "drift" and r.feature and r.feature != multivariate.FEATURE:
            by.setdefault(r.feature, {})[r.method] = r
    if not by:
        return []
    out = [f"\n  {'feature':<24} {'score':>8} {'method':<15} {'severity':<9} {'test p(adj)':>11} "
           f"{'W1/sd':>7} {'JS':>6} {'n current':>10}"]

    def order(item: tuple[str, dict[str, Result]]) -> tuple[int, float]:
        score = _score(item[1])
        return (-results.severity_rank(score.severity) if score else 1, -(score.statistic or 0) if score else 0)

    for feature, methods in sorted(by.items(), key=order):
        score = _score(methods)
        test = methods.get("ks") or methods.get("chi_square")
        if score is None or score.status == INSUFFICIENT:
            any_r = next(iter(methods.values()))
            out.append(f"  {e(feature):<24} {'-':>8} {'':<15} {'n/a':<9} insufficient data: "
                       f"{e(any_r.details.get('reason', ''))}")
            continue
        mark = "!" if score.drifted else " "
        out.append(f"{mark} {e(feature):<24} {_fmt(score.statistic):>8} {score.method:<15} {score.severity:<9} "
                   f"{_fmt(test.details.get('adjusted_pvalue') if test else None):>11} "
                   f"{_fmt(methods['wasserstein'].statistic) if 'wasserstein' in methods else '-':>7} "
                   f"{_fmt(methods['jensen_shannon'].statistic) if 'jensen_shannon' in methods else '-':>6} "
                   f"{score.n_current:>10,.0f}")
        if score.drifted and score.details.get("trace_ids"):
            where = score.details.get("evidence_category") or score.details.get("evidence_bin")
            out.append(f"    {'':<24} e.g. traces {e(', '.join(score.details['trace_ids'][:3]))} (in {e(where)})")
    return out


def _data_quality(rows: Sequence[Result], gap_flagged: bool) -> list[str]:
    flagged = [r for r in rows if r.kind == "data_quality" and r.drifted and r.feature != completeness.FEATURE]
    if not flagged:
        return ["\ndata quality: nothing " + ("else " if gap_flagged else "") + "above its ceiling"]
    out = ["\ndata quality:"]
    for r in flagged:
        extra = f" e.g. {e(r.details['examples'][:3])}" if r.details.get("examples") else ""
        if r.details.get("floor"):
            out.append(f"  {e(r.feature)}: {r.method}: spread {r.statistic:.1%} of the reference's (floor {r.threshold:.0%})")
            continue
        if r.method == "stuck_output":
            extra = f" on {e(r.details.get('value'))} (reference {r.details.get('reference_share', 0):.1%})"
        out.append(f"  {e(r.feature)}: {r.method} {r.statistic:.1%} (ceiling {r.threshold:.1%}){extra}")
    return out


def _performance(rows: Sequence[Result]) -> list[str]:
    perf = {r.method: r for r in rows if r.kind == "performance"}
    if not perf:
        return []
    cov = perf.get("label_coverage")
    metrics = [f"{m} {_fmt(r.statistic)}" for m, r in perf.items() if m != "label_coverage" and r.status == "ok"]
    if metrics:
        return [f"performance (labels for {cov.statistic:.0%} of predictions): " + ", ".join(metrics)
                if cov and cov.statistic is not None else "performance: " + ", ".join(metrics)]
    reason = next((r.details.get("reason") for r in perf.values() if r.status == INSUFFICIENT), "no labels")
    return [f"performance: not enough labels yet ({e(reason)})"]


def _estimated(rows: Sequence[Result]) -> list[str]:
    """Label-free estimates: value, interval, the reference band, and the realized value once labels arrived."""
    est = [r for r in rows if r.kind == "estimated_performance"]
    if not est:
        return []
    if est[0].status == INSUFFICIENT:
        return [f"estimated performance: insufficient data ({e(est[0].details.get('reason', ''))})"]
    d0 = est[0].details
    out = [f"\nestimated performance ({d0.get('task')}, {d0.get('confidence', 0.95):.0%} interval, weighted; "
           f"reference band ±{d0.get('threshold_std', 3):g} sd of its chunks):"]
    for r in est:
        d = r.details
        band = f"[{_fmt(d.get('reference_lower'))}, {_fmt(d.get('reference_upper'))}]"
        real = (f"realized {_fmt(d['realized'])} (error {d['error']:+.3f}, labels {d.get('label_coverage', 0):.0%})"
                if "realized" in d else "no labels yet")
        flag = "DEGRADED" if r.drifted else "ok"
        out.append(f"  {'!' if r.drifted else ' '} {r.method:<12} {_fmt(r.statistic):>7} ({_fmt(d.get('lower'))}.."
                   f"{_fmt(d.get('upper'))})  reference {band:<17} {flag:<9} {real}")
    return out


# -- the service -------------------------------------------------------------------------


def _service(args: Any) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = configuration.load(args.config)
    store = Store(args.url)
    from modelwatch_analyzer.store import schema

    schema.ensure(store)
    emitter = None
    if cfg.emit:
        from modelwatch_analyzer.outputs.metrics import Emitter

        emitter = Emitter()
    service = AnalyzerService(store, cfg, emitter)
    try:
        if args.once:
            failed = 0
            for report in service.run_once():
                status = report.error or "ok"
                print(f"{e(report.model)} {report.window.start:%Y-%m-%d %H:%M}..{report.window.end:%H:%M}: {e(status)}")
                failed += report.error is not None
            return 1 if failed else 0
        print(f"modelwatch analyzer: every {cfg.schedule.every_minutes:g} min over the last "
              f"{cfg.schedule.window_hours:g} h; store {store.location}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        service.start(args.poll_seconds)
        while not stop.wait(0.5):
            pass
        service.stop()
        return 0
    finally:
        if emitter is not None:
            emitter.shutdown()
        store.close()
