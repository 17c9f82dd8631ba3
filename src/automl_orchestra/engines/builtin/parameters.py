"""Requests of the built-in tools with fields of their own: ``transform/projection``, ``transform/dataType``,
``explore/histogram``, ``transform/split``."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, field_validator

from automl_orchestra.contracts.parameters import (
    MAX_COLUMNS,
    NAME_FIELD_DOC,
    SET_BY_SERVER,
    MethodBody,
    StepBody,
    TableType,
    known_table_types,
)
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
    # Learning Orchestra changes the types of a projection in place (``PATCH /transform/dataType``): the
    # projection is re-executed with its fields cast as they are copied.
    types: dict[str, TableType] | None = Field(
        default=None, max_length=MAX_COLUMNS, description="cast these fields (number, integer, string, boolean)"
    )

    _known_types = field_validator("types", mode="before")(known_table_types)


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
    types: dict[str, TableType] = Field(min_length=1)

    _known_types = field_validator("types", mode="before")(known_table_types)


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


class SplitBody(MethodBody):
    """``transform/split``: the train/holdout split ``automl/compare`` puts before its engines. The server
    writes the split fields from the comparison's own (already validated) body; ``method`` and
    ``methodParameters`` are accepted as for any transform and not used."""

    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_compare_split",
        "parentName": "titanic_train",
        "target": "Survived",
        "task": "classification",
        "holdout": 0.2,
        "seed": 1,
    }

    target: str | None = Field(default=None, min_length=1, description=f"{SET_BY_SERVER}: the column to stratify on")
    task: Literal["classification", "regression"] = Field(
        default="classification", description=f"{SET_BY_SERVER}: only classification is stratified"
    )
    holdout: float = Field(default=0.2, gt=0.0, lt=1.0, description=f"{SET_BY_SERVER}: share of rows held out")
    seed: int = Field(default=1, description=f"{SET_BY_SERVER}: the split's random seed")
    stratify: bool = Field(default=True, description=f"{SET_BY_SERVER}: keep class shares in both parts")
