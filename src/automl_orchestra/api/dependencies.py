"""What routes depend on: the orchestra they work on, the caller's role, and the checks every step a request
creates goes through.

Roles are FastAPI dependencies, so they are settled before a route's body runs: authentication and
authorization always come before a step is looked up, and a caller without the right token learns nothing
about which steps exist. ``Orchestra`` lives here (``app`` re-exports it) because the routes that depend on
it are imported by ``app``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from automl_orchestra.api import auth
from automl_orchestra.api.errors import ApiError
from automl_orchestra.config import Settings
from automl_orchestra.contracts import catalog, code_policy
from automl_orchestra.contracts.budget import budget_reserve_s, timeout_for_budget
from automl_orchestra.contracts.parameters import AutoMLBody, StepBody
from automl_orchestra.contracts.source_policy import check_code_url
from automl_orchestra.runtime.events import EventHub
from automl_orchestra.runtime.scheduler import Scheduler
from automl_orchestra.runtime.serving_pool import ServingPools
from automl_orchestra.steps.service import NewStep, StepService
from automl_orchestra.store.artifacts import ArtifactStore


@dataclass
class Orchestra:
    settings: Settings
    database: Engine
    sessions: sessionmaker[Session]
    store: ArtifactStore
    hub: EventHub
    service: StepService
    scheduler: Scheduler


# The dependencies below do no I/O: they are coroutines so that FastAPI calls them in the event loop, not in a
# worker thread (a thread hop per dependency is a large share of a prediction's time).


async def get_orchestra(request: Request) -> Orchestra:
    orchestra: Orchestra = request.app.state.orchestra
    return orchestra


OrchestraDep = Annotated[Orchestra, Depends(get_orchestra)]


def serving_of(request: Request) -> ServingPools:
    serving: ServingPools = request.app.state.serving
    return serving


async def get_serving(request: Request) -> ServingPools:
    return serving_of(request)


ServingDep = Annotated[ServingPools, Depends(get_serving)]


# ----- roles ----------------------------------------------------------------------------------------


def require_role(minimum: str) -> Callable[[Request, Orchestra], Awaitable[str]]:
    """A dependency that answers 401/403 unless the caller has ``minimum`` or a higher role; its value is
    the caller's role."""
    if minimum not in auth.RANK:
        raise ValueError(f"unknown role {minimum!r}")

    async def role(request: Request, orchestra: OrchestraDep) -> str:
        return auth.require(request, orchestra.settings, minimum)

    role.__name__ = f"require_{minimum}"
    return role


# One callable per role: FastAPI runs a dependency once per request per callable.
require_viewer = require_role("viewer")
require_editor = require_role("editor")

ViewerRole = Annotated[str, Depends(require_viewer)]
EditorRole = Annotated[str, Depends(require_editor)]


async def require_code_role(role: EditorRole, orchestra: OrchestraDep) -> str:
    """An editor (or higher) whose role may also run code: for routes whose steps are code steps."""
    auth.require_code(role, orchestra.settings)
    return role


CodeRole = Annotated[str, Depends(require_code_role)]


def creator_role(service: str, tool: str) -> Callable[..., Awaitable[str]]:
    """The role dependency of a route that creates or changes ``service/tool`` steps."""
    return require_code_role if catalog.runs_code(service, tool) else require_editor


# ----- checks every created step goes through (one step, or each step of an expansion) ----------------


def checked_step(
    settings: Settings,
    role: str,
    service: str,
    tool: str,
    body: StepBody,
    parameters: dict[str, Any],
    description: str | None = None,
) -> NewStep:
    """The step ``body`` asks for, after the code-role, limits and body checks; its limits carry the timeout
    decided for an automl budget (see :func:`budget_timeout`)."""
    if catalog.runs_code(service, tool):
        auth.require_code(role, settings)
    limits, decided = step_limits(body, settings)
    allow_code = may_run_code(role, settings)
    check_body(service, tool, body, settings, allow_code=allow_code)
    meta: dict[str, Any] = {"timeout": decided} if decided else {}
    if allow_code:
        meta[code_policy.ALLOW_CODE_META] = True
    return NewStep(
        service=service,
        tool=tool,
        name=body.name,
        parameters=parameters,
        description=body.description if description is None else description,
        cache=body.cache,
        retryable=body.retryable,
        limits=limits,
        meta=meta,
    )


def may_run_code(role: str, settings: Settings) -> bool:
    """Whether ``role`` may run code on this server (code steps, and what ``contracts/code_policy.py`` denies
    to the other roles)."""
    return settings.allow_code and role in settings.code_role_set


def check_code_policy(body: StepBody) -> None:
    """403 when a role without code rights asks for what ``contracts/code_policy.py`` reserves to the code role."""
    try:
        code_policy.check_request(body)
    except code_policy.PolicyViolation as exc:
        raise ApiError(403, str(exc)) from None


def check_body(service: str, tool: str, body: StepBody, settings: Settings, *, allow_code: bool = False) -> None:
    """The body checks of a POST and a PATCH; without ``allow_code`` (a PATCH, which always runs without the
    code right) the code policy applies too."""
    if not allow_code:
        check_code_policy(body)
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
    if service == "explore" and tool != "histogram" and not (getattr(body, "parentName", None) or module_path):
        raise ApiError(422, "give 'parentName' (call a method of a step's object) or 'modulePath'")


def step_limits(body: StepBody, settings: Settings) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The step's limits within the server's maximums and, for an automl body, how its timeout was decided."""
    limits = body.limits
    if limits.timeoutS and limits.timeoutS > settings.max_step_timeout_s:
        raise ApiError(422, f"limits.timeoutS may be at most {settings.max_step_timeout_s:g} s on this server")
    if limits.memoryMb and limits.memoryMb > settings.max_step_memory_mb:
        raise ApiError(422, f"limits.memoryMb may be at most {settings.max_step_memory_mb} on this server")
    resolved = limits.model_dump(exclude_none=True)
    if not isinstance(body, AutoMLBody):
        return resolved, None
    decided = budget_timeout(body.timeBudget, limits.timeoutS, settings)
    if decided["source"] == "raised":
        resolved["timeoutS"] = decided["seconds"]
    return resolved, decided


def budget_timeout(budget: float, timeout: float | None, settings: Settings) -> dict[str, Any]:
    """Decide once, here, whether a ``budget`` search fits the step's timeout with the engine's reserve.

    An explicit ``timeout`` that is too small is the user's to fix (422); without one, the server default is
    raised to fit, up to the server's maximum. The worker then trusts the budget instead of cutting it.
    """
    needed = timeout_for_budget(budget)
    fix = f"lower timeBudget, or leave limits.timeoutS out and the server sizes it (up to {_max(settings)})"
    if timeout is not None:
        if timeout < needed:
            raise ApiError(
                422,
                f"timeBudget {budget:g} s does not fit limits.timeoutS {timeout:g} s: the step needs at least "
                f"{needed:g} s (the budget plus the engine's reserve of {budget_reserve_s(needed):g} s for loading "
                f"the data and saving the model); raise limits.timeoutS to {needed:g}, or {fix}",
            )
        return {"seconds": timeout, "source": "limits"}
    if needed <= settings.step_timeout_s:
        return {"seconds": settings.step_timeout_s, "source": "default"}
    if needed > settings.max_step_timeout_s:
        largest = settings.max_step_timeout_s - budget_reserve_s(settings.max_step_timeout_s)
        raise ApiError(
            422,
            f"timeBudget {budget:g} s needs a step timeout of {needed:g} s (the budget plus the engine's reserve), "
            f"more than this server's maximum of {_max(settings)}; lower timeBudget to at most {largest:g} s",
        )
    return {"seconds": needed, "source": "raised", "reason": f"the default timeout cannot hold timeBudget {budget:g} s"}


def check_budget_fits(body: StepBody, timeout: float) -> None:
    """422 unless an automl body's budget fits ``timeout``, a step's timeout that a PATCH cannot change."""
    if isinstance(body, AutoMLBody) and timeout < timeout_for_budget(body.timeBudget):
        largest = timeout - budget_reserve_s(timeout)
        raise ApiError(
            422,
            f"timeBudget {body.timeBudget:g} s does not fit this step's timeout of {timeout:g} s with the engine's "
            f"reserve; a re-execution keeps the step's limits: lower timeBudget to at most {largest:g} s, or create "
            "a new step",
        )


def _max(settings: Settings) -> str:
    return f"{settings.max_step_timeout_s:g} s"
