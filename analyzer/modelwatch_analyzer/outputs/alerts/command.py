"""The command channel of retrain triggers: an argv list run without a shell, with the alert in its environment.

The environment carries ``MODELWATCH_MODEL``, ``MODELWATCH_VERSION``,
``MODELWATCH_SEVERITY``, ``MODELWATCH_REASON``, ``MODELWATCH_FEATURES``
(JSON list), ``MODELWATCH_RUN_ID``, ``MODELWATCH_ALERT_ID`` and
``MODELWATCH_PAYLOAD`` (the JSON body). The command should *submit* a
retraining job and exit: it runs with a timeout, on the analyzer's thread.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence

from modelwatch_analyzer.outputs.alerts.rows import Alert, jsonable


def run(argv: Sequence[str], a: Alert, timeout: float) -> str | None:
    alert = a.payload.get("alert", {})
    env = {**os.environ, "MODELWATCH_MODEL": a.model, "MODELWATCH_VERSION": a.version,
           "MODELWATCH_SEVERITY": a.severity, "MODELWATCH_REASON": str(alert.get("message", "")),
           "MODELWATCH_FEATURES": json.dumps(a.payload.get("features", []), ensure_ascii=False),
           "MODELWATCH_RUN_ID": a.run_id, "MODELWATCH_ALERT_ID": a.alert_id,
           "MODELWATCH_PAYLOAD": json.dumps(a.payload, default=jsonable, ensure_ascii=False)}
    try:
        proc = subprocess.run(list(argv), env=env, timeout=timeout, capture_output=True, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"command timed out after {timeout:g} s"
    except (OSError, ValueError) as exc:  # not found, not executable, NUL in an env value
        return f"command failed to start: {exc}"
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        return f"command exited {proc.returncode}: {tail}"
    return None
