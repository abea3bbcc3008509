"""Sampling: deterministic by request_id across processes, close to the rate, errors always kept."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid

import pytest

from serving_shim import InMemorySink, Monitor, is_sampled

from .helpers import registry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _ids(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)]


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.25, 0.5, 0.9])
def test_within_ten_percent_of_the_rate_over_100k_ids(rate: float) -> None:
    ids = _ids(100_000)
    kept = sum(is_sampled(r, rate) for r in ids)
    assert abs(kept - rate * len(ids)) <= 0.1 * rate * len(ids), (rate, kept)


def test_sequential_ids_are_sampled_at_the_rate_too() -> None:
    kept = sum(is_sampled(f"req-{i}", 0.05) for i in range(100_000))
    assert abs(kept - 5000) <= 500


def test_same_decision_in_other_processes_whatever_their_hash_seed() -> None:
    ids = _ids(2000, seed=7)
    here = "".join("1" if is_sampled(r, 0.3) else "0" for r in ids)
    code = ("import sys; from serving_shim import is_sampled; "
            "print(''.join('1' if is_sampled(l.strip(), 0.3) else '0' for l in sys.stdin))")
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", code], input="\n".join(ids), capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        assert out.stdout.strip() == here
    assert 0.25 < here.count("1") / len(ids) < 0.35


def test_monitor_samples_the_same_ids_and_keeps_every_error() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, sample_rate=0.01, registry=registry())
    ids = _ids(20_000, seed=3)
    for i, rid in enumerate(ids):
        err = i % 10 == 0
        m.log(rid, {"x": 1.0}, 0.5, latency_ms=1.0, status="error" if err else "ok", error_type="Boom" if err else None)
    assert m.flush(30)
    m.shutdown()
    got = {e.request_id for e in sink.events("prediction")}
    errors = {rid for i, rid in enumerate(ids) if i % 10 == 0}
    expected_ok = {rid for i, rid in enumerate(ids) if i % 10 and is_sampled(rid, 0.01)}
    assert errors <= got  # every error kept, whatever its hash
    assert got == errors | expected_ok
    assert 100 < len(expected_ok) < 260
    assert m.metrics().sampled == len(got)
    assert all(e.status == "error" and e.error_type == "Boom"
               for e in sink.events("prediction") if e.request_id in errors)


def test_labels_follow_the_sampling_of_their_request_and_deploys_go_out() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v9", sink=sink, sample_rate=0.2, registry=registry())
    ids = _ids(2000, seed=5)
    sent = [rid for rid in ids if m.log_label(rid, label="yes")]
    assert m.log_deploy({"commit": "abc123"})
    assert m.flush(10)
    m.shutdown()
    assert sent == [rid for rid in ids if is_sampled(rid, 0.2)]
    assert sorted(e.request_id for e in sink.events("label")) == sorted(sent)
    (d,) = sink.events("deploy")
    assert d.model_version == "v9" and d.annotations == {"commit": "abc123"}
