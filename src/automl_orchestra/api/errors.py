"""Every error is JSON ``{"result": message, "error": {...}}`` with a 4xx/5xx status -- never HTML."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from automl_orchestra.contracts.source_policy import UnsafeSource
from automl_orchestra.steps.errors import StepModelError

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation",
    503: "unavailable",
    504: "timeout",
}

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# What each error status means, as the OpenAPI document describes it (``app.py`` documents on every operation
# the statuses it can answer, with the ``Error`` body below).
DESCRIPTIONS = {
    400: "The body is not valid JSON (or not a valid multipart form).",
    401: "No token, or an unknown one: send 'Authorization: Bearer <token>'.",
    403: "The caller's role may not do this (a viewer changing steps, a role without the code right creating a "
    "code step or asking for what the code policy reserves to code roles, code steps disabled).",
    404: "No such step, run or artifact; or a parameter references a step that does not exist.",
    409: "The name is taken, the step has dependents, is running, or is produced by another step.",
    413: "The body (or an upload) is larger than the server accepts.",
    415: "The body is neither JSON nor a multipart upload.",
    422: "A field is missing or invalid, a reference is malformed, a URL or path is not allowed, a limit is "
    "exceeded, or a NUL byte is in the path or query string.",
    503: "The tool needs an engine environment this server does not have.",
    504: "The steps the request waits for did not finish in time; follow them by name.",
}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: int = Field(description="the HTTP status, repeated")
    code: str = Field(description="a stable name of the status, e.g. not_found")
    message: str = Field(description="what went wrong and, where it helps, how to fix it")
    details: Any = Field(default=None, description="machine-readable specifics, e.g. validation errors")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="allow", title="Error")

    result: str = Field(description="the message, where a success puts its result")
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"status": status, "code": CODES.get(status, "error"), "message": message}
    if details is not None:
        # Validation details may carry the exception a validator raised (pydantic's ``ctx``): sent as text.
        error["details"] = json.loads(json.dumps(details, default=str))
    return JSONResponse({"result": message, "error": error}, status_code=status, headers=headers)


def install(app: FastAPI, authenticate: Callable[[Request], object] | None = None) -> None:
    """The error handlers. ``authenticate`` raises the 401 of a caller without a valid token: a body that is
    not JSON is refused for the token first (FastAPI parses a body before the route's role dependency)."""

    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.details, exc.headers)

    @app.exception_handler(StepModelError)
    async def _step(_request: Request, exc: StepModelError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.details)

    @app.exception_handler(UnsafeSource)
    async def _unsafe(_request: Request, exc: UnsafeSource) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            if authenticate is not None:
                try:
                    authenticate(_request)
                except ApiError as refused:
                    return error_response(refused.status, refused.message, refused.details, refused.headers)
            return error_response(400, "the request body is not valid JSON", _clean(errors))
        return error_response(422, "invalid request: " + summarize(errors), _clean(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route; see /docs for the API"
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path; every route of the path counts.
            allowed = allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = f"method {request.method} not allowed here; allowed: {', '.join(allowed)}"
        return error_response(exc.status_code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the application serves at the request's path.

    Only each route's path pattern is matched, once, against patterns collected on the first 405 (the routes
    are all added when the application is built): a 405 costs less than a 404, where a scan of every route
    under each method made it cost as much as fourteen.
    """
    path = _route_path(request.scope)
    methods: set[str] = set()
    for pattern, served in _route_patterns(request.app):
        if pattern.match(path):
            methods.update(served)
    return [method for method in HTTP_METHODS if method in methods]


def _route_patterns(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    patterns: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(app.state, "route_patterns", None)
    if patterns is None:
        patterns = [
            (route.path_regex, frozenset(getattr(route, "methods", None) or ()))
            for route in flat_routes(app.router.routes)
            if getattr(route, "path_regex", None) is not None
        ]
        app.state.route_patterns = patterns
    return patterns


def flat_routes(routes: Sequence[Any]) -> Iterator[Any]:
    """Every route of an application, those of included routers too, each with its full path (``path_regex``,
    ``path_format``, ``methods``) and, as ``original_route``, the route its router declared.

    FastAPI 0.165 keeps an included router as one entry of ``app.routes`` and walks it with
    ``iter_route_contexts``; earlier versions copy its routes into ``app.routes``.
    """
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    yield from iterate(routes) if iterate is not None else routes


def _route_path(scope: MutableMapping[str, Any]) -> str:
    """The request's path as routes match it: without the application's ``root_path``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def summarize(errors: Any) -> str:
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in {"body", "query", "path"})
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _clean(errors: Any) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
