"""The model-level drift verdict (detectors.verdict): the primary rule, weights, and its configuration."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.results import Result
from detectors.runner import DetectorConfig
from detectors.verdict import VerdictConfig, drift_verdict, drifted_features


def r(subject: str, test: str, status: str, **detail: Any) -> Result:
    value = None if status in ("not enough data", "error") else 0.3
    return Result(detector="drift", subject=subject, test=test, value=value, threshold=0.2, status=status,
                  sample_size=100, detail=detail)


def test_the_primary_result_decides_the_feature_and_without_one_any_alert_does() -> None:
    rs = [r("a", "psi", "ok", primary=True), r("a", "ks", "alert"),          # primary ok: not drifted
          r("b", "psi", "alert", primary=True), r("b", "ks", "ok"),          # primary alert: drifted
          r("c", "psi", "ok"), r("c", "ks", "alert"),                        # no primary: any alert
          r("d", "psi", "ok"), r("d", "ks", "ok"),
          r("e", "psi", "not enough data", primary=True), r("e", "ks", "alert"),   # primary undecided
          r("@pred.score", "psi", "alert"), r("", "reference", "error")]
    decided, undecided = drifted_features(rs)
    assert decided == {"a": [], "b": ["psi"], "c": ["ks"], "d": []}
    assert undecided == ["e"]
    v = drift_verdict(rs)
    assert (v.detector, v.subject, v.test) == ("drift", "", "drift_share")
    assert v.value == pytest.approx(0.5) and v.threshold == 0.5 and v.status == "alert" and v.sample_size == 4
    assert [d["feature"] for d in v.detail["drifted"]] == ["b", "c"]
    assert v.detail["undecided"] == ["e"] and v.detail["weighted"] is False
    assert drift_verdict(rs, VerdictConfig(drift_share=0.6)).status == "ok"


def test_importance_weights_the_share() -> None:
    rs = [r("a", "psi", "alert"), r("b", "psi", "ok"), r("c", "psi", "ok"), r("x", "psi", "alert")]
    # unweighted: 2 of 4 drifted
    assert drift_verdict(rs).value == pytest.approx(0.5)
    cfg = VerdictConfig(importance={"a": 0.1, "b": 0.6, "c": 0.3, "gone": 5.0}, drift_share=0.3)
    v = drift_verdict(rs, cfg)
    # x has no importance: weight 0; "gone" is not in the window: ignored, both named
    assert v.value == pytest.approx(0.1) and v.status == "ok"
    assert v.detail["unweighted"] == ["x"] and v.detail["importance_unknown"] == ["gone"]
    assert v.detail["drifted"][0] == {"feature": "a", "weight": pytest.approx(0.1), "tests": ["psi"]}
    heavy = drift_verdict([r("a", "psi", "ok"), r("b", "psi", "alert"), r("c", "psi", "ok")], cfg)
    assert heavy.value == pytest.approx(0.6) and heavy.status == "alert"
    # the share equals the threshold: alert (as Evidently's dataset drift)
    assert drift_verdict([r("a", "psi", "alert"), r("c", "psi", "ok")],
                         VerdictConfig(importance={"a": 0.25, "c": 0.75}, drift_share=0.25)).status == "alert"


def test_no_decided_feature_is_not_enough_data() -> None:
    v = drift_verdict([r("a", "psi", "not enough data"), r("@pred.label", "chisquare", "alert")])
    assert v.status == "not enough data" and v.value is None and v.detail["undecided"] == ["a"]
    v = drift_verdict([r("a", "psi", "alert")], VerdictConfig(importance={"b": 1.0}))
    assert v.status == "not enough data" and "importance" in v.detail["reason"]


@pytest.mark.parametrize(("drift", "field"), [
    ({"importance": {"a": -1}}, "drift.importance['a']"),
    ({"importance": {"a": "high"}}, "drift.importance['a']"),
    ({"importance": {"a": float("nan")}}, "drift.importance['a']"),
    ({"importance": {"a": 0.0}}, "drift.importance"),
    ({"importance": ["a"]}, "drift.importance"),
    ({"drift_share": 0}, "drift.drift_share"),
    ({"drift_share": 1.5}, "drift.drift_share"),
    ({"drift_share": "half"}, "drift.drift_share"),
])
def test_bad_configuration_names_the_field(drift: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field.replace('[', '.').replace(']', '.')}"):
        DetectorConfig.from_dict({"drift": drift})


def test_the_drift_section_keeps_its_other_keys() -> None:
    cfg = DetectorConfig.from_dict({"drift": {"tests": {"psi": 0.1}, "bins": 8, "importance": {"a": 2},
                                              "drift_share": 0.25}})
    assert cfg.drift.bins == 8 and set(cfg.drift.tests) == {"psi"} and cfg.drift.tests["psi"].threshold == 0.1
    assert cfg.verdict == VerdictConfig(importance={"a": 2.0}, drift_share=0.25)
    assert DetectorConfig.from_dict(None).verdict == VerdictConfig()
    assert DetectorConfig.from_dict({"drift": {"importance": None}}).verdict == VerdictConfig()
