"""Step routes: ``/{service}/{tool}[/{name}[/sub-resource]]`` for every registered tool, and the same
sub-resources by name alone under ``/steps/{name}`` (what the CLI uses)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AliasChoices, BaseModel, ValidationError

from automl_orchestra.api import content, datasets, examples, routes_compare
from automl_orchestra.api.auth import require_code
from automl_orchestra.api.dependencies import (
    EditorRole,
    Orchestra,
    OrchestraDep,
    check_body,
    check_budget_fits,
    checked_step,
    creator_role,
    may_run_code,
)
from automl_orchestra.api.errors import ApiError, summarize
from automl_orchestra.api.limits import MAX_RUN_NUMBER, MAX_SKIP
from automl_orchestra.api.routing import EDITOR, VIEWER, json_routes
from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.contracts.parameters import StepBody
from automl_orchestra.contracts.references import NAME_PATTERN
from automl_orchestra.engines.core.requests import request_model
from automl_orchestra.steps.documents import run_document, step_document, step_url
from automl_orchestra.store.artifacts import run_prefix
from automl_orchestra.store.models import Step

NamePath = Path(pattern=f"^{NAME_PATTERN}$", description="step name")
Skip = Query(0, ge=0, le=MAX_SKIP)
Limit = Query(20, ge=1, le=100)
Cascade = Query(False, description="also delete / re-run every dependent step")


class Result(BaseModel):
    result: Any


def _pairs() -> list[tuple[str, str, bool]]:
    """(service, tool, accepts POST) for every registered tool, derived read-only ones included."""
    pairs = []
    for spec in catalog.TOOLS.values():
        for service in spec.services:
            pairs.append((service, spec.name, bool(spec.implementation)))
    return pairs


def router() -> APIRouter:
    api = APIRouter()
    _by_name_routes(api)
    for service, tool, creatable in _pairs():
        _tool_routes(api, service, tool, creatable)
    return api


# ----- creation ------------------------------------------------------------------------------------


def create_step(
    orchestra: Orchestra, role: str, service: str, tool: str, body: StepBody, parameters: dict[str, Any]
) -> JSONResponse:
    """Create the step ``body`` asks for; the caller's role was settled by the route's dependency."""
    if service == "automl" and tool == "compare":  # expanded into its split, engine and compare steps
        return routes_compare.create(orchestra, role, body)
    step = orchestra.service.create(checked_step(orchestra.settings, role, service, tool, body, parameters))
    return created(step)


def created(step: Step) -> JSONResponse:
    url = step_url(step)
    return JSONResponse({"result": url}, status_code=201, headers={"Location": url})


def _validated(model: type[StepBody], data: dict[str, Any]) -> StepBody:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid request: " + summarize(exc.errors()), exc.errors(include_url=False)) from exc


# ----- routes per tool -----------------------------------------------------------------------------


def _tool_routes(api: APIRouter, service: str, tool: str, creatable: bool) -> None:
    base = f"/{service}/{tool}"
    tag = service
    model = request_model(service, tool)
    # Code tools need a code role on top of editor: known from the route, so settled before the body is read.
    creator = Depends(creator_role(service, tool))

    if creatable and service == "dataset":

        async def create_dataset(request: Request, orchestra: OrchestraDep, role: str = creator) -> JSONResponse:
            body, parameters = await datasets.read_request(request, orchestra, tool)
            try:
                return create_step(orchestra, role, service, tool, body, parameters)
            except BaseException:
                datasets.discard_upload(orchestra, parameters)  # a refused step keeps none of its upload
                raise

        api.add_api_route(
            base,
            create_dataset,
            methods=["POST"],
            status_code=201,
            tags=[tag],
            summary=f"Create a {tool} dataset (JSON with url/path, or multipart upload)",
            response_model=Result,
            responses={201: {"content": {"application/json": {"example": examples.CREATED}}}},
            openapi_extra=datasets.openapi_body(model),
        )
    elif creatable:
        body_examples: dict[str, Any] = {"example": {"summary": f"{service}/{tool}", "value": model.example}}

        def create(
            orchestra: OrchestraDep, role: str = creator, body: StepBody = Body(openapi_examples=body_examples)
        ) -> JSONResponse:
            return create_step(orchestra, role, service, tool, body, body.to_parameters())

        # Annotations are strings here (PEP 563): give FastAPI the concrete model of this route.
        create.__annotations__ = {"orchestra": OrchestraDep, "role": str, "body": model, "return": JSONResponse}

        api.add_api_route(
            base,
            create,
            methods=["POST"],
            status_code=201,
            tags=[tag],
            summary=f"Create and start a {service}/{tool} step",
            response_model=Result,
            responses={201: {"content": {"application/json": {"example": examples.CREATED}}}},
        )

    def list_steps(orchestra: OrchestraDep, skip: int = Skip, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        steps = orchestra.service.list_steps(service=service, tool=tool, skip=skip, limit=limit)
        return {"result": [_document(orchestra, s) for s in steps]}

    def read(
        orchestra: OrchestraDep,
        name: str = NamePath,
        skip: int = Skip,
        limit: int = Limit,
        query: str | None = Query(None, description='JSON column filters, e.g. {"Sex": "female"}'),
    ) -> dict[str, Any]:
        step = orchestra.service.get_in(name, service, tool)
        parents = orchestra.service.parents(name)
        return {"result": content.page(orchestra.store, step, parents, skip, limit, content.parse_query(query))}

    def patch(
        orchestra: OrchestraDep,
        role: str = creator,
        name: str = NamePath,
        cascade: bool = Cascade,
        changes: dict[str, Any] = Body(default_factory=dict, openapi_examples={"example": {"value": {}}}),
    ) -> dict[str, Any]:
        step = orchestra.service.get_in(name, service, tool)
        return update_step(orchestra, role, step, changes, cascade)

    def remove(orchestra: OrchestraDep, name: str = NamePath, cascade: bool = Cascade) -> dict[str, Any]:
        orchestra.service.get_in(name, service, tool)
        return delete_step(orchestra, name, cascade)

    route = json_routes(api, tag)
    route(base, list_steps, "GET", f"List {service}/{tool} steps", examples.LIST, VIEWER)
    route(f"{base}/{{name}}", read, "GET", "Metadata and content page", examples.PAGE, VIEWER)
    route(f"{base}/{{name}}", patch, "PATCH", "Re-execute with changes", examples.UPDATED, [])
    route(f"{base}/{{name}}", remove, "DELETE", "Delete the step", examples.DELETED, EDITOR)
    _sub_resources(api, f"{base}/{{name}}", tag, lambda o, n: o.service.get_in(n, service, tool))


# ----- routes by name ------------------------------------------------------------------------------


def _by_name_routes(api: APIRouter) -> None:
    tag = "steps"

    def list_all(
        orchestra: OrchestraDep,
        service: str | None = None,
        tool: str | None = None,
        status: str | None = None,
        skip: int = Skip,
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        steps = orchestra.service.list_steps(service=service, tool=tool, status=status, skip=skip, limit=limit)
        return {"result": [_document(orchestra, s) for s in steps]}

    def read(orchestra: OrchestraDep, name: str = NamePath) -> dict[str, Any]:
        return {"result": _document(orchestra, orchestra.service.get(name))}

    def patch(
        orchestra: OrchestraDep,
        role: EditorRole,
        name: str = NamePath,
        cascade: bool = Cascade,
        changes: dict[str, Any] = Body(default_factory=dict),
    ) -> dict[str, Any]:
        step = orchestra.service.get(name)
        # Only the stored step says whether it is code: checked after the lookup, which an editor may make.
        if catalog.runs_code(step.service, step.tool):
            require_code(role, orchestra.settings)
        return update_step(orchestra, role, step, changes, cascade)

    def remove(orchestra: OrchestraDep, name: str = NamePath, cascade: bool = Cascade) -> dict[str, Any]:
        return delete_step(orchestra, name, cascade)

    def lineage(orchestra: OrchestraDep, name: str = NamePath) -> dict[str, Any]:
        steps, edges = orchestra.service.lineage(name)
        return {
            "result": {
                "nodes": [_document(orchestra, s) for s in steps],
                "edges": [{"parent": e.parent, "child": e.child, "reference": e.reference} for e in edges],
            }
        }

    def health(orchestra: OrchestraDep) -> dict[str, Any]:
        from automl_orchestra import __version__

        return {"result": {"status": "ok", "version": __version__, "instance": orchestra.scheduler.instance_id}}

    json_routes(api, "service")("/health", health, "GET", "Liveness", examples.HEALTH, [])  # open: probes have no token
    route = json_routes(api, tag)
    route("/steps", list_all, "GET", "List steps of every kind", examples.LIST, VIEWER)
    route("/steps/{name}", read, "GET", "Metadata of a step", {"result": examples.METADATA}, VIEWER)
    route("/steps/{name}", patch, "PATCH", "Re-execute with changes", examples.UPDATED, [])
    route("/steps/{name}", remove, "DELETE", "Delete a step", examples.DELETED, EDITOR)
    route("/lineage/{name}", lineage, "GET", "Ancestors and dependents", examples.LINEAGE, VIEWER)
    _sub_resources(api, "/steps/{name}", tag, lambda o, n: o.service.get(n))


def _sub_resources(api: APIRouter, base: str, tag: str, find: Callable[[Orchestra, str], Step]) -> None:
    def runs(orchestra: OrchestraDep, name: str = NamePath) -> dict[str, Any]:
        find(orchestra, name)
        return {"result": [run_document(r) for r in orchestra.service.runs(name)]}

    def logs(
        orchestra: OrchestraDep, name: str = NamePath, run: int | None = Query(None, ge=1, le=MAX_RUN_NUMBER)
    ) -> dict[str, Any]:
        find(orchestra, name)
        record = orchestra.service.run(name, run)
        prefix = run_prefix(name, record.number, record.id) + "-logs"
        texts = {}
        for stream in ("stdout", "stderr"):
            key = f"{prefix}/{stream}.log"
            texts[stream] = (
                orchestra.store.open(key).read().decode("utf-8", "replace") if orchestra.store.exists(key) else ""
            )
        return {"result": {"run": record.number, "status": record.status, **texts}}

    def artifacts(orchestra: OrchestraDep, name: str = NamePath) -> dict[str, Any]:
        step = find(orchestra, name)
        return {"result": _artifact_list(orchestra, step)}

    def download(
        orchestra: OrchestraDep, name: str = NamePath, file: str = Path(description="a name from the listing")
    ) -> StreamingResponse:
        step = find(orchestra, name)
        listed = {item["name"] for item in _artifact_list(orchestra, step)}
        if file not in listed:
            raise ApiError(404, f"step {name!r} has no artifact {file!r}; see its artifacts listing")
        ref = OutputRef.model_validate(step.output)
        handle = orchestra.store.open(f"{ref.prefix}/{file}")
        media = "image/png" if file.endswith(".png") else "application/octet-stream"
        filename = file.rsplit("/", 1)[-1]
        return StreamingResponse(
            _chunks(handle),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    def cancel(orchestra: OrchestraDep, name: str = NamePath) -> dict[str, Any]:
        find(orchestra, name)
        return {"result": _document(orchestra, orchestra.service.cancel(name))}

    route = json_routes(api, tag)
    route(f"{base}/runs", runs, "GET", "Every run of the step", examples.RUNS, VIEWER)
    route(f"{base}/logs", logs, "GET", "Captured stdout/stderr of a run", examples.LOGS, VIEWER)
    route(f"{base}/artifacts", artifacts, "GET", "Output files", examples.ARTIFACTS, VIEWER)
    api.add_api_route(
        f"{base}/artifacts/{{file:path}}",
        download,
        methods=["GET"],
        tags=[tag],
        summary="Download an output file",
        responses={200: {"content": {"application/octet-stream": {}, "image/png": {}}}},
        dependencies=VIEWER,
    )
    route(f"{base}/cancel", cancel, "POST", "Stop a pending or running step", examples.CANCELLED, EDITOR)


# ----- shared handlers -----------------------------------------------------------------------------


def update_step(orchestra: Orchestra, role: str, step: Step, changes: dict[str, Any], cascade: bool) -> dict[str, Any]:
    """Re-execute ``step`` (looked up by the route after its role checks) with ``changes``, with the code
    right of the caller: the code policy applies unless ``role`` may run code."""
    settings = orchestra.settings
    allow_code = may_run_code(role, settings)
    if step.owner:
        raise ApiError(409, f"{step.name!r} is produced by step {step.owner!r}: re-execute that step instead")
    changes = _same_name(step, changes)
    if step.service == "dataset":
        parameters = datasets.patched_parameters(step.parameters, changes, settings)
    else:
        merged = {**step.parameters, **changes}
        body = _validated(request_model(step.service, step.tool), {**merged, "name": step.name})
        check_body(step.service, step.tool, body, settings, allow_code=allow_code)
        # A PATCH keeps the step's limits: its new budget must fit the timeout decided at POST.
        check_budget_fits(body, float((step.limits or {}).get("timeoutS") or settings.step_timeout_s))
        parameters = body.to_parameters()
    updated = orchestra.service.update(step.name, parameters, cascade, allow_code=allow_code)
    return {"result": step_url(updated)}


def _same_name(step: Step, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` without the step's own name; 422 when they name it differently (a PATCH cannot rename)."""
    field = request_model(step.service, step.tool).model_fields["name"]
    alias = field.validation_alias
    keys = {"name"} | ({c for c in alias.choices if isinstance(c, str)} if isinstance(alias, AliasChoices) else set())
    renamed = {k: v for k, v in changes.items() if k in keys and v != step.name}
    if renamed:
        raise ApiError(422, f"a step's name cannot change: {step.name!r} was given {renamed}; create a new step")
    return {k: v for k, v in changes.items() if k not in keys}


def delete_step(orchestra: Orchestra, name: str, cascade: bool) -> dict[str, Any]:
    deleted = orchestra.service.delete(name, cascade)
    return {"result": f"deleted {', '.join(deleted)}"}


def _document(orchestra: Orchestra, step: Step) -> dict[str, Any]:
    return step_document(step, orchestra.service.parents(step.name))


def _artifact_list(orchestra: Orchestra, step: Step) -> list[dict[str, Any]]:
    if not step.output:
        return []
    prefix = step.output["prefix"]
    return [{"name": n, "size": orchestra.store.size(f"{prefix}/{n}")} for n in orchestra.store.list_files(prefix)]


def _chunks(handle: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(size):
            yield chunk
