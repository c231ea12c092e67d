"""modelwatch SDK in five minutes: a credit-risk scorer, monitored, with nothing else running.

    python examples/sdk_quickstart.py

It decorates a small scoring function, makes 5,000 predictions, attaches a
few late labels, and prints what modelwatch recorded: which predictions
became spans and why, with what sampling weight, and the full-population
metrics. Here everything is captured in memory (``modelwatch.testing``);
in production, ``modelwatch.configure()`` sends the same data over OTLP to
a collector (see the README).
"""

from __future__ import annotations

import math
import random
from collections import Counter

import modelwatch
from modelwatch.testing import capture


@modelwatch.monitor(model="credit-risk", version="2024-06", high_risk_threshold=0.9)
def score(applicant: dict) -> dict:
    """P(default) from a hand-written logistic model; the application's inference code."""
    z = (
        -6.0
        + 2.4 * applicant["debt_to_income"]
        - 0.045 * (applicant["credit_score"] - 650)
        + 1.8 * applicant["late_payments"]
        + (1.5 if applicant["employment"] == "unemployed" else 0.0)
    )
    p = 1.0 / (1.0 + math.exp(-z))
    return {"prediction": "default" if p > 0.5 else "repay", "score": p}


def applicants(n: int, rng: random.Random):
    for _ in range(n):
        yield {
            "debt_to_income": max(0.0, rng.gauss(1.0, 0.8)),
            "credit_score": int(rng.gauss(680, 60)),
            "late_payments": rng.choice([0, 0, 0, 1, 1, 2, 5]),
            "employment": rng.choice(["employed", "employed", "self-employed", "unemployed"]),
            "income": rng.lognormvariate(10.5, 0.6),
            "postcode": None if rng.random() < 0.02 else f"{rng.randint(1000, 9999)}",  # sometimes missing
        }


def main() -> None:
    rng = random.Random(42)
    with capture() as rec:
        ids = []
        for applicant in applicants(5000, rng):
            score(applicant)
            ids.append(modelwatch.last_prediction().id)
        # ground truth arrives later, joined by prediction id; labels are never sampled away
        for pid in rng.sample(ids, 200):
            modelwatch.record_label("credit-risk", pid, rng.random() < 0.2, version="2024-06")

        kept = rec.predictions()
        reasons = Counter(s.attributes["ml.sampling.reason"] for s in kept)
        print(f"predictions made:      {rec.metric_value('ml.predictions'):>6}")
        print(f"kept as spans:         {len(kept):>6}  by reason: {dict(reasons)}")
        weighted = sum(s.attributes["ml.sampling.weight"] for s in kept)
        print(f"sum of span weights:   {weighted:>8.0f}  (estimates the 5,000 predictions made)")
        print(f"labels recorded:       {len(rec.labels()):>6}")
        print()
        example = next(s for s in kept if s.attributes["ml.sampling.reason"] == "high_risk")
        print("a kept span (high risk):")
        for key, value in sorted(example.attributes.items()):
            print(f"  {key:32s} {value!r}")
        print()
        print("full-population metrics (every prediction, sampled or not):")
        for point in rec.metric_points("ml.feature.value"):
            print(f"  ml.feature.value {point.attributes['ml.feature.name']:<16s} n={point.count:<5} "
                  f"min={point.min:10.2f} max={point.max:10.2f} scale={point.scale} buckets={len(point.positive.bucket_counts)}")
        missing = {p.attributes["ml.feature.name"]: p.value for p in rec.metric_points("ml.feature.missing")}
        print(f"  ml.feature.missing {missing}")
        print()
        print("next: modelwatch.configure() + OTEL_EXPORTER_OTLP_ENDPOINT sends all of this to a collector.")


if __name__ == "__main__":
    main()
