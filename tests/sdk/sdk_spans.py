"""Test helper: a batch call's kept spans against the same rows predicted one at a time."""

from __future__ import annotations

from typing import Any, Callable

import modelwatch
import pandas as pd
import pytest
from modelwatch.testing import capture


def batch_and_single_spans(proba: Callable[[pd.DataFrame], Any], df: pd.DataFrame, model: str) -> tuple[list, list]:
    """Every row kept: the spans of one batch call of `proba` on `df`, and of each row predicted alone."""
    batch_predict = modelwatch.monitor(proba, model=model, sampling_rate=1.0)
    single_predict = modelwatch.monitor(lambda row: proba(pd.DataFrame([row]))[0], model=model, sampling_rate=1.0)
    with capture() as rec:
        batch_predict(df)
        rows = rec.predictions()
    with capture() as rec:
        for _, row in df.iterrows():
            single_predict(row.to_dict())
        singles = rec.predictions()
    assert len(rows) == len(singles) == len(df)
    return rows, singles


def assert_same_attributes(a: Any, b: Any) -> None:
    """Two spans carry the same attributes, in the same order, of the same types (prediction ids aside)."""
    da, db = dict(a.attributes), dict(b.attributes)
    da.pop("ml.prediction.id"), db.pop("ml.prediction.id")
    assert list(da) == list(db)
    for k in da:
        assert da[k] == pytest.approx(db[k]) if isinstance(da[k], float) else da[k] == db[k], k
        assert type(da[k]) is type(db[k]), k
