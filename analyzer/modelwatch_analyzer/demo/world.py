"""The demo's simulated world: loan applicants, their true risk, the drift event, and the model scoring them.

Applicants are generated with numpy: income (log-normal), age, debt ratio,
years employed, credit lines, loan amount, region, home ownership and loan
purpose. The **drift event** is a flag on both generators: a recession lowers
incomes and raises debt, a new region (:data:`NEW_REGION`) opens whose risk
the model has never seen, the real default rate rises, and an upstream form
change leaves ``employment_years`` empty for some applicants.

The model, :class:`CreditModel`, is a logistic regression fitted with
Newton's method on applicants from before the event. Nothing here knows about
telemetry: :mod:`modelwatch_analyzer.demo.traffic` sends these applicants
through the monitored scoring function.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MODEL = "credit-risk"
VERSION = "2024.06"
REGIONS = ("north", "south", "east", "west")
NEW_REGION = "central"
HOMES = ("rent", "mortgage", "own")
PURPOSES = ("car", "home_improvement", "debt_consolidation", "education", "business")
TRAINING_ROWS = 20_000


# -- the world: applicants and their true risk ---------------------------------------------


def applicants(rng: np.random.Generator, n: int, drifted: bool) -> dict[str, np.ndarray]:
    """`n` generated loan applications; after the drift event, the recession's."""
    income = rng.lognormal(math.log(52_000), 0.45, n) * (0.72 if drifted else 1.0)
    regions_p = [0.3, 0.25, 0.25, 0.2]
    regions = list(REGIONS)
    if drifted:
        regions, regions_p = regions + [NEW_REGION], [0.24, 0.2, 0.2, 0.16, 0.2]
    years = np.round(np.clip(rng.exponential(6.0, n), 0, 45), 1).astype(object)
    if drifted:  # an upstream form change: the field is sometimes left empty
        years[rng.random(n) < 0.12] = None
    return {
        "income": np.round(income, 2),
        "age": np.clip(np.round(rng.normal(41, 12, n)), 18, 85).astype(int),
        "debt_ratio": np.round(np.clip(rng.beta(2.2, 5.0, n) + (0.09 if drifted else 0.0), 0, 1.5), 4),
        "employment_years": years,
        "credit_lines": rng.poisson(4.0, n),
        "loan_amount": np.round(rng.lognormal(math.log(14_000), 0.55, n), -1),
        "region": rng.choice(regions, n, p=regions_p),
        "home_ownership": rng.choice(HOMES, n, p=[0.4, 0.42, 0.18]),
        "loan_purpose": rng.choice(PURPOSES, n, p=[0.25, 0.15, 0.35, 0.1, 0.15]),
    }


def true_default_probability(a: dict[str, np.ndarray], drifted: bool) -> np.ndarray:
    """The world's risk (the model only ever sees samples of it)."""
    years = np.array([6.0 if v is None else v for v in a["employment_years"]], float)
    z = (-1.75 - 1.4 * np.log(a["income"] / 52_000) + 4.5 * (a["debt_ratio"] - 0.3) - 0.025 * (a["age"] - 41)
         - 0.07 * (years - 6) + 0.08 * (a["credit_lines"] - 4) + 0.9 * np.log(a["loan_amount"] / 14_000)
         + np.where(a["loan_purpose"] == "business", 0.6, 0.0) + np.where(a["loan_purpose"] == "education", 0.3, 0.0)
         + np.where(a["home_ownership"] == "own", -0.4, 0.0) + np.where(a["region"] == "south", 0.2, 0.0))
    if drifted:  # the recession hits harder than incomes alone say, and the new region is riskier
        z = z + 0.6 + np.where(a["region"] == NEW_REGION, 1.2, 0.0)
    return 1 / (1 + np.exp(-z))


# -- the model: logistic regression, fitted with Newton's method ------------------------------


class CreditModel:
    """Logistic regression on standardised numeric features and one-hot categories."""

    def __init__(self) -> None:
        self.mean = np.zeros(0)
        self.std = np.ones(0)
        self.coef = np.zeros(0)
        self.median_years = 6.0

    def _matrix(self, a: dict[str, Any]) -> np.ndarray:
        years = np.array([self.median_years if v is None else v for v in np.atleast_1d(a["employment_years"])], float)
        num = np.column_stack([np.log(np.atleast_1d(a["income"]).astype(float)), np.atleast_1d(a["age"]).astype(float),
                               np.atleast_1d(a["debt_ratio"]).astype(float), years,
                               np.atleast_1d(a["credit_lines"]).astype(float),
                               np.log(np.atleast_1d(a["loan_amount"]).astype(float))])
        if self.mean.size:
            num = (num - self.mean) / self.std
        onehot = [np.atleast_1d(a[k])[:, None] == np.array(v)[None, 1:]
                  for k, v in (("region", REGIONS), ("home_ownership", HOMES), ("loan_purpose", PURPOSES))]
        return np.column_stack([np.ones(len(num)), num] + [o.astype(float) for o in onehot])

    def fit(self, a: dict[str, np.ndarray], y: np.ndarray, l2: float = 1e-3) -> CreditModel:
        raw = self._matrix(a)[:, 1:7]
        self.mean, self.std = raw.mean(axis=0), raw.std(axis=0) + 1e-12
        x = self._matrix(a)
        w = np.zeros(x.shape[1])
        for _ in range(25):
            p = 1 / (1 + np.exp(-x @ w))
            grad = x.T @ (p - y) + l2 * w
            hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < 1e-8:
                break
        self.coef = w
        return self

    def predict_proba(self, a: dict[str, Any]) -> np.ndarray:
        return 1 / (1 + np.exp(-self._matrix(a) @ self.coef))


def train(rng: np.random.Generator) -> tuple[CreditModel, float, float]:
    """The model fitted on :data:`TRAINING_ROWS` applicants from before the event: (model, default rate, accuracy)."""
    train_set = applicants(rng, TRAINING_ROWS, drifted=False)
    y = rng.random(TRAINING_ROWS) < true_default_probability(train_set, drifted=False)
    clf = CreditModel().fit(train_set, y.astype(float))
    accuracy = float(np.mean((clf.predict_proba(train_set) > 0.5) == y))
    return clf, float(y.mean()), accuracy
