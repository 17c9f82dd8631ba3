"""The application factory: wires settings, store, step service, scheduler and routes together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

from automl_orchestra import __version__
from automl_orchestra.api import errors, limits, routes_observe, routes_steps, routes_timeseries
from automl_orchestra.api.dependencies import Orchestra
from automl_orchestra.config import Settings
from automl_orchestra.runtime.events import EventHub
from automl_orchestra.runtime.executor import Executor
from automl_orchestra.runtime.local import LocalExecutor
from automl_orchestra.runtime.scheduler import Scheduler
from automl_orchestra.steps.service import StepService
from automl_orchestra.store import db
from automl_orchestra.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/v1", "/api/learningOrchestra/v1")

DESCRIPTION = """
AutoML pipelines from atomic, persisted, re-executable steps.

`POST /{service}/{tool}` validates a step, stores it and starts it in a worker; `GET /observe/{name}`
waits for it. Parameter values may reference other steps: `"$step"` is a step's stored output,
`"$step.attr"` a key, column or attribute of it, `"$$"` a literal dollar. Every route is also served
under `/api/learningOrchestra/v1` for Learning Orchestra clients.
"""


def build_orchestra(settings: Settings, executor: Executor | None = None) -> Orchestra:
    settings.home.mkdir(parents=True, exist_ok=True)
    database = db.open_database(settings.resolved_database_url)
    db.upgrade(database)
    sessions = db.session_factory(database)
    store = ArtifactStore(settings.resolved_artifact_url)
    hub = EventHub()
    if executor is None:
        executor = make_executor(settings, store)
    scheduler = Scheduler(settings, sessions, store, executor, on_change=hub.publish)

    def changed(name: str) -> None:
        hub.publish(name)
        scheduler.wake(name)

    service = StepService(sessions, store, on_change=changed, on_cancel=scheduler.request_cancel)
    return Orchestra(settings, database, sessions, store, hub, service, scheduler)


def make_executor(settings: Settings, store: ArtifactStore) -> Executor:
    if settings.executor == "ray":
        # Imported here: a server with the local executor never loads Ray.
        from automl_orchestra.runtime.ray_executor import RayExecutor

        return RayExecutor(
            address=settings.ray_address,
            namespace=settings.ray_namespace,
            log_dir=settings.home / "logs",
            max_in_flight=settings.ray_max_in_flight,
        )
    return LocalExecutor(
        slots=settings.workers,
        pythons=settings.environment_pythons,
        store=store,
        log_dir=settings.home / "logs",
        warm_workers=settings.warm_workers,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.check()
    orchestra = build_orchestra(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        orchestra.hub.bind(asyncio.get_running_loop())
        orchestra.scheduler.start()
        log.info("AutoML Orchestra %s: data in %s", __version__, settings.home)
        try:
            yield
        finally:
            await asyncio.to_thread(orchestra.scheduler.stop)
            orchestra.database.dispose()

    app = FastAPI(
        title="AutoML Orchestra",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    app.state.orchestra = orchestra
    errors.install(app)
    app.add_middleware(limits.BodyLimits)  # body size, JSON depth, NUL bytes: before any route reads
    for index, prefix in enumerate(API_PREFIXES):
        visible = index == 0
        app.include_router(routes_observe.router(), prefix=prefix, include_in_schema=visible)
        app.include_router(routes_steps.router(), prefix=prefix, include_in_schema=visible)
        app.include_router(routes_timeseries.router(), prefix=prefix, include_in_schema=visible)

    @app.get("/", include_in_schema=False)
    async def root(_request: Request) -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
