"""Several decorators of one model version: shared aggregates, each decorator's own recording options."""

from __future__ import annotations

import modelwatch
import pytest
from modelwatch.testing import capture


def _predict(row: dict) -> dict:
    return {"prediction": 1, "score": 0.99}


def _ordinary(row: dict) -> dict:
    return {"prediction": 1, "score": 0.8}  # confident enough, not risky: no rule keeps it


def _ssn_points(rec):
    return [p for p in rec.metric_points("ml.feature.value") if p.attributes.get("ml.feature.name") == "ssn"]


@pytest.mark.parametrize("private_first", [True, False])
def test_a_feature_one_decorator_drops_never_reaches_the_shared_metrics(private_first):
    """A feature dropped by one decorator stays out of the model version's metrics, while the other decorator's values of it are counted."""
    with capture() as rec:
        make_private = lambda: modelwatch.monitor(_predict, model="shared", version="1", sampling_rate=1.0, drop_features=["ssn"])  # noqa: E731
        make_public = lambda: modelwatch.monitor(_predict, model="shared", version="1", sampling_rate=1.0)  # noqa: E731
        if private_first:
            private, public = make_private(), make_public()
        else:
            public, private = make_public(), make_private()
        private({"ssn": 123.0, "x": 1.0})
        public({"ssn": 5.0, "x": 2.0})

        spans = rec.predictions()
        assert "ml.feature.ssn" not in spans[0].attributes
        assert spans[1].attributes["ml.feature.ssn"] == 5.0
        points = _ssn_points(rec)
        assert [(p.count, p.sum) for p in points] == [(1, 5.0)]
        assert rec.metric_value("ml.feature.value", **{"ml.feature.name": "x"}) == 2


@pytest.mark.parametrize("hashing_first", [True, False])
def test_a_feature_one_decorator_hashes_is_counted_hashed_only_from_that_decorator(hashing_first):
    """Values of a feature hashed by one decorator are counted as hashes; the other decorator's values of it stay plain."""
    from modelwatch.values import keyed_hash

    with capture() as rec:
        make_hashing = lambda: modelwatch.monitor(_predict, model="shared-h", version="1", sampling_rate=1.0, hash_features=["email"])  # noqa: E731
        make_plain = lambda: modelwatch.monitor(_predict, model="shared-h", version="1", sampling_rate=1.0)  # noqa: E731
        if hashing_first:
            hashing, plain = make_hashing(), make_plain()
        else:
            plain, hashing = make_plain(), make_hashing()
        hashing({"email": "a@example.com"})
        plain({"email": "shown"})

        spans = rec.predictions()
        assert spans[0].attributes["ml.feature.email"] == keyed_hash("a@example.com", b"")
        assert spans[1].attributes["ml.feature.email"] == "shown"
        counted = {p.attributes["ml.feature.value"] for p in rec.metric_points("ml.feature.category")
                   if p.attributes.get("ml.feature.name") == "email"}
        assert counted == {keyed_hash("a@example.com", b""), "shown"}


def test_each_decorator_of_one_model_version_samples_by_its_own_policy():
    """Two decorators of one model version keep spans by their own sampling rate, and both count in the shared decisions."""
    with capture() as rec:
        everything = modelwatch.monitor(_ordinary, model="shared-s", version="1", sampling_rate=1.0)
        nothing = modelwatch.monitor(_ordinary, model="shared-s", version="1", sampling_rate=0.0)
        for _ in range(5):
            everything({"x": 1.0})
            nothing({"x": 2.0})

        assert [s.attributes["ml.feature.x"] for s in rec.predictions()] == [1.0] * 5
        assert rec.metric_value("ml.sampling.decisions", decision="kept", reason="random") == 5
        assert rec.metric_value("ml.sampling.decisions", decision="dropped", reason="not_sampled") == 5
        assert rec.metric_value("ml.feature.value", **{"ml.feature.name": "x"}) == 10
