"""SQL that cannot be confused: statements are templates, values are bound, rendering is one pass.

A statement is a *template* the programmer wrote, with two kinds of placeholders:

- ``%(name)s``: a value (rendered as a ClickHouse literal), another fragment (:func:`sql`), or an
  identifier (:func:`ident`);
- ``{db}``: the store's database.

The template is read once by a small lexer that knows ClickHouse's string literals (``'...'``),
quoted identifiers (``"..."``, `````...`````), heredocs (``$$...$$``, ``$tag$...$tag$``) and comments (``--``, ``#``,
nested ``/* */``): placeholders are recognized only in plain SQL text, never inside those, and a
value is turned into text only after the scan, so nothing in a value (quotes, ``%(model)s``,
``{db}``, ``--``, NUL) is ever read as SQL. Both engines receive the same rendered text.

Values never enter a template: code builds statements from fragments, each with its own bound
values::

    cond = sql("model = %(m)s AND ts >= %(t)s", m=model, t=start)
    store.rows(sql("SELECT count() FROM {db}.predictions FINAL WHERE %(c)s", c=cond))

Server-side typed parameters (``{name:Type}``) work on chDB 4.4 (``Session.query(..., params=)``)
and with clickhouse-driver 0.2.11 (``server_side_params``) against servers of 22.8 and newer, but not
on older servers, and each of the detectors' hundreds of constants would need its type spelled out:
rendering on the client, once, keeps one SQL text for both engines.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

__all__ = ["SQL", "sql", "join", "commas", "ident", "Ident", "render", "check_identifier", "ParameterError",
           "MIN_TIME", "MAX_TIME"]

#: The range of ClickHouse's DateTime64.
MIN_TIME = _dt.datetime(1900, 1, 1)
MAX_TIME = _dt.datetime(2299, 12, 31)


class ParameterError(ValueError):
    """A query parameter that cannot be a ClickHouse value (the API answers 422)."""


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(name: str, what: str = "identifier") -> str:
    """``name`` if it is a plain identifier (letters, digits, underscore; not starting with a digit)."""
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise ValueError(f"{what}: {name!r} is not a valid identifier (letters, digits, underscore)")
    return name


class Ident:
    """An identifier (database, table, column, alias) checked by :func:`check_identifier`, rendered quoted."""

    __slots__ = ("name",)

    def __init__(self, name: str, what: str = "identifier") -> None:
        self.name = check_identifier(name, what)

    def __repr__(self) -> str:
        return f"Ident({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ident) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("Ident", self.name))


def ident(name: str, what: str = "identifier") -> Ident:
    """The one way an identifier reaches SQL: checked, then back-quoted."""
    return Ident(name, what)


# ---------------------------------------------------------------------------------------------
# The lexer: a template becomes plain text pieces and placeholders.

class _Db:
    __slots__ = ()


_DB = _Db()


class _Value:
    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v


_Token = str | tuple[str]          # plain SQL text, or (placeholder name,); "{db}" is the _DB marker

_OPEN = re.compile(r"'|\"|`|--|#|/\*|\$[A-Za-z0-9_]*\$|%\(|\{db\}")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _skip_quoted(t: str, i: int, q: str) -> int:
    """Index after the closing quote of the literal/identifier opened at ``t[i]``
    (backslash escapes, doubled quotes)."""
    j = i + 1
    n = len(t)
    while j < n:
        c = t[j]
        if c == "\\":
            j += 2
        elif c == q:
            if j + 1 < n and t[j + 1] == q:
                j += 2
            else:
                return j + 1
        else:
            j += 1
    raise ValueError(f"SQL template: unterminated {q}...{q} at offset {i}: {t[i:i + 60]!r}")


def _skip_block_comment(t: str, i: int) -> int:
    depth, j = 0, i
    while j < len(t):
        if t.startswith("/*", j):
            depth += 1
            j += 2
        elif t.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise ValueError(f"SQL template: unterminated /* comment at offset {i}")


@lru_cache(maxsize=4096)
def _lex(template: str) -> tuple[_Token | _Db, ...]:
    """Split a template into text and placeholders in one pass (literals and comments are text)."""
    out: list[Any] = []
    start = i = 0
    n = len(template)
    while i < n:
        m = _OPEN.search(template, i)
        if m is None:
            break
        tok, j = m.group(), m.start()
        if tok in ("'", '"', "`"):
            i = _skip_quoted(template, j, tok)
        elif tok in ("--", "#"):
            if tok == "#" and not template.startswith(("# ", "#!"), j):
                i = j + 1           # ClickHouse reads '#' as a comment only before a space or '!'
                continue
            e = template.find("\n", j)
            i = n if e < 0 else e + 1
        elif tok == "/*":
            i = _skip_block_comment(template, j)
        elif tok[0] == "$":         # a heredoc: $$...$$ or $tag$...$tag$
            e = template.find(tok, j + len(tok))
            if e < 0:
                raise ValueError(f"SQL template: unterminated {tok} at offset {j}")
            i = e + len(tok)
        elif tok == "{db}":
            out.append(template[start:j])
            out.append(_DB)
            start = i = j + 4
        else:                       # %(
            m = _PLACEHOLDER.match(template, j)
            if m is None:
                i = j + 2
                continue
            out.append(template[start:j])
            out.append((m.group(1),))
            start = i = m.end()
    out.append(template[start:])
    return tuple(x for x in out if x != "")


# ---------------------------------------------------------------------------------------------
# Fragments

class SQL:
    """A piece of SQL: template text with its values bound (immutable; compose with :func:`sql`, :func:`join`)."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[_Part, ...]) -> None:
        self.parts = parts          # nested fragments stay nested (no copying): render flattens them

    def __repr__(self) -> str:
        return f"SQL({render(self, None, 'db')!r})"


_Part = str | _Value | _Db | Ident | SQL


def sql(template: str, /, **values: Any) -> SQL:
    """A fragment: ``template`` (written by the programmer, never built from data) with ``values`` bound
    to its ``%(name)s`` placeholders (a value, an :class:`SQL` fragment or an :class:`Ident`)."""
    if not isinstance(template, str):
        raise TypeError(f"an SQL template must be a str, not {type(template).__name__}")
    return _bind(template, values)


def _bind(template: str, values: Mapping[str, Any]) -> SQL:
    parts: list[_Part] = []
    for tok in _lex(template):
        if isinstance(tok, tuple):
            v = values[tok[0]]          # a missing value is a KeyError naming it
            if isinstance(v, (SQL, Ident)):
                parts.append(v)
            else:
                parts.append(_Value(v))
        else:
            parts.append(tok)
    return SQL(tuple(parts))


def join(sep: str, fragments: Iterable[SQL]) -> SQL:
    """The fragments joined by ``sep`` (plain SQL text such as ``", "`` or ``" AND "``)."""
    glue = _bind(sep, {}).parts
    parts: list[_Part] = []
    for k, f in enumerate(fragments):
        if not isinstance(f, SQL):
            raise TypeError(f"join: {type(f).__name__} is not an SQL fragment")
        if k:
            parts.extend(glue)
        parts.append(f)
    return SQL(tuple(parts))


def render(statement: SQL | str, params: Mapping[str, Any] | None, database: str) -> str:
    """The statement's text: its template's placeholders replaced, once, by literals, identifiers and
    ``database``. A str ``statement`` is a template with ``params`` (missing parameters raise KeyError);
    an :class:`SQL` carries its own values."""
    if isinstance(statement, SQL):
        if params:
            raise TypeError("an SQL fragment carries its own values: pass no params")
        frag = statement
    else:
        frag = _bind(statement, params or {})
    out: list[str] = []
    _emit(frag, out, _quote_ident(check_identifier(database, "database")))
    return "".join(out)


def _emit(frag: SQL, out: list[str], db: str) -> None:
    for p in frag.parts:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, _Value):
            out.append(_literal(p.v))
        elif isinstance(p, SQL):
            _emit(p, out, db)
        elif isinstance(p, Ident):
            out.append(_quote_ident(p.name))
        else:
            out.append(db)


# ---------------------------------------------------------------------------------------------
# Literals (private: values reach SQL through render only)

def _quote_ident(name: str) -> str:
    return "`" + name + "`"


_ESCAPES = {"\\": "\\\\", "'": "\\'", "\0": "\\0", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SPECIAL = re.compile(r"[\\'\x00-\x1f\x7f\ud800-\udfff]")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    e = _ESCAPES.get(c)
    if e is not None:
        return e
    # other control characters, and lone surrogates (not UTF-8: their bytes as escapes)
    return "".join(f"\\x{b:02X}" for b in c.encode("utf-8", "surrogatepass"))


def _quote_string(s: str) -> str:
    return "'" + _SPECIAL.sub(_escape_char, s) + "'"


def _literal(v: Any) -> str:
    """A ClickHouse literal for a Python value."""
    t = type(v)
    if t is float:                  # the common cases first (the detectors' scans bind thousands of numbers)
        return repr(v) if math.isfinite(v) else "nan" if v != v else "inf" if v > 0 else "-inf"
    if t is int:
        return str(v)
    if t is str:
        return _quote_string(v)
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _quote_string(v)
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None:
            try:
                v = v.astimezone(_dt.UTC).replace(tzinfo=None)
            except OverflowError:
                raise ParameterError(f"time {v.isoformat()} is out of range "
                                     f"({MIN_TIME.year}-{MAX_TIME.year})") from None
        if not MIN_TIME <= v <= MAX_TIME:
            raise ParameterError(f"time {v.isoformat()} is out of range ({MIN_TIME.year}-{MAX_TIME.year})")
        return f"toDateTime64('{v.isoformat(sep=' ', timespec='milliseconds')}', 3, 'UTC')"
    if isinstance(v, _dt.date):
        return f"toDate('{v.isoformat()}')"
    if isinstance(v, Mapping):
        inner = ", ".join(f"{_literal(k)}, {_literal(x)}" for k, x in v.items())
        return f"map({inner})"
    if hasattr(v, "tolist") and hasattr(v, "ndim"):        # numpy arrays and scalars
        return _literal(v.tolist())
    if isinstance(v, (list, tuple)):
        kinds = set(map(type, v))
        if kinds == {int} or (kinds == {float} and all(map(math.isfinite, v))):     # bin edges, thresholds
            return "[" + ", ".join(map(repr, v)) + "]"
        return "[" + ", ".join(_literal(x) for x in v) + "]"
    raise TypeError(f"cannot render a {type(v).__name__} as a ClickHouse literal")


def commas(values: Iterable[Any]) -> SQL:
    """The values bound one by one and separated by commas: for ``IN (...)`` and an aggregate's parameters."""
    return join(", ", [sql("%(v)s", v=v) for v in values])
