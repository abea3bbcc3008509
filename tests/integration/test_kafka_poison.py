"""Poison messages on the real broker: every message the collector cannot read becomes a dead letter with its
topic, partition, offset, original bytes and reason; every good event beside them is stored; the collector
keeps consuming, and a collector started again over the same messages does not crash on them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from collector.consumer import KafkaCollector
from collector.ingest import DecodeLimits
from collector.store import ChdbStore
from collector.writer import EventWriter
from serving_shim.codec import encode_batch
from serving_shim.transport import KafkaTransport
from tests import factories as f

pytestmark = pytest.mark.kafka

LIMIT = 20_000  # bytes per message this collector reads (the broker takes up to 1 MB)


def _collector(store: Any, bootstrap: str, prefix: str, group: str) -> KafkaCollector:
    return KafkaCollector(EventWriter(store), bootstrap_servers=bootstrap, group_id=group, topic_prefix=prefix,
                          batch_max_s=0.3, kinds=("prediction",), limits=DecodeLimits(max_bytes=LIMIT))


def _poll_until(collector: KafkaCollector, done: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        collector.poll_batch()
    assert done()


def test_poison_messages_become_dead_letters_and_consumption_goes_on(store: ChdbStore, kafka_bootstrap: str,
                                                                     topic_prefix: str) -> None:
    producer = KafkaTransport(kafka_bootstrap, topic_prefix=topic_prefix)
    topic = f"{topic_prefix}.prediction"
    good: list[dict[str, Any]] = []
    expect: dict[int, tuple[str, str, bytes]] = {}  # offset -> (field, words in the reason, payload)

    def send_good(n: int) -> None:
        evs = [f.prediction(len(good) + i) for i in range(n)]
        good.extend(evs)
        producer.send("prediction", evs, key="m1").get(timeout=30)

    def send_bad(value: bytes | None, field: str, words: str) -> None:
        md = producer.send_raw("prediction", value, key=b"m1").get(timeout=30)
        assert md.partition == 0 or md.topic == topic
        expect[md.offset] = (field, words, value or b"")

    send_good(20)
    send_bad(None, "value", "tombstone")
    send_good(5)
    send_bad(b"", "body", "empty batch")
    send_bad(b"\x1f\x8b\x08\x00garbage that gzip cannot read", "body", "compressed with gzip")
    send_bad(b"\x04\x22\x4d\x18\x64\x40\xa7not lz4 either", "body", "compressed with lz4")
    send_good(5)
    send_bad(b"this is not JSON {", "body", "not valid JSON")
    send_bad(b"\xff\xfe\x00\x01 not UTF-8 at all", "body", "not valid JSON")
    oversized = encode_batch("prediction", [f.prediction(i) for i in range(200)])
    assert len(oversized) > LIMIT
    send_bad(oversized, "body", "over the limit")
    # invalid UTF-8 inside one event of a message: that event only
    evs = [f.prediction(1000 + i) for i in range(5)]
    raw = encode_batch("prediction", evs).replace(evs[3]["request_id"].encode(), b"r-\xe9t\xe9")
    md = producer.send_raw("prediction", raw, key=b"m1").get(timeout=30)
    good.extend(evs[:3] + evs[4:])
    send_good(10)
    md_last = md

    collector = _collector(store, kafka_bootstrap, topic_prefix, f"{topic_prefix}-g")
    try:
        want = len(good)
        _poll_until(collector, lambda: int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) >= want
                    and int(store.scalar("SELECT count() FROM {db}.dead_letters")) >= len(expect) + 1)
        ids = {r["event_id"] for r in store.rows("SELECT event_id FROM {db}.predictions FINAL")}
        assert ids == {e["event_id"] for e in good}
        rows = store.rows("SELECT source, event_index, field, reason, hex(payload) AS payload FROM {db}.dead_letters "
                          "ORDER BY source, event_index")
        by_offset = {int(r["source"].rsplit(":", 1)[1]): r for r in rows}
        assert set(by_offset) == set(expect) | {md_last.offset}
        for off, (field, words, payload) in expect.items():
            r = by_offset[off]
            assert r["source"] == f"kafka:{topic}:{md_last.partition}:{off}"
            assert r["event_index"] == -1 and r["field"] == field and words in r["reason"], r
            assert bytes.fromhex(r["payload"]) == payload[:65536]
        r = by_offset[md_last.offset]
        assert r["event_index"] == 3 and r["field"] == "(event)" and "not valid UTF-8" in r["reason"]
        payload = bytes.fromhex(r["payload"])
        assert b"r-\xe9t\xe9" in payload and json.loads(payload.replace(b"\xe9", b"e"))
        # it keeps consuming
        send_good(7)
        _poll_until(collector, lambda: int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) == len(good))
        assert collector.stats.dead_letters == len(expect) + 1
        from kafka.structs import TopicPartition

        tp = TopicPartition(topic, md_last.partition)   # commits follow the store on the next polls
        _poll_until(collector, lambda: (collector._consumer.committed(tp) or -1) > md_last.offset)
    finally:
        collector.close()
    # started again over the same messages (a new group reads them from the start): no crash, nothing new
    again = _collector(store, kafka_bootstrap, topic_prefix, f"{topic_prefix}-again")
    try:
        _poll_until(again,
                    lambda: again.stats.dead_letters >= len(expect) + 1 and again.stats.stored_events >= len(good))
        assert int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) == len(good)
        assert int(store.scalar("SELECT count() FROM {db}.dead_letters")) == len(expect) + 1
    finally:
        again.close()
        producer.close()


_JAVA_PRODUCER = """
import java.util.Properties;
import org.apache.kafka.clients.producer.*;

public class ProduceCompressed {
    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", a[0]);
        p.put("compression.type", a[2]);
        p.put("linger.ms", "50");
        p.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        p.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            java.util.List<java.util.concurrent.Future<RecordMetadata>> sent = new java.util.ArrayList<>();
            for (int i = 3; i < a.length; i++)
                sent.add(producer.send(new ProducerRecord<>(a[1], "m1".getBytes("UTF-8"), a[i].getBytes("UTF-8"))));
            for (java.util.concurrent.Future<RecordMetadata> f : sent) System.out.println(f.get().offset());
        }
    }
}
"""


def _produce_with_java(bootstrap: str, topic: str, codec: str, values: list[str], tmp: Any) -> list[int]:
    """Messages produced by Kafka's own Java client with ``codec`` (zstd: a codec kafka-python reads only
    with the zstandard package, which this collector does not install)."""
    import os
    import subprocess
    from pathlib import Path

    home = Path(os.environ.get("KAFKA_HOME", Path(__file__).resolve().parents[2] / ".cache" / "kafka"))
    src = Path(tmp) / "ProduceCompressed.java"
    src.write_text(_JAVA_PRODUCER)
    out = subprocess.run(["java", "-cp", f"{home / 'libs'}/*", str(src), bootstrap, topic, codec, *values],
                         capture_output=True, text=True, timeout=120, check=True)
    return [int(line) for line in out.stdout.split() if line.isdigit()]


def test_a_record_batch_in_a_codec_the_collector_lacks_is_dead_lettered(store: ChdbStore, kafka_bootstrap: str,
                                                                        topic_prefix: str, tmp_path: Path) -> None:
    from kafka import codec

    assert not codec.has_zstd()  # else this test would not test anything: it needs a codec the client lacks
    producer = KafkaTransport(kafka_bootstrap, topic_prefix=topic_prefix)
    topic = f"{topic_prefix}.prediction"
    before = [f.prediction(i) for i in range(10)]
    producer.send("prediction", before, key="m1").get(timeout=30)
    batch = [encode_batch("prediction", [f.prediction(100 + i)]).decode() for i in range(3)]
    offsets = _produce_with_java(kafka_bootstrap, topic, "zstd", batch, tmp_path)
    assert len(offsets) == 3
    after = [f.prediction(200 + i) for i in range(10)]
    producer.send("prediction", after, key="m1").get(timeout=30)
    collector = _collector(store, kafka_bootstrap, topic_prefix, f"{topic_prefix}-g")
    try:
        _poll_until(collector, lambda: int(store.scalar("SELECT count() FROM {db}.predictions FINAL")) >= 20)
        ids = {r["event_id"] for r in store.rows("SELECT event_id FROM {db}.predictions FINAL")}
        assert ids == {e["event_id"] for e in before + after}
        rows = store.rows("SELECT source, field, reason FROM {db}.dead_letters ORDER BY source")
        assert sorted(int(r["source"].rsplit(":", 1)[1]) for r in rows) == offsets
        assert all(r["field"] == "(record batch)" and "codec" in r["reason"] for r in rows)
    finally:
        collector.close()
        producer.close()
