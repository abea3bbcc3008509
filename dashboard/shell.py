"""What every page shares: the filters in the sidebar (model, version, time range), cached API reads,
the empty states and the message shown when the API cannot be reached.

``app.py`` renders the filters once per run and hands them to the page through :func:`page_context`;
a page run on its own (Streamlit's AppTest, or ``streamlit run dashboard/views/x.py``) renders them itself.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard.client import ApiConfig, ApiError, ApiUnreachable, request

__all__ = ["Ctx", "get", "mutate", "page_context", "entry_context", "run_page", "onboarding", "fmt_pct",
           "fmt_usd", "TIME_RANGES"]

CACHE_TTL_S = 20
TIME_RANGES: dict[str, int] = {"Last 15 minutes": 15, "Last hour": 60, "Last 6 hours": 360,
                               "Last 24 hours": 1440, "Last 7 days": 10080, "Last 30 days": 43200}
DEFAULT_RANGE = "Last 6 hours"
ALL_VERSIONS = "All versions"

_local = threading.local()  # one script run is one thread: the context of the run in progress


@dataclass(frozen=True, kw_only=True)
class Ctx:
    api: ApiConfig
    model: str | None
    version: str              # '' for every version
    minutes: int
    range_label: str
    models: tuple[str, ...]

    def get(self, path: str, **params: Any) -> Any:
        return get(self.api, path, **params)

    @property
    def start(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=self.minutes)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _cached(base_url: str, headers: tuple[tuple[str, str], ...], path: str,
            params: tuple[tuple[str, Any], ...]) -> Any:
    cfg = ApiConfig(base_url=base_url, api_key=dict(headers).get("k", ""),
                    key_header=dict(headers).get("h", "X-API-Key"))
    return request(cfg, "GET", path, dict(params))


def get(cfg: ApiConfig, path: str, **params: Any) -> Any:
    """A GET through the cache (``CACHE_TTL_S`` seconds); ``None`` parameters are left out."""
    p = tuple(sorted((k, v) for k, v in params.items() if v is not None))
    return _cached(cfg.base_url, (("h", cfg.key_header), ("k", cfg.api_key)), path, p)


def mutate(cfg: ApiConfig, method: str, path: str, json: Any = None) -> Any:
    """A write (silences): not cached, and clears the cache so the next reads see it."""
    out = request(cfg, method, path, json=json)
    _cached.clear()
    return out


def _filters() -> Ctx:
    cfg = ApiConfig.from_env()
    sb = st.sidebar
    sb.markdown("### Driftline")
    sb.caption(f"API: `{cfg.base_url}`")
    rows = get(cfg, "/v1/ops/models")
    models = tuple(r["model"] for r in rows)
    versions = {r["model"]: list(r["versions"]) for r in rows}
    model = sb.selectbox("Model", models, key="dl_model", placeholder="no model yet") if models else None
    opts = [ALL_VERSIONS, *versions.get(model or "", [])]
    version = sb.selectbox("Version", opts, key=f"dl_version_{model}")
    rng = sb.selectbox("Time range", list(TIME_RANGES), index=list(TIME_RANGES).index(DEFAULT_RANGE), key="dl_range")
    if sb.button("Refresh", key="dl_refresh"):
        _cached.clear()
    return Ctx(api=cfg, model=model, version="" if version == ALL_VERSIONS else str(version),
               minutes=TIME_RANGES[str(rng)], range_label=str(rng), models=models)


@contextmanager
def entry_context() -> Iterator[Ctx | None]:
    """For ``app.py``: render the filters once, and let the page that runs inside reuse them."""
    try:
        ctx: Ctx | None = _filters()
    except ApiUnreachable as exc:
        unreachable(ApiConfig.from_env(), exc)
        ctx = None
    except ApiError as exc:
        st.error(f"The Driftline API refused a request: {exc}")
        ctx = None
    _local.ctx = ctx
    try:
        yield ctx
    finally:
        _local.ctx = None


def page_context() -> Ctx:
    ctx = getattr(_local, "ctx", None)
    return ctx if ctx is not None else _filters()


def run_page(title: str, render: Callable[[Ctx], None]) -> None:
    """Render one page: filters, title, then ``render``; an unreachable API or an API error is a message."""
    try:
        ctx = page_context()
        st.title(title)
        if ctx.model is None:
            onboarding(ctx.api)
            return
        st.caption(f"Model **{ctx.model}** · {ctx.version or 'all versions'} · {ctx.range_label.lower()}")
        render(ctx)
    except ApiUnreachable as exc:
        unreachable(ApiConfig.from_env(), exc)
    except ApiError as exc:
        st.error(f"The Driftline API refused a request: {exc}")


def unreachable(cfg: ApiConfig, exc: Exception) -> None:
    st.error(f"**Cannot reach the Driftline API at {cfg.base_url}.** ({exc})\n\n"
             "Start it with `driftline serve --port 8000`, or point the dashboard at it with "
             "`DRIFTLINE_API=http://host:port` (`driftline dashboard --api http://host:port`).")


_CURL = ("""curl -X POST {api}/v1/predictions -H 'Content-Type: application/json' -d '[{{"schema_version": 1,
  "event_id": "e1", "ts": "{ts}", "model": "churn", "model_version": "v3",
  "request_id": "r1", "features": {{"tenure": 12, "plan": "pro"}}, """
         """"prediction": {{"label": "stay", "score": 0.8}}}}]'""")


def onboarding(cfg: ApiConfig, what: str = "No model has sent anything yet.") -> None:
    """The empty state: what a new user does next, instead of blank charts."""
    ts = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    st.info(f"**{what}** Here is how to get your first data in.")
    st.markdown("**1. Send a first event** (any language can post JSON to the ingest API):")
    st.code(_CURL.format(api=cfg.base_url, ts=ts), language="bash")
    st.markdown(
        "**2. Send the counts of every request** (availability, latency and cost come from them): post "
        "`metric_window` events to `/v1/metric-windows`, or wrap your model server with the Python SDK "
        "(`serving_shim`), which counts, samples and sends for you. `driftline schema --kind metric_window` "
        "prints the format.\n\n"
        "**3. Upload a reference** for drift: `driftline reference train.csv --model churn` stores the profile of "
        "your training data (CSV or Parquet) as the reference `baseline`; the drift detectors compare every new "
        "window against it, and the Debug page shows each feature's reference and current distribution.\n\n"
        "**4. Send labels** when ground truth arrives (`/v1/labels`, joined by `request_id`) for accuracy.\n\n"
        "Or see it all at once: `driftline demo` serves a demo model's traffic with a drift in it.")


def fmt_pct(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v * 100:.{digits}f}%"


def fmt_usd(v: float | None) -> str:
    return "–" if v is None else f"${v:.4f}"


