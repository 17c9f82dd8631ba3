"""Requests of the NAS tools: ``nas/generate``, ``nas/train``, ``nas/evaluate`` and the ``automl/nas`` search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from automl_orchestra.contracts.parameters import Limits, StepBody

if TYPE_CHECKING:
    from automl_orchestra.nas.constraints import Constraints
    from automl_orchestra.nas.data import DataSettings


class NasControl(BaseModel):
    """Control parameters of a NAS trial (AMLA's "control parameters"): only the given ones override."""

    model_config = ConfigDict(extra="forbid")

    epochs: int | None = Field(default=None, ge=1, le=1000)
    batchSize: int | None = Field(default=None, ge=1, le=65536)
    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    learningRate: float | None = Field(default=None, gt=0, le=10)
    momentum: float | None = Field(default=None, ge=0, le=1)
    weightDecay: float | None = Field(default=None, ge=0, le=1)
    schedule: Literal["constant", "cosine", "step"] | None = None
    maxSeconds: float | None = Field(default=None, gt=0, description="stop training after the epoch that passes it")


class NasConstraints(BaseModel):
    """Resource constraints checked on a network's instrumentation (see docs/nas.md)."""

    model_config = ConfigDict(extra="forbid")

    maxParameters: int | None = Field(default=None, gt=0)
    maxMultiplyAdds: int | None = Field(default=None, gt=0)
    maxLatencyMs: float | None = Field(default=None, gt=0, description="inference latency per sample, ms")
    mode: Literal["reject", "penalize"] = "reject"
    penalty: float = Field(default=1.0, ge=0, description="penalize mode: score lost per 100 % over a limit")

    def checker(self) -> Constraints:
        """The NAS library's constraints (imported here, so the API that validates bodies never loads it)."""
        from automl_orchestra.nas.constraints import Constraints

        limits = {
            "maxParameters": self.maxParameters,
            "maxMultiplyAdds": self.maxMultiplyAdds,
            "maxLatencyMs": self.maxLatencyMs,
        }
        given = {name: float(value) for name, value in limits.items() if value is not None}
        return Constraints(given, self.mode, self.penalty)


class NasDataFields(StepBody):
    """How a NAS step reads and splits its data (the same settings give the same split everywhere)."""

    target: str | None = Field(default=None, description="label column of a table, or label array of an .npz")
    inputShape: list[int] | None = Field(
        default=None, min_length=1, max_length=3, description="reshape each row, e.g. [1, 28, 28] for pixel tables"
    )
    testSize: float = Field(default=0.2, gt=0, lt=1)
    validationSize: float = Field(default=0.1, ge=0, lt=1)
    maxRows: int | None = Field(default=None, ge=4, description="use a seeded random subset of this many rows")
    seed: int = 1

    def data_fields(self) -> dict[str, Any]:
        """These settings as request fields, to hand the same data and split to another NAS step."""
        return {name: getattr(self, name) for name in NasDataFields.model_fields if name not in StepBody.model_fields}

    def data_settings(self) -> DataSettings:
        """The NAS library's data settings (imported here, so the API that validates bodies never loads it)."""
        from automl_orchestra.nas.data import DataSettings

        return DataSettings(
            target=self.target,
            input_shape=tuple(self.inputShape) if self.inputShape else None,
            test_size=self.testSize,
            validation_size=self.validationSize,
            max_rows=self.maxRows,
            seed=self.seed,
        )


class NasSpaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["image", "tabular"] | None = None
    inputShape: list[int] = Field(min_length=1, max_length=3)
    classes: int = Field(ge=2)
    control: NasControl = Field(default_factory=NasControl)


class NasGenerateBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "digits_gen_1",
        "generator": "evolution",
        "space": {"inputShape": [1, 8, 8], "classes": 10, "control": {"epochs": 2}},
        "history": [],
        "seed": 1,
    }

    generator: str = Field(default="random", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    space: NasSpaceBody
    history: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    seed: int = 1
    options: dict[str, Any] = Field(default_factory=dict, description="generator options, e.g. populationSize")
    constraints: NasConstraints | None = Field(
        default=None, description="reject mode: proposals over maxParameters / maxMultiplyAdds are redrawn"
    )


class NasTrainBody(NasDataFields):
    example: ClassVar[dict[str, Any]] = {
        "name": "digits_net_1",
        "spec": "$digits_gen_1.spec",
        "data": "$digits",
        "target": "label",
        "inputShape": [1, 8, 8],
        "constraints": {"maxParameters": 20000, "mode": "reject"},
    }

    spec: dict[str, Any] | str = Field(description="a model spec (docs/nas.md) or a reference to one")
    data: str = Field(pattern=r"^\$", description='reference to the dataset step, e.g. "$digits"')
    control: NasControl = Field(default_factory=NasControl)
    constraints: NasConstraints = Field(default_factory=NasConstraints)

    @field_validator("spec")
    @classmethod
    def _valid_spec(cls, value: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(value, str):
            if not value.startswith("$"):
                raise ValueError("spec must be a model spec object or a reference like '$step.spec'")
            return value
        from automl_orchestra.nas.spec import SpecError, validate  # jsonschema only, no ML library

        try:
            validate(value)
        except SpecError as exc:
            raise ValueError(str(exc)) from exc
        return value


class NasEvaluateBody(StepBody):
    example: ClassVar[dict[str, Any]] = {"name": "digits_eval_1", "parentName": "digits_net_1", "data": "$digits"}

    parentName: str = Field(description="the nas/train step")
    data: str = Field(pattern=r"^\$", description="reference to the same dataset step the network trained on")
    constraints: NasConstraints | None = None


class NasSearchBody(NasDataFields):
    example: ClassVar[dict[str, Any]] = {
        "name": "digits_nas",
        "parentName": "digits",
        "target": "label",
        "inputShape": [1, 8, 8],
        "generators": ["random", "evolution", "tpe"],
        "trials": 8,
        "timeBudget": 300,
        "control": {"epochs": 3, "batchSize": 64},
        "constraints": {"maxParameters": 20000, "mode": "reject"},
    }

    parentName: str = Field(validation_alias=AliasChoices("parentName", "datasetName"))
    generators: list[str] = Field(default_factory=lambda: ["random", "evolution"], min_length=1, max_length=16)
    trials: int = Field(default=10, ge=1, le=10_000, description="trials per generator")
    timeBudget: float = Field(default=600.0, gt=0, le=7 * 24 * 3600, description="seconds per generator")
    control: NasControl = Field(default_factory=NasControl)
    constraints: NasConstraints = Field(default_factory=NasConstraints)
    generatorOptions: dict[str, dict[str, Any]] = Field(default_factory=dict)
    childLimits: Limits = Field(default_factory=Limits, description="limits of each child step")

    @field_validator("generators")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value) or any(not v.isidentifier() for v in value):
            raise ValueError("generators must be distinct names like 'random', 'evolution', 'tpe'")
        return value
