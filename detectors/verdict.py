"""The model-level drift verdict: the share of a model's input features that drifted in a window, weighted
by feature importance when the user gives one (Evidently's "dataset drift", with weights).

A feature is *drifted* when its result marked ``detail["primary"]`` (the one test that decides the
feature, chosen by the drift detector) has status ``alert``; a feature none of whose results carries a
primary mark is drifted when any of its results alerts. A feature whose deciding results are all
"not enough data" or "error" is *undecided*: it is left out of the share (and named in the detail).
Prediction and label pseudo-features (``@pred.*``, ``@label.*``) are not input features and never count.

Weights: without ``importance`` every decided feature weighs 1. With it, a feature weighs its importance;
a feature the importance does not name weighs 0 (named in ``detail["unweighted"]``), and importance
entries for features the window does not have are ignored (named in ``detail["importance_unknown"]``):
a feature can be missing from one window without the configuration being wrong.

The result: ``detector="drift", subject="", test="drift_share"``, value = drifted weight / decided weight,
threshold = ``drift_share`` (default 0.5), status ``alert`` when value >= threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.results import ALERT, OK, Result

__all__ = ["VerdictConfig", "drift_verdict", "drifted_features", "VERDICT_TEST"]

VERDICT_TEST = "drift_share"
_LISTED = 500   # at most this many features named in each list of the detail


@dataclass(frozen=True, kw_only=True)
class VerdictConfig:
    """``importance``: feature -> weight (finite, >= 0; empty: every feature weighs 1).
    ``drift_share``: the share of drifted (weighted) features at which the model drifts, in (0, 1]."""

    importance: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.importance, Mapping):
            raise ValueError("drift.importance: must be a mapping of feature name to weight")
        norm: dict[str, float] = {}
        for k, v in self.importance.items():
            if not isinstance(k, str) or not k:
                raise ValueError(f"drift.importance: feature names must be non-empty strings, got {k!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"drift.importance[{k!r}]: must be a finite number >= 0, got {v!r}")
            norm[k] = float(v)
        if norm and not sum(norm.values()) > 0:
            raise ValueError("drift.importance: at least one weight must be > 0")
        object.__setattr__(self, "importance", norm)
        s = self.drift_share
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 1:
            raise ValueError(f"drift.drift_share: must be a number in (0, 1], got {s!r}")

    @classmethod
    def pop_from(cls, drift: dict[str, Any]) -> VerdictConfig:
        """Take the verdict's keys (``importance``, ``drift_share``) out of a config's ``drift`` section."""
        kw = {k: drift.pop(k) for k in ("importance", "drift_share") if k in drift}
        if kw.get("importance") is None:
            kw.pop("importance", None)
        return cls(**kw)


def drifted_features(results: Iterable[Result]) -> tuple[dict[str, list[str]], list[str]]:
    """``({feature: deciding tests, [] when not drifted}, undecided features)`` of a window's drift results."""
    by_feature: dict[str, list[Result]] = {}
    for r in results:
        if r.detector == "drift" and r.subject and not r.subject.startswith("@"):
            by_feature.setdefault(r.subject, []).append(r)
    decided: dict[str, list[str]] = {}
    undecided: list[str] = []
    for f, rs in sorted(by_feature.items()):
        primary = [r for r in rs if bool(r.detail.get("primary"))]
        deciding = [r for r in (primary or rs) if r.status in (OK, ALERT)]
        if not deciding:
            undecided.append(f)
            continue
        decided[f] = sorted(r.test for r in deciding if r.status == ALERT)
    return decided, undecided


def drift_verdict(results: Iterable[Result], config: VerdictConfig | None = None) -> Result:
    """The model-level verdict of one window's feature-level drift ``results``."""
    cfg = config or VerdictConfig()
    decided, undecided = drifted_features(results)
    if not decided:
        return Result.no_data("drift", "", VERDICT_TEST, "no feature with a decided drift result in the window",
                              threshold=cfg.drift_share, undecided=undecided[:_LISTED])
    imp = cfg.importance
    weights = {f: (imp.get(f, 0.0) if imp else 1.0) for f in decided}
    total = sum(weights.values())
    detail: dict[str, Any] = {"weighted": bool(imp), "features": len(decided)}
    if imp:
        detail["unweighted"] = sorted(f for f in decided if f not in imp)[:_LISTED]
        detail["importance_unknown"] = sorted(set(imp) - set(decided) - set(undecided))[:_LISTED]
    drifted = sorted((f for f, tests in decided.items() if tests), key=lambda f: (-weights[f], f))
    detail["drifted"] = [{"feature": f, "weight": weights[f] / total if total else 0.0, "tests": decided[f]}
                         for f in drifted[:_LISTED]]
    detail["drifted_count"] = len(drifted)
    detail["undecided"] = undecided[:_LISTED]
    if total <= 0:
        return Result.no_data("drift", "", VERDICT_TEST, "no decided feature has an importance weight > 0",
                              threshold=cfg.drift_share, sample_size=len(decided), **detail)
    share = sum(weights[f] for f in drifted) / total
    if imp:   # the normalised weights, read back by the root-cause ranking (detectors.rootcause)
        detail["weights"] = {f: weights[f] / total for f in sorted(decided, key=lambda f: -weights[f])[:_LISTED]}
    return Result(detector="drift", subject="", test=VERDICT_TEST, value=share, threshold=cfg.drift_share,
                  status=ALERT if share >= cfg.drift_share - 1e-12 else OK, sample_size=len(decided), detail=detail)
