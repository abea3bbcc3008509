"""Deterministic sampling by ``request_id``: the same id gets the same decision in every process.

The key is the first 8 bytes of BLAKE2b of the UTF-8 id (not Python's ``hash()``, which is salted per
process), read as an unsigned integer and compared with ``rate * 2**64``. Any replica, and any
label sender, decides the same way for the same rate.
"""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["MIN_RATE", "threshold_for", "sample_key", "is_sampled"]

MIN_RATE = 0.001
_SPACE = 1 << 64


def threshold_for(rate: float) -> int:
    if not MIN_RATE <= rate <= 1.0:
        raise ValueError(f"sample_rate must be between {MIN_RATE} (0.1%) and 1.0 (100%), got {rate}")
    return _SPACE if rate >= 1.0 else int(rate * _SPACE)


def sample_key(request_id: str) -> int:
    return int.from_bytes(blake2b(request_id.encode(), digest_size=8).digest(), "big")


def is_sampled(request_id: str, rate: float) -> bool:
    """The decision :class:`~serving_shim.Monitor` takes for a successful request at ``rate``."""
    return sample_key(request_id) < threshold_for(rate)
