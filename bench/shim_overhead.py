"""Caller-thread cost of ``Monitor.log()`` (unsampled and sampled) against an OpenTelemetry span.

Each call is timed on its own with ``perf_counter_ns``; the cost of the timer pair (measured the
same way around nothing) is subtracted. All three are measured in one run, on one machine, with
the shim's worker thread live (redacting and exporting sampled events to a sink that discards
them) and OpenTelemetry's BatchSpanProcessor worker live, so GIL contention is part of the figure.

    python -m bench.shim_overhead [--n 100000]

Last line: ``shim_overhead unsampled_p50_us=… unsampled_p99_us=… sampled_p50_us=… sampled_p99_us=… otel_span_p50_us=…``
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from serving_shim import Batch, BatchConfig, ExportResult, Monitor, Redaction
from serving_shim._internal.sampling import is_sampled

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

TARGETS = {"unsampled_p50_us": 3, "unsampled_p99_us": 10, "sampled_p50_us": 15, "sampled_p99_us": 50}


class DiscardSink:
    def __init__(self) -> None:
        self.events = 0

    def export(self, batch: Batch, *, timeout: float) -> ExportResult:
        self.events += len(batch.events)
        return ExportResult.SUCCESS

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        return None


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _time_calls(fn: Callable[[int], object], n: int, overhead_ns: float) -> list[float]:
    out = [0.0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(i)
        out[i] = (clock() - t0 - overhead_ns) / 1000
    return out


def _timer_overhead_ns(n: int = 200_000) -> float:
    clock = time.perf_counter_ns
    xs = []
    for _ in range(n):
        t0 = clock()
        xs.append(clock() - t0)
    return float(statistics.median(xs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    n = args.n

    # a unique free-text note per request, so the worker really runs Presidio (no cache hits) while
    # the caller is measured: its GIL use is part of the figure
    payloads = [{"income": 52_000.5 + i, "age": 41.0, "debt_ratio": 0.31, "n_accounts": 4.0, "region": "eu",
                 "plan": "pro", "note": f"call me at +1 415 555 {i % 10_000:04d}, order {i}"} for i in range(n + 2000)]
    slices = {"region": "eu"}
    batch = BatchConfig(max_queue_size=n + 1000, max_export_batch_size=512, schedule_delay_s=0.5)
    redaction = Redaction(categories={"region": {"eu", "us"}, "plan": {"free", "pro"}})

    # unsampled: ids the 0.1% rate does not keep
    rate = 0.001
    ids: list[str] = []
    while len(ids) < n:
        rid = uuid.uuid4().hex
        if not is_sampled(rid, rate):
            ids.append(rid)
    sink_u = DiscardSink()
    mu = Monitor(model="bench", version="v1", sink=sink_u, sample_rate=rate, redaction=redaction, batch=batch,
                 registry=_registry())
    sink_s = DiscardSink()
    ms = Monitor(model="bench", version="v1", sink=sink_s, sample_rate=1.0, redaction=redaction, batch=batch,
                 registry=_registry())

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardSpans(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardSpans(), max_queue_size=n + 1000))
    tracer = provider.get_tracer("bench")

    def unsampled(i: int) -> None:
        mu.log(ids[i], payloads[i], 0.42, latency_ms=12.5, slices=slices)

    def sampled(i: int) -> None:
        ms.log(ids[i], payloads[i], 0.42, latency_ms=12.5, slices=slices)

    def otel(i: int) -> None:
        with tracer.start_as_current_span("predict") as span:
            span.set_attribute("request_id", ids[i])

    overhead = _timer_overhead_ns()
    for fn in (unsampled, sampled, otel):  # warm-up
        for i in range(2000):
            fn(i)
    ms.flush(60)
    gc.collect()
    gc.freeze()
    res = {}
    # the anchor first, so the shim's backlog of redaction does not slow OpenTelemetry down
    for name, fn in (("otel_span", otel), ("unsampled", unsampled), ("sampled", sampled)):
        xs = _time_calls(fn, n, overhead)
        res[name] = (_pct(xs, 0.5), _pct(xs, 0.99), _pct(xs, 0.999))
    ms.flush(120)
    snap_s, snap_u = ms.metrics(), mu.metrics()
    mu.shutdown()
    ms.shutdown()
    provider.shutdown()

    print(f"timer overhead subtracted: {overhead:.0f} ns per call; n={n} calls each")
    for name, (p50, p99, p999) in res.items():
        print(f"  {name:<10} p50={p50:6.2f} us  p99={p99:6.2f} us  p99.9={p999:7.2f} us")
    print(f"  unsampled monitor: requests={snap_u.requests} sampled={snap_u.sampled}")
    print(f"  sampled monitor: requests={snap_s.requests} sampled={snap_s.sampled} exported={snap_s.exported} "
          f"dropped={ {k: v for k, v in snap_s.dropped.items() if v} }")
    figures = {"unsampled_p50_us": res["unsampled"][0], "unsampled_p99_us": res["unsampled"][1],
               "sampled_p50_us": res["sampled"][0], "sampled_p99_us": res["sampled"][1]}
    for k, target in TARGETS.items():
        print(f"  {k}: {figures[k]:.2f} (target <= {target}) {'met' if figures[k] <= target else 'MISSED'}")
    print("shim_overhead " + " ".join(f"{k}={v:.2f}" for k, v in figures.items())
          + f" otel_span_p50_us={res['otel_span'][0]:.2f}")


def _registry() -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


if __name__ == "__main__":
    main()
