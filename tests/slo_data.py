"""Recorded metric windows and detector results for the SLO engine's tests."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from collector.store import Store
from serving_shim.contract import LATENCY_BUCKETS_MS

T0 = _dt.datetime(2026, 3, 10, 12, 0, tzinfo=_dt.UTC)


def minutes(store: Store, start: _dt.datetime, n: int, error_rate: Callable[[int], float], *, model: str = "m1",
            version: str = "v1", replicas: int = 2, requests: int = 1000,
            slow_share: Callable[[int], float] = lambda i: 0.0) -> None:
    """``n`` one-minute windows from ``start`` per replica; ``error_rate(i)`` and ``slow_share(i)`` of minute i
    (slow requests land in the 500 ms bucket, the rest in the 50 ms one). Replicas split the requests."""
    nb = len(LATENCY_BUCKETS_MS) + 1
    fast, slow = LATENCY_BUCKETS_MS.index(50), LATENCY_BUCKETS_MS.index(500)
    cols: dict[str, list[object]] = {}
    per = requests // replicas
    for i in range(n):
        ws = start + _dt.timedelta(minutes=i)
        for r in range(replicas):
            errs = round(per * error_rate(i))
            b = [0] * nb
            b[slow] = round(per * slow_share(i))
            b[fast] = per - b[slow]
            for k, v in (("event_id", f"{model}-{version}-{ws.isoformat()}-{r}"), ("window_start", ws),
                         ("window_s", 60), ("model", model), ("model_version", version), ("source", f"replica-{r}"),
                         ("requests", per), ("errors", {"timeout": errs} if errs else {}), ("latency_buckets", b),
                         ("latency_sum_ms", 50.0 * per), ("schema_version", 1)):
                cols.setdefault(k, []).append(v)
    store.insert("metric_windows", cols)


def detector_windows(store: Store, start: _dt.datetime, n: int, alert: Callable[[int], bool], *, model: str = "m1",
                     version: str = "v1", step_s: int = 3600, subject: str = "x") -> None:
    cols: dict[str, list[object]] = {k: [] for k in ("run_id", "run_at", "model", "model_version", "window_start",
                                                     "window_end", "detector", "subject", "test", "value",
                                                     "threshold", "status", "sample_size", "detail")}
    for i in range(n):
        ws = start + _dt.timedelta(seconds=i * step_s)
        we = ws + _dt.timedelta(seconds=step_s)
        for k, v in (("run_id", f"r{i}"), ("run_at", we), ("model", model), ("model_version", version),
                     ("window_start", ws), ("window_end", we), ("detector", "drift"), ("subject", subject),
                     ("test", "psi"), ("value", 0.3 if alert(i) else 0.05), ("threshold", 0.2),
                     ("status", "alert" if alert(i) else "ok"), ("sample_size", 500), ("detail", "{}")):
            cols[k].append(v)
    store.insert("detector_results", cols)


class Receiver:
    """A real HTTP receiver on 127.0.0.1 in a thread. ``script[path]`` lists (status, headers) or
    (status, headers, body) replies to use in order before answering 200 ``ok``; every request is recorded
    as (path, headers, body)."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.script: dict[str, list[tuple[Any, ...]]] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    replies = outer.script.get(self.path) or []
                    status, headers, *rest = replies.pop(0) if replies else (200, {})
                reply = (rest[0] if rest else "ok").encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> list[dict[str, Any]]:
        import json

        return [json.loads(b) for p, _, b in self.requests if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
