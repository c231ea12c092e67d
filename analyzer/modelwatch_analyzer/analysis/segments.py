"""Segments: one slice of a model's predictions analysed against the same slice of its reference.

A drift confined to one region, one pod or one environment is diluted in the
whole population's numbers. A *segment* is the predictions whose categorical
feature ``key`` has one value (``region=north``), or whose OTel resource
attribute does (``service.instance.id=pod-7``, ``deployment.environment=eu``:
where the prediction was made; ``ml_predictions.Resource`` keeps the
attributes listed in ``typed_tables.SEGMENT_RESOURCE_KEYS`` and any starting
with ``ml.segment.``). Configured per model: ``segments = { keys = ["region",
"service.instance.id"], max_values = 20, min_samples = 100 }``.

* A key's segments are the window's heaviest ``max_values`` values (by
  sampling weight); the rest are counted in the summary, not analysed.
* Each segment's drift, data quality, output patterns and performance (against
  its labels) are computed as the population's are, against **the same
  segment of the reference**: a region whose applicants always differed from
  the average is not drift. For a baseline built from stored predictions the
  segment's reference is built from the same window at the first analysis
  that needs it and stored (``ml_baselines``, ``Source`` ``segment:key=value
  of …``, an id derived from the baseline's and the segment); for one built
  from a file, with the baseline (``baseline create --segment KEY``; features
  only: a file has no resource attributes).
* Every segment's drift tests form **one Benjamini-Hochberg family**
  (features × segments), so forty pods do not multiply false alarms forty
  times; a segment's distances are gated by its own corrected tests.
* Reported, never dropped: a segment with fewer than ``min_samples`` effective
  observations, one the reference does not have (a new value: the population's
  unseen-category check names it), and a resource key the window's spans do not
  carry are results of kind ``segment`` with status ``insufficient_data`` and
  the reason.
* The summary (kind ``segment``, method ``segment_drift``) says where drift
  concentrates: "income drifted in region=north only (1 of 4 region
  segments)"; its statistic is the share of analysed segments with a drifted
  feature.

Every result of a segment carries ``segment`` (``key=value``; stored in
``ml_results.Segment``, ``ml.segment`` on the metrics); the population's is ''.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis import stats
from modelwatch_analyzer.analysis.baseline import Baseline
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result, worst
from modelwatch_analyzer.analysis.window import Segment, Window
from modelwatch_analyzer.errors import BaselineError, ConfigError
from modelwatch_analyzer.store.client import Store

KIND = "segment"


@dataclass
class SegmentSettings:
    keys: list[str] = field(default_factory=list)  # categorical features or resource attributes
    max_values: int = 20  # the window's heaviest values of each key are analysed
    min_samples: float = 100.0  # effective observations of a segment below which it is insufficient


@dataclass
class Plan:
    """Which segments of a window are analysed (with their reference), which are not and why."""

    analysed: list[tuple[Segment, Baseline]] = field(default_factory=list)
    unanalysed: list[Result] = field(default_factory=list)
    by_key: dict[str, list[str]] = field(default_factory=dict)  # key -> analysed segments
    beyond: dict[str, int] = field(default_factory=dict)  # key -> values past max_values


def segment(baseline: Baseline, key: str, value: str) -> Segment:
    """`key` = `value` as a segment: a categorical feature's when the baseline has one, else a resource attribute's."""
    if key in baseline.numeric():
        raise ConfigError(f"segments: {key!r} is a numeric feature; segments are categorical features or OTel "
                          "resource attributes")
    return Segment(key, value, resource=key not in baseline.categorical())


def segment_id(parent_id: str, seg: Segment) -> str:
    """The stored id of `seg`'s reference under the baseline `parent_id`."""
    digest = hashlib.sha1(f"{int(seg.resource)}\0{seg.key}\0{seg.value}".encode()).hexdigest()[:12]
    return f"{parent_id}.{digest}"


def values(store: Store, window: Window, key: str, resource: bool, limit: int) -> list[tuple[str, float, float]]:
    """The window's values of `key` with their weight and squared weight, heaviest first (at most `limit` + 1)."""
    where, params = window.where()
    column = "Resource" if resource else "Categorical"
    rows = store.query(f"SELECT {column}[{{key:String}}] AS v, sum(Weight), sum(Weight * Weight) "
                       f"FROM {store.table('ml_predictions')} WHERE {where} AND mapContains({column}, {{key:String}}) "
                       "GROUP BY v ORDER BY sum(Weight) DESC, v LIMIT {limit:UInt32}",
                       dict(params, key=key, limit=limit + 1))
    return [(str(v), float(w), float(w2)) for v, w, w2 in rows]


def reference(store: Store, parent: Baseline, seg: Segment, save: bool = True) -> tuple[Baseline | None, str]:
    """`seg`'s reference under `parent` (loaded, or built from the parent's window and, `save`, stored); else why not."""
    sid = segment_id(parent.id, seg)
    if save:  # an unsaved parent has no stored segments
        try:
            return baselines.load(store, parent.model, baseline_id=sid), ""
        except BaselineError:
            pass
    source = baselines.source_window(parent)
    if source is None:
        if seg.resource:
            return None, (f"the baseline was built from {parent.source}, which has no resource attributes: build it "
                          "from stored predictions (baseline create --since/--until) to segment by them")
        return None, f"the baseline has no reference for this segment: build it with baseline create --segment {seg.key}"
    try:
        ref = baselines.from_window(store, source.of_segment(seg), parent.version)
    except BaselineError:
        return None, "the reference window has no predictions in this segment (a new segment)"
    ref.id = sid
    if save:
        baselines.save(store, ref)
    return ref, ""


def from_frame(df: Any, parent: Baseline, key: str, build: Callable[[Any, str], Baseline], max_values: int = 20) -> list[Baseline]:
    """The references of `key`'s heaviest `max_values` values in a training frame, with the ids :func:`reference`
    looks up; `build(sub_frame, source)` builds a baseline as the parent was."""
    if key not in df.columns:
        raise ConfigError(f"--segment {key}: no such column in the training data")
    out = []
    for value in df[key].dropna().astype(str).value_counts().index[:max_values]:
        seg = segment(parent, key, str(value))
        sub = df[df[key].astype(str) == value]
        ref = build(sub, f"{baselines.SEGMENT_SOURCE}{seg} of {parent.source}")
        ref.id = segment_id(parent.id, seg)
        out.append(ref)
    return out


def plan(store: Store, window: Window, parent: Baseline, cfg: SegmentSettings) -> Plan:
    """The segments of `window` to analyse under `cfg`, each with its reference, and the rest as results."""
    out = Plan()
    for key in cfg.keys:
        resource = segment(parent, key, "").resource
        found = values(store, window, key, resource, cfg.max_values)
        out.by_key[key] = []
        out.beyond[key] = max(len(found) - cfg.max_values, 0)
        if not found:
            where = "resource attribute" if resource else "feature"
            out.unanalysed.append(_insufficient(Segment(key, "", resource), 0.0,
                                                f"no prediction in the window has the {where} {key!r}"))
        for value, w, w2 in found[:cfg.max_values]:
            seg = Segment(key, value, resource)
            n_eff = stats.effective_n(w, w2)
            if n_eff < cfg.min_samples:
                out.unanalysed.append(_insufficient(seg, w, f"{n_eff:.0f} effective observations (< {cfg.min_samples:g})"))
                continue
            ref, why = reference(store, parent, seg)
            if ref is None:
                out.unanalysed.append(_insufficient(seg, w, why))
                continue
            out.analysed.append((seg, ref))
            out.by_key[key].append(str(seg))
    return out


def _insufficient(seg: Segment, weight: float, reason: str) -> Result:
    return Result("", "", None, KIND, KIND, None, n_current=weight, status=INSUFFICIENT, segment=str(seg),
                  details={"reason": reason, "key": seg.key, "resource": seg.resource})


def summary(p: Plan, rows: list[Result]) -> Result:
    """Where the segments' drift concentrates (see the module docstring)."""
    verdicts = [r for r in rows if r.kind == "drift" and r.drifted and r.details.get("score") and r.segment]
    drifted: dict[str, dict[str, list[str]]] = {}  # feature -> key -> segments
    for r in verdicts:
        key = r.segment.split("=", 1)[0]
        drifted.setdefault(r.feature or "", {}).setdefault(key, []).append(r.segment)
    lines = []
    for feature in sorted(drifted):
        for key, segs in sorted(drifted[feature].items()):
            of = len(p.by_key.get(key, []))
            if len(segs) == of and of > 1:
                lines.append(f"{feature} drifted in every {key} segment ({of})")
            else:
                which = ", ".join(sorted(segs)) + (" only" if len(segs) == 1 else "")
                lines.append(f"{feature} drifted in {which} ({len(segs)} of {of} {key} segments)")
    analysed = sum(len(v) for v in p.by_key.values())
    hit = {r.segment for r in verdicts}
    insufficient = [r.segment for r in p.unanalysed]
    if not analysed:
        return Result("", "", None, "segment_drift", KIND, None, status=INSUFFICIENT,
                      details={"reason": "no segment had enough data and a reference", "insufficient": insufficient,
                               "beyond_max_values": p.beyond})
    return Result("", "", None, "segment_drift", KIND, len(hit) / analysed, drifted=bool(hit),
                  severity=worst(verdicts) if hit else "none",
                  details={"concentrated": lines, "drifted": {f: sorted(s for v in d.values() for s in v)
                                                              for f, d in drifted.items()},
                           "segments": p.by_key, "insufficient": insufficient, "beyond_max_values": p.beyond})
