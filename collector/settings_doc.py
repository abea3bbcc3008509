"""One reader for the settings given as a document: inline JSON, or the path of a JSON or YAML file."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["load_doc", "MAX_DOC_BYTES"]

MAX_DOC_BYTES = 1_000_000


def load_doc(spec: str, name: str) -> Any:
    """The document of ``spec`` (inline JSON starting with ``{``, or a path to a JSON or YAML file); ``None`` for
    ''. ``name`` (the variable it came from) starts every error message."""
    if not spec.strip():
        return None
    if spec.lstrip().startswith("{"):
        text, where = spec, name
    else:
        if not os.path.isfile(spec):
            raise ValueError(f"{name}: no file {spec!r}")
        with open(spec, encoding="utf-8") as fh:
            text, where = fh.read(MAX_DOC_BYTES + 1), spec
        if len(text) > MAX_DOC_BYTES:
            raise ValueError(f"{where}: over 1 MB")
    try:
        import yaml

        return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, Exception) as exc:  # noqa: BLE001 - yaml's errors are not ValueErrors
        raise ValueError(f"{where}: not valid JSON/YAML ({type(exc).__name__})") from None
