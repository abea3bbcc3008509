"""Turning queued items into contract events on the worker (never on the caller's thread)."""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from hashlib import blake2b
from typing import Any

from serving_shim._internal.limits import MAX_STRING_LEN

__all__ = ["event_id", "normalize_prediction", "safe_name", "utc", "number", "clip"]

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.:\-/]")


def event_id(prefix: str, *parts: object) -> str:
    """A deterministic id: the same parts give the same id in any process (re-sends dedup)."""
    key = "\x1f".join(str(p) for p in parts).encode()
    return f"{prefix}-{blake2b(key, digest_size=16).hexdigest()}"


def utc(epoch_s: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(epoch_s, _dt.UTC)


def safe_name(s: object, default: str = "error") -> str:
    out = _NAME_BAD.sub("_", str(s))[:128]
    return out or default


def clip(x: Any) -> Any:
    """Strings longer than the contract allows are cut (after redaction), not rejected."""
    return x[:MAX_STRING_LEN] if isinstance(x, str) and len(x) > MAX_STRING_LEN else x


def number(x: Any) -> Any:
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x) if math.isfinite(x) else None
    return x


def normalize_prediction(p: Any) -> dict[str, Any]:
    """A model output in any usual shape -> the contract's ``prediction`` object."""
    if hasattr(p, "tolist") and not isinstance(p, (str, bytes)):
        p = p.tolist()
    if p is None:
        return {"label": ""}  # an error without an output
    if isinstance(p, Mapping):
        out: dict[str, Any] = {}
        for k in ("value", "score"):
            if p.get(k) is not None:
                out[k] = number(p[k])
        if p.get("label") is not None:
            out["label"] = str(number(p["label"]) if not isinstance(p["label"], str) else p["label"])
        if p.get("probabilities"):
            out["probabilities"] = {safe_name(k, "class"): number(v) for k, v in p["probabilities"].items()}
        if not out and p:  # a bare {class: probability} mapping
            out["probabilities"] = {safe_name(k, "class"): number(v) for k, v in p.items()}
        return out or {"label": ""}
    if isinstance(p, bool):
        return {"label": str(p).lower()}
    if isinstance(p, (int, float)):
        return {"value": number(p)}
    if isinstance(p, (list, tuple)):
        return {"probabilities": {str(i): number(v) for i, v in enumerate(p)}}
    return {"label": str(p)}


