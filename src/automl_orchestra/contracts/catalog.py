"""The catalog of tools: which tools exist, for which services, in which environment.

This module imports nothing heavy, so the API process can validate ``/{service}/{tool}`` routes and the
runtime can pick an interpreter without loading any ML library. Adding an engine means adding one folder
under ``engines/`` and one ``ToolSpec`` here; ``api/`` and ``runtime/`` do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Services whose steps call a method on an existing object (``parentName``) -- the Learning Orchestra
# "train|tune|evaluate|predict/{tool}" family.
METHOD_SERVICES = ("train", "tune", "evaluate", "predict")
ALL_SERVICES = ("dataset", "transform", "explore", "model", *METHOD_SERVICES, "automl", "function", "builder", "nas")
# Services that run user-written code: only roles allowed to run code may create them.
CODE_SERVICES = frozenset({"function", "builder"})


@dataclass(frozen=True)
class ToolSpec:
    name: str
    services: tuple[str, ...]
    implementation: str = ""  # "package.module:Class", imported in workers only
    environment: str = "main"
    allowed_modules: tuple[str, ...] = ()
    capabilities: frozenset[str] = field(default_factory=frozenset)
    # Derived dataset steps a service of this engine produces besides its own output (e.g. leaderboards).
    derived: dict[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""
    # A step of this tool starts once its inputs are settled even if some failed (it reports them itself,
    # e.g. automl/compare records a failed engine in its leaderboard); it gets their states in the job.
    tolerates_failed_inputs: bool = False
    # Services of this tool whose parameters hold user code (the seed's "#..." expressions): like
    # CODE_SERVICES, only code roles may create them and they run in forked children of a pristine worker.
    code_services: frozenset[str] = field(default_factory=frozenset)
    # Services that must start from a pristine process (forked from the code pool's template), e.g. because
    # they fork children themselves and a warm worker's earlier jobs may have left thread pools behind.
    forked_services: frozenset[str] = field(default_factory=frozenset)
    # Searches that a cancel stops gracefully: the trial under way is stopped, the search ends with the best
    # model so far (the step finishes, its metadata says it was stopped); killed if it has not ended after
    # STOP_GRACE_S.
    stoppable_services: frozenset[str] = field(default_factory=frozenset)
    # Request models of services whose parameters are the tool's own ("package.module:Class", a light module
    # in the engine's folder); other services use their family's model (engines/core/requests.py).
    parameters: dict[str, str] = field(default_factory=dict)
    # The parameter whose $references name steps made only for this step (automl/compare's engine runs):
    # cancelling the step cancels those of them still pending or running.
    owned_inputs: str | None = None
    # Another input form the registered models trained on this tool's output accept when served
    # ("package.module:factory", engines/core/serving.py: InputForm), e.g. the long series table for a model
    # of tsfresh features; the factory gets a version's input columns and answers a form, or None.
    serving_input: str = ""

    def allows_module(self, module_path: str) -> bool:
        return any(module_path == root or module_path.startswith(root + ".") for root in self.allowed_modules)


_BUILTIN = "automl_orchestra.engines.builtin.engine"
# How long a stopped search has to save its best model before it is killed like any cancelled step.
STOP_GRACE_S = 60.0

TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            name="csv",
            services=("dataset",),
            implementation=f"{_BUILTIN}:CsvDataset",
            description="CSV from a URL, an upload or an import directory, stored as typed Parquet",
        ),
        ToolSpec(
            name="generic",
            services=("dataset",),
            implementation=f"{_BUILTIN}:GenericDataset",
            description="any file from a URL, an upload or an import directory, stored as is",
        ),
        ToolSpec(
            name="projection",
            parameters={"transform": "automl_orchestra.engines.builtin.parameters:ProjectionBody"},
            services=("transform",),
            implementation=f"{_BUILTIN}:Projection",
            description="keep the listed fields of a dataset",
        ),
        ToolSpec(
            name="dataType",
            parameters={"transform": "automl_orchestra.engines.builtin.parameters:DataTypeBody"},
            services=("transform",),
            implementation=f"{_BUILTIN}:DataType",
            description="cast fields to number or string",
        ),
        ToolSpec(
            name="histogram",
            parameters={"explore": "automl_orchestra.engines.builtin.parameters:HistogramBody"},
            services=("explore",),
            implementation=f"{_BUILTIN}:Histogram",
            description="counts for categorical fields, bins for numeric fields",
        ),
        ToolSpec(
            name="leaderboard",
            services=("dataset",),
            implementation="",
            description="leaderboards written by automl steps (read-only, re-made by their owner)",
        ),
        ToolSpec(
            name="python",
            services=("function", "builder"),
            implementation="automl_orchestra.engines.python.engine:PythonCode",
            description="user code with resolved parameters as globals; 'response' is stored",
        ),
        ToolSpec(
            name="scikitlearn",
            services=("model", "transform", "explore", *METHOD_SERVICES),
            implementation="automl_orchestra.engines.sklearn.engine:ScikitLearnEngine",
            allowed_modules=("sklearn", "lightgbm", "xgboost"),
            capabilities=frozenset({"tabular", "classification", "regression", "clustering"}),
        ),
        ToolSpec(
            name="flaml",
            parameters={"model": "automl_orchestra.engines.flaml.parameters:FlamlModelBody"},
            services=("model", "automl", *METHOD_SERVICES),
            implementation="automl_orchestra.engines.flaml.engine:FlamlEngine",
            allowed_modules=("flaml",),
            capabilities=frozenset({"tabular", "classification", "regression", "automl"}),
            derived={"automl": ("leaderboard",)},
        ),
        ToolSpec(
            name="timeseries",
            services=("dataset",),
            implementation="automl_orchestra.engines.timeseries.ingest:TimeSeriesDataset",
            capabilities=frozenset({"timeseries"}),
            derived={"dataset": ("labels",)},
            description="time series (long CSV or sktime/UCR .ts) as a long table id, time, channels",
        ),
        ToolSpec(
            name="labels",
            services=("dataset",),
            implementation="",
            description="class labels of a .ts dataset (read-only, re-made by their owner)",
        ),
        ToolSpec(
            name="tsfresh",
            services=("transform",),
            implementation="automl_orchestra.engines.timeseries.tsfresh:TsfreshEngine",
            serving_input="automl_orchestra.engines.timeseries.serving:series_input",
            capabilities=frozenset({"timeseries"}),
            description="tsfresh extract_features / select_features / impute on long time-series tables",
        ),
        ToolSpec(
            name="tpot",
            parameters={"model": "automl_orchestra.engines.tpot.parameters:TpotModelBody"},
            services=("model", "automl", *METHOD_SERVICES),
            implementation="automl_orchestra.engines.tpot.engine:TpotEngine",
            allowed_modules=("tpot", "sklearn"),
            capabilities=frozenset({"tabular", "classification", "regression", "automl"}),
            derived={"automl": ("leaderboard",)},
        ),
        ToolSpec(
            name="pycaret",
            parameters={
                "model": "automl_orchestra.engines.pycaret.parameters:ExperimentBody",
                "automl": "automl_orchestra.engines.pycaret.parameters:PycaretAutoMLBody",
            },
            services=("model", "transform", "explore", *METHOD_SERVICES, "automl", "builder"),
            implementation="automl_orchestra.engines.pycaret.engine:PycaretEngine",
            environment="pycaret",
            allowed_modules=("pycaret",),
            capabilities=frozenset({"tabular", "classification", "regression", "clustering", "anomaly", "automl"}),
            derived={"train": ("grid",), "tune": ("grid",), "evaluate": ("grid",), "automl": ("leaderboard",)},
            description="PyCaret 3 experiments (own environment): setup, compare/create/tune, finalize, plots",
        ),
        ToolSpec(
            name="grid",
            services=("dataset",),
            implementation="",
            description="the score grid a pycaret step showed (pull()): CV folds or models (read-only)",
        ),
        ToolSpec(
            name="h2o",
            parameters={"model": "automl_orchestra.engines.h2o.parameters:H2OModelBody"},
            services=("model", "automl", *METHOD_SERVICES),
            implementation="automl_orchestra.engines.h2o.engine:H2OEngine",
            allowed_modules=("h2o",),
            capabilities=frozenset({"tabular", "classification", "regression", "automl"}),
            derived={"automl": ("leaderboard",)},
            description="H2O-3 (H2OAutoML, h2o.estimators) in a JVM per step; models as H2O binary + MOJO",
        ),
        ToolSpec(
            name="autogluon",
            parameters={"model": "automl_orchestra.engines.autogluon.parameters:AutoGluonModelBody"},
            services=("model", "automl", *METHOD_SERVICES),
            implementation="automl_orchestra.engines.autogluon.engine:AutoGluonEngine",
            allowed_modules=("autogluon.tabular",),
            capabilities=frozenset({"tabular", "classification", "regression", "automl"}),
            derived={"automl": ("leaderboard",)},
            description="AutoGluon TabularPredictor, saved under the step's output",
        ),
        ToolSpec(
            name="split",
            services=("transform",),
            implementation="automl_orchestra.engines.builtin.split:SplitEngine",
            parameters={"transform": "automl_orchestra.engines.builtin.parameters:SplitBody"},
            derived={"transform": ("holdout",)},
            description="a seeded (stratified) train/holdout split: the train rows, and {name}_holdout",
        ),
        ToolSpec(
            name="holdout",
            services=("dataset",),
            implementation="",
            description="holdout rows of a transform/split step (read-only, re-made by their owner)",
        ),
        ToolSpec(
            name="compare",
            parameters={"automl": "automl_orchestra.engines.compare.parameters:CompareBody"},
            services=("automl", "predict", "evaluate"),
            implementation="automl_orchestra.engines.compare.engine:CompareEngine",
            derived={"automl": ("leaderboard",)},
            tolerates_failed_inputs=True,
            owned_inputs="candidates",
            description="one dataset through several automl engines: one leaderboard and the best model",
        ),
        ToolSpec(
            name="generate",
            parameters={"nas": "automl_orchestra.engines.nas.parameters:NasGenerateBody"},
            services=("nas",),
            implementation="automl_orchestra.engines.nas.steps:NasGenerate",
            capabilities=frozenset({"nas"}),
            description="a NAS generator plug-in (random, evolution, tpe) proposes a model spec from the history",
        ),
        ToolSpec(
            name="train",
            parameters={"nas": "automl_orchestra.engines.nas.parameters:NasTrainBody"},
            services=("nas",),
            implementation="automl_orchestra.engines.nas.steps:NasTrain",
            capabilities=frozenset({"nas", "image", "tabular", "classification"}),
            description="train a NAS model spec with PyTorch (constraints checked on its instrumentation first)",
        ),
        ToolSpec(
            name="evaluate",
            parameters={"nas": "automl_orchestra.engines.nas.parameters:NasEvaluateBody"},
            services=("nas",),
            implementation="automl_orchestra.engines.nas.steps:NasEvaluate",
            capabilities=frozenset({"nas"}),
            description="test metrics, instrumentation and an ONNX export (checked with onnxruntime) of a network",
        ),
        ToolSpec(
            name="nas",
            parameters={"automl": "automl_orchestra.engines.nas.parameters:NasSearchBody"},
            services=("automl",),
            implementation="automl_orchestra.engines.nas.steps:NasSearch",
            # "driver": its steps create child steps through the API (runtime: api URL + job token, no slot)
            capabilities=frozenset({"driver", "nas", "image", "tabular", "classification", "automl"}),
            derived={"automl": ("leaderboard", "comparison")},
            description="the NAS scheduler: generate -> train -> evaluate as child steps, per generator, compared",
        ),
        ToolSpec(
            name="comparison",
            services=("dataset",),
            implementation="",
            description="generator comparison of an automl/nas step (read-only, re-made by its owner)",
        ),
        ToolSpec(
            name="autokeras",
            parameters={
                "model": "automl_orchestra.engines.keras.parameters:AutoKerasModelBody",
                "automl": "automl_orchestra.engines.keras.parameters:AutoKerasBody",
            },
            # tune: AutoKeras tunes while it trains (the seed: "there is no Tune API call for Autokeras"), so
            # tune/autokeras (the seed's TuneAutokeras class) is the same search as train/autokeras.
            # builder: a whole AutoKeras script (code roles only), with autokeras and keras pre-imported.
            services=("model", "train", "tune", "predict", "evaluate", "explore", "automl", "builder"),
            implementation="automl_orchestra.engines.keras.autokeras:AutoKerasEngine",
            allowed_modules=("autokeras",),
            capabilities=frozenset({"image", "text", "tabular", "classification", "regression", "automl", "nas"}),
            derived={"train": ("leaderboard",), "tune": ("leaderboard",), "automl": ("leaderboard",)},
            forked_services=frozenset({"train", "tune", "automl"}),
            stoppable_services=frozenset({"train", "tune", "automl"}),
            description="AutoKeras 3 (torch backend): each trial in a child with its own time and memory limits",
        ),
        ToolSpec(
            name="keras",
            parameters={"model": "automl_orchestra.engines.keras.parameters:KerasModelBody"},
            services=("model", "train", "predict", "evaluate"),
            implementation="automl_orchestra.engines.keras.keras:KerasEngine",
            allowed_modules=("keras",),
            capabilities=frozenset({"image", "text", "tabular", "classification", "regression"}),
            code_services=frozenset({"model"}),
            description="hand-built Keras 3 models from '#...' layer expressions (code), native .keras files",
        ),
    )
}


@dataclass(frozen=True)
class EnvironmentSpec:
    """An engine environment: a virtualenv made from ``environments/{name}/requirements.txt`` (except
    ``main``, the server's own), and what its warm workers import before their first job."""

    name: str
    preload: tuple[str, ...] = ()


ENVIRONMENTS: dict[str, EnvironmentSpec] = {
    spec.name: spec
    for spec in (
        EnvironmentSpec(
            "main",
            preload=(
                "pandas",
                "pyarrow.parquet",
                "sklearn.base",
                "automl_orchestra.engines.builtin.engine",
                "automl_orchestra.engines.sklearn.engine",
            ),
        ),
        EnvironmentSpec("pycaret", preload=("pandas", "pyarrow.parquet", "automl_orchestra.engines.pycaret.engine")),
    )
}


def preload_modules(environment: str) -> str:
    """The comma-separated modules a warm worker of ``environment`` imports at start."""
    spec = ENVIRONMENTS.get(environment)
    return ",".join(spec.preload) if spec else ""


def tool(name: str) -> ToolSpec | None:
    return TOOLS.get(name)


def tools_for(service: str) -> list[str]:
    return sorted(name for name, spec in TOOLS.items() if service in spec.services and spec.implementation)


def derived_outputs(service: str, tool: str) -> tuple[str, ...]:
    spec = TOOLS.get(tool)
    return spec.derived.get(service, ()) if spec else ()


def runs_code(service: str, tool: str) -> bool:
    """Whether a ``service/tool`` step runs user code (code roles only, forked worker children)."""
    spec = TOOLS.get(tool)
    return service in CODE_SERVICES or (spec is not None and service in spec.code_services)


def runs_forked(service: str, tool: str) -> bool:
    """Whether a ``service/tool`` step runs in a forked child of a pristine worker (the code pool)."""
    spec = TOOLS.get(tool)
    return runs_code(service, tool) or (spec is not None and service in spec.forked_services)


def stop_grace_s(service: str, tool: str) -> float:
    """How long a cancel lets a ``service/tool`` step end with what it has before it is killed (0: at once)."""
    spec = TOOLS.get(tool)
    return STOP_GRACE_S if spec is not None and service in spec.stoppable_services else 0.0
