"""``modelwatch demo --quick``: the whole product end to end, in-process, on the session's embedded store."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

from modelwatch import pipeline
from modelwatch_analyzer.cli import command as cli
from modelwatch_analyzer.report import status
from modelwatch_analyzer.store.client import Store

_db = itertools.count()


def test_the_demo_streams_simulated_days_detects_the_drift_alerts_and_writes_the_report(store_dir, tmp_path, capsys):
    """SDK → OTLP → receiver → baseline → daily analyses → delivered alerts with traces → report, as it prints."""
    assert pipeline.current() is None
    database = f"demo{next(_db)}"
    out = tmp_path / "demo.html"
    started = time.monotonic()
    code = cli.main(["demo", "--quick", "--url", f"chdb://{store_dir}", "--database", database, "--out", str(out)])
    elapsed = time.monotonic() - started
    text = capsys.readouterr().out
    assert code == 0, text
    assert pipeline.current() is None  # the SDK was shut down again
    assert elapsed < 60, f"the quick demo took {elapsed:.0f} s"
    # progress and the story: 5 days, drift from day 3, late labels
    assert all(f"day {d}/5" in text for d in range(1, 6))
    summary = text.split("\nsummary\n", 1)[1]
    drifted = summary.split("stable:", 1)[0]
    for feature in ("income", "region", "debt_ratio"):
        assert feature in drifted, summary
    assert "'central' (new)" in drifted  # the new region, named
    stable = summary.split("stable:", 1)[1].split("\n", 1)[0]
    # the features the story leaves alone: BH keeps the false discovery rate at 5% per day, so one of them
    # may be flagged by chance on some run (the spans kept vary with the random trace ids), never two
    untouched = ("age", "credit_lines", "home_ownership", "loan_amount", "loan_purpose")
    assert sum(f not in stable for f in untouched) <= 1, summary
    assert "stuck_output" not in summary  # the model's approvals shifted a little; it is not stuck
    assert "before the event" in summary and "d5 n/a" in summary  # the last day has no labels yet
    before, after = summary.split("before the event ", 1)[1].split(", after ", 1)
    assert float(after.split("%")[0]) < float(before.split("%")[0]) - 5  # accuracy fell
    assert "employment_years missing_rate" in summary
    assert "all delivered to the local webhook: True" in summary and "sampled predictions behind it:" in summary
    assert str(out) in text and "modelwatch status --url" in text and "modelwatch report --url" in text

    store = Store(f"chdb://{store_dir}", database=database)
    try:
        # simulated time reached the store: predictions spread over five days, labels a day late
        first, last, n = store.query(f"SELECT min(Timestamp), max(Timestamp), count() FROM {store.table('ml_predictions')}")[0]
        assert last - first > timedelta(days=4, hours=12)
        labels = store.query(f"SELECT count() FROM {store.table('ml_labels')}")[0][0]
        assert labels > 0.5 * 4 * 600
        # the alert's trace ids are stored prediction spans
        ids = store.query(f"SELECT arrayJoin(JSONExtract(Message, 'trace_ids', 'Array(String)')) FROM "
                          f"{store.table('ml_alerts')} FINAL WHERE Rule = 'drift'")
        assert ids
        found = store.query(f"SELECT uniqExact(TraceId) FROM {store.table('otel_traces')} WHERE SpanName = 'ml.predict' "
                            "AND TraceId IN {ids:Array(String)}", {"ids": [i[0] for i in ids]})[0][0]
        assert found == len({i[0] for i in ids})
        # the SDK's full-population counter arrived: every prediction made is counted, sampled or not
        c = status.cost(store)
        assert c.models[0].seen_source == "metrics" and c.models[0].seen == 5 * 600
        assert c.models[0].stored == n < 5 * 600
    finally:
        store.close()
    page = out.read_text(encoding="utf-8")
    assert page.count("<div class=\"chart\"") >= 15 and "credit-risk" in page


def test_demo_ui_serves_the_demo_store_until_stopped(store_dir):
    """``modelwatch demo --ui``: after the story, the web UI on the demo's store, its address printed."""
    import re
    import threading
    import urllib.request

    from modelwatch_analyzer.demo.run import DemoOptions, run

    seen: dict[str, object] = {}

    def fetch(url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                seen["overview"] = (r.status, r.read().decode())
            with urllib.request.urlopen(url + "model/credit-risk", timeout=60) as r:
                seen["model"] = (r.status, r.read().decode())
        finally:
            options.ui_stop.set()

    def say(line: str) -> None:
        found = re.search(r"web UI on (http://127\.0\.0\.1:\d+/)", line)
        if found:
            seen["printed"] = line
            threading.Thread(target=fetch, args=(found.group(1),), daemon=True).start()

    options = DemoOptions(url=f"chdb://{store_dir}", database=f"demo{next(_db)}", days=5, per_day=600, drift_day=3,
                          sampling_rate=0.3, out=str(store_dir / "demo-ui.html"), ui=True, ui_port=0, print=say)
    assert run(options) == 0
    assert "read-only; Ctrl-C to stop" in str(seen["printed"])
    status, page = seen["overview"]  # type: ignore[misc]
    assert status == 200 and 'href="/model/credit-risk"' in page
    status, page = seen["model"]  # type: ignore[misc]
    assert status == 200 and "Drift over time" in page and "Alerts" in page
