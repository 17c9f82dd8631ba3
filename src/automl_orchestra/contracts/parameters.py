"""The request of a step, one pydantic model per tool: what the API validates a body with and what the worker
reads its parameters with -- one definition of each field, with the Learning Orchestra names as aliases.

This module holds the shared envelope (``StepBody``: name, limits, cache...) and the families most tools
use as they are (datasets, reflection calls, declarative AutoML, code). A tool with fields of its own
declares its model in its engine folder (``engines/<engine>/parameters.py``, light like this module) and
names it in its catalog entry (``ToolSpec.parameters``). ``to_parameters()`` gives the canonical parameter
dict that is stored on the step and handed to workers; ``for_job`` reads it back.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from automl_orchestra.contracts.references import NAME_PATTERN

MODULE_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
CLASS_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"

NAME_FIELD_DOC = f"step name, unique, matching ^{NAME_PATTERN}$"


COMMON_FIELDS = frozenset({"name", "description", "cache", "retryable", "limits"})

# What any value of a body may hold, however it is nested (see ``StepBody._within_limits``); the API also caps
# a body's bytes and nesting depth before it is parsed (``api/limits.py``).
MAX_DEPTH = 32  # nested lists/objects, the body itself being level 1
MAX_STRING = 1_000_000  # characters of any string (a code step's ``code`` has the same maximum)
MAX_ITEMS = 100_000  # items of any list
MAX_KEYS = 10_000  # keys of any object
MAX_PARAMETERS = 1_000  # keys of methodParameters / classParameters / options / parameters
MAX_COLUMNS = 10_000  # column names in a list field (excludeColumns, keepColumns, columns...)
MAX_SHORT = 1_000  # characters of a name-like field (a column, a module path, a metric...)
MAX_URL = 4096


def check_value(value: Any, where: str = "body", depth: int = 1) -> None:
    """Raise ``ValueError`` when ``value`` exceeds the limits above or holds a NUL character (which no file
    system path or database text may hold)."""
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValueError(f"{where}: a string of {len(value)} characters; at most {MAX_STRING} are allowed")
        if "\x00" in value:
            raise ValueError(f"{where}: a NUL character is not allowed in a string")
        return
    if not isinstance(value, dict | list):
        return
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested more than {MAX_DEPTH} levels deep; at most {MAX_DEPTH} are allowed")
    if isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise ValueError(f"{where}: a list of {len(value)} items; at most {MAX_ITEMS} are allowed")
        for index, item in enumerate(value):
            check_value(item, f"{where}[{index}]", depth + 1)
        return
    if len(value) > MAX_KEYS:
        raise ValueError(f"{where}: an object of {len(value)} keys; at most {MAX_KEYS} are allowed")
    for key, item in value.items():
        check_value(key, f"{where} key", depth)
        check_value(item, f"{where}.{key}", depth + 1)


def few_parameters(value: Any) -> Any:
    """A parameters mapping of at most ``MAX_PARAMETERS`` keys."""
    if isinstance(value, dict) and len(value) > MAX_PARAMETERS:
        raise ValueError(f"{len(value)} parameters; at most {MAX_PARAMETERS} are allowed")
    return value


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    timeoutS: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="wall-time limit of a run, seconds"
    )
    memoryMb: int | None = Field(
        default=None,
        gt=0,
        le=2**40,
        description="memory limit of the step: what its processes use above the worker's size at its start",
    )
    cpus: int | None = Field(default=None, ge=1, le=256, description="CPU threads the step may use")
    gpus: float | None = Field(
        default=None, ge=0, le=64, allow_inf_nan=False, description="GPUs the step needs (Ray executor)"
    )


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

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_value(data)
        return data

    def to_parameters(self) -> dict[str, Any]:
        data = self.model_dump(exclude=set(COMMON_FIELDS), exclude_none=True)
        if "class_" in data:
            data["class"] = data.pop("class_")
        return data

    @classmethod
    def for_job(cls, step: str, parameters: dict[str, Any]) -> Self:
        """The model of a stored step's canonical parameters (``to_parameters()``), as a worker reads them.

        Raises pydantic's ``ValidationError`` when they do not fit (a step stored by an older version): the
        worker turns it into the step's error.
        """
        return cls.model_validate({**parameters, "name": step})


# The description of a field the server writes on a step (a user's body may not set it).
SET_BY_SERVER = "set by the server"

# The column types a table field can be cast to (dataset/csv ``types``, transform/dataType).
TableType = Literal["number", "integer", "string", "boolean"]


def known_table_types(value: Any) -> Any:
    """A ``types`` mapping checked before its ``TableType`` values are: an unknown type is refused with the
    field it was given for, the message the worker's cast has always given."""
    if isinstance(value, dict):
        for name, kind in value.items():
            if isinstance(kind, str) and kind not in get_args(TableType):
                raise ValueError(f"field {name!r}: unknown type {kind!r}; use one of {list(get_args(TableType))}")
    return value


class UrlSource(BaseModel):
    """A dataset file at an http(s) URL the API checked against its host policy."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["url"]
    url: str = Field(min_length=1, max_length=4096)


class UploadSource(BaseModel):
    """A dataset file the API stored in the artifact store from a multipart upload."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["upload"]
    key: str = Field(min_length=1, max_length=MAX_URL, description="artifact-store key of the uploaded file")
    filename: str | None = Field(default=None, max_length=MAX_SHORT, description="the upload's (sanitised) file name")
    sizeBytes: int | None = Field(default=None, ge=0)


class PathSource(BaseModel):
    """A dataset file under an import directory, checked by the API (and again by the worker)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["path"]
    path: str = Field(min_length=1, max_length=MAX_URL)


DatasetSource = Annotated[UrlSource | UploadSource | PathSource, Field(discriminator="kind")]


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
    path: str | None = Field(default=None, max_length=MAX_URL, description="a file under a configured import directory")
    separator: str = Field(default=",", min_length=1, max_length=1)
    header: bool = True
    columns: list[str] | None = Field(
        default=None, max_length=MAX_COLUMNS, description="column names when the file has no header"
    )
    types: dict[str, TableType] | None = Field(default=None, max_length=MAX_COLUMNS)
    encoding: str = Field(default="utf-8", max_length=64)
    columnId: str | None = Field(
        default=None, max_length=MAX_SHORT, description="dataset/timeseries long CSV: the series id column (id)"
    )
    columnSort: str | None = Field(
        default=None, max_length=MAX_SHORT, description="dataset/timeseries long CSV: the time column (time)"
    )
    # The API turns url/path/upload into this after its source-policy checks, so a body must not give it.
    source: DatasetSource | None = Field(
        default=None,
        description=f"{SET_BY_SERVER}: the checked url, upload or path the worker reads",
        json_schema_extra={"readOnly": True},
    )

    _known_types = field_validator("types", mode="before")(known_table_types)

    @field_validator("source", mode="before")
    @classmethod
    def _bare_url(cls, value: Any) -> Any:
        # Steps stored by older versions may hold a bare URL string: unambiguous enough to read.
        return {"kind": "url", "url": value} if isinstance(value, str) else value


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
    modulePath: str = Field(pattern=MODULE_PATH_PATTERN)
    class_: str = Field(
        validation_alias=AliasChoices("class", "className", "class_"),
        serialization_alias="class",
        pattern=CLASS_PATTERN,
    )
    classParameters: dict[str, Any] = Field(default_factory=dict)

    _few_parameters = field_validator("classParameters", mode="before")(few_parameters)


def model_body_with_default(
    model_name: str, module_path: str, class_name: str, example: dict[str, Any], doc: str
) -> type[ModelBody]:
    """The ``model/{tool}`` request of a tool with a usual class: ``modulePath`` and ``class`` default to it."""
    body = create_model(
        model_name,
        __base__=ModelBody,
        __doc__=doc,
        modulePath=(str, Field(default=module_path, pattern=MODULE_PATH_PATTERN)),
        class_=(
            str,
            Field(
                default=class_name,
                validation_alias=AliasChoices("class", "className", "class_"),
                serialization_alias="class",
                pattern=CLASS_PATTERN,
            ),
        ),
    )
    body.example = {"name": example.pop("name"), "modulePath": module_path, "class": class_name, **example}
    return body


class MethodBody(StepBody):
    """train / tune / evaluate / predict / transform by a tool: call ``method`` on ``parentName``'s object."""

    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_gb_trained",
        "parentName": "titanic_gb",
        "method": "fit",
        "methodParameters": {"X": "$titanic_X", "y": "$titanic_y.Survived"},
    }

    parentName: str = Field(max_length=MAX_SHORT)
    modelName: str | None = Field(
        default=None, max_length=MAX_SHORT, description="the original model step (informational)"
    )
    method: str | None = Field(
        default=None,
        validation_alias=AliasChoices("method", "methodName"),
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
    )
    methodParameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("methodParameters", "parameters")
    )

    _few_parameters = field_validator("methodParameters", mode="before")(few_parameters)


class EvaluateBody(MethodBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_gb_evaluated",
        "parentName": "titanic_gb_trained",
        "method": "score",
        "methodParameters": {"X": "$test_X", "y": "$test_y.Survived"},
        "metrics": ["accuracy", "f1"],
    }

    metrics: list[str] | None = Field(
        default=None, max_length=MAX_SHORT, description="scikit-learn scorer names, e.g. accuracy, f1"
    )


class ExploreToolBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_importance",
        "modulePath": "sklearn.inspection",
        "method": "permutation_importance",
        "methodParameters": {"estimator": "$titanic_gb_trained", "X": "$test_X", "y": "$test_y.Survived"},
    }

    parentName: str | None = Field(default=None, max_length=MAX_SHORT)
    # Learning Orchestra's explore classes send it with every request, as its train/predict classes do.
    modelName: str | None = Field(
        default=None, max_length=MAX_SHORT, description="the original model step (informational)"
    )
    modulePath: str | None = Field(default=None, pattern=MODULE_PATH_PATTERN)
    class_: str | None = Field(
        default=None,
        validation_alias=AliasChoices("class", "className", "class_"),
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
    )
    method: str = Field(validation_alias=AliasChoices("method", "methodName"), pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    methodParameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("methodParameters", "parameters")
    )

    _few_parameters = field_validator("methodParameters", mode="before")(few_parameters)


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

    parentName: str = Field(validation_alias=AliasChoices("parentName", "datasetName"), max_length=MAX_SHORT)
    target: str = Field(min_length=1, max_length=MAX_SHORT)
    task: Literal["classification", "regression"] = "classification"
    timeBudget: float = Field(default=60.0, gt=0, le=7 * 24 * 3600, allow_inf_nan=False, description="seconds")
    metric: str = Field(default="auto", max_length=MAX_SHORT)
    seed: int = Field(default=1, ge=-(2**63), le=2**63 - 1)
    options: dict[str, Any] = Field(default_factory=dict, description="passed through to the engine")
    autoExclude: bool = Field(default=True, description="exclude identifier-like and free-text columns")
    excludeColumns: list[str] = Field(default_factory=list, max_length=MAX_COLUMNS)
    keepColumns: list[str] = Field(default_factory=list, max_length=MAX_COLUMNS)
    # Search controls; an engine uses those it has a meaning for (see docs/api.md).
    parallelTrials: int = Field(default=1, ge=1, le=1024, description="trials evaluated at once (distributed)")
    generations: int | None = Field(default=None, ge=1, le=1_000_000, description="evolutionary engines: generations")
    populationSize: int | None = Field(
        default=None, ge=2, le=1_000_000, description="evolutionary engines: population size"
    )
    cv: int | None = Field(default=None, ge=2, le=100, description="cross-validation folds")
    scoring: str | None = Field(
        default=None, max_length=MAX_SHORT, description="engine-specific scoring name (defaults to metric)"
    )

    _few_options = field_validator("options", mode="before")(few_parameters)


class CodeBody(StepBody):
    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_summary",
        "code": "response = {'rows': len(train), 'survived': int(train['Survived'].sum())}",
        "parameters": {"train": "$titanic_train"},
    }

    code: str | None = Field(default=None, validation_alias=AliasChoices("code", "function"), max_length=1_000_000)
    codeUrl: str | None = Field(
        default=None, validation_alias=AliasChoices("codeUrl", "functionUrl"), max_length=MAX_URL
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("parameters", "functionParameters")
    )

    _few_parameters = field_validator("parameters", mode="before")(few_parameters)

    @field_validator("parameters")
    @classmethod
    def _identifiers(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [key for key in value if not key.isidentifier() or key.startswith("__")]
        if bad:
            # The worker's wording for the same rule (it also refuses keywords such as 'class').
            raise ValueError(f"parameter name(s) {bad} not usable as a Python variable name (identifiers only)")
        return value
