"""HTTP delivery for notifiers: a URL allow-list, retries with backoff and jitter, ``Retry-After``, a log.

:class:`UrlPolicy` resolves the host of every target and refuses private, loopback, link-local,
multicast, reserved and unspecified addresses unless their network or host name is allow-listed
explicitly; redirects are never followed (a public URL cannot bounce to an internal one).
:class:`HttpSender` posts with retries on connection errors, 5xx and 429 (full jitter, honouring
``Retry-After`` in seconds or as an HTTP date), and writes every attempt to a delivery log.

Known limit: the host is resolved for the check and again by the HTTP client, so a DNS answer that
changes in between (rebinding) is not caught; pin webhook hosts by name in the allow-list, or put an
egress proxy in front, where that matters.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import httpx

from collector.backoff import backoff_delay
from collector.schema import SLO_DELIVERIES
from collector.store import Store
from slo_engine.exceptions import DeliveryFailed, UrlNotAllowed

__all__ = ["UrlPolicy", "embedded_ipv4", "RetryPolicy", "DeliveryRecord", "StoreDeliveryLog", "MemoryDeliveryLog",
           "HttpSender"]

_log = logging.getLogger(__name__)
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class UrlPolicy:
    """Which webhook targets are allowed. Public addresses are; internal ones only when listed here."""

    allow_networks: tuple[_Net, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    schemes: frozenset[str] = frozenset({"https", "http"})

    @classmethod
    def allowing(cls, *entries: str, schemes: Iterable[str] = ("https", "http")) -> UrlPolicy:
        """``UrlPolicy.allowing("127.0.0.1", "10.0.0.0/8", "hooks.internal")``: networks or host names."""
        nets: list[_Net] = []
        hosts: set[str] = set()
        for e in entries:
            try:
                nets.append(ipaddress.ip_network(e, strict=False))
            except ValueError:
                hosts.add(e.lower().rstrip("."))
        return cls(allow_networks=tuple(nets), allow_hosts=frozenset(hosts), schemes=frozenset(schemes))

    def check(self, url: str) -> None:
        """Raise :class:`UrlNotAllowed` unless every address the host resolves to is allowed."""
        u = urlsplit(url)
        if u.scheme not in self.schemes:
            raise UrlNotAllowed(f"{_redact(url)}: scheme {u.scheme!r} not allowed "
                                f"(use {', '.join(sorted(self.schemes))})")
        host = (u.hostname or "").lower().rstrip(".")
        if not host:
            raise UrlNotAllowed(f"{_redact(url)}: no host")
        if u.username or u.password:
            raise UrlNotAllowed(f"{_redact(url)}: credentials in the URL are not allowed")
        if host in self.allow_hosts:
            return
        try:
            infos = socket.getaddrinfo(host, u.port or (443 if u.scheme == "https" else 80), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UrlNotAllowed(f"{_redact(url)}: cannot resolve {host}: {exc}") from None
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            embedded = embedded_ipv4(ip)
            # ::ffff:a.b.c.d and ::a.b.c.d are notations of the IPv4 address alone; the other forms are IPv6
            # addresses of their own that also reach the IPv4 one, so both must pass
            notation = isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped is not None or ip in _V4_COMPATIBLE)
            for addr in (embedded if notation and embedded else (ip, *embedded)):
                if any(addr in n for n in self.allow_networks):
                    continue
                if not addr.is_global or addr.is_multicast:
                    shown = str(ip) if addr == ip else f"{ip} (which embeds {addr})"
                    raise UrlNotAllowed(f"{_redact(url)}: {host} resolves to {shown}, an internal address; "
                                        "allow-list it explicitly to send there")


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries, which is where a packet to it may end up.

    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96`` and the
    local-use ``64:ff9b:1::/48``), 6to4 (``2002:AABB:CCDD::/48``), Teredo (server and client) and ISATAP
    (``…:5efe:a.b.c.d``). Each must pass the policy as well as the IPv6 address itself.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return ()
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    out: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip in _V4_COMPATIBLE and int(ip) > 1:  # not :: or ::1
        out.append(low32)
    if any(ip in n for n in _NAT64):
        out.append(low32)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if (int(ip) >> 32) & 0xFDFFFFFF == 0x00005EFE:  # ISATAP interface id 0000:5efe or 0200:5efe
        out.append(low32)
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Attempts, and full-jitter exponential backoff between them: ``uniform(0, min(cap, base·2^n))``."""

    max_attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0   # a longer Retry-After gives up rather than block the scheduler
    timeout_s: float = 10.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return backoff_delay(attempt, initial_s=self.base_s, max_s=self.cap_s, jitter=1.0, rng=rng)


@dataclass(frozen=True, kw_only=True)
class DeliveryRecord:
    ts: _dt.datetime
    notifier: str
    target: str
    dedup_key: str
    action: str
    attempt: int
    status_code: int
    outcome: Literal["delivered", "retry", "failed"]
    error: str = ""


class StoreDeliveryLog:
    """The delivery log in the store (``slo_deliveries``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, r: DeliveryRecord) -> None:
        self.store.insert(SLO_DELIVERIES, {
            "ts": [r.ts], "notifier": [r.notifier], "target": [r.target], "dedup_key": [r.dedup_key],
            "action": [r.action], "attempt": [r.attempt], "status_code": [r.status_code], "outcome": [r.outcome],
            "error": [r.error[:1000]],
        })


@dataclass
class MemoryDeliveryLog:
    """An in-memory delivery log, for users' own tests."""

    records: list[DeliveryRecord] = field(default_factory=list)

    def __call__(self, r: DeliveryRecord) -> None:
        self.records.append(r)


def _redact(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname or ''}{':' + str(u.port) if u.port else ''}"


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class HttpSender:
    """POSTs JSON bodies with the URL policy, retries and the delivery log. ``sleep`` and ``rng`` are injectable."""

    def __init__(self, *, policy: UrlPolicy | None = None, retry: RetryPolicy | None = None,
                 log: Callable[[DeliveryRecord], None] | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, client: httpx.Client | None = None) -> None:
        self.policy = policy or UrlPolicy()
        self.retry = retry or RetryPolicy()
        self.log = log or MemoryDeliveryLog()
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.client = client or httpx.Client(timeout=self.retry.timeout_s, follow_redirects=False)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, notifier: str, dedup_key: str,
             action: str, sign: Callable[[bytes], Mapping[str, str]] | None = None) -> httpx.Response:
        """Deliver or raise :class:`DeliveryFailed`. ``sign`` adds per-attempt headers (fresh timestamps)."""
        self.policy.check(url)
        target = _redact(url)
        last = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            h = {"Content-Type": "application/json", "User-Agent": "driftline-slo/1", **headers}
            if sign is not None:
                h.update(sign(body))
            wait: float | None = None
            status = 0
            started = time.monotonic()
            try:
                resp = self.client.post(url, content=body, headers=h)
                status = resp.status_code
                took = f"{(time.monotonic() - started) * 1000:.0f} ms"
                if 200 <= status < 300:
                    self._log(notifier, target, dedup_key, action, attempt, status, "delivered", took)
                    return resp
                # status and timing only: the target's reply may hold anything, and read keys see this log
                last = f"HTTP {status} after {took}"
                if status == 429:
                    wait = _retry_after(resp.headers.get("Retry-After"), time.time())
                    if wait is not None and wait > self.retry.max_retry_after_s:
                        self._log(notifier, target, dedup_key, action, attempt, status, "failed",
                                  f"Retry-After {wait:.0f}s exceeds {self.retry.max_retry_after_s:.0f}s")
                        raise DeliveryFailed(f"{notifier} → {target}: rate limited for {wait:.0f}s")
                elif status < 500:
                    self._log(notifier, target, dedup_key, action, attempt, status, "failed", last)
                    raise DeliveryFailed(f"{notifier} → {target}: {last}")
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__} after {(time.monotonic() - started) * 1000:.0f} ms"
            final = attempt == self.retry.max_attempts
            self._log(notifier, target, dedup_key, action, attempt, status, "failed" if final else "retry", last)
            if not final:
                self.sleep(wait if wait is not None else self.retry.backoff(attempt, self.rng))
        raise DeliveryFailed(f"{notifier} → {target}: {self.retry.max_attempts} attempts failed, last: {last}")

    def close(self) -> None:
        self.client.close()

    def _log(self, notifier: str, target: str, dedup_key: str, action: str, attempt: int, status: int,
             outcome: Literal["delivered", "retry", "failed"], error: str = "") -> None:
        try:
            self.log(DeliveryRecord(ts=_dt.datetime.now(_dt.UTC), notifier=notifier, target=target,
                                    dedup_key=dedup_key, action=action, attempt=attempt, status_code=status,
                                    outcome=outcome, error=error))
        except Exception:  # a broken log must not lose the page
            _log.exception("delivery log failed for %s %s", notifier, dedup_key)
