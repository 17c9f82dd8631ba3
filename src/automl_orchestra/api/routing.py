"""How the JSON routes of a router are registered: one place for their summary, documented example answer
and the role they need (a dependency, settled before the route looks anything up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.params import Depends as DependsParam

from automl_orchestra.api import examples
from automl_orchestra.api.dependencies import require_editor, require_viewer

VIEWER: list[DependsParam] = [Depends(require_viewer)]
EDITOR: list[DependsParam] = [Depends(require_editor)]

RouteAdder = Callable[[str, Callable[..., Any], str, str, Any, list[DependsParam]], None]


def json_routes(api: APIRouter, tag: str) -> RouteAdder:
    """``add(path, endpoint, method, summary, example, dependencies)`` for routes of ``api`` under ``tag``;
    ``dependencies`` is ``[]`` where a parameter of the endpoint carries the role."""

    def add(
        path: str,
        endpoint: Callable[..., Any],
        method: str,
        summary: str,
        example: Any,
        dependencies: list[DependsParam],
    ) -> None:
        api.add_api_route(
            path,
            endpoint,
            methods=[method],
            tags=[tag],
            summary=summary,
            responses=examples.ok(example),
            dependencies=dependencies,
        )

    return add
