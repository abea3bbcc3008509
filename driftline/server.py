"""The Driftline server: the store, its migrations and every package's routes in one FastAPI app."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from collector.api import KafkaIngestSink, StoreIngestSink, ingest_router, query_router
from collector.migrations import COLLECTOR_MIGRATIONS, Migration, migrate
from collector.store import Store, open_store
from collector.writer import EventWriter
from driftline.config import Settings

__all__ = ["all_migrations", "create_app", "open_and_migrate"]


def all_migrations() -> list[Migration]:
    """Every package's migrations; the composition root is the one place that knows them all."""
    out: list[Migration] = list(COLLECTOR_MIGRATIONS)
    for mod in ("detectors.migrations", "slo_engine.migrations"):
        try:
            m = __import__(mod, fromlist=["MIGRATIONS"])
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        out.extend(m.MIGRATIONS)
    return out


def open_and_migrate(settings: Settings, extra: Iterable[Migration] = ()) -> Store:
    store = open_store(settings.store_url, database=settings.database)
    migrate(store, [*all_migrations(), *extra])
    return store


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    store = store or open_and_migrate(settings)
    producer: Any = None
    if settings.kafka_bootstrap:
        from serving_shim.transport import KafkaTransport

        producer = KafkaTransport(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
        sink: Any = KafkaIngestSink(producer, EventWriter(store))
    else:
        sink = StoreIngestSink(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        if producer is not None:
            producer.close()

    app = FastAPI(
        title="Driftline",
        version="0.1.0",
        description="Ingest and query API of Driftline: predictions, delayed labels, metric windows, deploys.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "engine": store.engine, "database": store.database}

    app.include_router(ingest_router(sink))
    app.include_router(query_router(store))
    from detectors.api import drift_router

    app.include_router(drift_router(store))
    from detectors.results_api import results_router

    app.include_router(results_router(store))
    from collector.ops_api import ops_router

    app.include_router(ops_router(store))
    from slo_engine.api import slo_router

    app.state.slo_specs = []  # list[slo_engine.model.Slo]: the scheduler sets it from the spec files
    app.include_router(slo_router(store, specs=lambda: app.state.slo_specs))
    return app
