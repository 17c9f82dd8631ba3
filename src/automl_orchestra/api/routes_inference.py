"""The Open Inference Protocol ("V2", KServe / Triton / MLServer) over the registry, at the server's root:
``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{n}]`` (metadata), ``…/ready`` and
``…/infer``, so clients of that protocol work unchanged.

A model's inputs are its signature's columns, one tensor each (shape ``[-1]``: one value per row); an infer
request may also send one ``[rows, columns]`` tensor holding the columns in the signature's order. The
answer has ``predict`` and, for a classifier, ``predict_proba`` (its classes in the tensor's ``parameters``).
``{name}`` may be ``name@alias``. Health routes are open, like ``/api/v1/health`` (probes carry no token);
the model routes need a viewer's token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from automl_orchestra import __version__
from automl_orchestra.api import examples
from automl_orchestra.api.dependencies import OrchestraDep, serving_of
from automl_orchestra.api.routes_serving import VersionPath, add_prediction_routes, answer, resolve
from automl_orchestra.api.routing import VIEWER, json_routes
from automl_orchestra.contracts.serving import V2_FORMAT
from automl_orchestra.steps.registry import ALIAS_PATTERN, LATEST, MODEL_NAME_PATTERN, RegistryService

PREFIX = "/v2"
# Its own parameter object: FastAPI binds one to the name of the first parameter it serves.
ModelRefPath = Path(
    pattern=f"^{MODEL_NAME_PATTERN}(@{ALIAS_PATTERN})?$",
    description="a model name (its newest ready version), or name@alias",
)
TAG = "inference protocol (V2)"
# Signature column types as the protocol's tensor datatypes.
DATATYPES = {"integer": "INT64", "number": "FP64", "boolean": "BOOL"}
INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["name", "shape", "datatype", "data"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                                    "datatype": {"type": "string"},
                                    "data": {"type": "array"},
                                },
                            },
                        },
                        "outputs": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                        },
                    },
                },
                "example": examples.V2_REQUEST,
            }
        },
    }
}


def metadata(document: dict[str, Any]) -> dict[str, Any]:
    """The protocol's model metadata of a registry version document."""
    signature = document.get("signature") or {}
    inputs = [
        {"name": item["name"], "datatype": DATATYPES.get(item.get("type") or "", "BYTES"), "shape": [-1]}
        for item in signature.get("inputs") or []
        if isinstance(item, dict) and "name" in item
    ]
    output = signature.get("output") or {}
    classes = output.get("classes")
    outputs = [
        {"name": "predict", "datatype": "BYTES" if output.get("task") == "classification" else "FP64", "shape": [-1]}
    ]
    if output.get("task") == "classification":
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes) if classes else -1]})
    return {
        "name": document["model"],
        "versions": [str(document["version"])],
        "platform": document.get("engine") or "",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {
            "environment": document.get("environment"),
            "classes": classes,
            "status": document.get("status"),
        },
    }


def router() -> APIRouter:
    api = APIRouter(prefix=PREFIX)
    add = json_routes(api, TAG)

    async def server(_request: Request) -> dict[str, Any]:
        return {"name": "automl-orchestra", "version": __version__, "extensions": ["model_repository"]}

    async def live(_request: Request) -> dict[str, Any]:
        return {"live": True}

    async def ready(request: Request) -> Response:
        serving_ready = serving_of(request).ready()
        return JSONResponse({"ready": serving_ready}, status_code=200 if serving_ready else 503)

    async def model(orchestra: OrchestraDep, name: str = ModelRefPath) -> dict[str, Any]:
        base, _, alias = name.partition("@")
        registry = RegistryService(orchestra.sessions, orchestra.store)
        return metadata(await run_in_threadpool(registry.resolve, base, alias or LATEST))

    async def model_version(
        orchestra: OrchestraDep, name: str = ModelRefPath, version: int = VersionPath
    ) -> dict[str, Any]:
        registry = RegistryService(orchestra.sessions, orchestra.store)
        return metadata(await run_in_threadpool(registry.version, name.partition("@")[0], version))

    async def model_ready(request: Request, name: str = ModelRefPath) -> dict[str, Any]:
        base, _, alias = name.partition("@")
        version = await resolve(request, base, alias or None)
        return {"name": name, "version": str(version.version), "ready": version.status == "ready"}

    async def version_ready(request: Request, name: str = ModelRefPath, version: int = VersionPath) -> dict[str, Any]:
        found = await resolve(request, name.partition("@")[0], number=version)
        return {"name": name, "version": str(found.version), "ready": found.status == "ready"}

    add(
        "", server, "GET", "Server metadata", {"name": "automl-orchestra", "version": __version__, "extensions": []}, []
    )
    add("/health/live", live, "GET", "Liveness", examples.V2_HEALTH, [])
    add("/health/ready", ready, "GET", "Readiness: the serving pools answer", examples.V2_READY, [])
    add(
        "/models/{name}",
        model,
        "GET",
        "Model metadata (newest ready version, or name@alias)",
        examples.V2_METADATA,
        VIEWER,
    )
    add(
        "/models/{name}/versions/{version}",
        model_version,
        "GET",
        "Metadata of one version",
        examples.V2_METADATA,
        VIEWER,
    )
    add(
        "/models/{name}/ready",
        model_ready,
        "GET",
        "Whether the model is ready",
        {"name": "adult", "ready": True},
        VIEWER,
    )
    add(
        "/models/{name}/versions/{version}/ready",
        version_ready,
        "GET",
        "Whether one version is ready",
        {"name": "adult", "version": "3", "ready": True},
        VIEWER,
    )

    async def infer(request: Request, name: str = ModelRefPath) -> Response:
        base, _, alias = name.partition("@")
        return await answer(request, await resolve(request, base, alias or None), None, V2_FORMAT)

    async def infer_version(request: Request, name: str = ModelRefPath, version: int = VersionPath) -> Response:
        return await answer(request, await resolve(request, name.partition("@")[0], number=version), None, V2_FORMAT)

    routes = (
        ("/models/{name}/infer", infer, "Inference (newest ready version, or name@alias)"),
        ("/models/{name}/versions/{version}/infer", infer_version, "Inference with one version"),
    )
    add_prediction_routes(api, TAG, routes, examples.V2_ANSWER, INFER_BODY)
    return api
