"""Feature values into the metrics and onto spans, by one decorator's recording options.

A :class:`FeatureRecorder` belongs to one :class:`~modelwatch.monitor.Monitor`
(one decorated function) and applies its :class:`~modelwatch.config.RecordingOptions`:
which features are never recorded (dropped), which are replaced by a keyed
hash, how long strings may be. The aggregates it writes into, a
:class:`~modelwatch.metrics.ModelMetrics`, are shared by every decorator of
the model version; each row is folded by the recorder of the decorator that
saw it, so one decorator's privacy options hold for its own rows whatever
the others say.

This is the general, value-by-value path; :mod:`modelwatch.rows` (single
predictions, in blocks) and :mod:`modelwatch.batch` (numpy columns) are the
fast paths, and fall back to it for what they cannot vectorise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _safety
from .config import RecordingOptions
from .contract import feature_key
from .metrics import MAX_FEATURES, FeatureStats, ModelMetrics
from .values import (
    BOOL,
    CATEGORY,
    INVALID,
    MISSING,
    NONFINITE,
    NUMBER,
    coerce,
    keyed_hash,
)

MAX_FEATURE_NAME = 256
_UNKNOWN = object()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class FeatureRecorder:
    """One decorator's way of recording features (its options, its caches); see the module docstring."""

    def __init__(self, model: str, options: RecordingOptions) -> None:
        self.model = model
        self.options = options
        self.dropped = options.drop_features
        self.hashed = options.hash_features
        self.max_len = options.max_string_length
        # span attribute key per feature name; None for a feature that must never be recorded
        self._keys: dict[str, str | None] = {}
        self.hashed_keys = {feature_key(n) for n in options.hash_features}  # complete up front: privacy
        self.schemas: dict[tuple[Any, Any], Any] = {}  # of modelwatch.rows, by (names, types)
        self.last_schema: Any = None

    # -- names -------------------------------------------------------------------

    def attr_key(self, name: Any) -> str | None:
        """The span attribute key of a feature (cached), None for a dropped one."""
        name = str(name)
        key: str | None = None
        if name not in self.dropped and len(name) <= MAX_FEATURE_NAME:
            key = feature_key(name)
        if len(self._keys) < MAX_FEATURES:
            self._keys[name] = key
        return key

    def stats(self, m: ModelMetrics, name: Any) -> FeatureStats | None:
        """The model's aggregates of a feature (created on first sight), None when this recorder records it nowhere."""
        name = str(name)
        if name in self.dropped:
            return None
        f = m.features.get(name)
        if f is not None:
            return f
        if len(name) > MAX_FEATURE_NAME:
            _safety.report("invalid_feature_name", self.model, "model %r: feature name longer than %d characters ignored", self.model,
                           MAX_FEATURE_NAME, key="long")
            return None
        in_metrics = m.feature_metrics and len(m.features) < MAX_FEATURES
        if not in_metrics and m.feature_metrics:
            _safety.report("too_many_features", self.model, "model %r: more than %d features; extra ones are on spans only", self.model,
                           MAX_FEATURES)
        f = FeatureStats(name, in_metrics)
        m.features[name] = f
        return f

    def truncate(self, value: str, name: str, n: int = 1) -> str:
        """`value` cut to ``max_string_length`` (counted and logged once when it was longer)."""
        limit = self.max_len
        if len(value) <= limit:
            return value
        _safety.report("truncated", self.model, "model %r %r: string of %d characters truncated to %d", self.model, name, len(value), limit,
                       key=name, n=n)
        return value[:limit]

    # -- into the metrics ----------------------------------------------------------

    def record_row(self, m: ModelMetrics, features: Mapping[str, Any]) -> None:
        """One row into the aggregates, value by value (caller holds ``m.lock``)."""
        for name, value in features.items():
            f = self.stats(m, name)
            if f is not None:
                self.record_value(m, f, name, value)
        m.count_absent(features, 1)

    def record_value(self, m: ModelMetrics, f: FeatureStats, name: str, value: Any) -> None:
        """One feature value into the aggregates (caller holds ``m.lock``)."""
        kind, v = coerce(value)
        if name in self.hashed and kind != MISSING:
            kind, v = CATEGORY, keyed_hash(v, self.options.hash_key)
        if kind == NUMBER:
            if f.in_metrics:
                f.hist.add(v)
        elif kind == CATEGORY:
            if len(v) > self.max_len:
                v = self.truncate(v, name)
            if f.in_metrics:
                m.count_category(f.categories, v)
        elif kind == BOOL:
            if f.in_metrics:
                m.count_category(f.categories, "true" if v else "false")
        elif kind == MISSING:
            f.missing += 1
        elif kind == NONFINITE:
            _safety.report("nonfinite_value", self.model, "model %r feature %r: non-finite value %r (kept on spans, not in histograms)",
                           self.model, name, v, key=name)
        elif kind == INVALID:
            _safety.report("invalid_value", self.model, "model %r feature %r: value of type %s is not recordable; dropped",
                           self.model, name, type(value).__name__, key=name)

    # -- onto spans ---------------------------------------------------------------

    def span_attrs(self, features: Mapping[str, Any], attrs: dict[str, Any]) -> None:
        """Add a kept prediction's features to its span attributes (problems are counted by the fold)."""
        keys = self._keys
        max_len = self.max_len
        for name, value in features.items():
            key = keys.get(name, _UNKNOWN)
            if key is _UNKNOWN:
                key = self.attr_key(name)
            if key is None:
                continue
            if key in self.hashed_keys:
                self.set_attr(attrs, key, value)
                continue
            tp = type(value)
            if tp is float:
                if value == value:  # NaN is missing: no attribute
                    attrs[key] = value
                continue
            if tp is str and len(value) <= max_len:
                attrs[key] = value
                continue
            if tp is int and _INT64_MIN <= value <= _INT64_MAX:
                attrs[key] = value
                continue
            self.set_attr(attrs, key, value)

    def set_attr(self, attrs: dict[str, Any], key: str, value: Any) -> None:
        """One feature value into span attributes: coerced, hashed or truncated; missing and invalid values are left out."""
        kind, v = coerce(value)
        if kind in (MISSING, INVALID):
            return
        if key in self.hashed_keys:
            v = keyed_hash(v, self.options.hash_key)
        elif kind == CATEGORY and len(v) > self.max_len:
            v = v[: self.max_len]
        attrs[key] = v
