"""The checks every TOML setting goes through, written once, with errors in one form.

An error names the place (``models[0].thresholds.psi``), says what was
expected and shows what was given::

    <where>: expected a table, got list
    <where>: unknown key(s) <a, b>; known: <every key>
    <where>.<key>: expected a number, got 'high'          (then: must be >= 0.1 | > 0 | <= 1 | in (0, 1], got 2)
    <where>.<key>: expected an integer >= 1, got 0        (a count: its type and its range in one phrase)
    <where>.<key>: expected a string | a non-empty string, got 3
    <where>.<key>: 'ks' is not <what>; use one of <choices>
    <where>.<key>: expected true or false, got 'yes'
    <where>: expected a list of <noun> tables ([[<where>]])
    <where>: duplicate name(s) <a> (listed twice or more); <hint>

The rules that belong to one setting (a performance rule needs a floor, a
baseline's version) stay with that setting. This module sits beside
:mod:`.errors` and imports nothing else of the analyzer, so ``analysis``,
``outputs`` and ``service`` can all use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from modelwatch_analyzer.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
"""A name that is recorded in the store (a rule's, a route's)."""


def table(d: Any, where: str, known: Iterable[str]) -> Mapping[str, Any]:
    """`d` itself, once it is a table whose keys are all in `known`."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(d).__name__}")
    known = set(known)
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return d


def tables(value: Any, where: str, noun: str) -> list[Any]:
    """`value`, once it is a list (each item is checked by the caller's ``from_dict``)."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of {noun} tables ([[{where}]])")
    return value


def _bounds(minimum: float | None, maximum: float | None, exclusive_minimum: bool) -> str:
    if minimum is not None and maximum is not None:
        return f"in {'(' if exclusive_minimum else '['}{minimum:g}, {maximum:g}]"
    if minimum is not None:
        return f"{'>' if exclusive_minimum else '>='} {minimum:g}"
    return f"<= {maximum:g}" if maximum is not None else ""


def number(d: Mapping[str, Any], key: str, where: str, default: float | None, *, minimum: float | None = None,
           maximum: float | None = None, exclusive_minimum: bool = False, integer: bool = False) -> Any:
    """``d[key]`` (or `default`; None stays None) as a finite float, or an int when `integer`, inside the bounds."""
    v = d.get(key, default)
    if v is None:
        return None
    number_ = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    inside = number_ and (minimum is None or (v > minimum if exclusive_minimum else v >= minimum)) \
        and (maximum is None or v <= maximum)
    bounds = _bounds(minimum, maximum, exclusive_minimum)
    if integer:
        if not (number_ and isinstance(v, int) and inside):
            raise ConfigError(f"{where}.{key}: expected {' '.join(filter(None, ('an integer', bounds)))}, got {v!r}")
        return int(v)
    if not number_:
        raise ConfigError(f"{where}.{key}: expected a number, got {v!r}")
    if not inside:
        raise ConfigError(f"{where}.{key}: must be {bounds}, got {v!r}")
    return float(v)


def string(d: Mapping[str, Any], key: str, where: str, default: str | None = None, *, choices: Sequence[str] = (),
           what: str = "allowed", empty: bool = False) -> str | None:
    """``d[key]`` (or `default`; None stays None): a string, non-empty unless `empty`, one of `choices` if given.

    `what` completes "'x' is not ...; use one of ...", e.g. ``"a severity"``.
    """
    v = d.get(key, default)
    if v is None:
        return None
    if not isinstance(v, str) or (not empty and not v):
        raise ConfigError(f"{where}.{key}: expected {'a' if empty else 'a non-empty'} string, got {v!r}")
    if choices and v not in choices:
        raise ConfigError(f"{where}.{key}: {v!r} is not {what}; use one of {', '.join(choices)}")
    return v


def name(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    """A :data:`NAME`: what the store records for a rule or a route."""
    v = string(d, key, where, default)
    if v is not None and not NAME.match(v):
        raise ConfigError(f"{where}.{key}: {v!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return v


def strings(d: Mapping[str, Any], key: str, where: str, *, choices: Sequence[str] = (),
            lone: bool = False) -> tuple[str, ...]:
    """``d[key]`` (default: empty) as a tuple of strings, each one of `choices` if given; `lone`: a string is a list
    of one."""
    v = d.get(key, ())
    if lone and isinstance(v, str):
        v = (v,)
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and (not choices or x in choices) for x in v):
        out_of = f" out of {', '.join(choices)}" if choices else ""
        raise ConfigError(f"{where}.{key}: expected a list of strings{out_of}, got {v!r}")
    return tuple(v)


def flag(d: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    """``d[key]`` (or `default`): true or false."""
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{where}.{key}: expected true or false, got {v!r}")
    return v


def unique(names: Sequence[str], where: str, hint: str) -> None:
    """Refuse a name listed twice; `hint` says what to do."""
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{where}: duplicate name(s) {', '.join(dup)} (listed twice or more); {hint}")
