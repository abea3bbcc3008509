"""One detector run for one model and window: drift, data quality and performance, written to
``detector_results``. The scheduler in ``driftline`` calls :func:`run_detectors` per model."""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.store import Store
from detectors.calibration import gather
from detectors.cbpe import DETECTOR as CBPE
from detectors.cbpe import CBPEConfig, cbpe_results
from detectors.drift import DriftConfig, WindowSummary, drift_results, summarize_window
from detectors.drift_sql import labels_source, window_source
from detectors.multivariate import MultivariateConfig, multivariate_results
from detectors.performance import PerformanceConfig, performance_results
from detectors.quality import QualityConfig, feature_freshness, quality_results
from detectors.reference import Profile, load_profile, previous_window_reference
from detectors.results import ERROR, Result, write_results
from detectors.stattests import DEFAULT_REGISTRY, Registry
from detectors.verdict import VerdictConfig, drift_verdict

__all__ = ["DetectorConfig", "RunReport", "run_detectors", "check_config", "PREVIOUS"]

PREVIOUS = "previous"


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    drift: DriftConfig = field(default_factory=DriftConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    detectors: frozenset[str] = frozenset({"drift", "quality", "performance"})
    verdict: VerdictConfig = field(default_factory=VerdictConfig)   # the model-level drift verdict
    #: performance estimation before labels: runs when the model has a stored calibration (detectors.cbpe),
    #: or always (a "not enough data" result without one) when "estimated_performance" is in ``detectors``
    cbpe: CBPEConfig = field(default_factory=CBPEConfig)
    multivariate: MultivariateConfig = field(default_factory=MultivariateConfig)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DetectorConfig:
        """``{"drift": {"tests": {"psi": 0.2}, "bins": 10}, "quality": {...}, "performance": {...}}``."""
        d = dict(d or {})
        drift = dict(d.get("drift") or {})
        verdict = VerdictConfig.pop_from(drift)   # drift.importance, drift.drift_share
        kw: dict[str, Any] = {"drift": DriftConfig.parse(drift.pop("tests", None), **drift)}
        if "quality" in d:
            q = dict(d["quality"])
            if "ignore" in q:
                q["ignore"] = frozenset(q["ignore"])
            kw["quality"] = QualityConfig(**q)
        if "performance" in d:
            kw["performance"] = PerformanceConfig(**d["performance"])
        if "detectors" in d:
            kw["detectors"] = frozenset(d["detectors"])
        kw["verdict"] = verdict
        if "cbpe" in d:
            kw["cbpe"] = CBPEConfig(**d["cbpe"])
        if "multivariate" in d:
            kw["multivariate"] = MultivariateConfig.parse(d["multivariate"])
        return cls(**kw)


@dataclass(frozen=True)
class RunReport:
    run_id: str
    model: str
    model_version: str
    window_start: _dt.datetime
    window_end: _dt.datetime
    reference: str
    results: list[Result]

    @property
    def alerts(self) -> list[Result]:
        return [r for r in self.results if r.status == "alert"]


def check_config(config: DetectorConfig | Mapping[str, Any] | None,
                 registry: Registry = DEFAULT_REGISTRY) -> DetectorConfig:
    """The configuration of a run, checked: its parts parse and every named test is in ``registry``."""
    cfg = config if isinstance(config, DetectorConfig) else DetectorConfig.from_dict(config)
    for name in cfg.drift.tests:
        registry.get(name)
    return cfg


def run_detectors(store: Store, model: str, window_end: _dt.datetime, window: _dt.timedelta, *,
                  reference: str | Profile = PREVIOUS, model_version: str | None = None,
                  config: DetectorConfig | Mapping[str, Any] | None = None, registry: Registry = DEFAULT_REGISTRY,
                  write: bool = True, run_id: str | None = None) -> RunReport:
    """Run the detectors of ``model`` on ``[window_end - window, window_end)``.

    ``reference``: the name of a stored reference (uploaded baseline or fixed window), a
    :class:`Profile`, or ``"previous"`` (the window just before, built once and stored).
    ``model_version``: restrict to one version (None: all versions; results say ``"*"``).
    Results are written to ``detector_results`` unless ``write=False``; they are returned either way.
    A failing part gives an ``error`` result for that detector instead of raising.
    """
    if window.total_seconds() <= 0:
        raise ValueError("window must be positive")
    cfg = check_config(config, registry)  # a configuration error raises before any work
    if window_end.tzinfo is None:
        window_end = window_end.replace(tzinfo=_dt.UTC)
    start = window_end - window
    run_id = run_id or uuid.uuid4().hex
    version_label = model_version if model_version is not None else "*"
    results: list[Result] = []
    if isinstance(reference, Profile):
        profile: Profile | None = reference
        ref_name = reference.name
    elif reference == PREVIOUS:
        profile = previous_window_reference(store, model, start - window, start, version=model_version)
        ref_name = profile.name
    else:
        profile = load_profile(store, model, reference)
        ref_name = reference
    if profile is None:
        results.append(Result(detector="drift", subject="", test="reference", value=None, threshold=None,
                              status=ERROR,
                              detail={"reason": f"no stored reference {reference!r} for model {model!r}"}))
    else:
        if profile.rows == 0:
            results.append(Result.no_data("drift", "", "reference", f"reference {ref_name!r} has no rows"))
        src = window_source(model, start, window_end, model_version)
        cur: WindowSummary | None
        lab: WindowSummary | None
        try:
            grid = None if cfg.drift.needs_full_grid else cfg.drift.bins
            cur = summarize_window(store, src, profile, bins=grid)
            lab = summarize_window(store, labels_source(model, start, window_end, model_version), profile, bins=grid) \
                if any(f.startswith("@label.") for f in profile.features) else None
        except Exception as exc:  # noqa: BLE001 - reported as a result, the scheduler keeps going
            results.append(Result(detector="drift", subject="", test="summary", value=None, threshold=None,
                                  status=ERROR, detail={"reason": f"{type(exc).__name__}: {exc}"[:2000]}))
            cur = lab = None
        if cur is not None:
            if "drift" in cfg.detectors:
                # calibrated thresholds (detectors.calibration): the reference's chunks (cached) and the history
                cal = gather(store, profile, cur.rows, cur.edges, model=model, model_version=version_label,
                             before=start) if cfg.drift.calibrated_any and cur.rows else None
                results += _guard("drift", lambda: drift_results(profile, cur, cfg.drift, registry=registry,
                                  features={f for f in set(profile.features) | set(cur.numeric) | set(cur.categorical)
                                            if not f.startswith("@label.")}, calibration=cal))
                if lab is not None:
                    results += _guard("drift", lambda: drift_results(
                        profile, lab, cfg.drift, registry=registry,
                        features={f for f in profile.features if f.startswith("@label.")}, calibration=cal))
                # the model-level verdict: the share of drifted features (detectors.verdict)
                results += _guard("drift", lambda: [drift_verdict(results, cfg.verdict)])
            if "quality" in cfg.detectors:
                results += _guard("quality", lambda: quality_results(profile, cur, window_end=window_end,
                                                                     config=cfg.quality))
                if cfg.quality.timestamp_features:
                    results += _guard("quality", lambda: feature_freshness(
                        store, src, cfg.quality.timestamp_features, threshold_s=cfg.quality.feature_age_s))
        if "multivariate" in cfg.detectors:
            results += _guard("multivariate", lambda: multivariate_results(store, profile, src, cfg.multivariate,
                                                                           version=model_version))
    if "performance" in cfg.detectors:
        results += _guard("performance", lambda: performance_results(store, model, start, window_end,
                                                                     version=model_version, config=cfg.performance))
    results += _guard(CBPE, lambda: cbpe_results(store, model, start, window_end, version=model_version,
                                                 config=cfg.cbpe, required=CBPE in cfg.detectors))
    if write:
        write_results(store, results, run_id=run_id, model=model, model_version=version_label,
                      window_start=start, window_end=window_end)
    return RunReport(run_id, model, version_label, start, window_end, ref_name, results)


def _guard(detector: str, fn: Any) -> list[Result]:
    try:
        return list(fn())
    except Exception as exc:  # noqa: BLE001 - one broken detector must not hide the others
        return [Result(detector=detector, subject="", test="run", value=None, threshold=None, status=ERROR,
                       detail={"reason": f"{type(exc).__name__}: {exc}"[:2000]})]
