"""``modelwatch report``: one self-contained HTML file, checked in a real headless browser (Debian's chromium).

The screenshot is kept in the test's tmp dir (path printed with ``-s``), and copied to
``$MODELWATCH_TEST_ARTIFACTS`` when that is set.
"""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from analyzer_data import HOSTILE_CATEGORY, HOSTILE_FEATURE, HOSTILE_MODEL, T0, analysed_hostile
from modelwatch_analyzer.cli import command as cli
from modelwatch_analyzer.report import html as report


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser: Debian's chromium is not installed (apt-get install -y chromium)")


def _browse(page: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """The DOM chromium built from `page`, and every console message it logged (errors, CSP violations)."""
    exe = _chromium()
    base = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
            "--enable-logging=stderr", "--v=0", "--window-size=1280,2400"]
    done = subprocess.run(base + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot is not None:
        shot = subprocess.run(base + [f"--screenshot={screenshot}", page.resolve().as_uri()], capture_output=True,
                              text=True, timeout=120)
        assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
        console += [line for line in shot.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    return p


@pytest.fixture
def analysed(store):
    return analysed_hostile(store)


def test_the_report_renders_in_a_real_browser_with_plots_and_no_console_errors(analysed, tmp_path):
    """chromium renders the report offline: every section, the SVG plots, and not one console message."""
    out = report.write(analysed, tmp_path / "report.html")
    page = out.read_text(encoding="utf-8")
    shot = tmp_path / "report.png"
    dom, console = _browse(out, shot)
    keep = os.environ.get("MODELWATCH_TEST_ARTIFACTS")  # pytest prunes old tmp dirs: copy the artifact out if asked
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shot = Path(shutil.copy(shot, Path(keep) / "report.png"))
        shutil.copy(out, Path(keep) / "report.html")
    print(f"\nreport screenshot: {shot}")
    assert console == [], console  # the inlined scripts ran under the CSP: not one violation or error
    tags = _parse(dom)
    drawn = [a for t, a in tags.tags if t == "div" and a.get("data-drawn") == "true"]
    # per feature (2 numeric + region + 2 outputs): a distribution and a history; + performance, coverage, volume x2
    assert len(drawn) >= 5 * 2 + 4, len(drawn)
    assert sum(1 for t, _ in tags.tags if t == "canvas") == len(drawn)  # uPlot drew each one
    assert len(drawn) == page.count('<div class="chart"')
    for anchor in ("-features", "-quality", "-performance", "-volume", "-alerts", "-evidence"):
        assert f'id="m0{anchor}"' in page
    assert "accuracy" in dom and "label coverage" in dom and "Monitoring cost" in dom
    # self-contained: nothing to fetch, and the CSP forbids trying
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "default-src 'none'" in page
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', page).group(1)
    script_src = csp.split("script-src", 1)[1]
    assert script_src.count("'sha256-") == 2 and "unsafe" not in script_src  # the two inlined files, by hash


def test_hostile_names_stay_text(analysed, tmp_path):
    """Model, feature and category names from the data are escaped: no element, attribute or script comes from them."""
    out = report.write(analysed, tmp_path / "report.html")
    page = out.read_text(encoding="utf-8")
    tags = _parse(page)
    assert [t for t, _ in tags.tags if t in ("img", "iframe", "object")] == []
    scripts = [a for t, a in tags.tags if t == "script"]
    # the two chart files (allowed by hash), and chart data that never runs: nothing from the data
    assert sum(1 for a in scripts if not a) == 2
    assert all(a == {} or (a.get("type") == "application/json" and re.fullmatch(r"chart-\d+", a.get("id") or ""))
               for a in scripts)
    assert not any(k.startswith("on") for _, attrs in tags.tags for k in attrs)
    text = "".join(tags.text)
    assert HOSTILE_MODEL in text and HOSTILE_FEATURE in text  # shown, as text
    assert HOSTILE_CATEGORY in text  # the unseen category, named in the distribution plot
    dom, console = _browse(out)
    assert console == []
    body = _parse(dom.split("<body", 1)[1])  # after the scripts ran: still no element from the data
    assert all(a.get("type") == "application/json" for t, a in body.tags if t == "script")
    assert [t for t, _ in body.tags if t in ("img", "iframe", "object")] == []


def test_drifted_features_link_to_the_sampled_predictions_behind_them(analysed, tmp_path):
    """A drifted feature's trace ids are links to rows of the report's evidence table, which holds stored predictions."""
    page = report.write(analysed, tmp_path / "report.html").read_text(encoding="utf-8")
    links = set(re.findall(r'href="#(m0-t-[0-9a-f]{32})"', page))
    rows = set(re.findall(r'<tr id="(m0-t-[0-9a-f]{32})"', page))
    assert links and links <= rows
    stored = {r[0] for r in analysed.query(f"SELECT TraceId FROM {analysed.table('ml_predictions')}")}
    assert {x[len("m0-t-"):] for x in rows} <= stored
    # the alerts table links too
    alerts = page.split('id="m0-alerts"', 1)[1].split('id="m0-evidence"', 1)[0]
    assert "critical" in alerts and re.search(r'href="#m0-t-[0-9a-f]{32}"', alerts)


def test_the_console_check_catches_errors(tmp_path):
    """The browser check is not vacuous: a page with a script error and a blocked fetch produces console lines."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                   "'none'; script-src 'unsafe-inline'\"></head><body><img src=\"http://example.invalid/x.png\">"
                   "<script>notDefined()</script></body></html>")
    _dom, console = _browse(bad)
    assert any("notDefined" in c for c in console) and any("example.invalid" in c for c in console)


def test_report_command_ranges_models_and_errors(analysed, tmp_path, capsys):
    """The CLI writes the file for a range and a model, and fails clearly (exit 1, 2) on what it cannot do."""
    url, db = f"chdb://{Path(analysed.location)}", analysed.database
    out = tmp_path / "r.html"
    since = (T0 + timedelta(hours=3)).isoformat()
    assert cli.main(["report", "--url", url, "--database", db, "--out", str(out), "--since", since,
                     "--trace-url", "http://jaeger:16686/trace/{trace_id}"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "report written" in capsys.readouterr().out
    assert "http://jaeger:16686/trace/" in page
    assert "3 window(s)" in page  # windows ending at T0+4h, +5h, +6h
    assert cli.main(["report", "--url", url, "--database", db, "--model", "nobody", "--out", str(out)]) == 1
    assert "no model 'nobody'" in capsys.readouterr().err
    assert cli.main(["report", "--url", url, "--database", db, "--trace-url", "http://x/", "--out", str(out)]) == 2
    assert cli.main(["report", "--url", url, "--database", db, "--last", "7d", "--since", "1d"]) == 2
