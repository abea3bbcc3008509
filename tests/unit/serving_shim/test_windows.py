"""Every request is counted into metric windows, whatever the sampling; window ids are deterministic."""

from __future__ import annotations

import threading
from bisect import bisect_left

from serving_shim import InMemorySink, Monitor
from serving_shim.contract import LATENCY_BUCKETS_MS

from .helpers import registry


def test_counts_are_exact_at_a_low_sample_rate_across_threads() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, sample_rate=0.001, window_s=1, registry=registry())
    lat = [0.5, 2.0, 7.0, 30.0, 20000.0]
    n_threads, per = 4, 5000

    def work(t: int) -> None:
        for i in range(per):
            status = "error" if i % 50 == 0 else "ok"
            m.log(f"t{t}-{i}", {"x": i}, 1.0, latency_ms=lat[i % 5], status=status,
                  error_type=("Timeout" if i % 100 == 0 else "OOM") if status == "error" else None)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.flush(30)
    m.shutdown()
    windows = sink.events("metric_window")
    assert windows, "no metric window exported"
    total = n_threads * per
    assert sum(w.requests for w in windows) == total
    assert sum(w.errors.get("Timeout", 0) for w in windows) == n_threads * 50
    assert sum(w.errors.get("OOM", 0) for w in windows) == n_threads * 50
    buckets = [sum(w.latency_buckets[i] for w in windows) for i in range(len(LATENCY_BUCKETS_MS) + 1)]
    want = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for i in range(per):
        want[bisect_left(LATENCY_BUCKETS_MS, lat[i % 5])] += n_threads
    assert buckets == want and buckets[-1] == total // 5  # 20 s is in the overflow bucket
    assert abs(sum(w.latency_sum_ms for w in windows) - n_threads * per / 5 * sum(lat)) < 1e-3
    assert len(sink.events("prediction")) < total * 0.05  # payloads were sampled, counts were not
    assert len({w.event_id for w in windows}) == len(windows)
    assert all(w.source == m.source and w.window_s == 1 for w in windows)


def test_window_event_id_is_deterministic_for_a_replica_model_version_and_start() -> None:
    def run(source: str) -> list[str]:
        sink = InMemorySink()
        m = Monitor(model="m", version="v1", sink=sink, source=source, window_s=3600, registry=registry())
        m.log("a", {}, 1.0, latency_ms=1.0)
        m.shutdown()
        return [w.event_id for w in sink.events("metric_window")]

    a, b, c = run("replica-1"), run("replica-1"), run("replica-2")
    assert len(a) == 1 and a == b and a != c


def test_windows_roll_over_with_time_and_idle_windows_close_by_themselves() -> None:
    import time

    from serving_shim import BatchConfig

    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, window_s=1, batch=BatchConfig(schedule_delay_s=0.1),
                registry=registry())
    m.log("a", {}, 1.0, latency_ms=1.0)
    deadline = time.monotonic() + 5
    while not sink.events("metric_window") and time.monotonic() < deadline:
        time.sleep(0.05)
    # no further log() call: the worker closed the finished window on its own
    ws = sink.events("metric_window")
    assert len(ws) == 1 and ws[0].requests == 1
    m.shutdown()


def test_a_window_flushed_early_and_reopened_keeps_every_count_under_its_own_id() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, source="r1", window_s=3600, registry=registry())
    for part in range(3):
        for i in range(10):
            m.log(f"p{part}-{i}", {}, 1.0, latency_ms=1.0)
        assert m.flush(5)  # closes the open window early, three times in one interval
    m.shutdown()
    ws = sink.events("metric_window")
    assert len(ws) == 3 and len({w.window_start for w in ws}) == 1
    assert len({w.event_id for w in ws}) == 3  # the store would otherwise deduplicate two of them away
    assert sum(w.requests for w in ws) == 30


def test_pending_windows_are_bounded_while_the_sink_is_down() -> None:
    from serving_shim import BatchConfig

    from .helpers import FlakySink

    sink = FlakySink()
    sink.down.set()
    m = Monitor(model="m", version="v1", sink=sink, window_s=3600, registry=registry(),
                batch=BatchConfig(max_pending_windows=2, export_timeout_s=0.1))
    for part in range(5):
        m.log(f"p{part}", {}, 1.0, latency_ms=1.0)
        assert not m.flush(1)
    snap = m.metrics()
    assert snap.pending_windows == 2 and snap.dropped["window_overflow"] == 3
    sink.down.clear()
    assert m.flush(5)
    assert sum(w.requests for w in sink.events("metric_window")) == 2  # the two newest windows
    m.shutdown()


def test_bad_arguments_never_raise_and_never_poison_a_window() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, window_s=3600, registry=registry())
    assert m.log("a", {"x": 1.0}, 1.0, latency_ms=float("nan")) is True
    assert m.log("b", {"x": 1.0}, 1.0, latency_ms=-3.0) is True
    assert m.log("c", 42, 1.0, latency_ms=1.0) is False  # features not a mapping: dropped, counted
    assert m.log("d", {"x": 1.0}, 1.0, latency_ms="slow") is False  # type: ignore[arg-type]
    assert m.log(12345, {"x": 1.0}, 1.0, latency_ms=2.0) is True  # type: ignore[arg-type]
    m.shutdown()
    assert m.metrics().dropped["invalid"] == 2
    (w,) = sink.events("metric_window")
    assert w.requests == 5 and sum(w.latency_buckets) == 2 and w.latency_sum_ms == 3.0
    preds = {e.request_id: e for e in sink.events("prediction")}
    assert set(preds) == {"a", "b", "12345"} and preds["a"].latency_ms is None and preds["12345"].latency_ms == 2.0


def test_awkward_feature_names_and_long_texts_are_normalised_not_dropped() -> None:
    sink = InMemorySink()
    m = Monitor(model="m", version="v1", sink=sink, registry=registry())
    m.log("a", {"Annual Income": 5.0, "notes": "x" * 10_000}, 1.0, slices={"home region": "eu"})
    m.shutdown()
    (e,) = sink.events("prediction")
    assert e.features["Annual_Income"] == 5.0 and len(e.features["notes"]) == 8192
    assert e.slices == {"home_region": "eu"} and m.metrics().dropped["invalid"] == 0
