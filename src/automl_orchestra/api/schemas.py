"""Request bodies, one model per service, with the Learning Orchestra field names as aliases.

``parameters()`` gives the canonical parameter dict that is stored on the step and handed to workers.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from automl_orchestra.contracts.references import NAME_PATTERN

NAME_FIELD_DOC = f"step name, unique, matching ^{NAME_PATTERN}$"
COMMON_FIELDS = frozenset({"name", "description", "cache", "retryable", "limits"})


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    timeoutS: float | None = Field(default=None, gt=0, description="wall-time limit of a run, seconds")
    memoryMb: int | None = Field(default=None, gt=0, description="memory limit of the worker process tree")
    cpus: int | None = Field(default=None, ge=1, le=256, description="CPU threads the step may use")
    gpus: float | None = Field(default=None, ge=0, le=64, description="GPUs the step needs (Ray executor)")


class StepBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    example: ClassVar[dict[str, Any]] = {}

    name: str = Field(description=NAME_FIELD_DOC, pattern=f"^{NAME_PATTERN}$")
    description: str = Field(default="", max_length=10_000)
    cache: bool = Field(default=False, description="reuse a finished run with the same fingerprint")
    retryable: bool = Field(default=False, description="re-queue once if the server dies mid-run")
    limits: Limits = Field(default_factory=Limits)
    drivenBy: str | None = Field(
        default=None,
        pattern=f"^{NAME_PATTERN}$",
        description="set by a driver step (automl/nas) on the steps it creates: lineage only, not an input",
    )

    def to_parameters(self) -> dict[str, Any]:
        data = self.model_dump(exclude=set(COMMON_FIELDS), exclude_none=True)
        if "class_" in data:
            data["class"] = data.pop("class_")
        return data


class DatasetBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_train",
        "url": "https://example.org/titanic/train.csv",
    }

    name: str = Field(
        description=NAME_FIELD_DOC,
        pattern=f"^{NAME_PATTERN}$",
        validation_alias=AliasChoices("name", "datasetName"),
    )
    url: str | None = Field(default=None, validation_alias=AliasChoices("url", "datasetURI"), max_length=4096)
    path: str | None = Field(default=None, description="a file under a configured import directory")
    separator: str = Field(default=",", min_length=1, max_length=1)
    header: bool = True
    columns: list[str] | None = Field(default=None, description="column names when the file has no header")
    types: dict[str, Literal["number", "integer", "string", "boolean"]] | None = None
    encoding: str = "utf-8"
    columnId: str | None = Field(default=None, description="dataset/timeseries long CSV: the series id column (id)")
    columnSort: str | None = Field(default=None, description="dataset/timeseries long CSV: the time column (time)")


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


class ModelBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_gb",
        "modulePath": "sklearn.ensemble",
        "class": "GradientBoostingClassifier",
        "classParameters": {"n_estimators": 200, "random_state": 1},
    }

    name: str = Field(
        description=NAME_FIELD_DOC,
        pattern=f"^{NAME_PATTERN}$",
        validation_alias=AliasChoices("name", "modelName"),
    )
    modulePath: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
    class_: str = Field(
        validation_alias=AliasChoices("class", "className", "class_"),
        serialization_alias="class",
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
    )
    classParameters: dict[str, Any] = Field(default_factory=dict)


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


class MethodBody(StepBody):
    """train / tune / evaluate / predict / transform by a tool: call ``method`` on ``parentName``'s object."""

    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_gb_trained",
        "parentName": "titanic_gb",
        "method": "fit",
        "methodParameters": {"X": "$titanic_X", "y": "$titanic_y.Survived"},
    }

    parentName: str
    modelName: str | None = Field(default=None, description="the original model step (informational)")
    method: str | None = Field(
        default=None,
        validation_alias=AliasChoices("method", "methodName"),
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
    )
    methodParameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("methodParameters", "parameters")
    )


class EvaluateBody(MethodBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_gb_evaluated",
        "parentName": "titanic_gb_trained",
        "method": "score",
        "methodParameters": {"X": "$test_X", "y": "$test_y.Survived"},
        "metrics": ["accuracy", "f1"],
    }

    metrics: list[str] | None = Field(default=None, description="scikit-learn scorer names, e.g. accuracy, f1")


class ExploreToolBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_importance",
        "modulePath": "sklearn.inspection",
        "method": "permutation_importance",
        "methodParameters": {"estimator": "$titanic_gb_trained", "X": "$test_X", "y": "$test_y.Survived"},
    }

    parentName: str | None = None
    modulePath: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
    class_: str | None = Field(
        default=None,
        validation_alias=AliasChoices("class", "className", "class_"),
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
    )
    method: str = Field(validation_alias=AliasChoices("method", "methodName"), pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    methodParameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("methodParameters", "parameters")
    )


class AutoMLBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_flaml",
        "parentName": "titanic_train",
        "target": "Survived",
        "task": "classification",
        "timeBudget": 60,
        "metric": "accuracy",
        "seed": 1,
    }

    parentName: str = Field(validation_alias=AliasChoices("parentName", "datasetName"))
    target: str = Field(min_length=1)
    task: Literal["classification", "regression"] = "classification"
    timeBudget: float = Field(default=60.0, gt=0, le=7 * 24 * 3600, description="seconds")
    metric: str = "auto"
    seed: int = 1
    options: dict[str, Any] = Field(default_factory=dict, description="passed through to the engine")
    autoExclude: bool = Field(default=True, description="exclude identifier-like and free-text columns")
    excludeColumns: list[str] = Field(default_factory=list)
    keepColumns: list[str] = Field(default_factory=list)
    # Search controls; an engine uses those it has a meaning for (see docs/api.md).
    parallelTrials: int = Field(default=1, ge=1, le=1024, description="trials evaluated at once (distributed)")
    generations: int | None = Field(default=None, ge=1, description="evolutionary engines: generations")
    populationSize: int | None = Field(default=None, ge=2, description="evolutionary engines: population size")
    cv: int | None = Field(default=None, ge=2, le=100, description="cross-validation folds")
    scoring: str | None = Field(default=None, description="engine-specific scoring name (defaults to metric)")


class AutoKerasBody(AutoMLBody):
    """``automl/autokeras``: a neural architecture search on images (named arrays, or a table of pixel
    columns with ``imageShape``) or on a numeric table."""

    example: ClassVar[dict[str, Any]] = {
        "name": "mnist_automl",
        "parentName": "mnist_load_data",
        "inputKey": "train_images",
        "target": "train_labels",
        "task": "classification",
        "timeBudget": 600,
        "maxTrials": 3,
        "epochs": 10,
    }

    maxTrials: int = Field(default=3, ge=1, le=1000, description="architectures tried at most")
    epochs: int = Field(default=10, ge=1, le=10_000, description="training epochs of each trial")
    trialTimeout: float | None = Field(default=None, gt=0, description="seconds one trial may run")
    validationSplit: float = Field(default=0.1, gt=0, lt=0.9, description="share of rows that score the trials")
    batchSize: int | None = Field(default=None, ge=1, le=65_536, description="training batch size (AutoKeras: 32)")
    refit: bool = Field(
        default=True, description="retrain the best architecture on every row when that fits in the budget, and keep it"
    )
    inputKey: str | None = Field(default=None, description="parentName holds named arrays: the inputs' key")
    imageShape: list[int] | None = Field(
        default=None, min_length=2, max_length=3, description="flat pixel columns as images, e.g. [28, 28]"
    )


class CompareBody(AutoMLBody):
    """``automl/compare``: the same dataset through several automl engines (same split, metric, seed and
    budget each). ``options`` is keyed by engine. ``candidates`` / ``holdoutData`` / ``skipped`` are filled
    by the server when it expands the comparison into its steps."""

    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_compare",
        "parentName": "titanic_train",
        "target": "Survived",
        "timeBudget": 60,
        "metric": "roc_auc",
        "engines": ["flaml", "autogluon", "h2o"],
    }

    engines: list[str] | None = Field(
        default=None, min_length=1, max_length=16, description="automl tools to compare (default: every installed)"
    )
    holdout: float = Field(default=0.2, gt=0.0, lt=1.0, description="share of rows held out to score every engine")
    candidates: dict[str, str] | None = Field(default=None, description="engine -> '$step' (set by the server)")
    holdoutData: str | None = Field(default=None, description="'$step' of the holdout rows (set by the server)")
    skipped: dict[str, str] | None = Field(default=None, description="engine -> why it was left out (server)")


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


class CodeBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_summary",
        "code": "response = {'rows': len(train), 'survived': int(train['Survived'].sum())}",
        "parameters": {"train": "$titanic_train"},
    }

    code: str | None = Field(default=None, validation_alias=AliasChoices("code", "function"), max_length=1_000_000)
    codeUrl: str | None = Field(default=None, validation_alias=AliasChoices("codeUrl", "functionUrl"))
    parameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("parameters", "functionParameters")
    )

    @field_validator("parameters")
    @classmethod
    def _identifiers(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [key for key in value if not key.isidentifier() or key.startswith("__")]
        if bad:
            raise ValueError(f"parameter names must be Python identifiers: {bad}")
        return value


# ``model/{tool}`` bodies of tools whose models are not "modulePath + class" constructors.
MODEL_BODIES: dict[str, type[StepBody]] = {"pycaret": ExperimentBody}
# ``automl/{tool}`` bodies that extend the declarative AutoMLBody with engine-specific fields (one line each).
AUTOML_BODIES: dict[str, type[StepBody]] = {
    "autokeras": AutoKerasBody,
    "compare": CompareBody,
    "nas": NasSearchBody,
}
# ``nas/{tool}`` bodies: AMLA's Generate, Train and Evaluate services.
NAS_BODIES: dict[str, type[StepBody]] = {
    "generate": NasGenerateBody,
    "train": NasTrainBody,
    "evaluate": NasEvaluateBody,
}


def body_model(service: str, tool: str) -> type[StepBody]:
    """The request model of ``/{service}/{tool}``."""
    if service == "dataset":
        return DatasetBody
    if service == "transform":
        transforms: dict[str, type[StepBody]] = {"projection": ProjectionBody, "dataType": DataTypeBody}
        return transforms.get(tool, MethodBody)
    if service == "explore":
        return HistogramBody if tool == "histogram" else ExploreToolBody
    if service == "model":
        return MODEL_BODIES.get(tool, ModelBody)
    if service == "evaluate":
        return EvaluateBody
    if service in {"train", "tune", "predict"}:
        return MethodBody
    if service == "automl":
        return AUTOML_BODIES.get(tool, AutoMLBody)
    if service == "nas":
        return NAS_BODIES[tool]
    return CodeBody


class PageQuery(BaseModel):
    skip: int = Field(default=0, ge=0)
    limit: int = Field(default=20, ge=1, le=100)
