"""The public surface is what we meant, and the settings are typed, keyword-only and immutable."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

import serving_shim
from serving_shim import BatchConfig, InMemorySink, Monitor, Redaction, ShimConfigError

from .helpers import registry


def test_public_names_are_exactly_these() -> None:
    assert sorted(serving_shim.__all__) == sorted([
        "Monitor", "Redaction", "Policy", "DEFAULT_ENTITIES", "BatchConfig", "Sink", "Batch", "ExportResult",
        "KafkaSink", "HttpSink", "InMemorySink", "DriftlineMiddleware", "MonitoredModel", "MetricsSnapshot",
        "is_sampled", "ShimError", "ShimConfigError",
    ])
    for name in serving_shim.__all__:
        assert getattr(serving_shim, name) is not None
    public_modules = {n for n in dir(serving_shim) if not n.startswith("_") and n not in serving_shim.__all__}
    assert public_modules <= {"contract", "codec", "transport", "exceptions", "annotations"}


def test_settings_are_keyword_only_and_immutable() -> None:
    with pytest.raises(TypeError):
        BatchConfig(100)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Monitor("m", "v", InMemorySink())  # type: ignore[call-arg]
    cfg = BatchConfig(max_queue_size=10, max_export_batch_size=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_queue_size = 20  # type: ignore[misc]
    red = Redaction(fields={"email": "drop"})
    with pytest.raises(TypeError):
        red.fields["email"] = "keep"  # type: ignore[index]


@pytest.mark.parametrize("make", [
    lambda: BatchConfig(max_queue_size=0),
    lambda: BatchConfig(max_queue_size=10, max_export_batch_size=11),
    lambda: BatchConfig(schedule_delay_s=0),
    lambda: Redaction(fields={"x": "shred"}),  # type: ignore[dict-item]
    lambda: Redaction(fields={"x": "hash"}),  # hash without a salt
    lambda: Redaction(fields={"x": "hash"}, salt=b"short"),
    lambda: Redaction(entities=("NO_SUCH_ENTITY",)) and Monitor(model="m", version="v", sink=InMemorySink(),
                                                                 redaction=Redaction(entities=("NO_SUCH_ENTITY",)),
                                                                 registry=registry()),
    lambda: Monitor(model="m", version="v", sink=InMemorySink(), sample_rate=0.0001, registry=registry()),
    lambda: Monitor(model="m", version="v", sink=InMemorySink(), sample_rate=1.5, registry=registry()),
    lambda: Monitor(model="bad model", version="v", sink=InMemorySink(), registry=registry()),
    lambda: Monitor(model="m", version="v", sink=InMemorySink(), window_s=0, registry=registry()),
    lambda: Redaction(ner_model="no_such_spacy_model_xyz") and Monitor(
        model="m", version="v", sink=InMemorySink(), redaction=Redaction(ner_model="no_such_spacy_model_xyz"),
        registry=registry()),
])
def test_bad_settings_fail_at_construction(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_salt_never_in_repr() -> None:
    r = Redaction(fields={"user": "hash"}, salt=b"super-secret-salt-123")
    assert "super-secret" not in repr(r) and "<set>" in repr(r)
    assert issubclass(ShimConfigError, ValueError) and issubclass(ShimConfigError, serving_shim.ShimError)
