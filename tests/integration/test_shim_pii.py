"""A PII corpus through the shim into the real store: no raw PII value in stored rows, dead
letters or logs, over HTTP (a real uvicorn server) and over Kafka (the real broker + collector)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest

from collector.sql import ident, sql
from collector.store import ChdbStore
from driftline.config import Settings
from driftline.server import create_app
from serving_shim import BatchConfig, HttpSink, KafkaSink, Monitor, Redaction
from tests.collecting import collect_until
from tests.servers import running

SALT = b"integration-test-salt-0123456789"
FIRST = ["Maria", "Jonathan", "Aiko", "Lars", "Fatima", "Chen", "Olga", "Pedro"]
LAST = ["Garcia", "Smithson", "Tanaka", "Bergman", "Haddad", "Weiss", "Ivanova", "Silva"]
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000000000004"]
IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"]


def corpus(n: int) -> tuple[list[dict[str, Any]], set[str]]:
    """Records with PII in free text and in identifier fields, and the raw values to look for."""
    rng = random.Random(11)
    recs, raw = [], set()
    for i in range(n):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{name.split()[0].lower()}.{name.split()[1].lower()}{i}@mail{i % 7}.example.org"
        phone = f"+1 {rng.randint(201, 989)}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
        ip = f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        ssn = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        card, iban = CARDS[i % 4], IBANS[i % 2]
        raw |= {name, email, phone, ip, ssn, card, iban, email.split("@")[0]}
        recs.append({
            "rid": f"req-{i:05d}",
            "features": {
                "income": rng.lognormvariate(10, 0.5), "age": float(rng.randint(18, 90)),
                "region": rng.choice(["eu", "us"]), "full_name": name, "email": email,
                "note": f"Please call {phone} or write to {email}; card {card}, IBAN {iban}.",
                "audit": f"login from {ip}, ssn {ssn} verified",
                "free": rng.choice(["fine", "slow app", "great service"]),
            },
            "slices": {"region": rng.choice(["eu", "us"]), "contact": email},
            "error": i % 13 == 0,
        })
    return recs, raw


REDACTION = Redaction(fields={"full_name": "hash", "email": "drop"}, categories={"region": {"eu", "us"}}, salt=SALT)


def _feed(m: Monitor, recs: list[dict[str, Any]]) -> None:
    for r in recs:
        m.log(r["rid"], r["features"], {"label": "approve", "score": 0.7}, latency_ms=4.2, slices=r["slices"],
              status="error" if r["error"] else "ok", error_type="Timeout" if r["error"] else None)


def _dump(store: ChdbStore) -> str:
    parts = []
    for table in ("predictions", "metric_windows", "dead_letters", "labels", "deploys"):
        parts.append(json.dumps(store.rows(sql("SELECT * FROM {db}.%(t)s", t=ident(table))), default=str))
    return "\n".join(parts)


def _assert_clean(text: str, raw: set[str], where: str) -> None:
    squeezed = text.replace(" ", "")  # once: the logs at debug level are megabytes
    leaks = sorted(v for v in raw if v in text or v.replace(" ", "").replace("-", "") in squeezed)
    assert not leaks, f"raw PII in {where}: {leaks[:5]}"


@pytest.fixture
def capture_all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def ingest_url(store: ChdbStore) -> Iterator[str]:
    with running(create_app(Settings(open_localhost=True, scheduler=False), store=store)) as url:
        yield url


def test_pii_corpus_over_http_leaves_no_raw_pii(store: ChdbStore, ingest_url: str,
                                                capture_all_logs: pytest.LogCaptureFixture,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    recs, raw = corpus(300)
    m = Monitor(model="pii-http", version="v1", sink=HttpSink(ingest_url), redaction=REDACTION,
                batch=BatchConfig(max_export_batch_size=100))
    _feed(m, recs)
    assert m.flush(60)
    m.shutdown()
    snap = m.metrics()
    assert snap.exported.get("prediction") == 300 and sum(snap.dropped.values()) == 0, snap

    assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) == 300
    assert int(store.scalar("SELECT sum(requests) FROM {db}.metric_windows FINAL")) == 300
    assert int(store.scalar("SELECT count() FROM {db}.dead_letters")) == 0
    row = store.rows("SELECT * FROM {db}.predictions FINAL WHERE request_id = 'req-00001'")[0]
    assert "email" not in row["features_cat"] and row["features_cat"]["full_name"].startswith("h:")
    assert "<EMAIL_ADDRESS>" in row["features_cat"]["note"] and "<CREDIT_CARD>" in row["features_cat"]["note"]
    assert "<IP_ADDRESS>" in row["features_cat"]["audit"] and "<US_SSN>" in row["features_cat"]["audit"]
    assert row["slices"]["contact"] == "<EMAIL_ADDRESS>"
    _assert_clean(_dump(store), raw, "stored rows")
    out = capfd.readouterr()
    assert capture_all_logs.records, "log capture is not working"
    _assert_clean(capture_all_logs.text + out.out + out.err, raw, "logs")


@pytest.mark.kafka
def test_pii_corpus_over_kafka_leaves_no_raw_pii(store: ChdbStore, kafka_bootstrap: str, topic_prefix: str,
                                                 capture_all_logs: pytest.LogCaptureFixture,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    recs, raw = corpus(200)
    m = Monitor(model="pii-kafka", version="v1", sink=KafkaSink(kafka_bootstrap, topic_prefix=topic_prefix),
                redaction=REDACTION, batch=BatchConfig(max_export_batch_size=50, export_timeout_s=20))
    _feed(m, recs)
    assert m.flush(60)
    m.shutdown()
    collect_until(store, kafka_bootstrap, topic_prefix, lambda: (
        int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) >= 200
        and int(store.scalar("SELECT count() FROM {db}.metric_windows FINAL")) >= 1))
    assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) == 200
    assert int(store.scalar("SELECT sum(requests) FROM {db}.metric_windows FINAL")) == 200
    assert int(store.scalar("SELECT countIf(status = 'error') FROM {db}.predictions FINAL")) == 16
    _assert_clean(_dump(store), raw, "stored rows")
    out = capfd.readouterr()
    _assert_clean(capture_all_logs.text + out.out + out.err, raw, "logs")
