"""The SDK's subject: sent only as its salted hash (the server's own hash of the raw id), never raw."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from collector.subjects import SubjectHasher
from serving_shim import InMemorySink, Monitor, Redaction

SALT = b"subject-salt-for-tests-0123456789"


def _monitor(redaction: Redaction) -> tuple[Monitor, InMemorySink]:
    sink = InMemorySink()
    return Monitor(model="m1", version="v1", sink=sink, redaction=redaction, registry=CollectorRegistry()), sink


def test_the_subject_leaves_as_the_same_salted_hash_the_server_makes() -> None:
    m, sink = _monitor(Redaction(salt=SALT))
    try:
        assert m.log("r1", {"x": 1.0}, 0.5, subject="alice@example.com")
        assert m.log("r2", {"x": 2.0}, 0.5)
        assert m.log_label("r1", value=1.0, subject="alice@example.com")
        m.flush(5)
        preds = {e.request_id: e for e in sink.events("prediction")}
        (label,) = sink.events("label")
    finally:
        m.shutdown()
    want = SubjectHasher(SALT)("alice@example.com")
    assert preds["r1"].subject == want and label.subject == want
    assert preds["r2"].subject is None
    assert "alice" not in repr(sink.batches())


def test_without_a_salt_the_event_is_dropped_never_sent_raw() -> None:
    m, sink = _monitor(Redaction())
    try:
        assert m.log("r1", {"x": 1.0}, 0.5, subject="alice@example.com")
        assert m.log("r2", {"x": 1.0}, 0.5)
        m.flush(5)
        sent = sink.events("prediction")
        dropped = m.metrics().dropped
    finally:
        m.shutdown()
    assert [e.request_id for e in sent] == ["r2"]
    assert dropped.get("redaction_error") == 1
    assert "alice" not in repr(sink.batches())
