"""The requests of ``model/pycaret`` (a PyCaret experiment) and ``automl/pycaret`` (its typed ``options``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, field_validator

from automl_orchestra.contracts.parameters import AutoMLBody, ModelBody


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


class PycaretOptions(BaseModel):
    """``options`` of ``automl/pycaret``: keyword arguments for PyCaret's ``setup`` and ``compare_models``,
    and whether to refit the winner on every row.

    Other keys are ignored, as they always were.
    """

    model_config = ConfigDict(extra="ignore")

    setup: dict[str, Any] = Field(default_factory=dict, description="passed to setup (data and target are set)")
    compare_models: dict[str, Any] = Field(
        default_factory=dict, description="include / exclude / turbo and create_model's keyword arguments"
    )
    finalize: StrictBool = Field(default=True, description="refit the winner on every row when the budget allows")

    @field_validator("setup", "compare_models", mode="before")
    @classmethod
    def _absent_section(cls, value: Any) -> Any:
        # A section given as null means "nothing to pass", as an absent one does.
        return {} if value is None else value

    @field_validator("finalize", mode="before")
    @classmethod
    def _absent_finalize(cls, value: Any) -> Any:
        return True if value is None else value


class PycaretAutoMLBody(AutoMLBody):
    """``automl/pycaret``: the declarative AutoML body, its ``options`` sections typed (a wrong type is a 422)."""

    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_pycaret",
        "parentName": "titanic_train",
        "target": "Survived",
        "timeBudget": 120,
        "options": {"compare_models": {"exclude": ["catboost"]}, "finalize": True},
    }

    # The shared body takes options as a free mapping; PyCaret's are known, so they are checked at POST.
    options: PycaretOptions = Field(  # type: ignore[assignment]
        default_factory=PycaretOptions, description="setup / compare_models / finalize"
    )
