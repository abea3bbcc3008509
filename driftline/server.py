"""The Driftline server: the store, its migrations and every package's routes in one FastAPI app."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from collector.api import KafkaIngestSink, Limits, StoreIngestSink, ingest_router, keys_router, query_router
from collector.auth import KeyStore
from collector.authz import Authorize, HttpLimits
from collector.store import Store
from collector.writer import EventWriter
from driftline.config import Settings
from driftline.migrations import all_migrations, open_and_migrate
from driftline.scheduler import Scheduler, cost_budget_job, detectors_job, notifier_routes, slo_job, version_job

__all__ = ["all_migrations", "create_app", "open_and_migrate"]


def build_scheduler(store: Store, settings: Settings, specs: Any) -> Scheduler:
    """The jobs every tick runs: SLO evaluation and alerting (and the detectors, where configured)."""
    routes = notifier_routes(
        store=store, pagerduty_routing_key=settings.pagerduty_routing_key,
        slack_webhook_url=settings.slack_webhook_url, webhook_url=settings.webhook_url,
        webhook_secret=settings.webhook_secret,
        allow=[a.strip() for a in settings.notify_allow.split(",") if a.strip()],
    )
    jobs = {
        "detectors": detectors_job(window_s=settings.detector_window_s, every_s=settings.detector_every_s,
                                   reference=settings.detector_reference, config=settings.detectors()),
        "slo": slo_job(specs, routes),   # after the detectors: drift SLIs read this tick's results
        "version": version_job(routes, grace_s=settings.version_grace_s, recent_s=settings.version_recent_s),
        "cost_budget": cost_budget_job(settings.cost(), routes),
    }
    return Scheduler(store, jobs, interval_s=settings.scheduler_interval_s)


def _job_stat(scheduler: Scheduler, job: str, counter: str) -> Callable[[], float]:
    """A gauge's reading of one job's counter (0 before the job's first run)."""
    return lambda: getattr(scheduler.stats[job], counter) if job in scheduler.stats else 0


def _fingerprint(secret: str) -> str:
    """A slow salted digest of a notifier secret: a change of it is seen in the audit log, the secret is not
    (nor can a short one be guessed back from it cheaply)."""
    if not secret:
        return ""
    import hashlib

    return hashlib.pbkdf2_hmac("sha256", secret.encode(), b"driftline-audit-v1", 20_000).hex()[:16]


def _notifier_settings(settings: Settings) -> dict[str, Any]:
    """What the notifiers are configured to reach, for the audit log: hosts and fingerprints, no secret."""
    from urllib.parse import urlsplit

    def url(u: str) -> dict[str, Any]:
        return {"configured": bool(u), "host": urlsplit(u).hostname if u else None, "fingerprint": _fingerprint(u)}

    return {"pagerduty": {"configured": bool(settings.pagerduty_routing_key),
                          "fingerprint": _fingerprint(settings.pagerduty_routing_key)},
            "slack": url(settings.slack_webhook_url),
            "webhook": {**url(settings.webhook_url), "signed": bool(settings.webhook_secret),
                        "signing_fingerprint": _fingerprint(settings.webhook_secret)},
            "notify_allow": settings.notify_allow}


def _audit_configuration(store: Store, settings: Settings, specs: list[Any],
                         cost_models: dict[str, Any] | None = None) -> None:
    """SLO specs, detector settings, notifier settings and cost models come from files and the environment
    at start: a start that brings other ones than the last recorded is an audited change (by the user who
    started the server)."""
    from collector.audit import cli_actor, record_if_changed

    actor = cli_actor()
    if specs or settings.slo_files:
        from slo_engine.rules import rules_document

        record_if_changed(store, actor=actor, action="slo.specs", target="slo_files",
                          after={"files": settings.slo_files, "specs": rules_document(specs)["slos"]})
    record_if_changed(store, actor=actor, action="detectors.settings", target="scheduler",
                      after={"window_s": settings.detector_window_s, "every_s": settings.detector_every_s,
                             "reference": settings.detector_reference, "scheduler": settings.scheduler,
                             "config": settings.detectors()})
    record_if_changed(store, actor=actor, action="notifiers.settings", target="notifiers",
                      after=_notifier_settings(settings))
    record_if_changed(store, actor=actor, action="cost.models", target="cost_models",
                      after={m: c.as_dict() for m, c in sorted((cost_models or {}).items())})


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    store = store or open_and_migrate(settings)
    producer: Any = None
    if settings.kafka_bootstrap:
        from serving_shim.transport import KafkaTransport

        producer = KafkaTransport(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
        sink: Any = KafkaIngestSink(producer, EventWriter(store), redaction=settings.ingest_redaction())
    else:
        sink = StoreIngestSink(store, redaction=settings.ingest_redaction())

    specs: list[Any] = []
    for path in filter(None, (p.strip() for p in settings.slo_files.split(","))):
        from slo_engine import load_specs

        specs.extend(load_specs(path, max_nodes=settings.max_yaml_nodes))
    scheduler = build_scheduler(store, settings, lambda: app.state.slo_specs) if settings.scheduler else None
    cost_models = settings.cost()
    _audit_configuration(store, settings, specs, cost_models)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if scheduler is not None:
            scheduler.start()
        yield
        if scheduler is not None:
            scheduler.stop()
        if producer is not None:
            producer.close()

    app: FastAPI = FastAPI(
        title="Driftline",
        version="0.1.0",
        description="Ingest and query API of Driftline: predictions, delayed labels, metric windows, deploys.",
        lifespan=lifespan,
    )
    from collector.sql import ParameterError

    @app.exception_handler(ParameterError)
    async def _bad_parameter(_request: Any, exc: ParameterError) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": f"parameter: {exc}"}, status_code=422)

    app.state.store = store
    app.state.settings = settings

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "engine": store.engine, "database": store.database}

    keys = KeyStore(store, cache_entries=settings.key_cache_entries, max_key_chars=settings.max_key_chars)
    app.state.keys = keys
    from slo_engine.silences import silence_models

    # every route's scope and models, the key, and the size limits: checked before any route runs
    app.add_middleware(
        Authorize, keys=keys, open_localhost=settings.open_localhost,
        limits=HttpLimits(max_header_bytes=settings.max_header_bytes, max_body_bytes=settings.max_body_bytes,
                          max_ingest_bytes=settings.max_ingest_bytes, max_upload_bytes=settings.max_upload_bytes),
        resolvers={"silence": lambda params: silence_models(store, params["silence_id"])},
    )
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    app.state.registry = registry
    limits = Limits(max_event_age_s=settings.event_max_age_s, max_event_ahead_s=settings.event_max_ahead_s)
    app.include_router(ingest_router(sink, limits, registry=registry))
    if scheduler is not None:
        runs = Gauge("driftline_scheduler_job_runs", "Scheduler job runs", ["job"], registry=registry)
        fails = Gauge("driftline_scheduler_job_failures", "Scheduler job failures", ["job"], registry=registry)
        for name in scheduler.jobs:
            runs.labels(name).set_function(_job_stat(scheduler, name, "runs"))
            fails.labels(name).set_function(_job_stat(scheduler, name, "failures"))

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics() -> Any:
        from fastapi.responses import PlainTextResponse

        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    app.include_router(query_router(store))
    app.include_router(keys_router(keys))
    from detectors.api import DetectorLimits, drift_router
    from slo_engine.api import slo_router

    app.include_router(drift_router(store, limits=DetectorLimits(
        max_upload_rows=settings.max_upload_rows, max_upload_columns=settings.max_upload_columns,
        max_report_cells=settings.max_report_cells)))
    from detectors.rootcause_api import rootcause_router

    app.include_router(rootcause_router(store))
    from collector.ops_api import ops_router

    app.include_router(ops_router(store, cost_models=cost_models))
    from detectors.lifecycle_api import lifecycle_router

    app.include_router(lifecycle_router(store, grace_s=settings.version_grace_s, recent_s=settings.version_recent_s,
                                        cost_models=cost_models))
    from detectors.cbpe_api import cbpe_router

    app.include_router(cbpe_router(store))

    from collector.governance_api import governance_router
    from collector.subjects import SubjectHasher, Subjects

    app.include_router(governance_router(store,
                                         Subjects(store, SubjectHasher(settings.redaction_salt.encode() or None))))
    app.state.slo_specs = specs  # list[slo_engine.Slo], from settings.slo_files
    app.state.scheduler = scheduler
    app.include_router(slo_router(store, specs=lambda: app.state.slo_specs, max_yaml_nodes=settings.max_yaml_nodes))
    return app
