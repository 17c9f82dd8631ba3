"""Model registry routes: ``/models`` -- register a step's trained model as an immutable version, read models
and versions, move aliases (with their history), archive and delete versions, download a version's files.

Viewers read; editors register, change, move aliases and delete. Roles are route dependencies, settled before
anything is looked up (a caller without the right token gets the same 401/403 for a model that exists and one
that does not). Online prediction from a version is ``api/routes_serving.py``'s; moving an alias here asks
the serving workers to load the new version at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import IO, Any

from fastapi import APIRouter, BackgroundTasks, Body, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from automl_orchestra.api.dependencies import EditorRole, OrchestraDep, ServingDep
from automl_orchestra.api.errors import ApiError
from automl_orchestra.api.limits import MAX_RUN_NUMBER, MAX_SKIP
from automl_orchestra.api.routing import EDITOR, VIEWER, json_routes
from automl_orchestra.contracts.parameters import check_value
from automl_orchestra.contracts.references import NAME_PATTERN
from automl_orchestra.contracts.serving import ServedVersion
from automl_orchestra.runtime.serving_pool import ServingPools
from automl_orchestra.steps.errors import InvalidRequest
from automl_orchestra.steps.registry import (
    ALIAS_PATTERN,
    MAX_DESCRIPTION,
    MODEL_NAME_PATTERN,
    STATUSES,
    Registration,
    RegistryService,
    check_tags,
)
from automl_orchestra.steps.served import served_version

TAG = "models"
ModelPath = Path(pattern=f"^{MODEL_NAME_PATTERN}$", description="model name")
# ``GET /models/{name}@{alias}`` resolves an alias (``@latest``: the newest ready version).
ModelRefPath = Path(
    pattern=f"^{MODEL_NAME_PATTERN}(@{ALIAS_PATTERN})?$", description="a model name, or name@alias to resolve one"
)
AliasPath = Path(pattern=f"^{ALIAS_PATTERN}$", description="alias, e.g. champion")
VersionPath = Path(ge=1, le=MAX_RUN_NUMBER, description="version number")
Skip = Query(0, ge=0, le=MAX_SKIP)
Limit = Query(100, ge=1, le=1000)


# ----- request bodies --------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_value(data)  # NUL bytes, string lengths: the rules of every step body
        return data


def _check_tags(tags: Mapping[str, str | None] | None) -> None:
    """The tag rules as a pydantic error (422 with the field's location); a null value removes a tag."""
    if tags is not None:
        try:
            check_tags({key: "" if value is None else value for key, value in tags.items()})
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None


class RegisterBody(_Body):
    name: str = Field(pattern=f"^{MODEL_NAME_PATTERN}$", description="the model; created on first registration")
    step: str = Field(pattern=f"^{NAME_PATTERN}$", description="a finished step whose output is a trained model")
    run: int | None = Field(
        default=None, ge=1, le=MAX_RUN_NUMBER, description="run number (default: the step's current, finished run)"
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    tags: dict[str, str] = Field(default_factory=dict, description="string tags (at most 50)")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        _check_tags(value)
        return value


class ModelChanges(_Body):
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    tags: dict[str, str | None] | None = Field(default=None, description="merged; a null value removes a tag")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str | None] | None) -> dict[str, str | None] | None:
        _check_tags(value)
        return value


class VersionChanges(ModelChanges):
    status: str | None = Field(default=None, description=f"one of {', '.join(STATUSES)}")

    @field_validator("status")
    @classmethod
    def _status(cls, value: str | None) -> str | None:
        if value is not None and value not in STATUSES:
            raise ValueError(f"status must be one of {list(STATUSES)}")
        return value


class AliasBody(_Body):
    version: int = Field(ge=1, le=MAX_RUN_NUMBER, description="the version the alias points to")


# ----- response examples -----------------------------------------------------------------------------

VERSION: dict[str, Any] = {
    "model": "adult",
    "version": 2,
    "status": "ready",
    "aliases": ["champion"],
    "description": "FLAML, 60 s",
    "tags": {"team": "risk"},
    "engine": "flaml",
    "environment": "main",
    "source": {
        "step": "adult_flaml",
        "service": "automl",
        "tool": "flaml",
        "run": 2,
        "runId": "3f2a9c0e8b1d4e6f9a7b5c3d1e0f2a4b",
        "startedAt": "2026-11-22T10:00:00+00:00",
        "finishedAt": "2026-11-22T10:01:02+00:00",
        "stepUrl": "/api/v1/automl/flaml/adult_flaml",
    },
    "output": {
        "kind": "object",
        "prefix": "models/adult/2",
        "files": ["model.joblib", "summary.json"],
        "environment": "main",
        "serializer": "flaml",
        "attributes": None,
    },
    "files": ["model.joblib", "summary.json"],
    "sizeBytes": 48213,
    "contentHash": "9b1c…",
    "lineage": {
        "parameters": {"parentName": "adult", "target": "income", "task": "classification", "timeBudget": 60},
        "metrics": {"bestScore": 0.871},
        "engineMetadata": {"bestLearner": "lgbm", "columns": {"used": ["age", "education"], "excluded": {}}},
        "inputs": [
            {
                "step": "adult",
                "references": ["parentName"],
                "service": "dataset",
                "tool": "csv",
                "run": 1,
                "runId": "0d4c…",
                "outputHash": "51aa…",
                "fingerprint": None,
                "changedSince": False,
            }
        ],
        "outputHash": "9b1c…",
        "runFingerprint": None,
        "cachedFrom": None,
        "compare": None,
    },
    "libraries": {
        "environment": "main",
        "python": "3.11.7",
        "installed": {"flaml": "2.3.4", "scikit-learn": "1.6.1", "lightgbm": "4.6.0"},
        "savedWith": {"python": "3.11.7", "numpy": "2.2.6", "flaml": "2.3.4"},
    },
    "signature": {
        "inputs": [
            {"name": "age", "type": "integer", "arrowType": "int64"},
            {"name": "education", "type": "string", "arrowType": "string"},
        ],
        "output": {"task": "classification", "target": "income", "classes": ["<=50K", ">50K"]},
        "source": "engine metadata",
    },
    "registeredBy": "editor",
    "createdAt": "2026-11-22T10:02:00+00:00",
    "updatedAt": "2026-11-22T10:02:00+00:00",
    "url": "/api/v1/models/adult/versions/2",
}
MODEL: dict[str, Any] = {
    "name": "adult",
    "description": "income classifier",
    "tags": {"team": "risk"},
    "versions": 2,
    "latestVersion": 2,
    "latestReadyVersion": 2,
    "aliases": {"champion": 2},
    "createdAt": "2026-11-22T09:00:00+00:00",
    "updatedAt": "2026-11-22T10:02:00+00:00",
    "url": "/api/v1/models/adult",
}
ALIAS: dict[str, Any] = {
    "model": "adult",
    "alias": "champion",
    "version": 2,
    "updatedAt": "2026-11-22T10:03:00+00:00",
    "url": "/api/v1/models/adult/versions/2",
}
MOVE: dict[str, Any] = {
    "alias": "champion",
    "action": "moved",
    "fromVersion": 1,
    "toVersion": 2,
    "role": "editor",
    "at": "2026-11-22T10:03:00+00:00",
}
REGISTER_EXAMPLE: dict[str, Any] = {
    "register": {"value": {"name": "adult", "step": "adult_flaml", "tags": {"team": "risk"}}}
}


# ----- routes ----------------------------------------------------------------------------------------


def registry(orchestra: OrchestraDep) -> RegistryService:
    """The registry over this server's database and artifact store (a light object: made per request)."""
    return RegistryService(orchestra.sessions, orchestra.store, orchestra.settings.environment_pythons)


def router() -> APIRouter:
    api = APIRouter()
    _model_routes(api)
    _version_routes(api)
    _alias_routes(api)
    return api


def _model_routes(api: APIRouter) -> None:
    def list_models(orchestra: OrchestraDep, skip: int = Skip, limit: int = Limit) -> dict[str, Any]:
        return {"result": registry(orchestra).list_models(skip, limit)}

    def register(
        orchestra: OrchestraDep, role: EditorRole, body: RegisterBody = Body(openapi_examples=REGISTER_EXAMPLE)
    ) -> JSONResponse:
        request = Registration(
            model=body.name, step=body.step, role=role, run=body.run, description=body.description, tags=body.tags
        )
        document = registry(orchestra).register(request)
        return JSONResponse({"result": document}, status_code=201, headers={"Location": document["url"]})

    def read(orchestra: OrchestraDep, name: str = ModelRefPath) -> dict[str, Any]:
        model, _, alias = name.partition("@")
        service = registry(orchestra)
        return {"result": service.resolve(model, alias) if alias else service.model(model)}

    def change(orchestra: OrchestraDep, name: str = ModelPath, body: ModelChanges = Body()) -> dict[str, Any]:
        return {"result": registry(orchestra).update_model(name, body.description, body.tags)}

    add = json_routes(api, TAG)
    add("/models", list_models, "GET", "List registered models", {"result": [MODEL]}, VIEWER)
    api.add_api_route(
        "/models",
        register,
        methods=["POST"],
        status_code=201,
        tags=[TAG],
        summary="Register a finished step's model as a new version (files copied, lineage recorded)",
        responses={201: {"content": {"application/json": {"example": {"result": VERSION}}}}},
        dependencies=EDITOR,
    )
    add("/models/{name}", read, "GET", "A model, or the version name@alias points to", {"result": MODEL}, VIEWER)
    add("/models/{name}", change, "PATCH", "Change a model's description or tags", {"result": MODEL}, EDITOR)


def _version_routes(api: APIRouter) -> None:
    base = "/models/{name}/versions"

    def versions(
        orchestra: OrchestraDep,
        name: str = ModelPath,
        skip: int = Skip,
        limit: int = Limit,
        status: str | None = Query(None, pattern=f"^({'|'.join(STATUSES)})$"),
    ) -> dict[str, Any]:
        return {"result": registry(orchestra).versions(name, skip, limit, status)}

    def read(orchestra: OrchestraDep, name: str = ModelPath, version: int = VersionPath) -> dict[str, Any]:
        return {"result": registry(orchestra).version(name, version)}

    def change(
        orchestra: OrchestraDep, name: str = ModelPath, version: int = VersionPath, body: VersionChanges = Body()
    ) -> dict[str, Any]:
        service = registry(orchestra)
        return {"result": service.update_version(name, version, body.description, body.tags, body.status)}

    def remove(orchestra: OrchestraDep, name: str = ModelPath, version: int = VersionPath) -> dict[str, Any]:
        registry(orchestra).delete_version(name, version)
        return {"result": f"deleted version {version} of model {name!r} and its files"}

    def files(orchestra: OrchestraDep, name: str = ModelPath, version: int = VersionPath) -> dict[str, Any]:
        return {"result": registry(orchestra).files(name, version)[1]}

    def download(
        orchestra: OrchestraDep,
        name: str = ModelPath,
        version: int = VersionPath,
        file: str = Path(description="a name from the version's file listing"),
    ) -> StreamingResponse:
        prefix, listed = registry(orchestra).files(name, version)
        if file not in {item["name"] for item in listed}:
            raise ApiError(404, f"version {version} of model {name!r} has no file {file!r}; see its files listing")
        try:
            handle = orchestra.store.open(f"{prefix}/{file}")
        except FileNotFoundError:  # the version was deleted since it was listed
            raise ApiError(404, f"model {name!r} has no version {version}") from None
        filename = file.rsplit("/", 1)[-1]
        return StreamingResponse(
            _chunks(handle),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    add = json_routes(api, TAG)
    add(base, versions, "GET", "Versions of a model, oldest first", {"result": [VERSION]}, VIEWER)
    add(f"{base}/{{version}}", read, "GET", "A version: files, lineage, signature", {"result": VERSION}, VIEWER)
    add(f"{base}/{{version}}", change, "PATCH", "Description, tags, status (archive)", {"result": VERSION}, EDITOR)
    add(f"{base}/{{version}}", remove, "DELETE", "Delete a version and its files", _DELETED, EDITOR)
    add(f"{base}/{{version}}/files", files, "GET", "A version's files", _FILES, VIEWER)
    api.add_api_route(
        f"{base}/{{version}}/files/{{file:path}}",
        download,
        methods=["GET"],
        tags=[TAG],
        summary="Download a file of a version",
        responses={200: {"content": {"application/octet-stream": {}}}},
        dependencies=VIEWER,
    )


def _alias_routes(api: APIRouter) -> None:
    base = "/models/{name}/aliases"

    def aliases(orchestra: OrchestraDep, name: str = ModelPath) -> dict[str, Any]:
        return {"result": registry(orchestra).aliases(name)}

    def resolve(orchestra: OrchestraDep, name: str = ModelPath, alias: str = AliasPath) -> dict[str, Any]:
        return {"result": registry(orchestra).resolve(name, alias)}

    def put(
        orchestra: OrchestraDep,
        serving: ServingDep,
        role: EditorRole,
        background: BackgroundTasks,
        name: str = ModelPath,
        alias: str = AliasPath,
        body: AliasBody = Body(openapi_examples={"move": {"value": {"version": 2}}}),
    ) -> dict[str, Any]:
        moved = registry(orchestra).set_alias(name, alias, body.version, role)
        # The serving workers load the version now, so the first request through the alias finds it warm.
        background.add_task(preload, serving, served_version(orchestra.sessions, name, number=body.version))
        return {"result": moved}

    def remove(
        orchestra: OrchestraDep, role: EditorRole, name: str = ModelPath, alias: str = AliasPath
    ) -> dict[str, Any]:
        removed = registry(orchestra).delete_alias(name, alias, role)
        return {"result": f"removed alias {alias!r} of model {name!r} (it pointed to version {removed['version']})"}

    def history(orchestra: OrchestraDep, name: str = ModelPath, alias: str = AliasPath) -> dict[str, Any]:
        return {"result": registry(orchestra).history(name, alias)}

    add = json_routes(api, TAG)
    add(base, aliases, "GET", "A model's aliases", {"result": [ALIAS]}, VIEWER)
    add(f"{base}/{{alias}}", resolve, "GET", "The version an alias points to", {"result": VERSION}, VIEWER)
    add(f"{base}/{{alias}}", put, "PUT", "Set or move an alias (recorded)", _MOVED, EDITOR)
    add(f"{base}/{{alias}}", remove, "DELETE", "Remove an alias (recorded)", _REMOVED, EDITOR)
    add(f"{base}/{{alias}}/history", history, "GET", "Every move of an alias, oldest first", _HISTORY, VIEWER)


_MOVED = {"result": {**ALIAS, "previous": 1}}
_DELETED = {"result": "deleted version 3 of model 'adult' and its files"}
_REMOVED = {"result": "removed alias 'staging' of model 'adult' (it pointed to version 3)"}
_FILES = {"result": [{"name": "model.joblib", "size": 48000}, {"name": "summary.json", "size": 213}]}
_HISTORY = {"result": [{**MOVE, "action": "set", "fromVersion": None, "toVersion": 1}, MOVE]}


async def preload(serving: ServingPools, version: ServedVersion) -> None:
    await serving.preload(version)


def _chunks(handle: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(size):
            yield chunk
