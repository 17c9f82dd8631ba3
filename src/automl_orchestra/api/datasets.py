"""Dataset requests: JSON (a URL or an import-directory path) or a multipart upload, checked before any
byte is fetched or stored. Turns them into the canonical ``source`` parameter the ingest worker reads: the
server writes it after its checks, so a body that gives ``source`` itself is refused."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from automl_orchestra.api.dependencies import Orchestra
from automl_orchestra.api.errors import ApiError, summarize
from automl_orchestra.config import Settings
from automl_orchestra.contracts.parameters import DatasetBody, PathSource, StepBody, UploadSource, UrlSource
from automl_orchestra.contracts.source_policy import check_import_path, check_url
from automl_orchestra.store.artifacts import step_prefix

CHUNK = 1 << 20
SOURCE_FIELDS = ("url", "path")
FORMAT_FIELDS = ("separator", "header", "columns", "types", "encoding", "columnId", "columnSort")
SERVER_FIELDS = ("source",)  # DatasetBody fields only the server writes (after the source-policy checks)


async def read_request(request: Request, orchestra: Orchestra, tool: str) -> tuple[StepBody, dict[str, Any]]:
    settings: Settings = orchestra.settings
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _read_upload(request, orchestra)
    if not content_type.startswith("application/json"):
        raise ApiError(415, "send application/json (url or path) or multipart/form-data (an upload)")
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "the request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "the request body must be a JSON object")
    body = _validate(data)
    return body, {**_format(body), "source": _source(body, settings)}


def patched_parameters(old: dict[str, Any], changes: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A dataset PATCH may change the format options (e.g. ``types``, the Learning Orchestra in-place
    dataType) and/or the source; an uploaded source is kept unless a new url/path replaces it."""
    unknown = sorted(set(changes) - set(FORMAT_FIELDS) - set(SOURCE_FIELDS))
    if unknown:
        raise ApiError(
            422,
            f"a dataset can be re-executed with changes to {FORMAT_FIELDS + SOURCE_FIELDS}, not {unknown}",
        )
    merged = {k: v for k, v in old.items() if k in FORMAT_FIELDS}
    merged.update({k: v for k, v in changes.items() if k in FORMAT_FIELDS})
    sources = {k: v for k, v in changes.items() if k in SOURCE_FIELDS and v}
    if len(sources) > 1:
        raise ApiError(422, "give at most one of 'url' and 'path'")
    body = _validate({"name": "patch", **merged, **sources})
    source = _source(body, settings) if sources else old["source"]
    return {**_format(body), "source": source}


def _validate(data: dict[str, Any]) -> DatasetBody:
    """A user's dataset body (JSON, form fields or a PATCH merged with the stored format) as ``DatasetBody``."""
    given = sorted(key for key in SERVER_FIELDS if key in data)
    if given:
        # The model declares them for the worker; from a user they would skip the url/path/upload checks.
        fields = ", ".join(repr(key) for key in given)
        raise ApiError(422, f"{fields} is set by the server: give 'url' or 'path', or upload a file")
    try:
        return DatasetBody.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid request: " + summarize(exc.errors()), exc.errors(include_url=False)) from exc


def _format(body: DatasetBody) -> dict[str, Any]:
    return {k: v for k, v in body.to_parameters().items() if k in FORMAT_FIELDS and v is not None}


def _source(body: DatasetBody, settings: Settings) -> dict[str, Any]:
    if bool(body.url) == bool(body.path):
        raise ApiError(422, "give exactly one of 'url' (http/https) and 'path', or upload a file as multipart")
    if body.url:
        check_url(body.url, settings.url_allow_hosts)
        return UrlSource(kind="url", url=body.url).model_dump()
    assert body.path is not None
    return PathSource(kind="path", path=str(check_import_path(body.path, settings.import_dir_list))).model_dump()


async def _read_upload(request: Request, orchestra: Orchestra) -> tuple[StepBody, dict[str, Any]]:
    """The upload of a multipart body: ``BodyLimits`` has counted the body as it arrived (413 past the
    limit); the file goes to the step's storage only after its fields passed, and its bytes are counted
    again there so the stored size is exact."""
    settings: Settings = orchestra.settings
    limit = settings.max_upload_mb * 2**20
    async with request.form(max_files=1, max_fields=32) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "the multipart upload needs a file field named 'file'")
        fields = {k: _form_value(k, v) for k, v in form.items() if k != "file" and isinstance(v, str)}
        body = _validate(fields)
        if body.url or body.path:
            raise ApiError(422, "an upload cannot also give 'url' or 'path'")
        if orchestra.service.exists(body.name):
            raise ApiError(409, f"a step named {body.name!r} already exists; choose another name or PATCH it")
        filename = _safe_filename(upload.filename or "upload.csv")
        key = f"{step_prefix(body.name)}/source-{uuid.uuid4().hex[:12]}/{filename}"
        size = 0
        try:
            with orchestra.store.open(key, "wb") as target:
                while chunk := await upload.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, f"the upload is larger than the limit of {settings.max_upload_mb} MB")
                    target.write(chunk)
        except BaseException:
            delete_upload(orchestra, key)
            raise
    source = UploadSource(kind="upload", key=key, filename=filename, sizeBytes=size).model_dump()
    return body, {**_format(body), "source": source}


def discard_upload(orchestra: Orchestra, parameters: dict[str, Any]) -> None:
    """Remove the stored upload of a dataset request that was refused after its file was stored."""
    source = parameters.get("source") or {}
    if source.get("kind") == "upload":
        delete_upload(orchestra, source["key"])


def delete_upload(orchestra: Orchestra, key: str) -> None:
    """Delete an upload's ``source-…`` folder, and the step's folder when that leaves it empty."""
    folder = key.rsplit("/", 1)[0]
    orchestra.store.delete_prefix(folder)
    orchestra.store.delete_if_empty(folder.rsplit("/", 1)[0])


def _form_value(key: str, value: str) -> Any:
    if key == "header":
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if key in {"columns", "types", "limits"}:
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ApiError(422, f"form field {key!r} must be JSON") from exc
    if key in {"cache", "retryable"}:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return value


def _safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    return cleaned[:200] or "upload.bin"


def openapi_body(model: type[StepBody]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": model.model_json_schema(by_alias=False),
                    "example": model.example,
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "file"],
                        "properties": {
                            "name": {"type": "string"},
                            "file": {"type": "string", "format": "binary"},
                            "separator": {"type": "string"},
                            "header": {"type": "boolean"},
                            "types": {"type": "string", "description": "JSON object field -> type"},
                        },
                    }
                },
            },
        }
    }
