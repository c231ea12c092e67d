"""Configuration: explicit argument, then environment variable, then default.

A bad value passed in code raises :class:`~modelwatch.errors.ConfigurationError`;
a bad value in the environment logs a warning and falls back to the default,
so a typo in a deployment manifest never takes an inference service down.

The environment variables are the constants below; the standard ``OTEL_*``
variables (endpoint, protocol, headers, resource, ``OTEL_SDK_DISABLED``) are
read by :func:`modelwatch.configure` and the OTel exporters themselves.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

from ._safety import logger
from .errors import ConfigurationError

MODELWATCH_SAMPLING_RATE = "MODELWATCH_SAMPLING_RATE"
"""Fraction in [0, 1] of predictions that no rule keeps which are kept at random (default 0.1)."""

MODELWATCH_LOW_CONFIDENCE_THRESHOLD = "MODELWATCH_LOW_CONFIDENCE_THRESHOLD"
"""Predictions with confidence strictly below this are always kept (default 0.5)."""

MODELWATCH_HIGH_RISK_THRESHOLD = "MODELWATCH_HIGH_RISK_THRESHOLD"
"""Predictions whose risk (or, without a risk, score) is strictly above this are always kept (default 0.9)."""

MODELWATCH_SAMPLING_HASH_SALT = "MODELWATCH_SAMPLING_HASH_SALT"
"""Salt of the trace-id hash; must equal the collector tail_sampling `probabilistic` policy's
`hash_salt` for the two to agree (default: the collector's default, ``default-hash-seed``)."""

MODELWATCH_MAX_STRING_LENGTH = "MODELWATCH_MAX_STRING_LENGTH"
"""String feature values longer than this are truncated (default 256 characters)."""

MODELWATCH_MAX_CATEGORIES = "MODELWATCH_MAX_CATEGORIES"
"""Distinct values per categorical feature tracked in metrics; the rest count as ``__other__`` (default 64)."""

MODELWATCH_DROP_FEATURES = "MODELWATCH_DROP_FEATURES"
"""Comma-separated feature names never recorded anywhere (added to those given in code)."""

MODELWATCH_HASH_FEATURES = "MODELWATCH_HASH_FEATURES"
"""Comma-separated feature names whose values are replaced by a keyed hash before recording."""

MODELWATCH_HASH_KEY = "MODELWATCH_HASH_KEY"
"""Secret key of the feature hash (HMAC-SHA256). Without it hashes are unkeyed and guessable."""

MODELWATCH_FEATURE_METRICS = "MODELWATCH_FEATURE_METRICS"
"""``true`` (default) records per-feature distributions in metrics; ``false`` turns them off."""

OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
"""``true``: every decorator is a plain call (read when modelwatch is imported) and :func:`modelwatch.configure` sets nothing up."""

DEFAULT_HASH_SALT = "default-hash-seed"  # the tail_sampling processor's default

T = TypeVar("T")


def _env(name: str, parse: Callable[[str], T], default: T, check: Callable[[T], bool] = lambda _v: True) -> T:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
        if not check(value):
            raise ValueError("out of range")
    except (ValueError, TypeError) as exc:
        logger.warning("modelwatch: ignoring %s=%r (%s); using %r", name, raw, exc, default)
        return default
    return value


def sdk_disabled() -> bool:
    """Whether :data:`OTEL_SDK_DISABLED` is ``true``."""
    return os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def _parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_names(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _unit(v: float) -> bool:
    return 0.0 <= v <= 1.0


def _finite(v: float) -> bool:
    return math.isfinite(v)


def _resolve_float(arg: float | None, env: str, default: float, check: Callable[[float], bool], what: str) -> float:
    if arg is None:
        return _env(env, float, default, check)
    if isinstance(arg, bool) or not isinstance(arg, (int, float)):
        raise ConfigurationError(f"{what} must be a number, got {type(arg).__name__}")
    value = float(arg)
    if not check(value):
        raise ConfigurationError(f"{what} out of range: {arg!r}")
    return value


def _resolve_int(arg: int | None, env: str, default: int, what: str) -> int:
    if arg is None:
        return _env(env, int, default, lambda v: v > 0)
    if isinstance(arg, bool) or not isinstance(arg, int) or arg <= 0:
        raise ConfigurationError(f"{what} must be a positive integer, got {arg!r}")
    return arg


@dataclass(frozen=True)
class SamplingPolicy:
    """The tail-sampling rules, decided once a prediction's output is known.

    A prediction is kept when any rule fires (confidence below
    ``low_confidence_threshold``, risk or score above ``high_risk_threshold``,
    an error, an edge case flagged by the application); otherwise it is kept
    with probability ``rate``, decided by hashing its trace id exactly as the
    collector's tail_sampling ``probabilistic`` policy does. Kept-by-rule spans
    weigh 1, kept-at-random spans weigh ``1 / rate``.
    """

    rate: float = 0.1
    low_confidence_threshold: float = 0.5
    high_risk_threshold: float = 0.9
    hash_salt: str = DEFAULT_HASH_SALT

    @classmethod
    def resolve(
        cls,
        rate: float | None = None,
        low_confidence_threshold: float | None = None,
        high_risk_threshold: float | None = None,
        hash_salt: str | None = None,
    ) -> SamplingPolicy:
        """Arguments first, then the ``MODELWATCH_*`` environment, then the defaults."""
        if hash_salt is not None and not isinstance(hash_salt, str):
            raise ConfigurationError("hash_salt must be a string")
        return cls(
            rate=_resolve_float(rate, MODELWATCH_SAMPLING_RATE, cls.rate, _unit, "sampling rate"),
            low_confidence_threshold=_resolve_float(
                low_confidence_threshold, MODELWATCH_LOW_CONFIDENCE_THRESHOLD, cls.low_confidence_threshold, _finite,
                "low_confidence_threshold",
            ),
            high_risk_threshold=_resolve_float(
                high_risk_threshold, MODELWATCH_HIGH_RISK_THRESHOLD, cls.high_risk_threshold, _finite,
                "high_risk_threshold",
            ),
            hash_salt=hash_salt if hash_salt is not None else (os.environ.get(MODELWATCH_SAMPLING_HASH_SALT) or DEFAULT_HASH_SALT),
        )


@dataclass(frozen=True)
class RecordingOptions:
    """What is recorded of each prediction, and what never leaves the process."""

    drop_features: frozenset[str] = frozenset()
    hash_features: frozenset[str] = frozenset()
    hash_key: bytes = b""
    max_string_length: int = 256
    max_categories: int = 64
    feature_metrics: bool = True

    @classmethod
    def resolve(
        cls,
        drop_features: object = None,
        hash_features: object = None,
        max_string_length: int | None = None,
        max_categories: int | None = None,
        feature_metrics: bool | None = None,
    ) -> RecordingOptions:
        """Arguments first (name lists are merged with the environment's), then defaults."""
        drop = _names_arg(drop_features, "drop_features") | _env(MODELWATCH_DROP_FEATURES, _parse_names, frozenset())
        hashed = _names_arg(hash_features, "hash_features") | _env(MODELWATCH_HASH_FEATURES, _parse_names, frozenset())
        if feature_metrics is not None and not isinstance(feature_metrics, bool):
            raise ConfigurationError("feature_metrics must be a bool")
        return cls(
            drop_features=drop,
            hash_features=hashed - drop,
            hash_key=os.environ.get(MODELWATCH_HASH_KEY, "").encode(),
            max_string_length=_resolve_int(max_string_length, MODELWATCH_MAX_STRING_LENGTH, cls.max_string_length, "max_string_length"),
            max_categories=_resolve_int(max_categories, MODELWATCH_MAX_CATEGORIES, cls.max_categories, "max_categories"),
            feature_metrics=feature_metrics if feature_metrics is not None else _env(MODELWATCH_FEATURE_METRICS, _parse_bool, True),
        )


def _names_arg(value: object, what: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset([value])
    try:
        names = frozenset(value)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigurationError(f"{what} must be a list of feature names") from None
    if not all(isinstance(n, str) for n in names):
        raise ConfigurationError(f"{what} must contain strings only")
    return names
