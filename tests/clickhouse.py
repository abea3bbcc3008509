"""A real ClickHouse server process (Debian's clickhouse-server package) on free ports, that a test can
stop and start again on the same data (an outage the collector must ride out)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from tests.processes import stop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def server_binary() -> str | None:
    if shutil.which("clickhouse-server"):
        return shutil.which("clickhouse-server")
    return "/usr/sbin/clickhouse-server" if os.path.exists("/usr/sbin/clickhouse-server") else None


class ClickHouseServer:
    """``start()`` runs the server (RuntimeError with its error log if it does not come up), ``stop()``
    ends it; the data directory and ports stay the same across restarts, ``remove()`` deletes them."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.work = tempfile.mkdtemp(prefix="driftline-chserver-")
        self.host = "127.0.0.1"
        self.port, self._http, self._interserver = _free_port(), _free_port(), _free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> None:
        w = self.work
        cmd = [self.binary, "--config-file=/etc/clickhouse-server/config.xml", "--", f"--tcp_port={self.port}",
               f"--http_port={self._http}", f"--interserver_http_port={self._interserver}",
               f"--listen_host={self.host}", f"--path={w}/data/", f"--tmp_path={w}/tmp/",
               f"--user_files_path={w}/uf/", f"--format_schema_path={w}/fs/",
               f"--logger.log={w}/server.log", f"--logger.errorlog={w}/err.log", "--logger.console=0"]
        proc = self._proc = subprocess.Popen(cmd, cwd=w, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not port_open(self.host, self.port, 0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = ""
                if os.path.exists(f"{w}/err.log"):
                    with open(f"{w}/err.log") as fh:
                        err = fh.read()[-2000:]
                raise RuntimeError(f"clickhouse-server did not start on {self.port}: {err}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)
            self._proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)
