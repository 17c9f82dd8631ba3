"""Step routes: ``/{service}/{tool}[/{name}[/sub-resource]]`` for every registered tool, and the same
sub-resources by name alone under ``/steps/{name}`` (what the CLI uses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from automl_orchestra.api import content, datasets, examples, routes_compare
from automl_orchestra.api.auth import require, require_code
from automl_orchestra.api.errors import ApiError, summarize
from automl_orchestra.api.schemas import AutoMLBody, StepBody, body_model
from automl_orchestra.config import Settings
from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.contracts.references import NAME_PATTERN
from automl_orchestra.contracts.source_policy import check_code_url
from automl_orchestra.steps.documents import run_document, step_document, step_url
from automl_orchestra.steps.service import NewStep
from automl_orchestra.store.artifacts import run_prefix
from automl_orchestra.store.models import Step

NamePath = Path(pattern=f"^{NAME_PATTERN}$", description="step name")
Skip = Query(0, ge=0)
Limit = Query(20, ge=1, le=100)
Cascade = Query(False, description="also delete / re-run every dependent step")


class Result(BaseModel):
    result: Any


def _orchestra(request: Request) -> Any:
    return request.app.state.orchestra


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


def create_step(request: Request, service: str, tool: str, body: StepBody, parameters: dict[str, Any]) -> JSONResponse:
    orchestra = _orchestra(request)
    settings = orchestra.settings
    role = require(request, settings, "editor")
    if catalog.runs_code(service, tool):
        require_code(role, settings)
    _check_limits(body, settings)
    _check_body(service, tool, body, settings)
    if service == "automl" and tool == "compare":  # expanded into its split, engine and compare steps
        return routes_compare.create(orchestra.service, settings, body)  # type: ignore[arg-type]
    step = orchestra.service.create(
        NewStep(
            service=service,
            tool=tool,
            name=body.name,
            parameters=parameters,
            description=body.description,
            cache=body.cache,
            retryable=body.retryable,
            limits=body.limits.model_dump(exclude_none=True),
        )
    )
    url = step_url(step)
    return JSONResponse({"result": url}, status_code=201, headers={"Location": url})


def _check_body(service: str, tool: str, body: StepBody, settings: Settings) -> None:
    spec = catalog.tool(tool)
    missing = settings.missing_environment(spec.environment) if spec is not None else None
    if missing:
        raise ApiError(503, f"{tool} runs in {missing}")
    module_path = getattr(body, "modulePath", None)
    if module_path and spec is not None and not spec.allows_module(module_path):
        allowed = ", ".join(spec.allowed_modules) or "none"
        raise ApiError(422, f"{tool} may only import from {allowed}; {module_path!r} is not allowed")
    code_url = getattr(body, "codeUrl", None)
    if service in catalog.CODE_SERVICES:
        if bool(getattr(body, "code", None)) == bool(code_url):
            raise ApiError(422, "give exactly one of 'code' and 'codeUrl'")
        if code_url:
            check_code_url(code_url, settings.code_url_host_set)
    if service == "explore" and tool != "histogram" and not (body.parentName or body.modulePath):  # type: ignore[attr-defined]
        raise ApiError(422, "give 'parentName' (call a method of a step's object) or 'modulePath'")


def _check_limits(body: StepBody, settings: Settings) -> None:
    limits = body.limits
    if limits.timeoutS and limits.timeoutS > settings.max_step_timeout_s:
        raise ApiError(422, f"limits.timeoutS may be at most {settings.max_step_timeout_s:g} s on this server")
    if limits.memoryMb and limits.memoryMb > settings.max_step_memory_mb:
        raise ApiError(422, f"limits.memoryMb may be at most {settings.max_step_memory_mb} on this server")
    if isinstance(body, AutoMLBody) and limits.timeoutS and limits.timeoutS <= body.timeBudget:
        raise ApiError(422, "limits.timeoutS must be larger than timeBudget so the engine can finish")


def _validated(model: type[StepBody], data: dict[str, Any]) -> StepBody:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid request: " + summarize(exc.errors()), exc.errors(include_url=False)) from exc


# ----- routes per tool -----------------------------------------------------------------------------


def _tool_routes(api: APIRouter, service: str, tool: str, creatable: bool) -> None:
    base = f"/{service}/{tool}"
    tag = service
    model = body_model(service, tool)

    if creatable and service == "dataset":

        async def create_dataset(request: Request) -> JSONResponse:
            body, parameters = await datasets.read_request(request, _orchestra(request), tool)
            return create_step(request, service, tool, body, parameters)

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

        def create(request: Request, body: StepBody = Body(openapi_examples=body_examples)) -> JSONResponse:
            return create_step(request, service, tool, body, body.to_parameters())

        # Annotations are strings here (PEP 563): give FastAPI the concrete model of this route.
        create.__annotations__ = {"request": Request, "body": model, "return": JSONResponse}

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

    def list_steps(request: Request, skip: int = Skip, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
        steps = orchestra.service.list_steps(service=service, tool=tool, skip=skip, limit=limit)
        return {"result": [_document(orchestra, s) for s in steps]}

    def read(
        request: Request,
        name: str = NamePath,
        skip: int = Skip,
        limit: int = Limit,
        query: str | None = Query(None, description='JSON column filters, e.g. {"Sex": "female"}'),
    ) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
        step = orchestra.service.get_in(name, service, tool)
        parents = orchestra.service.parents(name)
        return {"result": content.page(orchestra.store, step, parents, skip, limit, content.parse_query(query))}

    def patch(
        request: Request,
        name: str = NamePath,
        cascade: bool = Cascade,
        changes: dict[str, Any] = Body(default_factory=dict, openapi_examples={"example": {"value": {}}}),
    ) -> dict[str, Any]:
        orchestra = _orchestra(request)
        orchestra.service.get_in(name, service, tool)
        return update_step(request, name, changes, cascade)

    def remove(request: Request, name: str = NamePath, cascade: bool = Cascade) -> dict[str, Any]:
        orchestra = _orchestra(request)
        orchestra.service.get_in(name, service, tool)
        return delete_step(request, name, cascade)

    route = _adder(api, tag)
    route(base, list_steps, "GET", f"List {service}/{tool} steps", examples.LIST)
    route(f"{base}/{{name}}", read, "GET", "Metadata and content page", examples.PAGE)
    route(f"{base}/{{name}}", patch, "PATCH", "Re-execute with changes", examples.UPDATED)
    route(f"{base}/{{name}}", remove, "DELETE", "Delete the step", examples.DELETED)
    _sub_resources(api, f"{base}/{{name}}", tag, lambda o, n: o.service.get_in(n, service, tool))


# ----- routes by name ------------------------------------------------------------------------------


def _by_name_routes(api: APIRouter) -> None:
    tag = "steps"

    def list_all(
        request: Request,
        service: str | None = None,
        tool: str | None = None,
        status: str | None = None,
        skip: int = Skip,
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
        steps = orchestra.service.list_steps(service=service, tool=tool, status=status, skip=skip, limit=limit)
        return {"result": [_document(orchestra, s) for s in steps]}

    def read(request: Request, name: str = NamePath) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
        return {"result": _document(orchestra, orchestra.service.get(name))}

    def patch(
        request: Request,
        name: str = NamePath,
        cascade: bool = Cascade,
        changes: dict[str, Any] = Body(default_factory=dict),
    ) -> dict[str, Any]:
        return update_step(request, name, changes, cascade)

    def remove(request: Request, name: str = NamePath, cascade: bool = Cascade) -> dict[str, Any]:
        return delete_step(request, name, cascade)

    def lineage(request: Request, name: str = NamePath) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
        steps, edges = orchestra.service.lineage(name)
        return {
            "result": {
                "nodes": [_document(orchestra, s) for s in steps],
                "edges": [{"parent": e.parent, "child": e.child, "reference": e.reference} for e in edges],
            }
        }

    def health(request: Request) -> dict[str, Any]:
        from automl_orchestra import __version__

        orchestra = _orchestra(request)
        return {"result": {"status": "ok", "version": __version__, "instance": orchestra.scheduler.instance_id}}

    _adder(api, "service")("/health", health, "GET", "Liveness", examples.HEALTH)
    route = _adder(api, tag)
    route("/steps", list_all, "GET", "List steps of every kind", examples.LIST)
    route("/steps/{name}", read, "GET", "Metadata of a step", {"result": examples.METADATA})
    route("/steps/{name}", patch, "PATCH", "Re-execute with changes", examples.UPDATED)
    route("/steps/{name}", remove, "DELETE", "Delete a step", examples.DELETED)
    route("/lineage/{name}", lineage, "GET", "Ancestors and dependents", examples.LINEAGE)
    _sub_resources(api, "/steps/{name}", tag, lambda o, n: o.service.get(n))


def _sub_resources(api: APIRouter, base: str, tag: str, find: Callable[[Any, str], Step]) -> None:
    def runs(request: Request, name: str = NamePath) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
        find(orchestra, name)
        return {"result": [run_document(r) for r in orchestra.service.runs(name)]}

    def logs(request: Request, name: str = NamePath, run: int | None = Query(None, ge=1)) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
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

    def artifacts(request: Request, name: str = NamePath) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
        step = find(orchestra, name)
        return {"result": _artifact_list(orchestra, step)}

    def download(
        request: Request, name: str = NamePath, file: str = Path(description="a name from the listing")
    ) -> StreamingResponse:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "viewer")
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

    def cancel(request: Request, name: str = NamePath) -> dict[str, Any]:
        orchestra = _orchestra(request)
        require(request, orchestra.settings, "editor")
        find(orchestra, name)
        return {"result": _document(orchestra, orchestra.service.cancel(name))}

    route = _adder(api, tag)
    route(f"{base}/runs", runs, "GET", "Every run of the step", examples.RUNS)
    route(f"{base}/logs", logs, "GET", "Captured stdout/stderr of a run", examples.LOGS)
    route(f"{base}/artifacts", artifacts, "GET", "Output files", examples.ARTIFACTS)
    api.add_api_route(
        f"{base}/artifacts/{{file:path}}",
        download,
        methods=["GET"],
        tags=[tag],
        summary="Download an output file",
        responses={200: {"content": {"application/octet-stream": {}, "image/png": {}}}},
    )
    route(f"{base}/cancel", cancel, "POST", "Stop a pending or running step", examples.CANCELLED)


def _adder(api: APIRouter, tag: str) -> Callable[[str, Callable[..., Any], str, str, Any], None]:
    """Register a JSON route with its summary and a response example (shown in /docs)."""

    def add(path: str, endpoint: Callable[..., Any], method: str, summary: str, example: Any) -> None:
        api.add_api_route(path, endpoint, methods=[method], tags=[tag], summary=summary, responses=examples.ok(example))

    return add


# ----- shared handlers -----------------------------------------------------------------------------


def update_step(request: Request, name: str, changes: dict[str, Any], cascade: bool) -> dict[str, Any]:
    orchestra = _orchestra(request)
    role = require(request, orchestra.settings, "editor")
    step = orchestra.service.get(name)
    if catalog.runs_code(step.service, step.tool):
        require_code(role, orchestra.settings)
    if step.owner:
        raise ApiError(409, f"{name!r} is produced by step {step.owner!r}: re-execute that step instead")
    if step.service == "dataset":
        parameters = datasets.patched_parameters(step.parameters, changes, orchestra.settings)
    else:
        merged = {**step.parameters, **changes}
        body = _validated(body_model(step.service, step.tool), {**merged, "name": name})
        _check_body(step.service, step.tool, body, orchestra.settings)
        parameters = body.to_parameters()
    updated = orchestra.service.update(name, parameters, cascade)
    return {"result": step_url(updated)}


def delete_step(request: Request, name: str, cascade: bool) -> dict[str, Any]:
    orchestra = _orchestra(request)
    require(request, orchestra.settings, "editor")
    deleted = orchestra.service.delete(name, cascade)
    return {"result": f"deleted {', '.join(deleted)}"}


def _document(orchestra: Any, step: Step) -> dict[str, Any]:
    return step_document(step, orchestra.service.parents(step.name))


def _artifact_list(orchestra: Any, step: Step) -> list[dict[str, Any]]:
    if not step.output:
        return []
    prefix = step.output["prefix"]
    return [{"name": n, "size": orchestra.store.size(f"{prefix}/{n}")} for n in orchestra.store.list_files(prefix)]


def _chunks(handle: Any, size: int = 1 << 20) -> Any:
    with handle:
        while chunk := handle.read(size):
            yield chunk
