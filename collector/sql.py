"""Client-side rendering of query parameters into ClickHouse literals.

Both engines receive the same fully rendered SQL, so a statement behaves the same on chDB and on a
ClickHouse server. Placeholders are ``%(name)s``; ``{db}`` names the store's database.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from typing import Any

#: The range of ClickHouse's DateTime64.
MIN_TIME = _dt.datetime(1900, 1, 1)
MAX_TIME = _dt.datetime(2299, 12, 31)


class ParameterError(ValueError):
    """A query parameter that cannot be a ClickHouse value (the API answers 422)."""


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(name: str, what: str = "identifier") -> str:
    if not _IDENT.match(name):
        raise ValueError(f"{what}: {name!r} is not a valid identifier (letters, digits, underscore)")
    return name


def quote_string(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def literal(v: Any) -> str:
    """A ClickHouse literal for a Python value."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return quote_string(v)
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None:
            try:
                v = v.astimezone(_dt.UTC).replace(tzinfo=None)
            except OverflowError:
                raise ParameterError(f"time {v.isoformat()} is out of range ({MIN_TIME.year}-{MAX_TIME.year})") from None
        if not MIN_TIME <= v <= MAX_TIME:
            raise ParameterError(f"time {v.isoformat()} is out of range ({MIN_TIME.year}-{MAX_TIME.year})")
        return f"toDateTime64('{v.isoformat(sep=' ', timespec='milliseconds')}', 3, 'UTC')"
    if isinstance(v, _dt.date):
        return f"toDate('{v.isoformat()}')"
    if isinstance(v, Mapping):
        inner = ", ".join(f"{literal(k)}, {literal(x)}" for k, x in v.items())
        return f"map({inner})"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    raise TypeError(f"cannot render a {type(v).__name__} as a ClickHouse literal")


def render(sql: str, params: Mapping[str, Any] | None, database: str) -> str:
    """Substitute ``{db}`` and ``%(name)s`` placeholders. Missing parameters raise KeyError."""
    sql = sql.replace("{db}", database)
    if not params:
        return sql
    return _PLACEHOLDER.sub(lambda m: literal(params[m.group(1)]), sql)
