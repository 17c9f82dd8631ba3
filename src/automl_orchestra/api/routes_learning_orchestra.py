"""Learning Orchestra's own wire calls that the step routes (``routes_steps.py``) do not already answer.

The real Learning Orchestra clients (``learning-orchestra-client`` on PyPI, and the AutoML branch's) send:

* ``PATCH /transform/dataType`` with ``{"inputDatasetName" (or "datasetName"), "types"}``: change the column
  types of an existing table *in place*. Here that is a re-execution of the named step with the types forced
  (merged with those forced before): a ``dataset/csv`` step is re-ingested, a ``transform/projection`` or
  ``transform/dataType`` step re-run; any other step is a clear 422.
* ``GET|DELETE /transform/dataType/{name}`` on such a step: Learning Orchestra's dataType service reads and
  deletes the table it changed, whatever made it. These two routes are registered before the step routes
  (``app.py``), so they also answer for ``transform/dataType`` steps exactly as the step routes would.
* ``GET /explore/{tool}/{name}/metadata``: the explore classes' ``search_explore_metadata``.
* ``GET /explore/getlocaldatapycaret`` with a JSON body ``{"filename": ...}`` (a GET with a body; also taken
  from the query string): the text of a file a builder step's code wrote (``score``, ``report_tuned``).
  Only files a builder step's metadata lists as written by its code are served, by that listed name.

Every route depends on its role first (viewer to read, editor to change), as the step routes do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any, ClassVar

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from automl_orchestra.api import content, examples
from automl_orchestra.api.dependencies import EditorRole, OrchestraDep, ViewerRole
from automl_orchestra.api.errors import ApiError, summarize
from automl_orchestra.api.routes_steps import Cascade, Limit, NamePath, Skip, delete_step, update_step
from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.outputs import CODE_FILES_DIR
from automl_orchestra.contracts.parameters import MAX_COLUMNS, MAX_SHORT, TableType, check_value, known_table_types
from automl_orchestra.contracts.references import NAME_PATTERN
from automl_orchestra.steps.documents import step_document
from automl_orchestra.steps.service import StepService
from automl_orchestra.store.artifacts import ArtifactStore
from automl_orchestra.store.models import Step

TAG = "learningOrchestra"
DATA_TYPE = ("transform", "dataType")
# The steps whose types can change in place: their request has ``types`` (a dataset's forced types, a
# projection's casts, a dataType step's casts).
RETYPABLE = frozenset({("dataset", "csv"), ("transform", "projection"), DATA_TYPE})
SCAN_PAGE = 500  # builder steps read per query while looking for the newest one that wrote a file
SNIFF_BYTES = 8192  # bytes read to tell a text file (served as text/plain) from a binary one

DATA_TYPE_CHANGED = {"result": "/api/v1/dataset/csv/titanic_train"}
EXPLORE_METADATA = {"result": [examples.METADATA]}
REPORT_TEXT = "\tModel\tAccuracy\tAUC\n0\tGradient Boosting Classifier\t0.8299\t0.8738\n"


class DataTypeChange(BaseModel):
    """The body Learning Orchestra's ``TransformDataType.update_dataset_type_*`` sends."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    example: ClassVar[dict[str, Any]] = {"inputDatasetName": "titanic_train", "types": {"Age": "number"}}

    datasetName: str = Field(
        pattern=f"^{NAME_PATTERN}$",
        validation_alias=AliasChoices("inputDatasetName", "datasetName", "name"),
        description="the step whose table changes types: a dataset/csv, transform/projection or dataType step",
    )
    types: dict[str, TableType] = Field(min_length=1, max_length=MAX_COLUMNS)

    _known_types = field_validator("types", mode="before")(known_table_types)

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_value(data)  # the string and nesting limits of every step body (no NUL in a column name)
        return data


class ReportRequest(BaseModel):
    """What ``BuilderPycaret.search_report(file_name)`` asks for: a file a builder's code wrote."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    fileName: str = Field(
        min_length=1, max_length=MAX_SHORT, validation_alias=AliasChoices("fileName", "filename", "file_name")
    )
    builderName: str | None = Field(
        default=None, pattern=f"^{NAME_PATTERN}$", validation_alias=AliasChoices("builderName", "name")
    )

    @field_validator("fileName")
    @classmethod
    def _relative(cls, value: str) -> str:
        # Only compared with the names a step lists; refused early so that a path never looks like an answer.
        if value.startswith("/") or ".." in value.split("/") or "\x00" in value:
            raise ValueError(
                "a file name the builder's code wrote, relative to its directory (no leading '/', no '..')"
            )
        return value


def router() -> APIRouter:
    api = APIRouter(tags=[TAG])
    _data_type_routes(api)
    for tool in catalog.tools_for("explore"):
        _explore_metadata_route(api, tool)
    _builder_file_route(api)
    return api


# ----- transform/dataType in place ------------------------------------------------------------------


def _data_type_routes(api: APIRouter) -> None:
    base = "/transform/dataType"

    def retype(
        role: EditorRole,
        orchestra: OrchestraDep,
        change: DataTypeChange = Body(openapi_examples={"example": {"value": DataTypeChange.example}}),
        cascade: bool = Cascade,
    ) -> dict[str, Any]:
        step = orchestra.service.get(change.datasetName)
        if (step.service, step.tool) not in RETYPABLE:
            kinds = ", ".join(sorted("/".join(kind) for kind in RETYPABLE))
            raise ApiError(
                422,
                f"{step.name!r} is a {step.service}/{step.tool} step: its types can change in place only on {kinds} "
                f"steps; create a transform/dataType step with parentName {step.name!r} instead",
            )
        forced = step.parameters.get("types")
        types = {**(forced if isinstance(forced, dict) else {}), **change.types}
        return update_step(orchestra, role, step, {"types": types}, cascade)

    def read(
        _role: ViewerRole,
        orchestra: OrchestraDep,
        name: str = NamePath,
        skip: int = Skip,
        limit: int = Limit,
        query: str | None = Query(None),
    ) -> dict[str, Any]:
        step = _data_type_step(orchestra.service, name)
        parents = orchestra.service.parents(name)
        return {"result": content.page(orchestra.store, step, parents, skip, limit, content.parse_query(query))}

    def remove(_role: EditorRole, orchestra: OrchestraDep, name: str = NamePath, cascade: bool = Cascade) -> Any:
        _data_type_step(orchestra.service, name)
        return delete_step(orchestra, name, cascade)

    api.add_api_route(
        base,
        retype,
        methods=["PATCH"],
        summary="Change the types of a table in place (Learning Orchestra's dataType)",
        responses=examples.ok(DATA_TYPE_CHANGED),
    )
    # Same paths and answers as the step routes' (documented there), for more steps: not documented twice.
    api.add_api_route(f"{base}/{{name}}", read, methods=["GET"], include_in_schema=False)
    api.add_api_route(f"{base}/{{name}}", remove, methods=["DELETE"], include_in_schema=False)


def _data_type_step(service: StepService, name: str) -> Step:
    """A step the dataType routes answer for: a ``transform/dataType`` step, or a table whose types were
    forced (in place, or when it was made)."""
    step = service.get(name)
    if (step.service, step.tool) == DATA_TYPE:
        return step
    if (step.service, step.tool) in RETYPABLE and step.parameters.get("types"):
        return step
    raise ApiError(
        404, f"step {name!r} is a {step.service}/{step.tool} step whose types were never changed, not a dataType step"
    )


# ----- explore metadata -----------------------------------------------------------------------------


def _explore_metadata_route(api: APIRouter, tool: str) -> None:
    def metadata(_role: ViewerRole, orchestra: OrchestraDep, name: str = NamePath) -> dict[str, Any]:
        step = orchestra.service.get_in(name, "explore", tool)
        return {"result": [step_document(step, orchestra.service.parents(name))]}

    api.add_api_route(
        f"/explore/{tool}/{{name}}/metadata",
        metadata,
        methods=["GET"],
        summary="Metadata of an explore step, as a page of one (search_explore_metadata)",
        responses=examples.ok(EXPLORE_METADATA),
    )


# ----- files a builder's code wrote -------------------------------------------------------------------


def _builder_file_route(api: APIRouter) -> None:
    async def report(
        _role: ViewerRole,
        request: Request,
        orchestra: OrchestraDep,
        fileName: str | None = Query(None, min_length=1, max_length=MAX_SHORT, description="e.g. score"),
        builderName: str | None = Query(
            None, pattern=f"^{NAME_PATTERN}$", description="the builder step (default: the newest that wrote it)"
        ),
    ) -> StreamingResponse:
        asked = {"fileName": fileName, "builderName": builderName, **await _json_body(request)}
        wanted = _report_request({key: value for key, value in asked.items() if value is not None})
        key = await run_in_threadpool(_builder_file, orchestra.service, wanted)
        handle, first = await run_in_threadpool(_open_sniffed, orchestra.store, key)
        return StreamingResponse(_chunks(first, handle), media_type=_media_type(first))

    api.add_api_route(
        "/explore/getlocaldatapycaret",
        report,
        methods=["GET"],
        summary="A file a builder step's code wrote (BuilderPycaret.search_report), as text",
        description="The file name comes from the query string or, as the Learning Orchestra client sends it, "
        'from a JSON body `{"filename": "score"}` (a GET with a body). Without `builderName` the newest finished '
        "builder step whose code wrote that file answers.",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "the file: text/plain when it is UTF-8 text",
                "content": {"text/plain": {"example": REPORT_TEXT}, "application/octet-stream": {}},
            },
            **{status: {"description": "JSON error with a clear message"} for status in (400, 404)},
        },
    )


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON object Learning Orchestra's client sends with its GET; ``{}`` without a body."""
    raw = await request.body()  # BodyLimits bounded its size before the route runs
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "the request body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise ApiError(422, 'the request body must be a JSON object such as {"filename": "score"}')
    return value


def _report_request(data: dict[str, Any]) -> ReportRequest:
    try:
        return ReportRequest.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid request: " + summarize(exc.errors()), exc.errors(include_url=False)) from exc


def _builder_file(service: StepService, wanted: ReportRequest) -> str:
    """The artifact key of the file ``wanted`` names: built from a name the builder step's metadata lists, so
    only what a builder's code wrote can be read."""
    if wanted.builderName:
        step = service.get(wanted.builderName)
        if step.service != "builder":
            raise ApiError(404, f"step {step.name!r} is a {step.service}/{step.tool} step, not a builder step")
        if not _wrote(step, wanted.fileName):
            raise ApiError(404, f"builder step {step.name!r} wrote no file named {wanted.fileName!r}")
    else:
        found = _newest_writer(service, wanted.fileName)
        if found is None:
            raise ApiError(404, f"no finished builder step wrote a file named {wanted.fileName!r}")
        step = found
    prefix = str((step.output or {}).get("prefix", ""))
    return f"{prefix}/{CODE_FILES_DIR}/{wanted.fileName}"


def _wrote(step: Step, file_name: str) -> bool:
    files = (step.meta or {}).get("files")
    return bool(step.output) and isinstance(files, list) and file_name in files


def _newest_writer(service: StepService, file_name: str) -> Step | None:
    """The most recently updated finished builder step whose code wrote ``file_name`` (Learning Orchestra kept
    one such file, the last one written)."""
    newest: Step | None = None
    skip = 0
    while True:
        page = service.list_steps(service="builder", status="finished", skip=skip, limit=SCAN_PAGE)
        for step in page:
            if _wrote(step, file_name) and (newest is None or step.updated_at > newest.updated_at):
                newest = step
        if len(page) < SCAN_PAGE:
            return newest
        skip += SCAN_PAGE


def _open_sniffed(store: ArtifactStore, key: str) -> tuple[IO[bytes], bytes]:
    """The opened file and its first bytes (which tell text from binary)."""
    handle: IO[bytes] = store.open(key)
    return handle, handle.read(SNIFF_BYTES)


def _media_type(first: bytes) -> str:
    """``text/plain`` for UTF-8 text (what ``response.text`` of the client shows), else binary."""
    try:
        first.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(first) - 3:  # not just a character cut at the end of the sniffed bytes
            return "application/octet-stream"
    return "application/octet-stream" if b"\x00" in first else "text/plain; charset=utf-8"


def _chunks(first: bytes, handle: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    with handle:
        yield first
        while chunk := handle.read(size):
            yield chunk
