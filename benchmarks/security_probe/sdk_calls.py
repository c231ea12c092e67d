"""Probe 5, hostile SDK calls (unreachable endpoint, disabled, unconfigured): the SDK never raises anything but the
model's own exceptions. Each mode runs in a child: ``probe_security.py --sdk-child MODE``."""

from __future__ import annotations

import collections
import json
import math
import random
import subprocess
import sys
from pathlib import Path

from security_probe.common import Probe, child_env, free_port, kill, spawn
from security_probe.payloads import HOSTILE

SCRIPT = Path(__file__).resolve().parent.parent / "probe_security.py"


class ModelError(Exception):
    pass


class _Weird:
    def __float__(self):
        raise RuntimeError("no float for you")

    def __str__(self):
        raise RuntimeError("no str for you")

    def __repr__(self):
        raise RuntimeError("no repr for you")

    def __len__(self):
        raise RuntimeError("no len")

    def __iter__(self):
        raise RuntimeError("no iter")

    def __eq__(self, other):
        raise RuntimeError("no eq")

    __hash__ = object.__hash__


def _hostile_value(rng: random.Random, depth: int = 0):
    choice = rng.randrange(22)
    if choice == 0:
        return math.nan
    if choice == 1:
        return rng.choice([math.inf, -math.inf])
    if choice == 2:
        return None
    if choice == 3:
        return "s" * rng.choice([0, 1, 1000, 100_000])
    if choice == 4 and depth < 3:
        return {rng.choice(["a", 1, None, (1, 2), "b" * 300]): _hostile_value(rng, depth + 1) for _ in range(3)}
    if choice == 5 and depth < 3:
        return [_hostile_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    if choice == 6:
        return object()
    if choice == 7:
        return _Weird()
    if choice == 8:
        return b"\xff\xfe" * rng.randrange(10)
    if choice == 9:
        return complex(1, 2)
    if choice == 10:
        return 2**200
    if choice == 11:
        return -(2**63)
    if choice == 12:
        return rng.choice(HOSTILE)
    if choice == 13:
        return {1, 2}
    if choice == 14:
        return lambda: 1
    if choice == 15:
        return True
    if choice == 16:
        return 9.2e18
    if choice == 17:
        import decimal
        return decimal.Decimal("NaN")
    if choice == 18:
        import datetime
        return datetime.datetime.now()
    if choice == 19:
        d: dict = {}
        d["self"] = d
        return d
    if choice == 20:
        return "\ud800"  # a lone surrogate: not encodable as UTF-8
    return rng.random()


def _hostile_input(rng: random.Random):
    kind = rng.randrange(12)
    if kind == 0:
        return {f"f{i}": _hostile_value(rng) for i in range(rng.randrange(1, 8))}
    if kind == 1:
        return {f"f{i}": 0.5 for i in range(rng.choice([1000, 5000]))}
    if kind == 2:
        return [{"a": _hostile_value(rng)} for _ in range(rng.randrange(0, 4))]
    if kind == 3:
        return [[_hostile_value(rng) for _ in range(3)] for _ in range(rng.randrange(0, 4))]
    if kind == 4:
        try:
            import numpy as np
            return np.array([[math.nan, math.inf], [-math.inf, 1e308]])
        except ImportError:
            return [math.nan]
    if kind == 5:
        return {rng.choice(HOSTILE) or "e": _hostile_value(rng)}
    if kind == 6:
        return {(1, 2): 1, None: 2, 3: "x"}
    return _hostile_value(rng)


def _hostile_output(rng: random.Random):
    k = rng.randrange(8)
    if k == 0:
        return {"prediction": _hostile_value(rng), "score": _hostile_value(rng)}
    if k == 1:
        return {"prediction": "ok", "score": rng.choice([math.nan, math.inf, -1.0, 2.0, None, "0.3"])}
    if k == 2:
        return {"confidence": _hostile_value(rng), "risk": _hostile_value(rng)}
    return _hostile_value(rng)


def _monitored(modelwatch, rng: random.Random) -> tuple[list, object]:
    """Eight monitored functions with various options, and a monitored coroutine function."""
    def make(variant: int):
        opts = [{}, {"sampling_rate": 1.0}, {"sampling_rate": 0.0}, {"model": rng.choice(HOSTILE) or "m"},
                {"feature_names": ["a", "b"]}, {"version": "\x1b[2J"}, {"max_string_length": 1},
                {"hash_features": ["f0", "a"], "drop_features": ["f1"]}]
        options = {"model": "hostile", "sampling_rate": 1.0, **opts[variant % len(opts)]}

        @modelwatch.monitor(**options)
        def predict(x=None, **kw):
            if rng.random() < 0.1:
                raise ModelError("the model's own")
            return _hostile_output(rng)

        return predict

    functions = [make(i) for i in range(8)]

    async def _async_model(x):
        if rng.random() < 0.1:
            raise ModelError("the model's own, async")
        return _hostile_output(rng)

    return functions, modelwatch.monitor(model="hostile-async", sampling_rate=1.0)(_async_model)


def _other_apis(modelwatch, rng: random.Random, outcome: collections.Counter, foreign: list[str]) -> None:
    """The other public calls a new user makes, with hostile arguments too."""
    for name, api in (("record_label", lambda: modelwatch.record_label(
                            _hostile_value(rng), _hostile_value(rng), _hostile_value(rng))),
                      ("set_prediction_id", lambda: modelwatch.set_prediction_id(_hostile_value(rng))),
                      ("mark_edge_case", modelwatch.mark_edge_case),
                      ("last_prediction", modelwatch.last_prediction)):
        try:
            api()
            outcome["api calls"] += 1
        except BaseException as exc:  # noqa: BLE001
            outcome["sdk raised"] += 1
            if len(foreign) < 5:
                foreign.append(f"{name}: {type(exc).__name__}: {str(exc)[:160]}")


def sdk_child(mode: str, calls: int, seed: int) -> int:
    """In a fresh interpreter: `calls` hostile calls of monitored functions. Prints a JSON summary."""
    import asyncio
    import logging

    logging.disable(logging.CRITICAL)  # the SDK logs what it swallows; the count is what matters here
    import modelwatch

    if mode == "unreachable":
        modelwatch.configure(metric_export_interval_millis=500)
    elif mode == "disabled":
        modelwatch.configure()
    rng = random.Random(seed)
    outcome = collections.Counter()
    foreign: list[str] = []
    functions, apredict = _monitored(modelwatch, rng)
    for i in range(calls):
        x = _hostile_input(rng)
        try:
            if i % 50 == 49:
                asyncio.run(apredict(x))
            elif i % 7 == 3:
                rng.choice(functions)(features=x)
            else:
                rng.choice(functions)(x)
            outcome["returned"] += 1
        except ModelError:
            outcome["model raised"] += 1
        except BaseException as exc:  # noqa: BLE001 - anything else is the SDK's
            outcome["sdk raised"] += 1
            if len(foreign) < 5:
                foreign.append(f"{type(exc).__name__}: {str(exc)[:160]}")
        if i % 13 == 0:
            _other_apis(modelwatch, rng, outcome, foreign)
    print(json.dumps({"mode": mode, "outcome": outcome, "foreign": foreign}), flush=True)
    return 0


def probe_sdk(p: Probe, args, tmp: Path) -> None:
    dead = free_port()  # nothing listens there
    modes = {
        "unreachable": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}", "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
                        "OTEL_BSP_EXPORT_TIMEOUT": "1000", "OTEL_BSP_SCHEDULE_DELAY": "200"},
        "disabled": {"OTEL_SDK_DISABLED": "true"},
        "unconfigured": {},
    }
    per = -(-args.sdk_calls // len(modes))
    procs = {}
    for i, (mode, env) in enumerate(modes.items()):
        procs[mode] = spawn([sys.executable, str(SCRIPT), "--sdk-child", mode, "--sdk-calls", str(per),
                             "--seed", str(args.seed + 50 + i)], env=child_env(**env), cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = []
    for mode, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=args.sdk_timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
            p.check(False, f"{mode}: {per} calls did not complete within {args.sdk_timeout} s")
            continue
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            p.check(False, f"{mode}: the child exited {proc.returncode}: {err[-400:]}")
            continue
        res = json.loads(lines[-1])
        o = res["outcome"]
        done = o.get("returned", 0) + o.get("model raised", 0)
        p.cases += per
        if o.get("sdk raised"):
            p.fail(f"{mode}: the SDK raised {o['sdk raised']} times: {res['foreign']}")
        if done != per:
            p.fail(f"{mode}: {done} of {per} calls completed")
        parts.append(f"{mode}: {o.get('returned', 0)} returned, {o.get('model raised', 0)} model raised, "
                     f"{o.get('sdk raised', 0)} SDK raised")
    p.detail = f"{per * len(modes)} calls; " + "; ".join(parts)
