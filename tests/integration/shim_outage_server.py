"""The model-server side of the broker-outage test, run in its own process (as in production):
phase 1 logs with the broker up, the broker is stopped while it keeps logging, phase 2 logs with
it down, then the broker is started again and phase 3 logs after export resumed. Prints one JSON
line of measurements. The process also keeps kafka-python's leftovers (sockets of refused
connection attempts) out of the test session.

    python -m tests.integration.shim_outage_server PORT TOPIC_PREFIX
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from serving_shim import BatchConfig, KafkaSink, Monitor
from tests.brokers import DedicatedBroker

_LETTERS = bytes(range(256)).translate(None).maketrans(bytes(range(256)), bytes(97 + i % 26 for i in range(256)))
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _blob() -> str:
    """2 KB of letters, new for every call (what an unbounded queue would pile up)."""
    return os.urandom(2000).translate(_LETTERS).decode()


def _log(m: Monitor, rid: str, i: int) -> None:
    m.log(rid, {"x": float(i), "region": "eu", "blob": _blob()}, {"score": 0.5}, latency_ms=3.0,
          status="error" if i % 100 == 0 else "ok", error_type="Timeout" if i % 100 == 0 else None)


def _paced(m: Monitor, prefix: str, n: int, per_s: float, timings: list[float] | None = None) -> None:
    start = time.perf_counter()
    for i in range(n):
        rid = f"{prefix}-{i}"
        t0 = time.perf_counter_ns()
        _log(m, rid, i)
        if timings is not None:
            timings.append((time.perf_counter_ns() - t0) / 1e6)
        ahead = start + (i + 1) / per_s - time.perf_counter()
        if ahead > 0.002:
            time.sleep(ahead)


def main(port: int, topic_prefix: str) -> dict[str, object]:
    broker = DedicatedBroker(port)
    broker._formatted = True  # the test started it: later starts keep its data
    m = Monitor(model="outage", version="v1", sink=KafkaSink(broker.bootstrap, topic_prefix=topic_prefix), window_s=1,
                batch=BatchConfig(max_queue_size=2000, max_export_batch_size=200, schedule_delay_s=0.2,
                                  export_timeout_s=1.0))
    out: dict[str, object] = {}
    # 1. broker up: everything flows
    _paced(m, "before", 1000, per_s=2000)
    out["phase1_flushed"] = m.flush(30)
    out["phase1_exported"] = m.metrics().exported.get("prediction", 0)

    # 2. the broker stops while the model server keeps logging (the stop takes seconds), then
    # stays down: the caller keeps its speed, the queue its bound, drops are counted
    rss0 = _rss()
    timings: list[float] = []
    stopper = threading.Thread(target=broker.stop)
    stopper.start()
    n_stopping = 0
    while stopper.is_alive():
        _paced(m, f"stopping{n_stopping}", 500, per_s=5000, timings=timings)
        n_stopping += 1
    stopper.join()
    depth_max = 0
    for chunk in range(6):
        _paced(m, f"during{chunk}", 5000, per_s=5000, timings=timings)
        depth_max = max(depth_max, m.metrics().queue_depth)
    timings.sort()
    snap = m.metrics()
    out.update(n_stopping=n_stopping, calls_down=len(timings), p50_ms=timings[len(timings) // 2],
               p99_ms=timings[int(0.99 * len(timings))], max_ms=timings[-1], rss_grown=_rss() - rss0,
               depth_max=depth_max, dropped_down=snap.dropped, export_failures=snap.export_failures,
               flush_while_down=m.flush(0.5))

    # 3. broker back: export resumes by itself (the backlog drains), and new events flow
    broker.start()
    deadline = time.monotonic() + 90
    resumed = True
    while m.metrics().queue_depth > 0 or m.metrics().pending_windows > 0:
        if time.monotonic() > deadline:
            resumed = False
            break
        time.sleep(0.5)
    out["resumed"] = resumed
    _paced(m, "after", 500, per_s=2000)
    out["phase3_flushed"] = m.flush(30)
    m.shutdown()
    final = m.metrics()
    out.update(sampled=final.sampled, exported=final.exported.get("prediction", 0), dropped=final.dropped,
               pending_windows=final.pending_windows, queue_depth=final.queue_depth)
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2])), flush=True)
    os._exit(0)  # kafka-python's leftovers need no orderly teardown
