"""Step documents stay serializable whatever a stored row holds (rows written before the request limits)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from automl_orchestra.contracts.outputs import CUT, MAX_OUTPUT_DEPTH
from automl_orchestra.steps.documents import step_document
from automl_orchestra.store.models import Step


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_deep_stored_parameters_and_meta_are_cut() -> None:
    step = Step(
        name="old",
        service="model",
        tool="scikitlearn",
        status="finished",
        parameters={"classParameters": nested(300)},
        meta={"report": nested(500)},
        description="",
    )
    document = step_document(step)
    # What FastAPI does with a route's answer: pydantic gives up near 255 levels.
    text = TypeAdapter(dict[str, Any]).dump_json(document)
    assert json.loads(text)["name"] == "old"
    value, depth = document["parameters"], 0
    while isinstance(value, dict):
        value, depth = value.get("classParameters", value.get("a")), depth + 1
    assert value == CUT and depth == MAX_OUTPUT_DEPTH
