"""Specs: validation with line-precise errors, normalisation, and the generated rules (expected output)."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from slo_engine.exceptions import SpecError
from slo_engine.model import DEFAULT_TIERS, default_tiers
from slo_engine.rules import alert_rules, rules_document
from slo_engine.spec import parse_duration, parse_specs

HERE = pathlib.Path(__file__).parent


def test_examples_normalise_to_the_expected_rules() -> None:
    """When a change is intended, regenerate the file with the two lines above the assert."""
    specs = parse_specs((HERE / "examples.yaml").read_text(), "examples.yaml")
    got = yaml.safe_dump(rules_document(specs), sort_keys=False)
    assert got == (HERE / "expected" / "examples.rules.yaml").read_text()


def test_defaults_are_the_workbook_table() -> None:
    (s,) = parse_specs("version: driftline/v1\nslos:\n"
                       "- {name: a, model: m, objective: 99.9, window: 30d, sli: {availability: {}}}\n")
    assert s.alerting.tiers == DEFAULT_TIERS
    assert [(r.severity, r.burn_rate, r.long_window_s, r.short_window_s) for r in alert_rules(s)] == [
        ("page", 14.4, 3600, 300), ("page", 6.0, 21600, 1800), ("ticket", 1.0, 259200, 21600)]
    assert [r.error_rate_threshold for r in alert_rules(s)] == [0.0144, 0.006, 0.001]


def test_low_objective_tiers_are_scaled_or_reported() -> None:
    text = ("version: driftline/v1\nslos:\n"
            "- {name: a, model: m, objective: 90, window: 30d, sli: {accuracy: {}}}\n"
            "- {name: b, model: m, objective: 80, window: 30d, sli: {accuracy: {}}, alerting: {low_objective: keep}}\n")
    a, b = parse_specs(text)
    ra = alert_rules(a)
    assert [(r.requested_burn_rate, r.burn_rate, r.reachable) for r in ra] == [(14.4, 9.0, True), (6.0, 6.0, True),
                                                                               (1.0, 1.0, True)]
    assert "can never fire at objective 90% (max burn 10x); scaled to 9x" in ra[0].note
    rb = alert_rules(b)   # max burn 5x: both pages exceed it
    assert [(r.burn_rate, r.reachable) for r in rb] == [(14.4, False), (6.0, False), (1.0, True)]
    assert all("can never fire" in r.note for r in rb[:2])


BAD = """\
version: driftline/v2
slos:
  - name: ok-one
    model: m
    objective: 99.9
    window: 30d
    sli: {availability: {}}
  - name: bad one
    model: m
    objective: 100
    window: 7d
    colour: blue
    sli:
      latency:
        threshold_ms: 300
    alerting:
      tiers:
        - {name: t, severity: urgent, burn_rate: -1, long: 5m, short: 1h}
  - name: ok-one
    objective: "high"
    window: 30d
    sli: {availability: {}, freshness: {max_age: 5m}}
"""


def test_every_problem_with_its_line() -> None:
    with pytest.raises(SpecError) as ei:
        parse_specs(BAD, "slo.yaml")
    got = [(p.line, p.path) for p in ei.value.problems]
    assert got == [
        (1, ".version"),
        (8, ".slos[1].name"),
        (10, ".slos[1].objective"),
        (11, ".slos[1].window"),
        (12, ".slos[1].colour"),
        (15, ".slos[1].sli.latency.threshold_ms"),
        (18, ".slos[1].alerting.tiers[0].burn_rate"),
        (18, ".slos[1].alerting.tiers[0].severity"),
        (18, ".slos[1].alerting.tiers[0].short"),
        (19, ".slos[2].model"),
        (20, ".slos[2].objective"),
        (22, ".slos[2].sli"),
    ]
    msg = str(ei.value)
    assert ("slo.yaml:15: .slos[1].sli.latency.threshold_ms: 300 ms is not a histogram bucket bound "
            "(nearest 250 and 500)") in msg
    assert "slo.yaml:12: .slos[1].colour: unknown field" in msg


@pytest.mark.parametrize("text,line,fragment", [
    ("version: [", 1, "not valid YAML"),
    ("", 1, "empty spec"),
    ("version: driftline/v1\n", 1, ".slos: is required"),
    ("version: driftline/v1\nslos:\n- {name: a, model: m, objective: 99, window: 30d, sli: {availability: {}}}\n"
     "- {name: a, model: m, objective: 99, window: 30d, sli: {availability: {}}}\n",
     4, "duplicate SLO name 'a' (first on line 3)"),
    ("version: driftline/v1\nslos:\n- name: a\n  model: m\n  objective: 99\n  window: 30d\n  sli: {availability: {}}\n"
     "  alerting:\n    tiers:\n    - {name: t, severity: page, burn_rate: 2, long: 40d, short: 1h}\n",
     10, "longer than the SLO window"),
    ("version: driftline/v1\nslos:\n- name: a\n  model: m\n  objective: 99\n  window: 30d\n"
     "  sli: {freshness: {max_age: soon}}\n",
     7, "'soon' is not a duration"),
    ("version: driftline/v1\nslos:\n- name: a\n  model: m\n  objective: 99\n  window: 30d\n  per_version: true\n"
     "  sli: {freshness: {max_age: 5m}}\n", 7, "freshness is measured per model"),
])
def test_single_problems(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SpecError) as ei:
        parse_specs(text, "f.yaml")
    (p,) = ei.value.problems
    assert p.line == line and fragment in str(p)


def test_durations() -> None:
    assert [parse_duration(v) for v in ("90s", "5m", "1h", "3d", 30)] == [90, 300, 3600, 259200, 30]
    for bad in ("0m", "5 minutes", True, -1, "1w"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_a_28_day_slo_gets_the_28_day_windows_not_the_30_day_burn_rates() -> None:
    (s28, s30) = parse_specs("version: driftline/v1\nslos:\n"
                             "- {name: a, model: m, objective: 99.9, window: 28d, sli: {availability: {}}}\n"
                             "- {name: b, model: m, objective: 99.9, window: 30d, sli: {availability: {}}}\n")
    assert [r.burn_rate for r in alert_rules(s28)] == [13.44, 5.6, 0.933333]
    assert [r.burn_rate for r in alert_rules(s30)] == [14.4, 6.0, 1.0]
    # the same share of the budget, spent in the same long window, alerts in both periods
    for r28, r30 in zip(alert_rules(s28), alert_rules(s30), strict=True):
        assert (r28.long_window_s, r28.short_window_s) == (r30.long_window_s, r30.short_window_s)
        spent28 = r28.error_rate_threshold * r28.long_window_s / (s28.error_budget * s28.window_s)
        spent30 = r30.error_rate_threshold * r30.long_window_s / (s30.error_budget * s30.window_s)
        assert abs(spent28 - spent30) < 1e-6
    with pytest.raises(ValueError, match="tables: 28d, 30d"):
        default_tiers(7 * 86400)


def test_the_default_tiers_are_read_on_first_use_not_at_import() -> None:
    import subprocess
    import sys

    code = ("import slo_engine, slo_engine.model as m; print(m.default_tiers.cache_info().currsize); "
            "from slo_engine import DEFAULT_TIERS; print(m.default_tiers.cache_info().currsize, len(DEFAULT_TIERS), "
            "DEFAULT_TIERS is m.DEFAULT_TIERS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "1", "3", "True"]


def test_accuracy_may_run_on_the_estimate_below_a_label_coverage() -> None:
    head = "version: driftline/v1\nslos:\n"
    (s,) = parse_specs(head + "- {name: a, model: m, objective: 90, window: 30d,\n"
                              "   sli: {accuracy: {estimate_below_coverage: 0.5}}}\n")
    assert s.sli.estimate_below_coverage == 0.5 and s.sli.tolerance is None
    for body, fragment in (("{estimate_below_coverage: 1.5}", "must be in (0, 1]"),
                           ("{estimate_below_coverage: 0.5, tolerance: 1}", "classifiers only")):
        with pytest.raises(SpecError) as ei:
            parse_specs(head + f"- {{name: a, model: m, objective: 90, window: 30d, sli: {{accuracy: {body}}}}}\n")
        (p,) = ei.value.problems
        assert "estimate_below_coverage" in p.path and fragment in str(p)
