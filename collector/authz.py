"""Who may call what, as one table, enforced in one place before any route runs or any body is read.

:data:`ROUTES` gives every route (method, path template) a :class:`Rule`: the scope it needs and how
the model(s) it touches are found. Tenants are models: a key scoped to models sees and changes those
models' data only; a key without models sees every model.

==========  ====================================================================================
models      how they are found, and what a key scoped to models may do
==========  ====================================================================================
public      no key needed (health, the API's own description)
none        the route reads no model's data (the test registry, spec validation)
query       ``?model=`` (every value) must be one of the key's models
listed      rows of many models: the route filters them to :func:`key_models`; ``?model=``, if
            given, must be one of the key's models
events      ingest: each event's ``model`` is checked by the route (refused events are named)
body        the JSON body's ``model`` field must be one of the key's models
matchers    the JSON body's ``matchers.model`` must be one of the key's models (a silence without
            a model, or for other models, needs an unscoped key)
resource    the path names a stored object; a resolver gives its models (none: unscoped keys only)
unscoped    keys without models only (key management)
==========  ====================================================================================

:class:`Authorize` (an ASGI middleware) runs, for every HTTP request, in this order: the header size
cap (431), the route's rule (a path missing from the table is answered 404, never passed on), the key
(401; its length is capped before any lookup), the scope (403), a declared ``Content-Length`` over the route's body cap
(413), the models (403), and then the app with a receive channel that counts the body and stops at
the cap (413). Bodies of routes that parse JSON are read here, bounded, and replayed to the app;
ingest and uploads read their own stream, counted the same way.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.auth import LOCAL_PRINCIPAL, KeyStore, Principal

__all__ = ["Rule", "ROUTES", "HttpLimits", "Authorize", "BodyTooLarge", "key_models", "KeyModels", "request_actor",
           "Actor"]

PUBLIC, NONE, QUERY, LISTED, EVENTS, BODY, MATCHERS, RESOURCE, UNSCOPED = (
    "public", "none", "query", "listed", "events", "body", "matchers", "resource", "unscoped")


@dataclass(frozen=True)
class Rule:
    scope: str                 # read | write | admin ('' for public routes)
    models: str                # one of the kinds above
    body: str = "json"         # json: read here, bounded, replayed | ingest, upload: the route streams it
    resolver: str = ""         # models="resource": the name of the resolver that finds the object's models


_R, _W, _A = "read", "write", "admin"

#: Every route of the assembled app. A test walks ``/openapi.json`` and fails for a route missing here.
ROUTES: Mapping[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule("", PUBLIC),
    ("GET", "/metrics"): Rule("", PUBLIC),           # counters by event kind only, no model's data
    ("GET", "/openapi.json"): Rule("", PUBLIC),
    ("GET", "/docs"): Rule("", PUBLIC),
    ("GET", "/docs/oauth2-redirect"): Rule("", PUBLIC),
    ("GET", "/redoc"): Rule("", PUBLIC),
    # collector: ingest
    ("POST", "/v1/predictions"): Rule(_W, EVENTS, body="ingest"),
    ("POST", "/v1/labels"): Rule(_W, EVENTS, body="ingest"),
    ("POST", "/v1/metric-windows"): Rule(_W, EVENTS, body="ingest"),
    ("POST", "/v1/deploys"): Rule(_W, EVENTS, body="ingest"),
    # collector: queries
    ("GET", "/v1/models"): Rule(_R, LISTED),
    ("GET", "/v1/predictions"): Rule(_R, QUERY),
    ("GET", "/v1/arrivals"): Rule(_R, LISTED),
    ("GET", "/v1/labels/coverage"): Rule(_R, QUERY),
    ("GET", "/v1/dead-letters"): Rule(_R, LISTED),
    ("GET", "/v1/counts"): Rule(_R, LISTED),
    # collector: keys
    ("GET", "/v1/keys"): Rule(_A, UNSCOPED),
    ("POST", "/v1/keys"): Rule(_A, UNSCOPED),
    ("DELETE", "/v1/keys/{key_id}"): Rule(_A, UNSCOPED),
    # collector: ops
    ("GET", "/v1/ops/models"): Rule(_R, LISTED),
    ("GET", "/v1/ops/latency"): Rule(_R, QUERY),
    ("GET", "/v1/ops/deploys"): Rule(_R, QUERY),
    ("GET", "/v1/ops/versions"): Rule(_R, QUERY),
    ("GET", "/v1/ops/summary"): Rule(_R, QUERY),
    ("GET", "/v1/ops/slices"): Rule(_R, QUERY),
    ("GET", "/v1/ops/features"): Rule(_R, QUERY),
    ("GET", "/v1/ops/distribution"): Rule(_R, QUERY),
    # detectors
    ("GET", "/v1/drift/psi"): Rule(_R, QUERY),
    ("GET", "/v1/detectors/tests"): Rule(_R, NONE),
    ("POST", "/v1/detectors/run"): Rule(_W, BODY),
    ("GET", "/v1/detectors/results"): Rule(_R, LISTED),
    ("GET", "/v1/references"): Rule(_R, LISTED),
    ("GET", "/v1/references/distribution"): Rule(_R, QUERY),
    ("POST", "/v1/references/window"): Rule(_W, BODY),
    ("POST", "/v1/references/upload"): Rule(_W, QUERY, body="upload"),
    ("GET", "/v1/reports/evidently"): Rule(_R, QUERY),
    ("GET", "/v1/root-cause"): Rule(_R, QUERY),
    ("POST", "/v1/cbpe/calibration"): Rule(_W, BODY),
    ("GET", "/v1/performance/estimated"): Rule(_R, QUERY),
    # slo_engine
    ("GET", "/v1/slo/specs"): Rule(_R, LISTED),
    ("POST", "/v1/slo/validate"): Rule(_R, NONE),
    ("GET", "/v1/slo/status"): Rule(_R, LISTED),
    ("GET", "/v1/slo/alerts"): Rule(_R, LISTED),
    ("GET", "/v1/slo/silences"): Rule(_R, LISTED),
    ("POST", "/v1/slo/silences"): Rule(_W, MATCHERS),
    ("DELETE", "/v1/slo/silences/{silence_id}"): Rule(_W, RESOURCE, resolver="silence"),
    ("GET", "/v1/slo/deliveries"): Rule(_R, LISTED),
    # lifecycle (detectors.lifecycle_api)
    ("GET", "/v1/deploys"): Rule(_R, LISTED),
    ("GET", "/v1/canary"): Rule(_R, QUERY),
    ("GET", "/v1/cost"): Rule(_R, QUERY),
    # governance: the audit log (read only: no route edits or deletes an entry), retention, subjects
    ("GET", "/v1/audit"): Rule(_A, LISTED),
    ("GET", "/v1/retention"): Rule(_A, NONE),
    ("PUT", "/v1/retention"): Rule(_A, UNSCOPED),
    ("GET", "/v1/subjects/{subject:path}"): Rule(_A, UNSCOPED),
    ("DELETE", "/v1/subjects/{subject:path}"): Rule(_A, UNSCOPED),
}

#: A resolver: the path parameters of a request to the models of the object it names
#: (``None``: no such object, the route answers 404; ``()``: an object of no model, for unscoped keys).
Resolver = Callable[[Mapping[str, str]], Sequence[str] | None]


@dataclass(frozen=True, kw_only=True)
class HttpLimits:
    """Request size limits (bytes), from :class:`driftline.config.Settings`."""

    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    max_ingest_bytes: int = 10 * 1024 * 1024
    max_upload_bytes: int = 200 * 1024 * 1024

    def body_cap(self, rule: Rule) -> int:
        return {"ingest": self.max_ingest_bytes, "upload": self.max_upload_bytes}.get(rule.body, self.max_body_bytes)


class BodyTooLarge(HTTPException):
    """The body passed the route's cap while it was read (answered 413, naming the limit)."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, f"body: over the limit of {cap} bytes")


def key_models(request: Request) -> tuple[str, ...]:
    """The models the caller may see (empty: every model). Listing routes filter their rows by this."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise RuntimeError("no principal: the app is not wrapped in collector.authz.Authorize")
    return principal.models


KeyModels = Annotated[tuple[str, ...], Depends(key_models)]


def request_actor(request: Request) -> str:
    """Who makes this request, for the audit log (``key:<key_id>``, or ``local``)."""
    from collector.audit import principal_actor

    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise RuntimeError("no principal: the app is not wrapped in collector.authz.Authorize")
    return principal_actor(principal)


Actor = Annotated[str, Depends(request_actor)]


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Refused(Exception):
    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        self.status, self.detail, self.headers = status, detail, dict(headers or {})


def _models_refusal(rule: Rule, principal: Principal, query: Mapping[str, list[str]], body: bytes | None,
                    resolved: Sequence[str] | None) -> str | None:
    """Why a key scoped to models may not make this request, or None."""
    mine = ", ".join(principal.models)
    for m in query.get("model", []):
        if rule.models in (QUERY, LISTED) and not principal.allows_model(m):
            return f"model: this key may not read model {m!r} (its models: {mine})"
    if not principal.models:
        return None
    if rule.models == UNSCOPED:
        return f"api key: limited to models {mine}; this route needs a key for every model"
    if rule.models == QUERY and not query.get("model"):
        return f"model: this key is limited to models {mine}; name one with ?model="
    if rule.models in (BODY, MATCHERS):
        try:
            doc = json.loads(body or b"")
        except (ValueError, RecursionError):
            return None  # not JSON: the route refuses it (422) without reading any model's data
        if rule.models == MATCHERS:
            doc = doc.get("matchers") if isinstance(doc, dict) else None
            model = doc.get("model") if isinstance(doc, dict) else None
            if not isinstance(model, str) or not principal.allows_model(model):
                return (f"matchers.model: this key may silence models {mine} only; a silence without a model "
                        "or for other models needs a key for every model")
            return None
        model = doc.get("model") if isinstance(doc, dict) else None
        if not isinstance(model, str) or not principal.allows_model(model):
            shown = repr(model)[:100] if model is not None else "(none named)"
            return f"model: this key may not act on model {shown} (its models: {mine})"
    if rule.models == RESOURCE and resolved is not None:
        if not resolved or not all(principal.allows_model(m) for m in resolved):
            return f"model: this object is not only for models {mine}; it needs a key for every model"
    return None


class Authorize:
    """The ASGI middleware that applies :data:`ROUTES` (see the module text for the order of checks)."""

    def __init__(self, app: ASGIApp, *, keys: KeyStore, limits: HttpLimits, open_localhost: bool = False,
                 table: Mapping[tuple[str, str], Rule] = ROUTES,
                 resolvers: Mapping[str, Resolver] | None = None) -> None:
        self.app = app
        # a path not in the table is never passed on: a route missing from it cannot be reached (fail closed)
        self._compiled = [(path, compile_path(path)[0], method, rule) for (method, path), rule in table.items()]
        self.keys = keys
        self.limits = limits
        self.open_localhost = open_localhost
        self.table = table
        self.resolvers = dict(resolvers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            receive = await self._authorize(scope, receive)
        except _Refused as r:
            await _answer(send, r.status, r.detail, r.headers)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except BodyTooLarge as exc:  # raised while a route streamed its body
            if started:
                raise
            await _answer(send, 413, str(exc.detail))

    async def _authorize(self, scope: Scope, receive: Receive) -> Receive:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        size = sum(len(k) + len(v) + 4 for k, v in headers)
        if size > self.limits.max_header_bytes:
            raise _Refused(431, f"headers: {size} bytes is over the limit of {self.limits.max_header_bytes}")
        _, rule, path_params = self._route(scope)
        cap = self.limits.body_cap(rule)
        declared = _header(headers, b"content-length")
        if rule.models == PUBLIC:
            return _capped(receive, cap)
        principal = await self._principal(scope, headers)
        if not principal.can(rule.scope):
            raise _Refused(403, f"api key: scope {principal.scope!r} cannot {rule.scope} "
                                f"(needs {rule.scope!r} or higher)")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise _Refused(413, f"body: {declared} bytes is over the limit of {cap}")
        scope.setdefault("state", {})["principal"] = principal
        query = _query(scope)
        if rule.body != "json":
            refusal = _models_refusal(rule, principal, query, None, None)
            if refusal:
                raise _Refused(403, refusal)
            return _capped(receive, cap)
        body, receive = await _read_body(receive, cap)
        resolved: Sequence[str] | None = None
        if rule.models == RESOURCE and principal.models:
            resolved = await run_in_threadpool(self.resolvers[rule.resolver], path_params)
        refusal = _models_refusal(rule, principal, query, body, resolved)
        if refusal:
            raise _Refused(403, refusal)
        return receive

    def _route(self, scope: Scope) -> tuple[str, Rule, dict[str, str]]:
        """The route template, its rule and path parameters; the table is the whole API: 404 or 405 otherwise."""
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        allowed = []
        for template, regex, m, rule in self._compiled:
            found = regex.match(scope["path"])
            if found is None:
                continue
            if m == method:
                return template, rule, found.groupdict()
            allowed.append(m)
        if allowed:
            raise _Refused(405, f"method: {method} is not allowed here (use {', '.join(sorted(set(allowed)))})",
                           {"allow": ", ".join(sorted(set(allowed)))})
        raise _Refused(404, "Not Found")

    async def _principal(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> Principal:
        key = _header(headers, b"x-api-key")
        auth = _header(headers, b"authorization") or ""
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if key:
            if len(key) > self.keys.max_key_chars:
                raise _Refused(401, f"api key: longer than {self.keys.max_key_chars} characters")
            principal = await run_in_threadpool(self.keys.verify, key)
            if principal is None:
                raise _Refused(401, "api key: unknown or revoked key")
            return principal
        client = scope.get("client")
        if self.open_localhost and _is_loopback(client[0] if client else None):
            return LOCAL_PRINCIPAL
        raise _Refused(401, "api key: missing (send X-API-Key; an admin creates keys with POST /v1/keys or "
                            "`driftline keys create`)", {"www-authenticate": "Bearer"})


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


def _query(scope: Scope) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


async def _read_body(receive: Receive, cap: int) -> tuple[bytes, Receive]:
    """The whole body (at most ``cap`` bytes, else 413), and a receive channel that replays it."""
    chunks, n = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        n += len(chunk)
        if n > cap:
            raise _Refused(413, f"body: over the limit of {cap} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _capped(receive: Receive, cap: int) -> Receive:
    """A receive channel that raises :class:`BodyTooLarge` once more than ``cap`` body bytes arrived."""
    n = 0

    async def counted() -> Message:
        nonlocal n
        message = await receive()
        if message["type"] == "http.request":
            n += len(message.get("body", b""))
            if n > cap:
                raise BodyTooLarge(cap)
        return message

    return counted


async def _answer(send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if status in (413, 431):
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

