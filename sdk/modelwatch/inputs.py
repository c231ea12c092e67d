"""Reading the features out of an inference call.

By default the first argument after ``self`` is the model input, or, with no
positional argument, the keyword arguments are the features:

============================  ======================================  =========
input                         feature names from                      rows
============================  ======================================  =========
dict / Mapping                its keys                                1
pandas Series                 its index                               1
pandas DataFrame              its columns                             N
numpy array, 1-D              ``feature_names`` (else f0, f1, ...)    1
numpy array, 2-D              ``feature_names`` (else f0, f1, ...)    N
list of dicts                 the dicts' keys                         N
list/tuple of scalars         ``feature_names``                       1
list of lists                 ``feature_names``                       N
keyword arguments             their names                             1
============================  ======================================  =========

``features="arg"`` reads one named argument instead; ``features=callable``
receives ``(*args, **kwargs)`` and returns any of the above. numpy and pandas
are never imported here: an input is recognised by its type's module, so only
a process that already has them pays for them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import ConfigurationError


@dataclass
class Batch:
    """N rows of features: column name to a numpy array (or list) of N values."""

    columns: dict[str, Any]
    n: int
    frame: Any = None  # the original DataFrame / array, handed to user hooks


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and _module(obj).startswith("pandas")


def is_series(obj: Any) -> bool:
    return type(obj).__name__ == "Series" and _module(obj).startswith("pandas")


def is_ndarray(obj: Any) -> bool:
    return type(obj).__name__ == "ndarray" and _module(obj) == "numpy"


class InputReader:
    """Built once per decorated function: where the features are and what they are called."""

    def __init__(
        self,
        fn: Callable[..., Any],
        features: str | Callable[..., Any] | None,
        feature_names: Sequence[str] | None,
    ) -> None:
        self.names: list[str] | None = list(feature_names) if feature_names is not None else None
        if self.names is not None and not all(isinstance(n, str) for n in self.names):
            raise ConfigurationError("feature_names must be strings")
        if self.names is None:
            owner = getattr(fn, "__self__", None)  # a bound method, e.g. estimator.predict
            found = getattr(owner, "feature_names_in_", None)
            if found is not None:
                self.names = [str(n) for n in found]
        self.skip = 0
        self.arg_name: str | None = None
        self.arg_index: int | None = None
        self.hook: Callable[..., Any] | None = None
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            params = []
        if params and params[0].name in ("self", "cls") and not hasattr(fn, "__self__"):
            self.skip = 1
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if callable(features):
            self.hook = features
        elif isinstance(features, str):
            names = [p.name for p in params]
            if features not in names:
                raise ConfigurationError(f"features={features!r}: the function has no such argument (it has {names})")
            self.arg_name = features
            pos_names = [p.name for p in positional]
            self.arg_index = pos_names.index(features) if features in pos_names else None
        elif features is not None:
            raise ConfigurationError("features must be None, an argument name or a callable")
        else:
            first = positional[self.skip] if len(positional) > self.skip else None
            self.arg_name = first.name if first is not None else None
            self.arg_index = self.skip if first is not None else None

    def raw(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The object holding the features, before interpretation."""
        if self.hook is not None:
            return self.hook(*args, **kwargs)
        if self.arg_index is not None and len(args) > self.arg_index:
            return args[self.arg_index]
        if self.arg_name is not None and self.arg_name in kwargs:
            return kwargs[self.arg_name]
        if self.arg_index is None and self.arg_name is None and kwargs:
            return kwargs
        if len(args) > self.skip:
            return args[self.skip]
        return kwargs

    def interpret(self, obj: Any) -> Mapping[str, Any] | Batch:
        """The features in `obj` (what :meth:`raw` returned): one row as a mapping of name to value, or a :class:`Batch`."""
        if type(obj) is dict or isinstance(obj, Mapping):
            return obj
        if is_dataframe(obj):
            return Batch({str(c): obj[c].to_numpy() for c in obj.columns}, len(obj), obj)
        if is_series(obj):
            return {str(k): v for k, v in obj.items()}
        if is_ndarray(obj):
            if obj.ndim == 1:
                return dict(zip(self._names(obj.shape[0]), obj.tolist()))
            if obj.ndim == 2:
                names = self._names(obj.shape[1])
                return Batch({name: obj[:, j] for j, name in enumerate(names)}, obj.shape[0], obj)
            raise TypeError(f"cannot read features from a {obj.ndim}-D array")
        if isinstance(obj, (list, tuple)):
            if not obj:
                return {}
            first = obj[0]
            if isinstance(first, Mapping):
                keys: dict[str, None] = {}
                for row in obj:
                    keys.update(dict.fromkeys(row))
                return Batch({str(k): [row.get(k) for row in obj] for k in keys}, len(obj), obj)
            if isinstance(first, (list, tuple)) or is_ndarray(first):
                names = self._names(len(first))
                return Batch({name: [row[j] for row in obj] for j, name in enumerate(names)}, len(obj), obj)
            return dict(zip(self._names(len(obj)), obj))
        if obj is None:
            return {}
        raise TypeError(f"cannot read features from {type(obj).__name__}; pass features=callable")

    def _names(self, width: int) -> list[str]:
        if self.names is not None:
            if len(self.names) != width:
                raise ValueError(f"{width} input columns but {len(self.names)} feature_names")
            return self.names
        return [f"f{j}" for j in range(width)]
