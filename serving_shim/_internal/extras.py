"""Optional features and the extra that installs each: ``pip install driftline`` is the SDK alone.

``require("kafka", "kafka", "KafkaSink")`` imports a module of an optional feature, or raises an
:class:`ImportError` that names the extra to install (``pip install 'driftline[kafka]'``).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["require", "installed", "missing_extra"]


def missing_extra(extra: str, feature: str, module: str) -> ImportError:
    return ImportError(f"{feature} needs the {extra!r} extra ({module} is not installed): "
                       f"pip install 'driftline[{extra}]'", name=module)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path), without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str, feature: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but broken: its own error says more
        raise missing_extra(extra, feature, module) from None
