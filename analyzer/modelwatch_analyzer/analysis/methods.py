"""Drift methods, registered by name per feature type, and their defaults.

=================  ==========  ===========  =========================================
method             types       kind         default rule
=================  ==========  ===========  =========================================
``psi``            both        distance     drifted at >= 0.1; bands 0.1 / 0.2 / 0.3
``jensen_shannon`` both        distance     drifted at >= 0.1 (base-2 distance, [0, 1])
``wasserstein``    numeric     distance     drifted at >= 0.1 (W1 / reference std)
``ks``             numeric     test         drifted when BH-adjusted p < alpha (0.05)
``chi_square``     categorical test         drifted when BH-adjusted p < alpha (0.05)
=================  ==========  ===========  =========================================

Every method runs on every feature of its type: they all come from the same
two scans, so the extra methods cost microseconds. One of them is the
feature's **score** (default ``psi``): its value is the drift score that
grades severity — ``info`` (minor) from 0.1, ``warning`` (moderate) from
0.2, ``critical`` (severe) from 0.3, configurable — and its verdict is the
feature's verdict.

**Significance gate.** A distance method says "drifted" only when the
distance reaches its threshold *and* the feature's test (KS or chi-square,
p-values corrected across the model's features by Benjamini-Hochberg) is
significant. At production volumes every test is significant and the
distance decides how bad; on a small window the test keeps sampling noise
(PSI's expected value under no drift is about ``(bins - 1)·(1/n_ref +
1/n_cur)``, 0.18 at 100 rows a side) from paging anyone. ``gate = false``
turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NUMERIC_METHODS = ("psi", "ks", "wasserstein", "jensen_shannon")
CATEGORICAL_METHODS = ("psi", "chi_square", "jensen_shannon")
TESTS = {"ks", "chi_square"}
DISTANCES = {"psi", "jensen_shannon", "wasserstein"}
ALL_METHODS = tuple(dict.fromkeys(NUMERIC_METHODS + CATEGORICAL_METHODS))

DEFAULT_THRESHOLDS = {"psi": 0.1, "jensen_shannon": 0.1, "wasserstein": 0.1}
DEFAULT_BANDS = (0.1, 0.2, 0.3)


@dataclass(frozen=True)
class MethodRule:
    threshold: float
    bands: tuple[float, float, float] = DEFAULT_BANDS


@dataclass
class DriftSettings:
    """How a model's drift is judged; per-feature overrides win over the model's values."""

    score: str = "psi"
    alpha: float = 0.05
    gate: bool = True
    min_samples: float = 30.0  # effective observations per side, below which: insufficient data
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    bands: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    features: dict[str, dict[str, object]] = field(default_factory=dict)  # feature -> {score, thresholds, bands}
    categorical: tuple[str, ...] = ()  # numeric-looking features to treat as categories (zip codes)
    drift_share: float = 0.5  # share of drifted features at which the model-level summary says "drifted"
    methods: tuple[str, ...] = ()  # report only these methods (empty: all); the score method and the gate's test still run

    def reported(self, method: str, feature: str, numeric: bool) -> bool:
        return not self.methods or method in self.methods or method == self.score_method(feature, numeric)

    def score_method(self, feature: str, numeric: bool) -> str:
        method = str(self.features.get(feature, {}).get("score", self.score))
        allowed = NUMERIC_METHODS if numeric else CATEGORICAL_METHODS
        return method if method in allowed and method in DISTANCES else "psi"

    def rule(self, feature: str, method: str) -> MethodRule:
        override = self.features.get(feature, {})
        thresholds = {**self.thresholds, **dict(override.get("thresholds", {}))}  # type: ignore[arg-type]
        bands = {**self.bands, **dict(override.get("bands", {}))}  # type: ignore[arg-type]
        threshold = float(thresholds.get(method, self.alpha if method in TESTS else DEFAULT_THRESHOLDS.get(method, 0.1)))
        return MethodRule(threshold, tuple(bands.get(method, DEFAULT_BANDS)))  # type: ignore[arg-type]
