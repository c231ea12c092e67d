"""Monitoring off or not recording: last_prediction() keeps the documented shape, empty, and is never stale."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import modelwatch
from modelwatch.decorator import monitor_of
from modelwatch.testing import capture

# The README's SDK snippets (single call, label, batch), run as an application would.
README_SNIPPET = """
import modelwatch

modelwatch.configure()

@modelwatch.monitor(model="churn", version="3")
def predict(features: dict) -> dict:
    return {"prediction": True, "score": 0.7}

predict({"tenure_months": 3, "plan": "basic", "monthly_spend": 42.0})
p = modelwatch.last_prediction()
pid = p.id
assert pid == "" and p.trace_id == "" and p.kept is False and p.weight == 0.0, p
assert modelwatch.record_label("churn", pid, True) is False

@modelwatch.monitor(model="fraud", version="7")
def predict_proba(rows):
    return [[0.2, 0.8] for _ in rows]

predict_proba([[1.0, 2.0], [3.0, 4.0]])
b = modelwatch.last_prediction()
assert b.ids == [] and b.kept_ids == [] and len(b) == 0 and list(b) == [] and not b, b
assert b.trace_id(0) == "" and b[0:2] == []
print("OK")
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MODELWATCH_"))}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_readme_snippet_runs_unchanged_with_otel_sdk_disabled():
    """With OTEL_SDK_DISABLED=true the README's configure/predict/last_prediction().id/record_label/.ids code runs without error."""
    proc = _run(README_SNIPPET, OTEL_SDK_DISABLED="true")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"


def test_readme_snippet_runs_unchanged_without_configure():
    """Without configure() (no tracer, no metric pipeline) the README's code after configure() runs without error."""
    proc = _run(README_SNIPPET.replace("modelwatch.configure()", ""))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"


def test_after_a_capture_block_an_unmonitored_call_does_not_return_the_blocks_prediction():
    """After a capture() block, an unrecorded call of another model makes last_prediction() empty, not the block's prediction."""
    code = """
import modelwatch
from modelwatch.testing import capture

@modelwatch.monitor(model="inside", sampling_rate=1.0)
def a(x): return 1

@modelwatch.monitor(model="outside")
def b(x): return 2

with capture():
    a({"x": 1.0})
    assert modelwatch.last_prediction().model == "inside"
assert modelwatch.last_prediction().model == "inside"  # the last monitored call, read after the block
assert b({"x": 1.0}) == 2
p = modelwatch.last_prediction()
assert p.model == "" and p.id == "", p
print("OK")
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"


def test_a_capture_block_does_not_see_the_prediction_made_before_it():
    """Inside capture(), before any call, last_prediction() is empty, not the prediction recorded before the block."""

    @modelwatch.monitor(model="before", sampling_rate=1.0)
    def predict(x):
        return 1

    with capture():
        predict({"x": 1.0})
        with capture():
            assert modelwatch.last_prediction().model == ""
            assert modelwatch.last_prediction().id == ""


def test_an_interrupted_call_leaves_no_stale_prediction():
    """A monitored call interrupted by KeyboardInterrupt is not a prediction, and last_prediction() no longer returns
    the previous call's."""

    @modelwatch.monitor(model="int", sampling_rate=1.0)
    def predict(x):
        if x.get("stop"):
            raise KeyboardInterrupt
        return 1

    with capture():
        predict({"x": 1.0})
        assert modelwatch.last_prediction().model == "int"
        try:
            predict({"stop": True})
        except KeyboardInterrupt:
            pass
        assert modelwatch.last_prediction().id == ""
        assert not modelwatch.last_prediction()


def test_a_failed_recording_leaves_no_stale_prediction(monkeypatch):
    """When recording a call fails inside modelwatch, the call still returns and last_prediction() is empty, not the previous call's."""

    @modelwatch.monitor(model="fails", sampling_rate=1.0)
    def predict(x):
        return 7

    with capture():
        predict({"x": 1.0})
        first = modelwatch.last_prediction()
        assert first.model == "fails" and first.id
        mon = monitor_of(predict)

        def broken(*args, **kwargs):
            raise RuntimeError("bug")

        monkeypatch.setattr(mon.inputs, "raw", broken)  # the first step of recording a call
        assert predict({"x": 2.0}) == 7
        assert modelwatch.last_prediction().id == ""


def test_another_thread_sees_no_prediction_of_this_one():
    """A thread that made no monitored call gets the empty record from last_prediction(), with every documented attribute."""

    @modelwatch.monitor(model="thread", sampling_rate=1.0)
    def predict(x):
        return 1

    seen = {}
    with capture():
        predict({"x": 1.0})
        t = threading.Thread(target=lambda: seen.update(p=modelwatch.last_prediction()))
        t.start()
        t.join()
    p = seen["p"]
    assert (p.id, p.trace_id, p.kept, p.reason, p.weight, p.ids, p.kept_ids) == ("", "", False, "not_recorded", 0.0, [], [])


def test_a_label_with_an_empty_prediction_id_records_nothing():
    """record_label with the empty id of an unrecorded call returns False and emits no label span."""
    with capture() as rec:
        assert modelwatch.record_label("m", modelwatch.last_prediction().id, True) is False
        assert modelwatch.record_label("m", None, True) is False
        assert rec.labels() == []
        assert rec.issues().get(("invalid_value", "m")) == 2
