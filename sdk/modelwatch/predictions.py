"""What a monitored call left behind, as :func:`modelwatch.last_prediction` returns it.

:class:`Prediction` for one row, :class:`BatchPredictions` for a batch call,
:data:`NOT_RECORDED` when nothing was recorded; and :class:`CallState`, the
per-call scratch that :func:`modelwatch.mark_edge_case` and
:func:`modelwatch.set_prediction_id` reach from inside the call.
"""

from __future__ import annotations

import contextvars
from typing import Any, Sequence

from .sampling import DECISIONS, NOT_SAMPLED


class Prediction:
    """What modelwatch recorded of one prediction; :func:`modelwatch.last_prediction` returns it.

    ``id`` is the value of ``ml.prediction.id``: pass it to
    :func:`modelwatch.record_label` when the ground truth arrives. ``kept``
    says whether it became a span, ``reason`` why (or ``not_sampled``),
    ``weight`` its sampling weight, ``trace_id`` the 32-hex-digit trace id.
    """

    __slots__ = ("_id", "model", "version", "_trace_id", "kept", "reason", "weight")

    def __init__(self, id: str | None, model: str, version: str, trace_id: int, kept: bool, reason: str, weight: float) -> None:
        self._id = id  # None: the trace id's hex, formatted only if asked for
        self.model = model
        self.version = version
        self._trace_id = trace_id
        self.kept = kept
        self.reason = reason
        self.weight = weight

    @property
    def id(self) -> str:
        return self._id if self._id is not None else f"{self._trace_id:032x}"

    @property
    def trace_id(self) -> str:
        return f"{self._trace_id:032x}"

    def __repr__(self) -> str:
        return (f"Prediction(id={self.id!r}, model={self.model!r}, version={self.version!r}, kept={self.kept}, "
                f"reason={self.reason!r}, weight={self.weight})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prediction):
            return NotImplemented
        return (self.id, self.model, self.version, self._trace_id, self.kept, self.reason, self.weight) == (
            other.id, other.model, other.version, other._trace_id, other.kept, other.reason, other.weight)

    __hash__ = None  # type: ignore[assignment]


class _Blank(str):
    """The empty string, also callable (returning itself): a batch's ``trace_id(i)`` as well as a prediction's ``trace_id``."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return self


_BLANK = _Blank("")


class NotRecorded:
    """What :func:`modelwatch.last_prediction` returns when nothing was recorded in this thread or task.

    Monitoring is off (``OTEL_SDK_DISABLED``, nothing configured), no
    monitored call was made here yet, the last one was not recorded (it was
    interrupted, or recording it failed), or a :func:`modelwatch.testing.capture`
    block ended. It has the attributes of both a :class:`Prediction` and a
    :class:`BatchPredictions`, all empty: ``id`` and
    ``trace_id`` are ``""`` (``trace_id(i)`` also returns ``""``), ``kept`` is
    False, ``reason`` ``"not_recorded"``, ``weight`` 0, ``ids`` and ``kept_ids``
    empty lists; it is an empty sequence, so it is falsy. Passing its ``id`` to
    :func:`modelwatch.record_label` records nothing.
    """

    __slots__ = ()

    id = _BLANK
    trace_id = _BLANK
    model = ""
    version = ""
    kept = False
    reason = "not_recorded"
    weight = 0.0

    @property
    def ids(self) -> list[str]:
        return []

    @property
    def kept_ids(self) -> list[str]:
        return []

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Any:
        return iter(())

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return []
        raise IndexError("no prediction was recorded")

    def __repr__(self) -> str:
        return "NotRecorded()"


NOT_RECORDED = NotRecorded()


class CallState:
    """Per-call scratch the inference code can reach (edge-case flag, custom id)."""

    __slots__ = ("edge_case", "prediction_id")

    def __init__(self) -> None:
        self.edge_case = False
        self.prediction_id: Any = None


last: contextvars.ContextVar[Any] = contextvars.ContextVar("modelwatch_last_prediction", default=NOT_RECORDED)


def forget_last() -> None:
    """The last monitored call here recorded nothing: :data:`last` must not keep an older call's record."""
    if last.get() is not NOT_RECORDED:
        last.set(NOT_RECORDED)


call_state: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("modelwatch_call_state", default=None)


class BatchPredictions(Sequence[Prediction]):
    """What was recorded of a batch call: a sequence of :class:`Prediction`, built lazily.

    ``ids`` lists every row's prediction id (in input order), ``kept`` is a
    boolean numpy array, ``kept_ids`` the ids of the rows that became spans.
    `reasons` holds each row's decision code (an index of
    :data:`~modelwatch.sampling.DECISIONS`).
    """

    def __init__(self, model: str, version: str, hi: Any, lo: Any, reasons: Any, weights: Any, ids: list[str] | None) -> None:
        self.model = model
        self.version = version
        self._hi = hi
        self._lo = lo
        self._reasons = reasons
        self._weights = weights
        self._ids = ids
        self.kept = reasons != NOT_SAMPLED

    def trace_id(self, i: int) -> str:
        return f"{int(self._hi[i]):016x}{int(self._lo[i]):016x}"

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [f"{h:016x}{low:016x}" for h, low in zip(self._hi.tolist(), self._lo.tolist())]
        return self._ids

    @property
    def kept_ids(self) -> list[str]:
        ids = self.ids
        return [ids[i] for i in self.kept.nonzero()[0].tolist()]

    def __len__(self) -> int:
        return len(self._reasons)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        r = int(self._reasons[i])
        trace_id = (int(self._hi[i]) << 64) | int(self._lo[i])
        return Prediction(self.ids[i], self.model, self.version, trace_id, r != NOT_SAMPLED, DECISIONS[r], float(self._weights[i]))
