"""The request of ``model/pycaret``: a PyCaret experiment."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, Field

from automl_orchestra.contracts.parameters import ModelBody


class ExperimentBody(ModelBody):
    """``model/pycaret``: a PyCaret experiment (its class is enough; ``modulePath`` is implied)."""

    example: ClassVar[dict[str, Any]] = {"name": "titanic_experiment", "class": "ClassificationExperiment"}

    modulePath: str = Field(default="pycaret", pattern=r"^pycaret(\.[A-Za-z_][A-Za-z0-9_]*)*$")
    class_: str = Field(
        default="ClassificationExperiment",
        validation_alias=AliasChoices("class", "className", "class_"),
        serialization_alias="class",
        pattern=r"^(Classification|Regression|Clustering|Anomaly)Experiment$",
    )
