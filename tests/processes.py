"""Stopping the helper processes of tests and benches (servers, collectors, the dashboard)."""

from __future__ import annotations

import subprocess
from typing import Any

__all__ = ["stop"]


def stop(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not left after ``timeout`` seconds; its pipes are drained."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
