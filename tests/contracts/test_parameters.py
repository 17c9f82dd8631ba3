"""One request model per tool, read the same way by the API (a body) and by the worker (the stored
parameters): what the API stores, the worker reads back unchanged."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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


def test_a_dataset_step_reads_the_source_the_server_wrote() -> None:
    from automl_orchestra.contracts.parameters import DatasetBody, PathSource, UploadSource, UrlSource

    upload = {"kind": "upload", "key": "steps/d/source-1/t.csv", "filename": "t.csv", "sizeBytes": 12}
    stored = {"separator": ";", "source": upload}
    read = DatasetBody.for_job("d", stored)
    assert isinstance(read.source, UploadSource) and read.source.key == upload["key"]
    assert read.to_parameters() == {**stored, "header": True, "encoding": "utf-8"}
    assert isinstance(DatasetBody.for_job("d", {"source": {"kind": "path", "path": "/data/t.csv"}}).source, PathSource)
    # A step stored by an older version may hold a bare URL.
    bare = DatasetBody.for_job("d", {"source": "https://example.org/t.csv"}).source
    assert isinstance(bare, UrlSource) and bare.url == "https://example.org/t.csv"
    with pytest.raises(ValidationError):
        DatasetBody.for_job("d", {"source": {"kind": "ftp", "url": "ftp://example.org/t.csv"}})
    schema = DatasetBody.model_json_schema()["properties"]["source"]
    assert schema["readOnly"] is True and "set by the server" in schema["description"]


def test_the_split_reads_the_fields_the_compare_server_wrote() -> None:
    from automl_orchestra.engines.builtin.parameters import SplitBody

    stored = {"parentName": "train", "target": "Survived", "task": "classification", "holdout": 0.25, "seed": 7}
    read = SplitBody.for_job("c_split", stored)
    assert (read.target, read.holdout, read.seed, read.stratify) == ("Survived", 0.25, 7, True)
    with pytest.raises(ValidationError):
        SplitBody.for_job("c_split", {**stored, "holdout": 1.5})


def test_an_unknown_cast_type_names_the_field() -> None:
    from automl_orchestra.contracts.parameters import DatasetBody

    with pytest.raises(ValidationError, match="field 'Age': unknown type 'complex'"):
        DatasetBody.model_validate({"name": "d", "url": "https://example.org/t.csv", "types": {"Age": "complex"}})
