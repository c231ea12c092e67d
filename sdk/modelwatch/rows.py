"""Single-prediction feature rows: compiled once per schema, queued, folded in blocks.

Per prediction, modelwatch must (a) feed every feature into the metrics and
(b) for a kept prediction, turn the features into span attributes. Doing
both value by value in Python costs about half a microsecond per feature.

Inference code calls a model with the same features, in the same order, of
the same types, call after call. So a row is reduced to two tuples, its keys
and its value types (C-level work, about a microsecond for 25 features), and
looked up among the model's known :class:`Schema` objects. A schema knows,
once, which columns are numbers, strings or booleans, their span attribute
keys, and whether the fast paths apply. Then:

* the metrics only queue ``(schema, values)``; blocks of rows of one schema
  are transposed with ``zip(*rows)`` into typed columns and folded
  vectorised (numpy when the process has it, tight loops otherwise);
* a kept row's attributes are ``zip(schema.keys, values)`` after two
  C-level checks (finite floats, short strings).

Rows that fit no simple schema (a feature that is an object, a numpy
scalar, a NaN, a long string, a dropped or hashed feature) take the general
path of :mod:`modelwatch.features`: the same result, value by value.

A schema belongs to one :class:`~modelwatch.features.FeatureRecorder` (one
decorator), and a queued row is folded by the recorder that queued it: rows
of several decorators of one model version share a queue, not their options.
"""

from __future__ import annotations

import operator
import sys
from collections import Counter
from typing import Any

from . import _safety
from .exphist_fold import fold_columns
from .features import FeatureRecorder
from .metrics import FeatureStats, ModelMetrics

MAX_SCHEMAS = 64  # per model; beyond, rows take the general path
# Single predictions queue their feature rows; a block of this many rows is folded into the
# aggregates at once (vectorised when numpy is loaded): the queue's memory stays bounded (~1 MB
# for 25 features) and so does the occasional fold (about a millisecond, once per block).
ROWS_PER_FOLD = 1024
VALUES_PER_FOLD = 32_768  # a wide model (many features) folds after fewer rows
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_SIMPLE = {float: "f", int: "i", str: "s", bool: "b", type(None): "n"}


class Schema:
    """What is known, once, about rows with these keys in this order and these value types."""

    __slots__ = ("recorder", "names", "types", "attr_keys", "floats", "ints", "strs", "fast_attrs", "columns", "rows_per_fold")

    def __init__(self, recorder: FeatureRecorder, names: tuple[str, ...], types: tuple[type, ...]) -> None:
        self.recorder = recorder
        self.names = names
        self.types = types
        codes = [_SIMPLE[t] for t in types]
        keys = [recorder.attr_key(n) for n in names]
        self.attr_keys = tuple(keys)
        self.floats = _getter([i for i, c in enumerate(codes) if c == "f"])
        self.ints = _getter([i for i, c in enumerate(codes) if c == "i"])
        self.strs = _getter([i for i, c in enumerate(codes) if c == "s"])
        # zip(attr_keys, values) is exactly the attribute set when nothing needs filtering or hashing
        self.fast_attrs = "n" not in codes and all(k is not None and k not in recorder.hashed_keys for k in keys)
        self.columns = tuple(zip(names, codes))
        self.rows_per_fold = rows_per_fold(len(names))

    def attrs_ok(self, values: tuple[Any, ...], max_len: int) -> bool:
        """Whether zip(attr_keys, values) needs no filtering: finite floats, short strings, int64 ints."""
        if not self.fast_attrs:
            return False
        if self.floats is not None:
            total = sum(self.floats(values))
            if total - total != 0.0:  # a NaN or an infinity somewhere (or an overflow): filter value by value
                return False
        if self.strs is not None and max(map(len, self.strs(values))) > max_len:
            return False
        if self.ints is not None:
            ints = self.ints(values)
            if min(ints) < INT64_MIN or max(ints) > INT64_MAX:
                return False
        return True


def rows_per_fold(width: int) -> int:
    """How many queued rows of `width` features are folded at once: a wide model folds smaller blocks (bounded memory and pauses)."""
    return max(16, min(ROWS_PER_FOLD, VALUES_PER_FOLD // max(1, width)))


def _getter(indices: list[int]) -> Any:
    """A C-level function returning the tuple of values at `indices`, or None if there are none."""
    if not indices:
        return None
    if len(indices) == 1:
        i = indices[0]
        return lambda values: (values[i],)
    return operator.itemgetter(*indices)


def schema_for(recorder: FeatureRecorder, features: dict[str, Any]) -> tuple[Schema | None, tuple[Any, ...] | None]:
    """(schema, values) of a feature row, or (None, None) when it needs the general path."""
    names = tuple(features)
    values = tuple(features.values())
    types = tuple(map(type, values))
    last = recorder.last_schema
    if last is not None and last.names == names and last.types == types:
        return last, values
    schema = recorder.schemas.get((names, types))
    if schema is None:
        if len(recorder.schemas) >= MAX_SCHEMAS or not all(t in _SIMPLE for t in types):
            return None, None
        if not all(type(n) is str for n in names):
            return None, None
        schema = Schema(recorder, names, types)
        recorder.schemas[(names, types)] = schema
    recorder.last_schema = schema
    return schema, values


def fold(m: ModelMetrics, rows: list[tuple[Any, Any]]) -> None:
    """Fold queued rows into the model's feature aggregates (caller holds ``m.lock``).

    `rows` holds ``(schema, values_tuple)`` for compiled rows and
    ``(recorder, features_dict)`` for the rest.
    """
    groups: dict[Schema, list[tuple[Any, ...]]] = {}
    general: list[tuple[FeatureRecorder, dict[str, Any]]] = []
    for owner, values in rows:
        if type(owner) is Schema:
            groups.setdefault(owner, []).append(values)
        else:
            general.append((owner, values))
    np = sys.modules.get("numpy")
    for schema, block in groups.items():
        _fold_block(np, m, schema, block)
    for recorder, features in general:
        recorder.record_row(m, features)


def _fold_block(np: Any, m: ModelMetrics, schema: Schema, block: list[tuple[Any, ...]]) -> None:
    """Rows of one schema, column by column."""
    recorder = schema.recorder
    n = len(block)
    numeric: list[tuple[Any, str, tuple[Any, ...]]] = []
    for (name, code), column in zip(schema.columns, zip(*block)):
        f = recorder.stats(m, name)
        if f is None:
            continue
        if name in recorder.hashed:
            for value in column:
                recorder.record_value(m, f, name, value)
            continue
        if code == "f" or code == "i":
            if f.in_metrics:
                numeric.append((f, name, column))
        elif code == "s":
            _fold_strings(recorder, m, f, name, column)
        elif code == "b":
            if f.in_metrics:
                t = sum(column)
                if t:
                    m.count_category(f.categories, "true", t)
                if n - t:
                    m.count_category(f.categories, "false", n - t)
        else:  # always None in this schema
            f.missing += n
    if numeric:
        _fold_numeric(recorder, m, np, numeric, n)
    m.count_absent(set(schema.names), n)


def _fold_numeric(recorder: FeatureRecorder, m: ModelMetrics, np: Any, numeric: list[tuple[Any, str, tuple[Any, ...]]], n: int) -> None:
    """All numeric columns of a block at once: one (k, n) array when every value is finite."""
    if np is not None and n >= 32:
        try:
            arr = np.array([column for _f, _name, column in numeric], dtype=np.float64)
        except OverflowError:  # an int beyond float range somewhere: column by column
            arr = None
        if arr is not None and bool(np.isfinite(arr).all()):
            fold_columns(np, [f.hist for f, _name, _column in numeric], arr)
            return
    for f, name, column in numeric:
        _fold_numbers(recorder, m, np, f, name, column)


def fold_number_column(recorder: FeatureRecorder, np: Any, f: FeatureStats, name: str, arr: Any) -> None:
    """A float64 column that may hold NaN (missing) and infinities (counted, kept out of histograms)."""
    finite = np.isfinite(arr)
    bad = arr.size - int(np.count_nonzero(finite))
    if bad:
        nan = int(np.count_nonzero(np.isnan(arr)))
        f.missing += nan
        if bad - nan:
            _safety.report("nonfinite_value", recorder.model, "model %r feature %r: non-finite values (kept on spans, not in histograms)",
                           recorder.model, name, key=name, n=bad - nan)
        arr = arr[finite]
    if f.in_metrics and arr.size:
        f.hist.add_array(arr)


def _fold_numbers(recorder: FeatureRecorder, m: ModelMetrics, np: Any, f: FeatureStats, name: str, column: tuple[Any, ...]) -> None:
    if np is not None and len(column) >= 32:
        try:
            arr = np.array(column, dtype=np.float64)
        except OverflowError:  # an int beyond float range: value by value
            for value in column:
                recorder.record_value(m, f, name, value)
            return
        fold_number_column(recorder, np, f, name, arr)
        return
    for value in column:
        if value - value == 0.0:
            f.hist.add(value)
        else:
            recorder.record_value(m, f, name, value)


def _fold_strings(recorder: FeatureRecorder, m: ModelMetrics, f: FeatureStats, name: str, column: tuple[str, ...]) -> None:
    if not f.in_metrics:
        return
    limit = recorder.max_len
    for value, count in Counter(column).items():
        if len(value) > limit:
            value = recorder.truncate(value, name, n=count)
        m.count_category(f.categories, value, count)
