"""Shared fixtures of the deployment tests: the repository's deploy files, parsed, and the dashboard's queries run.

chDB opens one directory per process, and the analyzer tests hold this process's: the store that the
dashboard queries run against is filled in a child process (``panel_runner.py``), once per session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "modelwatch.json"


def load_yaml(relative: str) -> dict:
    with open(ROOT / relative, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="session")
def collector() -> dict:
    return load_yaml("otel-collector-config.yaml")


@pytest.fixture(scope="session")
def compose() -> dict:
    return load_yaml("docker-compose.yml")


@pytest.fixture(scope="session")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def panel_results(tmp_path_factory) -> dict:
    """Every dashboard query's outcome on a store filled by the SDK through `modelwatch serve` and analysed."""
    directory = tmp_path_factory.mktemp("deploy-chdb")
    proc = subprocess.run([sys.executable, str(HERE / "panel_runner.py"), str(directory), str(DASHBOARD)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, f"panel_runner failed:\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout)
    result["by_key"] = {(q["panel"], q["ref"]): q for q in result["queries"]}
    return result
