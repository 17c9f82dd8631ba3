"""Requests of the built-in tools with fields of their own: ``transform/projection``, ``transform/dataType``,
``explore/histogram``."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field

from automl_orchestra.contracts.parameters import NAME_FIELD_DOC, StepBody
from automl_orchestra.contracts.references import NAME_PATTERN


class ProjectionBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_features",
        "parentName": "titanic_train",
        "fields": ["Pclass", "Sex", "Age", "Fare", "Survived"],
    }

    name: str = Field(
        description=NAME_FIELD_DOC,
        pattern=f"^{NAME_PATTERN}$",
        validation_alias=AliasChoices("name", "outputDatasetName"),
    )
    parentName: str = Field(validation_alias=AliasChoices("parentName", "inputDatasetName", "datasetName"))
    fields: list[str] = Field(min_length=1, validation_alias=AliasChoices("fields", "names"))


class DataTypeBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_typed",
        "parentName": "titanic_train",
        "types": {"Age": "number", "Fare": "number", "Pclass": "number"},
    }

    name: str = Field(
        description=NAME_FIELD_DOC,
        pattern=f"^{NAME_PATTERN}$",
        validation_alias=AliasChoices("name", "outputDatasetName"),
    )
    parentName: str = Field(validation_alias=AliasChoices("parentName", "inputDatasetName", "datasetName"))
    types: dict[str, Literal["number", "integer", "string", "boolean"]] = Field(min_length=1)


class HistogramBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_histogram",
        "parentName": "titanic_train",
        "fields": ["Age", "Sex"],
    }

    name: str = Field(
        description=NAME_FIELD_DOC,
        pattern=f"^{NAME_PATTERN}$",
        validation_alias=AliasChoices("name", "outputDatasetName"),
    )
    parentName: str = Field(validation_alias=AliasChoices("parentName", "inputDatasetName", "datasetName"))
    fields: list[str] | None = Field(default=None, validation_alias=AliasChoices("fields", "names"))
    bins: int = Field(default=10, ge=1, le=1000)
