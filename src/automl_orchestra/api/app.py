"""The application factory: wires settings, store, step service, scheduler and routes together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from automl_orchestra import __version__
from automl_orchestra.api import (
    auth,
    errors,
    examples,
    limits,
    observability,
    routes_inference,
    routes_observe,
    routes_serving,
    routes_steps,
    routes_timeseries,
)
from automl_orchestra.api.dependencies import Orchestra, require_code_role, require_editor, require_viewer
from automl_orchestra.api.routes_learning_orchestra import router as learning_orchestra_routes
from automl_orchestra.api.routes_models import router as model_routes
from automl_orchestra.config import Settings
from automl_orchestra.contracts import catalog
from automl_orchestra.runtime.events import EventHub
from automl_orchestra.runtime.executor import Executor
from automl_orchestra.runtime.local import LocalExecutor
from automl_orchestra.runtime.scheduler import Scheduler
from automl_orchestra.runtime.serving_pool import ServingPools
from automl_orchestra.steps.served import ServedVersions
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
    serving = ServingPools(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        orchestra.hub.bind(asyncio.get_running_loop())
        orchestra.scheduler.start()
        log.info("AutoML Orchestra %s: data in %s", __version__, settings.home)
        try:
            yield
        finally:
            await serving.close()  # the serving workers flush their prediction logs
            await asyncio.to_thread(orchestra.scheduler.stop)
            orchestra.database.dispose()

    app = build_api(settings, lifespan)
    app.state.orchestra = orchestra
    app.state.serving = serving
    app.state.served = ServedVersions(orchestra.sessions)
    return app


def build_api(settings: Settings, lifespan: Callable[[FastAPI], Any] | None = None) -> FastAPI:
    """The HTTP application without the orchestra it serves (``create_app`` adds it): routes, error answers,
    request limits and the OpenAPI document. ``build_api(settings).openapi()`` is the document a server with
    ``settings`` serves, built without a database."""
    app = FastAPI(
        title="AutoML Orchestra",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    install_openapi(app, settings)
    errors.install(app, lambda request: auth.role_of(request, settings))
    app.add_middleware(limits.BodyLimits)  # body size, JSON depth, NUL bytes: before any route reads
    observability.install(app)  # /metrics, X-Request-ID, one log line per request (docs/observability.md)
    # The prediction routes first: a request is matched against the routes in order, and the hundreds of step
    # routes before them would cost a prediction more than the rest of the API's work together.
    app.include_router(routes_inference.router())
    for index, prefix in enumerate(API_PREFIXES):
        app.include_router(routes_serving.router(), prefix=prefix, include_in_schema=index == 0)
    for index, prefix in enumerate(API_PREFIXES):
        visible = index == 0
        app.include_router(learning_orchestra_routes(), prefix=prefix, include_in_schema=visible)  # before steps'
        app.include_router(routes_observe.router(), prefix=prefix, include_in_schema=visible)
        app.include_router(routes_steps.router(), prefix=prefix, include_in_schema=visible)
        app.include_router(routes_timeseries.router(), prefix=prefix, include_in_schema=visible)
        app.include_router(model_routes(), prefix=prefix, include_in_schema=visible)

    @app.get("/", include_in_schema=False)
    async def root(_request: Request) -> RedirectResponse:
        return RedirectResponse("/docs")

    return app


# ----- the OpenAPI document ---------------------------------------------------------------------------
#
# FastAPI documents each route's success answer from its declaration; what a route can answer besides is
# decided here, once for all routes, from what the route is: its role dependency (401 without a valid token,
# 403 for a role below an editor's), its path parameters (404), its body (400, 413, 422; 415 where it takes
# JSON or multipart), whether it changes steps (409; and, with a step body, 403 from the code policy, 404 for
# an unknown reference, 503 for a missing engine environment). Every error uses the ``Error`` body of
# ``api/errors.py``. So a new route is documented correctly without listing its statuses by hand, and
# ``tests/api/test_schemathesis.py`` checks every answer of a running server against this document.

ERROR_SCHEMA = "Error"
BEARER = "bearer"
# The role dependencies of ``api/dependencies.py``, highest first: the first one a route depends on is its role.
ROLE_DEPENDENCIES: tuple[tuple[Callable[..., Any], str], ...] = (
    (require_code_role, "code"),
    (require_editor, "editor"),
    (require_viewer, "viewer"),
)
# Statuses a route answers that its shape does not tell, by (method, path below the API prefix); a route can
# also declare them itself (``examples.ok(..., errors=...)``).
EXTRA_ERRORS: dict[tuple[str, str], frozenset[int]] = {}


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` (``/openapi.json``, ``/docs``) the document FastAPI builds, completed by
    :func:`complete_document` for this server's settings; built once, on first use."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_document(build(), app.routes, auth=settings.auth_enabled)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete_document(document: dict[str, Any], routes: list[BaseRoute], *, auth: bool) -> dict[str, Any]:
    """``document`` with the error answers of every operation, the bearer scheme of the operations that need
    a token (when ``auth``), and the request example of every step route (``examples.REQUESTS``)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = errors.ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas[ERROR_SCHEMA] = error_schema
    # FastAPI's own 422 body ({"detail": [...]}) is never sent: errors.py answers every error with Error.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if auth:
        components["securitySchemes"] = {
            BEARER: {
                "type": "http",
                "scheme": "bearer",
                "description": "a token of ORCHESTRA_TOKENS; its role (viewer < editor < admin, and the code "
                "roles of ORCHESTRA_CODE_ROLES) decides what it may do",
            }
        }
    for route, method, operation in _operations(document, routes):
        role = route_role(route)
        responses = operation["responses"]
        declared = {int(key) for key in responses if str(key).isdigit() and int(key) >= 400}
        for key in [key for key in responses if not str(key).startswith(("1", "2", "3"))]:
            del responses[key]  # FastAPI's 422 and any wildcard: replaced by the exact statuses below
        for status in sorted(error_statuses(route, method, operation, role, auth=auth) | declared):
            responses[str(status)] = error_response(status)
        if auth and role is not None:
            operation["security"] = [{BEARER: []}]
        _document_request_example(route, method, operation)
    return document


def route_role(route: APIRoute) -> str | None:
    """The role a route's dependencies require (``code``, ``editor`` or ``viewer``), or None for an open one."""
    calls = set(_dependency_calls(route.dependant))
    return next((role for call, role in ROLE_DEPENDENCIES if call in calls), None)


def error_statuses(
    route: APIRoute, method: str, operation: dict[str, Any], role: str | None, *, auth: bool
) -> set[int]:
    """Every error status ``method route`` can answer (see the comment above)."""
    media = set(operation.get("requestBody", {}).get("content", {}))
    changes = role in {"editor", "code"}
    statuses = {422}  # invalid parameters; a NUL byte in the path or query string (api/limits.py), on any route
    if auth and role is not None:
        statuses.add(401)
    if route.param_convertors:
        statuses.add(404)
    if media:
        statuses |= {400, 413}
    if len(media) > 1:
        statuses.add(415)
    if changes:
        statuses.add(409)
        if auth or media:
            statuses.add(403)
        if "application/json" in media:
            statuses |= {404, 503}
    path = _api_path(route.path_format)
    return statuses | set(EXTRA_ERRORS.get((method, path), ()))


def error_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of an error ``status``: its meaning, the ``Error`` body and an example."""
    response: dict[str, Any] = {
        "description": errors.DESCRIPTIONS.get(status, "JSON error with a clear message"),
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"},
                "example": examples.error(status),
            }
        },
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": "the scheme to use: Bearer", "schema": {"type": "string"}}
        }
    return response


def _operations(document: dict[str, Any], routes: list[BaseRoute]) -> Iterator[tuple[APIRoute, str, dict[str, Any]]]:
    """Every documented operation: the route its router declared (its dependencies), the method and the
    operation object of ``document``, whose path is the route's with its prefix."""
    for route in errors.flat_routes(routes):
        original = getattr(route, "original_route", route)
        if not isinstance(original, APIRoute) or not route.include_in_schema:
            continue
        item = document.get("paths", {}).get(route.path_format, {})
        for method in sorted(route.methods or ()):
            operation = item.get(method.lower())
            if operation is not None:
                yield original, method, operation


def _dependency_calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _dependency_calls(dependency)


def _api_path(path: str) -> str:
    """``path`` below the API prefix that starts it (``/api/v1/steps`` -> ``/steps``)."""
    return next((path[len(prefix) :] for prefix in API_PREFIXES if path.startswith(prefix + "/")), path)


def _document_request_example(route: APIRoute, method: str, operation: dict[str, Any]) -> None:
    """The example body of ``POST /{service}/{tool}``, where ``examples.REQUESTS`` gives the route its own."""
    service, _, tool = _api_path(route.path_format).strip("/").partition("/")
    spec = catalog.tool(tool)
    if method != "POST" or spec is None or service not in spec.services:
        return
    example = examples.REQUESTS.get(f"{service}/{tool}")
    media = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if example is None or media is None:
        return
    if "examples" in media:
        media["examples"] = {"example": {"summary": f"{service}/{tool}", "value": example}}
    else:
        media["example"] = example
