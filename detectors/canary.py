"""Canary and shadow comparison of two versions of one model over the same period, with a verdict.

``mode="canary"``: the traffic is split, each request served by one version (independent samples).
``mode="shadow"``: the same requests are scored by both versions and joined by ``request_id`` (paired).

Checks (counts come from ClickHouse; the statistics are :mod:`detectors.comparison`):

- **error rate**: canary, every request of the metric windows, one-sided two-proportion test (Fisher's
  exact test when a count is under 10); shadow, McNemar's exact test on the sampled request pairs (errors
  are always sampled, so every discordant pair is there). Margin ``error_margin`` (absolute).
- **accuracy** where labels exist (the latest label per ``request_id``): classification, the same tests on
  correct/labelled (margin ``accuracy_margin``); regression, Welch's t-test on the absolute errors (canary,
  margin ``mae_margin`` × the baseline's MAE).
- **latency**: the metric windows' histograms, Mann-Whitney U on buckets, and p50/p95/p99; harm when the
  candidate is significantly slower *and* its p95 exceeds the baseline's by more than ``latency_tolerance``.
- **prediction distribution**: the drift tests of :mod:`detectors.drift` (PSI as effect size; KS for numbers,
  chi-square for labels as the test) on the candidate against the baseline; shadow adds the paired test
  of the predictions (paired t on the scores, agreement of the labels).
- **feature drift** (canary): the same drift tests per feature: a split that is not random makes every
  comparison confounded.

Decision (a fixed-horizon plan with one early look, never peek-until-significant): the harm p-values of
error rate, accuracy and latency are Holm-adjusted. The planned sample size per version is the
non-inferiority sample size of error rate and accuracy at ``alpha`` and ``power``. Before it is reached,
only overwhelming harm stops the canary (``rollback`` at adjusted p < ``early_p``, the Haybittle-Peto
boundary, which leaves the final test's level practically at ``alpha``); otherwise ``hold`` with the
samples still needed. Once reached: ``rollback`` on harm at ``alpha``; ``promote`` when every margin is
met (the one-sided upper bound of each degradation below its margin), the p95 is within tolerance and no
prediction shift or population drift calls for review; else ``hold`` with the reason.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from collector.fragments import join_latest_label, latest_labels, model_window
from collector.sql import join, sql
from collector.store import Store
from detectors.comparison import (
    Test,
    holm,
    mann_whitney_binned,
    mcnemar,
    n_noninferiority,
    paired_t,
    two_proportions,
    welch,
)
from serving_shim.contract import as_utc

__all__ = ["CanaryConfig", "Check", "Verdict", "compare"]

Mode = Literal["canary", "shadow"]


@dataclass(frozen=True, kw_only=True)
class CanaryConfig:
    alpha: float = 0.05
    power: float = 0.8
    error_margin: float = 0.01        # absolute error-rate increase still acceptable
    accuracy_margin: float = 0.02     # absolute accuracy loss still acceptable
    mae_margin: float = 0.05          # MAE increase still acceptable, as a share of the baseline's MAE
    latency_tolerance: float = 0.10   # p95 increase still acceptable, as a share of the baseline's p95
    psi_threshold: float = 0.2        # a prediction or feature shift this large (and significant) needs review
    early_p: float = 0.001            # stop before the planned sample size only on harm this strong
    min_count: int = 50               # drift tests need this many values per side

    def __post_init__(self) -> None:
        for name in ("alpha", "power", "early_p"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ValueError(f"{name}: must be between 0 and 1, got {v}")
        for name in ("error_margin", "accuracy_margin", "mae_margin", "latency_tolerance", "psi_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive")


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    outcome: str                       # worse | noninferior | inconclusive | shifted | same | not_available
    summary: str
    test: Test | None = None
    adjusted_p: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    n_needed: int | None = None        # planned sample size per version (per pair in shadow mode)
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        t = self.test
        return {"name": self.name, "outcome": self.outcome, "summary": self.summary,
                "test": None if t is None else {**t.__dict__}, "adjusted_p": self.adjusted_p,
                "n_baseline": self.n_baseline, "n_candidate": self.n_candidate, "n_needed": self.n_needed,
                "evidence": self.evidence}


@dataclass(frozen=True, kw_only=True)
class Verdict:
    model: str
    baseline: str
    candidate: str
    mode: str
    start: _dt.datetime
    end: _dt.datetime
    verdict: Literal["promote", "hold", "rollback"]
    reason: str
    checks: tuple[Check, ...]
    samples_needed: int                # more observations per version before the planned decision (0: none)
    config: CanaryConfig

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "baseline": self.baseline, "candidate": self.candidate, "mode": self.mode,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "verdict": self.verdict,
                "reason": self.reason, "samples_needed": self.samples_needed,
                "checks": [c.as_dict() for c in self.checks], "config": dict(self.config.__dict__)}


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:.2f}%" if pct else f"{x:.4g}"


# ---- counting in ClickHouse ------------------------------------------------------------------------------

def _windows(store: Store, model: str, versions: Sequence[str], start: _dt.datetime, end: _dt.datetime
             ) -> dict[str, dict[str, Any]]:
    rows = store.rows(sql(
        """
        SELECT model_version, sum(requests) AS n, sum(arraySum(mapValues(errors))) AS errors,
               sumForEach(latency_buckets) AS buckets
        FROM {db}.metric_windows FINAL
        WHERE %(of)s AND has(%(v)s, model_version)
        GROUP BY model_version
        """, of=model_window(model, start, end, column="window_start"), v=list(versions)))
    return {r["model_version"]: r for r in rows}


def _labelled(store: Store, model: str, versions: Sequence[str], start: _dt.datetime, end: _dt.datetime
              ) -> dict[str, dict[str, Any]]:
    # the latest label of a request: collector.fragments (the README's definition)
    of = join(" AND ", [model_window(model, start, end), sql("has(%(v)s, model_version) AND status = 'ok'",
                                                              v=list(versions))])
    p = sql("(SELECT model, request_id, model_version, pred_label, pred_value FROM {db}.predictions FINAL "
            "WHERE %(of)s)", of=of)
    rows = store.rows(sql(
        """
        SELECT p.model_version AS v,
               countIf(p.pred_label IS NOT NULL AND l.label_class IS NOT NULL) AS classified,
               countIf(ifNull(p.pred_label = l.label_class, false)) AS correct,
               countIf(p.pred_value IS NOT NULL AND l.label_value IS NOT NULL) AS n_reg,
               avgIf(abs(p.pred_value - l.label_value), p.pred_value IS NOT NULL AND l.label_value IS NOT NULL)
                   AS mae,
               varSampIf(abs(p.pred_value - l.label_value), p.pred_value IS NOT NULL AND l.label_value IS NOT NULL)
                   AS mae_var
        FROM %(joined)s
        GROUP BY v
        """, joined=join_latest_label(p, of, inner=True)))
    return {r["v"]: r for r in rows}


def _pairs(store: Store, model: str, baseline: str, candidate: str, start: _dt.datetime, end: _dt.datetime
           ) -> dict[str, Any]:
    side = """(SELECT request_id, argMax(status, ts) AS st, argMax(pred_label, ts) AS pl,
                      argMax(coalesce(pred_score, pred_value), ts) AS pv
               FROM {db}.predictions FINAL
               WHERE %(of)s GROUP BY request_id)"""
    (row,) = store.rows(sql(
        """
        SELECT count() AS pairs,
               countIf(b.st = 'error' AND c.st != 'error') AS err_base_only,
               countIf(c.st = 'error' AND b.st != 'error') AS err_cand_only,
               countIf(b.pl IS NOT NULL AND c.pl IS NOT NULL) AS label_pairs,
               countIf(ifNull(b.pl = c.pl, false)) AS label_agree,
               countIf(b.pv IS NOT NULL AND c.pv IS NOT NULL) AS value_pairs,
               avgIf(c.pv - b.pv, b.pv IS NOT NULL AND c.pv IS NOT NULL) AS mean_diff,
               varSampIf(c.pv - b.pv, b.pv IS NOT NULL AND c.pv IS NOT NULL) AS var_diff,
               countIf(l.label_class IS NOT NULL AND b.pl IS NOT NULL AND c.pl IS NOT NULL) AS acc_pairs,
               countIf(ifNull(b.pl = l.label_class, false) """
        """AND NOT ifNull(c.pl = l.label_class, false)) AS acc_base_only,
               countIf(ifNull(c.pl = l.label_class, false) AND NOT ifNull(b.pl = l.label_class, false)) AS acc_cand_only
        FROM %(b)s AS b
        INNER JOIN %(c)s AS c ON b.request_id = c.request_id
        LEFT JOIN %(l)s AS l ON b.request_id = l.request_id
        SETTINGS join_use_nulls = 1
        """, l=latest_labels(join(" AND ", [model_window(model, start, end),
                                             sql("has(%(v)s, model_version)", v=[baseline, candidate])])),
        b=sql(side, of=model_window(model, start, end, version=baseline)),
        c=sql(side, of=model_window(model, start, end, version=candidate))))
    return row


# ---- checks ----------------------------------------------------------------------------------------------

def _error_check(cfg: CanaryConfig, mode: Mode, mw: dict[str, dict[str, Any]], pairs: dict[str, Any] | None,
                 baseline: str, candidate: str) -> Check:
    if mode == "shadow" and pairs is not None:
        n = int(pairs["pairs"])
        b, c = int(pairs["err_base_only"]), int(pairs["err_cand_only"])
        t = mcnemar(b, c, n, alpha=cfg.alpha)
        disc = (b + c) / n if n else 0.0
        need = n_noninferiority(max(disc, cfg.error_margin), cfg.error_margin, alpha=cfg.alpha, power=cfg.power)
        return Check(name="error_rate", outcome="", test=t, n_baseline=n, n_candidate=n, n_needed=need,
                     summary=f"paired: {c} requests failed on the candidate only, {b} on the baseline only "
                             f"(of {n} pairs)", evidence={"pairs": n, "base_only": b, "cand_only": c})
    nb, eb = int(mw.get(baseline, {}).get("n") or 0), int(mw.get(baseline, {}).get("errors") or 0)
    nc, ec = int(mw.get(candidate, {}).get("n") or 0), int(mw.get(candidate, {}).get("errors") or 0)
    if not nb or not nc:
        return Check(name="error_rate", outcome="not_available", n_baseline=nb, n_candidate=nc,
                     summary="no metric windows for one of the versions in the period")
    t = two_proportions(eb, nb, ec, nc, alpha=cfg.alpha)
    pool = (eb + ec) / (nb + nc)
    need = n_noninferiority(2 * max(pool * (1 - pool), 1e-6), cfg.error_margin, alpha=cfg.alpha, power=cfg.power)
    return Check(name="error_rate", outcome="", test=t, n_baseline=nb, n_candidate=nc, n_needed=need,
                 summary=f"baseline {_fmt(eb / nb, True)} of {nb}, candidate {_fmt(ec / nc, True)} of {nc}",
                 evidence={"baseline_rate": eb / nb, "candidate_rate": ec / nc, "margin": cfg.error_margin})


def _accuracy_check(cfg: CanaryConfig, mode: Mode, lab: dict[str, dict[str, Any]], pairs: dict[str, Any] | None,
                    baseline: str, candidate: str) -> Check:
    if mode == "shadow" and pairs is not None and int(pairs["acc_pairs"]):
        n = int(pairs["acc_pairs"])
        b, c = int(pairs["acc_base_only"]), int(pairs["acc_cand_only"])
        # harm: the baseline right where the candidate is wrong
        t = mcnemar(c, b, n, alpha=cfg.alpha)
        need = n_noninferiority(max((b + c) / n, cfg.accuracy_margin), cfg.accuracy_margin, alpha=cfg.alpha,
                                power=cfg.power)
        return Check(name="accuracy", outcome="", test=t, n_baseline=n, n_candidate=n, n_needed=need,
                     summary=f"paired on {n} labelled requests: only the baseline right on {b}, "
                             f"only the candidate on {c}",
                     evidence={"pairs": n, "baseline_only_right": b, "candidate_only_right": c})
    rb, rc = lab.get(baseline, {}), lab.get(candidate, {})
    nb, nc = int(rb.get("classified") or 0), int(rc.get("classified") or 0)
    if nb and nc:
        kb, kc = int(rb["correct"]), int(rc["correct"])
        t = two_proportions(kb, nb, kc, nc, alpha=cfg.alpha, higher_is_worse=False)
        pool = (kb + kc) / (nb + nc)
        need = n_noninferiority(2 * max(pool * (1 - pool), 1e-6), cfg.accuracy_margin, alpha=cfg.alpha,
                                power=cfg.power)
        return Check(name="accuracy", outcome="", test=t, n_baseline=nb, n_candidate=nc, n_needed=need,
                     summary=f"baseline {_fmt(kb / nb, True)} of {nb} labelled, "
                             f"candidate {_fmt(kc / nc, True)} of {nc}",
                     evidence={"baseline": kb / nb, "candidate": kc / nc, "margin": cfg.accuracy_margin})
    nb, nc = int(rb.get("n_reg") or 0), int(rc.get("n_reg") or 0)
    if nb >= 2 and nc >= 2:
        mb, mc = float(rb["mae"]), float(rc["mae"])
        vb, vc = float(rb["mae_var"]), float(rc["mae_var"])
        t = welch(nb, mb, vb, nc, mc, vc, alpha=cfg.alpha, name="Welch's t-test on absolute errors")
        margin = cfg.mae_margin * mb if mb > 0 else cfg.mae_margin
        need = n_noninferiority(vb + vc, margin, alpha=cfg.alpha, power=cfg.power)
        return Check(name="accuracy", outcome="", test=t, n_baseline=nb, n_candidate=nc, n_needed=need,
                     summary=f"MAE baseline {_fmt(mb)} ({nb} labelled), candidate {_fmt(mc)} ({nc})",
                     evidence={"baseline_mae": mb, "candidate_mae": mc, "margin": margin})
    return Check(name="accuracy", outcome="not_available", n_baseline=nb, n_candidate=nc,
                 summary="no labels joined to both versions' predictions")


def _latency_check(cfg: CanaryConfig, mw: dict[str, dict[str, Any]], baseline: str, candidate: str) -> Check:
    from collector.ops_api import histogram_quantile

    bb = [float(x) for x in (mw.get(baseline, {}).get("buckets") or [])]
    bc = [float(x) for x in (mw.get(candidate, {}).get("buckets") or [])]
    if not sum(bb) or not sum(bc) or len(bb) != len(bc):
        return Check(name="latency", outcome="not_available", summary="no latency histograms for one of the versions")
    t = mann_whitney_binned(bb, bc)
    q = {f"p{int(p * 100)}": (histogram_quantile(p, bb), histogram_quantile(p, bc)) for p in (0.5, 0.95, 0.99)}
    b95, c95 = q["p95"]
    ratio = (c95 / b95) if b95 and c95 is not None else None
    return Check(name="latency", outcome="", test=t, n_baseline=int(sum(bb)), n_candidate=int(sum(bc)),
                 summary=f"p95 baseline {_fmt(b95)} ms, candidate {_fmt(c95)} ms; P(candidate slower) {_fmt(t.effect)}",
                 evidence={"quantiles_ms": {k: {"baseline": v[0], "candidate": v[1]} for k, v in q.items()},
                           "p95_ratio": ratio, "tolerance": cfg.latency_tolerance})


def _drift_checks(store: Store, cfg: CanaryConfig, mode: Mode, model: str, baseline: str, candidate: str,
                  start: _dt.datetime, end: _dt.datetime, pairs: dict[str, Any] | None) -> list[Check]:
    from detectors.drift import DriftConfig, drift_results, summarize_window
    from detectors.drift_sql import window_source
    from detectors.reference import build_profile

    src_b = window_source(model, start, end, baseline)
    profile = build_profile(store, src_b, model=model, name=f"canary:{baseline}", source="canary")
    cur = summarize_window(store, window_source(model, start, end, candidate), profile)
    dcfg = DriftConfig.parse({"psi": cfg.psi_threshold, "ks": None, "chisquare": cfg.alpha},
                             min_count=cfg.min_count)
    by_subject: dict[str, dict[str, Any]] = {}
    for r in drift_results(profile, cur, dcfg):
        by_subject.setdefault(r.subject, {})[r.test] = r
    preds: list[Check] = []
    feats: list[Check] = []
    n_feats = sum(1 for s in by_subject if not s.startswith("@"))
    for subject, tests in sorted(by_subject.items()):
        psi_r = tests.get("psi")
        sig = tests.get("ks") or tests.get("chisquare")
        p = None
        if sig is not None and sig.value is not None:
            p = sig.detail.get("p_value") if sig.test == "ks" else sig.value
        psi_v = psi_r.value if psi_r is not None else None
        level = cfg.alpha if subject.startswith("@pred.") else cfg.alpha / max(1, n_feats)   # Bonferroni
        if psi_v is None or p is None:
            outcome = "not_available"
        else:
            outcome = "shifted" if (psi_v >= cfg.psi_threshold and p < level) else "same"
        test_name = "KS (binned, asymptotic)" if sig is not None and sig.test == "ks" else "chi-square homogeneity"
        check = Check(name=f"prediction:{subject}" if subject.startswith("@pred.") else f"feature:{subject}",
                      outcome=outcome, n_baseline=profile.features[subject].n if subject in profile.features else 0,
                      n_candidate=psi_r.sample_size if psi_r is not None else 0,
                      test=Test(name=test_name, p_value=p, diff=None, upper=None, effect=psi_v, effect_name="psi"),
                      summary=f"PSI {_fmt(psi_v)}, p {_fmt(p)} (level {_fmt(level)})",
                      evidence={"psi": psi_v, "statistic": sig.value if sig is not None else None})
        (preds if subject.startswith("@pred.") else feats).append(check)
    if mode == "shadow":
        feats = []   # the same requests: the inputs are identical by construction
        if pairs is not None and int(pairs["value_pairs"]) >= 2:
            n = int(pairs["value_pairs"])
            t = paired_t(n, float(pairs["mean_diff"]), float(pairs["var_diff"] or 0.0))
            preds.append(Check(name="prediction:paired_score", outcome="same" if (t.p_value or 0) >= cfg.alpha
                               or abs(t.effect or 0) < 0.2 else "shifted", test=t, n_baseline=n, n_candidate=n,
                               summary=f"mean paired difference {_fmt(t.diff)} (d_z {_fmt(t.effect)})"))
        if pairs is not None and int(pairs["label_pairs"]):
            n, k = int(pairs["label_pairs"]), int(pairs["label_agree"])
            from collector.stats import wilson_interval

            lo, hi = wilson_interval(k, n, 1 - cfg.alpha)
            preds.append(Check(name="prediction:paired_label", outcome="same" if k / n >= 0.95 else "shifted",
                               n_baseline=n, n_candidate=n,
                               summary=f"labels agree on {_fmt(k / n, True)} of {n} requests "
                                       f"({_fmt(lo, True)} to {_fmt(hi, True)})",
                               evidence={"agreement": k / n, "low": lo, "high": hi}))
    return preds + feats


# ---- the verdict -----------------------------------------------------------------------------------------

def compare(store: Store, model: str, baseline: str, candidate: str, *, start: _dt.datetime, end: _dt.datetime,
            mode: Mode = "canary", config: CanaryConfig | None = None, alpha: float | None = None,
            power: float | None = None) -> Verdict:
    """Compare ``candidate`` with ``baseline`` over ``[start, end)`` and decide (see the module notes)."""
    cfg = config or CanaryConfig()
    if alpha is not None or power is not None:
        cfg = CanaryConfig(**{**cfg.__dict__, **({"alpha": alpha} if alpha is not None else {}),
                              **({"power": power} if power is not None else {})})
    if mode not in ("canary", "shadow"):
        raise ValueError("mode: canary or shadow")
    if baseline == candidate:
        raise ValueError("candidate: must differ from the baseline")
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise ValueError("end: must be after start")
    versions = [baseline, candidate]
    mw = _windows(store, model, versions, start, end)
    pairs = _pairs(store, model, baseline, candidate, start, end) if mode == "shadow" else None
    lab = _labelled(store, model, versions, start, end) if mode == "canary" else {}
    guards = [_error_check(cfg, mode, mw, pairs, baseline, candidate),
              _accuracy_check(cfg, mode, lab, pairs, baseline, candidate),
              _latency_check(cfg, mw, baseline, candidate)]
    adj = holm([g.test.p_value if g.test is not None and g.outcome != "not_available" else None for g in guards])
    planned = [g for g in guards if g.n_needed is not None and g.outcome != "not_available"]
    short = max([max(0, g.n_needed - min(g.n_baseline, g.n_candidate)) for g in planned if g.n_needed] or [0])
    ready = short == 0 and bool(planned)
    decided: list[Check] = []
    for g, p in zip(guards, adj, strict=True):
        if g.outcome == "not_available":
            decided.append(g)
            continue
        t = g.test
        assert t is not None
        if g.name == "latency":
            ratio = g.evidence.get("p95_ratio")
            over = ratio is not None and ratio > 1 + cfg.latency_tolerance
            worse = p is not None and p < (cfg.alpha if ready else cfg.early_p) and over
            outcome = "worse" if worse else ("noninferior" if not over else "inconclusive")
        else:
            worse = p is not None and p < (cfg.alpha if ready else cfg.early_p) and (t.diff or 0) > 0
            margin = {"error_rate": cfg.error_margin}.get(g.name, g.evidence.get("margin", cfg.accuracy_margin))
            ok = t.upper is not None and t.upper < margin
            outcome = "worse" if worse else ("noninferior" if ok and ready else "inconclusive")
        decided.append(Check(**{**g.__dict__, "outcome": outcome, "adjusted_p": p}))
    dist = _drift_checks(store, cfg, mode, model, baseline, candidate, start, end, pairs)
    checks = tuple(decided + dist)
    worse = [c for c in decided if c.outcome == "worse"]
    shifted = [c for c in dist if c.outcome == "shifted"]
    verdict: Literal["promote", "hold", "rollback"]
    if worse:
        verdict, reason = "rollback", "the candidate is worse: " + "; ".join(f"{c.name} ({c.summary}, adjusted p "
                                                                           f"{_fmt(c.adjusted_p)})" for c in worse)
        if not ready:
            reason += f" (stopped early: adjusted p below {cfg.early_p})"
    elif not ready:
        verdict = "hold"
        reason = (f"too early: {short} more observations per version are needed for the planned test "
                  f"(alpha {cfg.alpha}, power {cfg.power}, margins: error rate {cfg.error_margin}, "
                  f"accuracy {cfg.accuracy_margin})") if planned else "no traffic of one of the versions in the period"
    elif any(c.outcome == "inconclusive" for c in decided):
        verdict = "hold"
        reason = "inconclusive: " + ", ".join(c.name for c in decided if c.outcome == "inconclusive") + \
            " neither worse nor within its margin"
    elif shifted:
        verdict = "hold"
        reason = "needs review: distributions differ: " + ", ".join(c.name for c in shifted)
    else:
        verdict, reason = "promote", "no check worse, every margin met, no prediction shift or population drift"
    return Verdict(model=model, baseline=baseline, candidate=candidate, mode=mode, start=start, end=end,
                   verdict=verdict, reason=reason, checks=checks, samples_needed=short, config=cfg)
