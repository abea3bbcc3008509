"""The router as a pure function: pending, flap suppression, repeats, silences, dedup keys."""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace

from slo_engine.evaluate import RuleResult, SloStatus
from slo_engine.model import Alerting, Sli, Slo
from slo_engine.router import AlertState, Silence, dedup_key, route
from slo_engine.rules import alert_rules

T0 = _dt.datetime(2026, 3, 10, 12, 0, tzinfo=_dt.UTC)
M = _dt.timedelta(minutes=1)
SLO = Slo(name="acc", model="m1", objective=0.99, window_s=30 * 86400,
          sli=Sli(kind="accuracy", slice=(("region", "eu"),)),
          alerting=Alerting(resolve_after_s=300, repeat_interval_s=3600))


def status(firing: set[str], slo: Slo = SLO, version: str = "") -> SloStatus:
    rules = tuple(RuleResult(rule=r, long_burn_rate=20.0 if r.tier in firing else 0.5,
                             short_burn_rate=20.0 if r.tier in firing else 0.5, firing=r.tier in firing)
                  for r in alert_rules(slo))
    return SloStatus(slo=slo, model_version=version, at=T0, good=0, total=0, sli=None, error_budget=slo.error_budget,
                     budget_remaining=None, windows={}, rules=rules)


def run(timeline: list[set[str]], slo: Slo = SLO, silences: list[Silence] | None = None,
        step: _dt.timedelta = M) -> list[tuple[int, str, str]]:
    state: dict[str, AlertState] = {}
    out: list[tuple[int, str, str]] = []
    for i, firing in enumerate(timeline):
        changed, notes = route([status(firing, slo)], state, silences or [], T0 + i * step)
        state.update({s.alert_key: s for s in changed})
        out += [(i, n.action, n.severity) for n in notes]
    return out


def test_both_page_tiers_make_one_page_and_ticket_is_separate() -> None:
    assert run([{"page-fast", "page-slow", "ticket"}, {"page-slow", "ticket"}]) == [(0, "trigger", "page"),
                                                                                    (0, "trigger", "ticket")]


def test_flapping_condition_keeps_one_incident() -> None:
    flap = [{"page-fast"}, set()] * 5 + [set()] * 6   # true every other minute, then clear
    assert run(flap) == [(0, "trigger", "page"), (13, "resolve", "page")]   # last true at 8, clear for 5 m at 13


def test_pending_for_needs_the_condition_to_hold() -> None:
    slo = replace(SLO, alerting=replace(SLO.alerting, pending_for_s=120))
    assert run([{"page-fast"}, set(), {"page-fast"}, {"page-fast"}, {"page-fast"}], slo) == [(4, "trigger", "page")]


def test_repeat_interval() -> None:
    assert run([{"ticket"}] * 8, step=20 * M) == [(0, "trigger", "ticket"), (3, "trigger", "ticket"),
                                                  (6, "trigger", "ticket")]


def test_silence_matches_and_expires() -> None:
    sil = Silence(id="s1", matchers={"model": "m1", "severity": "page"}, starts_at=T0, ends_at=T0 + 3 * M)
    other = Silence(id="s2", matchers={"model": "m2"}, starts_at=T0, ends_at=T0 + 60 * M)
    assert run([{"page-fast", "ticket"}] * 5, silences=[sil, other]) == [(0, "trigger", "ticket"),
                                                                         (3, "trigger", "page")]


def test_resolve_goes_out_only_after_a_trigger() -> None:
    sil = Silence(id="s1", matchers={"slo": "acc"}, starts_at=T0, ends_at=T0 + 60 * M)
    assert run([{"page-fast"}] * 2 + [set()] * 8, silences=[sil]) == []


def test_dedup_key_names_model_version_slice_and_detector() -> None:
    assert dedup_key(SLO, "v2", "page") == "driftline/m1/v2/region=eu/accuracy/acc/page"
    drift = replace(SLO, name="d", sli=Sli(kind="drift", subject="age"))
    assert dedup_key(drift, "", "ticket") == "driftline/m1/*/*/drift:age/d/ticket"


def test_alert_of_a_version_that_disappears_resolves() -> None:
    per = replace(SLO, per_version=True)
    changed, notes = route([status({"page-fast"}, per, "v1")], {}, [], T0)
    state = {s.alert_key: s for s in changed}
    changed, notes = route([status(set(), per, "v2")], state, [], T0 + 10 * M)
    assert [(n.action, n.model_version) for n in notes] == [("resolve", "v1")]
