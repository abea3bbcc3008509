"""Benchmark: what unauthenticated (and oversized) requests cost a real ``driftline serve``.

Starts ``python -m driftline serve`` on a fresh chDB store and a free port (keys on, scheduler off), reads
its resident memory (``VmRSS`` of /proc) after a warm-up, then sends, over raw sockets from 4 threads:

- ``keys_100kb``:   1,000 GETs each with a different 100 KB ``X-API-Key`` (refused by the header cap);
- ``keys_bogus``:   1,000 GETs each with a different well-formed but unknown key (looked up, never cached
  beyond the bounded LRU);
- ``body_declared``: 1,000 POSTs to ``/v1/keys`` without a key declaring ``Content-Length: 100 MB`` and
  sending its first MB (refused before any body is read);
- ``body_chunked``: 1,000 such POSTs with a chunked body (no length), streaming until the answer comes;
- ``auth_declared``: 100 POSTs with the admin key declaring 100 MB (413 from the declared length);
- ``auth_chunked``:  100 chunked ingest POSTs with the admin key streaming 100 MB (413 once 10 MB were counted).

Each line prints the statuses, the slowest answer and the median, and the server's RSS before and after.
Anchors (issue 11): every answer in under 1 s, RSS within 50 MB of the start after the unauthenticated
cases (the ``auth_`` cases run last: an authenticated ingest body is read up to its 10 MB cap). Last line:
``limits max_answer_s=… rss_growth_mb_unauthenticated=… rss_growth_mb_all=…``.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.processes import stop  # noqa: E402

MB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def exchange(port: int, head: bytes, body: Callable[[socket.socket], None] | None = None) -> tuple[int, float]:
    """Send a request head (and body, until the server answers or closes), return (status, seconds to the answer)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(head)
            if body is not None:
                body(s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest: what we want
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass  # status 0: no answer within the socket's 10 s
    elapsed = time.perf_counter() - t0
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else 0), elapsed


def _send_until_answer(total: int, chunked: bool) -> Callable[[socket.socket], None]:
    piece = b"x" * 65536

    def send(s: socket.socket) -> None:
        sent = 0
        s.setblocking(False)
        while sent < total:
            try:
                if s.recv(1, socket.MSG_PEEK):  # the answer is there: stop streaming
                    break
            except BlockingIOError:
                pass
            frame = (b"%x\r\n" % len(piece) + piece + b"\r\n") if chunked else piece
            try:
                s.setblocking(True)
                s.settimeout(2)
                s.sendall(frame)
            except (TimeoutError, BlockingIOError):
                break
            finally:
                s.setblocking(False)
            sent += len(piece)
        s.setblocking(True)
        s.settimeout(10)

    return send


def run(name: str, port: int, pid: int, n: int,
        make: Callable[[int], tuple[bytes, Callable | None]]) -> tuple[float, float]:
    before = rss_mb(pid)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: exchange(port, *make(i)), range(n)))
    after = rss_mb(pid)
    times = [t for _, t in results]
    statuses = dict(sorted(collections.Counter(s for s, _ in results).items()))
    print(f"{name:14s} n={n} statuses={statuses} max_s={max(times):.3f} p50_s={statistics.median(times):.4f} "
          f"rss_mb {before:.1f} -> {after:.1f} ({after - before:+.1f})", flush=True)
    return max(times), after


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="driftline-bench-limits-")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "DRIFTLINE_SCHEDULER": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "driftline", "serve", "--store", os.path.join(work, "store"),
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        admin = ""
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("driftline serve exited")
            if line.strip().startswith("dl_"):
                admin = line.strip()
            if "serving on" in line:
                break
        while time.monotonic() < deadline:
            try:
                if exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        for _ in range(200):  # warm-up: the code paths below, once
            exchange(port, b"GET /v1/counts HTTP/1.1\r\nHost: x\r\nX-API-Key: dl_0123456789ab_nope\r\n\r\n")
        start = rss_mb(proc.pid)
        print(f"server pid={proc.pid} rss_mb_start={start:.1f}", flush=True)
        big_key = b"a" * (100 * 1024)  # a different 100 KB key id each time: dl_<i><100 KB>_s
        worst = 0.0
        n = args.n
        cases: list[tuple[str, int, Callable[[int], tuple[bytes, Callable | None]]]] = [
            ("keys_100kb", n, lambda i: (b"GET /v1/counts HTTP/1.1\r\nHost: x\r\nX-API-Key: dl_%08x" % i + big_key
                                         + b"_s\r\n\r\n", None)),
            ("keys_bogus", n, lambda i: (b"GET /v1/counts HTTP/1.1\r\nHost: x\r\nX-API-Key: dl_%012x_%s\r\n\r\n"
                                         % (i + 1, b"s" * 43), None)),
            ("body_declared", n, lambda i: (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                            b"Content-Length: %d\r\n\r\n" % (100 * MB), _send_until_answer(MB, False))),
            ("body_chunked", n, lambda i: (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                           b"Transfer-Encoding: chunked\r\n\r\n", _send_until_answer(100 * MB, True))),
            ("auth_declared", n // 10, lambda i: (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                                  b"\r\nX-API-Key: " + admin.encode() + b"\r\n"
                                                  b"Content-Length: %d\r\n\r\n" % (100 * MB),
                                                  _send_until_answer(MB, False))),
            ("auth_chunked", n // 10, lambda i: (b"POST /v1/predictions HTTP/1.1\r\nHost: x\r\nX-API-Key: "
                                                 + admin.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n",
                                                 _send_until_answer(100 * MB, True))),
        ]
        end = unauth_end = start
        for name, count, make in cases:
            if args.only and name not in args.only.split(","):
                continue
            t, end = run(name, port, proc.pid, count, make)
            worst = max(worst, t)
            if not name.startswith("auth_"):
                unauth_end = end
        print(f"limits max_answer_s={worst:.3f} rss_growth_mb_unauthenticated={unauth_end - start:+.1f} "
              f"rss_growth_mb_all={end - start:+.1f} (anchors: < 1 s, unauthenticated < 50 MB)", flush=True)
        return 0 if worst < 1 and unauth_end - start < 50 else 1
    finally:
        stop(proc, timeout=20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
