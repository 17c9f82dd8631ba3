"""Online prediction from registered versions: ``POST /models/{name}/predict`` (the newest ready version),
``/models/{name}@{alias}/predict`` and ``/models/{name}/versions/{n}/predict``, and the Open Inference
Protocol routes of ``api/routes_inference.py`` -- all answered by the serving pools (``runtime/serving_pool.py``).

The route checks the token, resolves the version (one query: an alias that moved serves its new version from
the next request on) and hands the body, unparsed, to a serving worker of the version's environment; the
worker's answer is sent as it is. ``Server-Timing`` tells where the time went (load, predict, the whole
call in the worker) and ``X-Model-Version`` which version answered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from automl_orchestra.api import examples
from automl_orchestra.api.dependencies import Orchestra, serving_of
from automl_orchestra.api.errors import ApiError, error_response
from automl_orchestra.api.metrics import Outcome, observe_prediction
from automl_orchestra.api.routing import VIEWER
from automl_orchestra.contracts.serving import (
    ARROW_TYPES,
    PARQUET_TYPES,
    PredictCall,
    ServedVersion,
    body_format,
)
from automl_orchestra.runtime.serving_pool import Answer as ServingAnswer
from automl_orchestra.runtime.serving_pool import ServingError
from automl_orchestra.steps.registry import ALIAS_PATTERN, MODEL_NAME_PATTERN
from automl_orchestra.steps.served import ServedVersions

TAG = "serving"
ModelRefPath = Path(
    pattern=f"^{MODEL_NAME_PATTERN}(@{ALIAS_PATTERN})?$",
    description="a model name (its newest ready version), or name@alias",
)
ModelPath = Path(pattern=f"^{MODEL_NAME_PATTERN}$", description="model name")
VersionPath = Path(ge=1, le=10**9, description="version number")
Probabilities = Query(
    None, description="answer class probabilities (default: yes for a classifier); false for predictions alone"
)
SERVING_ERRORS = frozenset({404, 413, 415, 422, 429, 503})
OUTCOMES: dict[int, Outcome] = {
    200: "ok",
    413: "too_large",
    415: "invalid",
    422: "invalid",
    429: "overloaded",
    503: "unavailable",
}

RECORDS_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "required": ["records"],
            "additionalProperties": False,
            "properties": {
                "records": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
                    },
                }
            },
        },
        {
            "type": "object",
            "required": ["record"],
            "additionalProperties": False,
            "properties": {
                "record": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}
            },
        },
    ]
}
PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "rows to predict: JSON records (one or many), or an Arrow IPC stream / Parquet file for "
        "large batches; columns and types as the version's signature says",
        "content": {
            "application/json": {"schema": RECORDS_SCHEMA, "example": examples.PREDICT_REQUEST},
            **{media: {"schema": {"type": "string", "format": "binary"}} for media in (*ARROW_TYPES, *PARQUET_TYPES)},
        },
    }
}


async def resolve(request: Request, name: str, alias: str | None = None, number: int | None = None) -> ServedVersion:
    """The version a request names: remembered for a moment (``steps/served.py``), else read in a thread."""
    versions: ServedVersions = request.app.state.served
    found = versions.get(name, alias, number)
    if found is not None:
        return found
    return await run_in_threadpool(versions.lookup, name, alias, number)


async def answer(
    request: Request, version: ServedVersion, probabilities: bool | None, body_kind: str | None = None
) -> Response:
    """The serving worker's answer to this request's body for ``version``, or the error it explains."""
    orchestra: Orchestra = request.app.state.orchestra
    kind = body_kind or body_format(request.headers.get("content-type", ""))
    if kind is None:
        accepted = ", ".join(["application/json", *ARROW_TYPES, *PARQUET_TYPES])
        raise ApiError(415, f"send the rows as one of: {accepted}")
    payload = await request.body()
    if not payload:
        raise ApiError(422, "the request has no body: send the rows to predict")
    call = PredictCall(format=kind, probabilities=probabilities, max_rows=orchestra.settings.serving_max_rows)
    done, headers = await serve(request, version, call, payload)
    if done.status != 200:
        return error_response(done.status, done.error or "the prediction failed", headers=headers)
    return Response(done.body, media_type="application/json", headers=headers)


async def serve(
    request: Request, version: ServedVersion, call: PredictCall, payload: bytes
) -> tuple[ServingAnswer, dict[str, str]]:
    """``call`` answered by a serving worker of ``version``'s environment, counted on ``/metrics``, with the
    headers that say which version answered and where the time went. A pool that cannot take the request
    (overloaded, no worker, the worker died) raises the ``ApiError`` that says so."""
    call = call.model_copy(update={"request_id": getattr(request.state, "request_id", None)})
    began = time.perf_counter()
    try:
        done = await serving_of(request).predict(version, call, payload)
    except ServingError as refused:
        observe(request, version, began, refused.status, 0)
        retry = {"Retry-After": str(refused.retry_after)} if refused.retry_after else None
        raise ApiError(refused.status, refused.message, headers=retry) from None
    observe(request, version, began, done.status, done.rows)
    total_ms = (time.perf_counter() - began) * 1000
    timing = ", ".join(
        f"{name};dur={ms:.3f}"
        for name, ms in (
            ("load", done.load_s * 1000),
            ("predict", done.predict_s * 1000),
            ("handle", done.handle_s * 1000),
            ("worker", total_ms),
        )
    )
    headers = {"X-Model-Name": version.model, "X-Model-Version": str(version.version), "Server-Timing": timing}
    return done, headers


def observe(request: Request, version: ServedVersion, began: float, status: int, rows: int) -> None:
    """Count the prediction on ``/metrics`` under its model version and outcome."""
    outcome = OUTCOMES.get(status, "error")
    seconds = time.perf_counter() - began
    observe_prediction(request.app, version.model, version.version, seconds=seconds, outcome=outcome, rows=rows)


def router() -> APIRouter:
    api = APIRouter()

    async def predict(
        request: Request, ref: str = ModelRefPath, probabilities: bool | None = Probabilities
    ) -> Response:
        name, _, alias = ref.partition("@")
        return await answer(request, await resolve(request, name, alias or None), probabilities)

    async def predict_version(
        request: Request,
        name: str = ModelPath,
        version: int = VersionPath,
        probabilities: bool | None = Probabilities,
    ) -> Response:
        return await answer(request, await resolve(request, name, number=version), probabilities)

    routes = (
        ("/models/{ref}/predict", predict, "Predict with the newest ready version, or name@alias"),
        ("/models/{name}/versions/{version}/predict", predict_version, "Predict with one version"),
    )
    add_prediction_routes(api, TAG, routes, examples.PREDICTION, PREDICT_BODY)
    return api


def add_prediction_routes(
    api: APIRouter,
    tag: str,
    routes: Iterable[tuple[str, Callable[..., Awaitable[Response]], str]],
    example: Any,
    body: dict[str, Any],
) -> None:
    """``POST`` routes answered by a serving worker: a viewer's (a prediction changes nothing), their body
    documented by hand (the route reads it raw) and the statuses a serving pool adds."""
    for path, endpoint, summary in routes:
        api.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            tags=[tag],
            summary=summary,
            responses=examples.ok(example, errors=SERVING_ERRORS),
            dependencies=VIEWER,
            openapi_extra=body,
            response_class=JSONResponse,
        )
