"""What a running server tells its operators: ``GET /metrics``, a request id on every request, and one
structured log line per request (see docs/observability.md).

:func:`install` adds them to an application: its metrics (``api/metrics.py``), the ``/metrics`` route (a
viewer's read, like every other read; not in the OpenAPI document, which describes the JSON API) and
:class:`RequestObserver`, the outermost layer of the application. :func:`configure_logging` makes every log
record of the server process one JSON line (or a text line), carrying the request id of the request it was
made for.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client.exposition import choose_encoder
from starlette.datastructures import MutableHeaders
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import EventDict, Processor

from automl_orchestra.api.dependencies import require_viewer
from automl_orchestra.api.metrics import Metrics, metrics_of

REQUEST_ID_HEADER = "X-Request-ID"
# A request id a client sends is kept when it is 1 to 128 of these characters; otherwise a new one is made.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
UNMATCHED = "unmatched"  # the route label of a request no route matched
METRICS_PATH = "/metrics"

request_log = logging.getLogger("automl_orchestra.api.requests")

LogFormat = Literal["json", "text"]


def install(app: FastAPI) -> None:
    """Add the metrics, the ``/metrics`` route and the request observer to ``app``."""
    metrics = Metrics(app)
    app.state.metrics = metrics
    app.add_api_route(
        METRICS_PATH,
        scrape,
        methods=["GET"],
        include_in_schema=False,
        dependencies=[Depends(require_viewer)],
        response_class=Response,
    )
    # Outside every middleware, Starlette's error middleware included: the observer sees the final status of
    # every answer (a 500 too) and puts the request id on it.
    build = app.build_middleware_stack
    templates = RouteTemplates(app)

    def build_stack() -> ASGIApp:
        return RequestObserver(build(), metrics, templates)

    app.build_middleware_stack = build_stack  # type: ignore[method-assign]


def scrape(request: Request) -> Response:
    """``GET /metrics``: the application's registry in the format the scraper asks for (Prometheus text by
    default, OpenMetrics on request)."""
    metrics = metrics_of(request.app)
    assert metrics is not None  # the route exists only where install() made them
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(metrics.registry), headers={"Content-Type": content_type})


# ----- requests ---------------------------------------------------------------------------------------


def request_id_of(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when it is valid, else a new id (32 hex digits)."""
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if VALID_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RouteTemplates:
    """The path template of the route a request matched (``/api/v1/{service}/{tool}/{name}``), never the raw
    path: the ``route`` label stays bounded whatever clients ask for.

    A FastAPI route included with a prefix is the route its router declared (``scope["route"]``, its path
    without the prefix): the prefix is the shortest start of the request's path after which the route's own
    pattern matches. That start is a start of the literal prefix the route was included under, never text a
    client chose. Plain Starlette routes (``/docs``, ``/openapi.json``) leave no route in the scope and are
    matched here against the application's own routes.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._plain: list[tuple[re.Pattern[str], str]] | None = None

    def of(self, scope: Scope) -> str:
        path: str = scope.get("path", "")
        route = scope.get("route")
        if route is None:
            return self._plain_route(path)
        own_path = getattr(route, "path", None)
        pattern = getattr(route, "path_regex", None)
        if not isinstance(own_path, str) or pattern is None:
            return UNMATCHED
        for start, character in enumerate(path):
            if character == "/" and pattern.match(path[start:]):
                return path[:start] + own_path
        return own_path

    def _plain_route(self, path: str) -> str:
        if self._plain is None:
            self._plain = [
                (route.path_regex, route.path_format)
                for route in self.app.router.routes
                if isinstance(route, Route) and not isinstance(route, APIRoute)
            ]
        return next((path_format for pattern, path_format in self._plain if pattern.match(path)), UNMATCHED)


class RequestObserver:
    """A pure ASGI middleware: gives each HTTP request its id (in the ``X-Request-ID`` answer header, in the
    request's ``state.request_id`` and in every log record made while the request is handled), counts it in
    the metrics by route template, method and status, and logs one line when its answer has been sent."""

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: RouteTemplates) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500  # the answer when the application fails before it starts one

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = self.templates.of(scope)
            method = scope.get("method", "")
            self.metrics.observe_request(route, method, status, seconds)
            _log_request(scope, method, route, status, seconds)
            structlog.contextvars.reset_contextvars(**tokens)


def _log_request(scope: Scope, method: str, route: str, status: int, seconds: float) -> None:
    level = logging.ERROR if status >= 500 else logging.INFO
    if not request_log.isEnabledFor(level):
        return
    path = scope.get("path", "")
    milliseconds = round(seconds * 1000, 3)
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "path": path,
        "status": status,
        "duration_ms": milliseconds,
    }
    role = scope.get("state", {}).get("role")  # api/auth.py records the caller's role once it is known
    if role is not None:
        fields["role"] = role
    request_log.log(level, "%s %s %d %.1f ms", method, path, status, milliseconds, extra=fields)


# ----- logs -------------------------------------------------------------------------------------------


def configure_logging(log_format: LogFormat = "json", level: int = logging.INFO) -> None:
    """Route every log record of this process (the standard library's, uvicorn's, and structlog's) to
    standard error, one JSON object per line (``timestamp``, ``level``, ``logger``, ``message``, the
    ``request_id`` of the request being handled, the record's extra fields, an ``exception`` with its
    traceback), or one text line per record (``text``)."""
    timestamper = (
        structlog.processors.TimeStamper(fmt="iso", utc=True)
        if log_format == "json"
        else structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False)
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    render: list[Processor]
    if log_format == "json":
        render = [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        render = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_color_message],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _drop_color_message(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """uvicorn's records carry their message a second time with terminal colours: not for a log file."""
    event.pop("color_message", None)
    return event
