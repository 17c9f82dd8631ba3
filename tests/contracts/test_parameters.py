"""One request model per tool, read the same way by the API (a body) and by the worker (the stored
parameters): what the API stores, the worker reads back unchanged."""

from __future__ import annotations

import pytest

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.parameters import StepBody
from automl_orchestra.engines.core.requests import request_model

ROUTES = sorted(
    (service, spec.name) for spec in catalog.TOOLS.values() if spec.implementation for service in spec.services
)


def test_every_route_has_a_request_model() -> None:
    assert len(ROUTES) > 40
    for service, tool in ROUTES:
        assert issubclass(request_model(service, tool), StepBody), (service, tool)


@pytest.mark.parametrize(("service", "tool"), ROUTES)
def test_the_worker_reads_what_the_api_stored(service: str, tool: str) -> None:
    model = request_model(service, tool)
    assert model.example, f"{model.__name__} has no example body"
    stored = model.model_validate(model.example).to_parameters()
    read = model.for_job(model.example["name"], stored)
    assert read.to_parameters() == stored
    assert read.name == model.example["name"]


def test_a_tool_names_its_own_model_in_the_catalog() -> None:
    assert request_model("transform", "projection").__name__ == "ProjectionBody"
    assert request_model("automl", "autokeras").__name__ == "AutoKerasBody"
    assert request_model("automl", "flaml").__name__ == "AutoMLBody"  # the family
    with pytest.raises(KeyError, match="has no request model"):
        request_model("nas", "scikitlearn")
