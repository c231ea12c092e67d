"""While `modelwatch serve` owns the embedded store, the CLI's commands run in the serve process.

Three processes, as a user has them: serve (owning a chDB directory), and
CLI invocations that cannot open that directory themselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

MODELWATCH = [sys.executable, "-c", "import sys; from modelwatch_analyzer.cli.command import main; sys.exit(main())"]


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MODELWATCH, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def serving(tmp_path):
    directory = tmp_path / "store"
    proc = subprocess.Popen([*MODELWATCH, "serve", "--url", f"chdb://{directory}", "--grpc-port", "0",
                             "--http-port", "0", "--ui-port", "0", "--token", "s3cret", "--no-analyzer"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (directory / "modelwatch-serve.json").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)
    yield directory, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    assert not (directory / "modelwatch-serve.json").exists()  # removed on a clean stop


def test_cli_commands_run_in_the_serve_process(serving, tmp_path):
    directory, _ = serving
    url = f"chdb://{directory}"
    rng = np.random.default_rng(0)
    pd.DataFrame({"age": rng.normal(40, 10, 300), "plan": rng.choice(["a", "b"], 300)}).to_csv(tmp_path / "t.csv",
                                                                                              index=False)
    token = {"MODELWATCH_TOKEN": "s3cret"}
    # a relative --file is the caller's, made absolute before the serve process reads it
    made = _cli("baseline", "create", "--url", url, "--model", "m", "--version", "1", "--file", "t.csv",
                cwd=tmp_path, env=token)
    assert made.returncode == 0, made.stderr
    assert "2 columns (1 numeric, 1 categorical)" in made.stdout
    listed = _cli("baseline", "list", "--url", url, cwd=tmp_path, env=token)
    assert listed.returncode == 0 and "\nm  " in listed.stdout and "file:t.csv" in listed.stdout
    analysed = _cli("analyze", "--url", url, "--model", "m", "--last", "1h", "--format", "json", cwd=tmp_path, env=token)
    assert analysed.returncode == 0, analysed.stderr
    rows = json.loads(analysed.stdout)
    assert any(r["method"] == "drift_share" and r["status"] == "insufficient_data" for r in rows)
    missing = _cli("analyze", "--url", url, "--model", "nobody", "--last", "1h", cwd=tmp_path, env=token)
    assert missing.returncode == 1 and "modelwatch baseline create --model nobody" in missing.stderr
    # the token is required when serve has one
    refused = _cli("baseline", "list", "--url", url, cwd=tmp_path, env={"MODELWATCH_TOKEN": ""})
    assert refused.returncode == 1 and "refused the command: 401" in refused.stderr


def test_the_endpoint_runs_only_the_analyzer_commands(serving):
    directory, _ = serving
    info = json.loads((directory / "modelwatch-serve.json").read_text())
    auth = {"Authorization": "Bearer s3cret", "Content-Type": "application/json",
            "X-Modelwatch-Cli-Secret": info["secret"]}
    request = urllib.request.Request(info["http"] + "/v1/modelwatch/cli", data=json.dumps({"argv": ["serve"]}).encode(),
                                     headers=auth)
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer = json.loads(resp.read())
    assert answer["code"] == 2 and "runs only" in answer["stderr"]
    bad = urllib.request.Request(info["http"] + "/v1/modelwatch/cli", data=b"not json", headers=auth)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, timeout=30)
    assert err.value.code == 400
