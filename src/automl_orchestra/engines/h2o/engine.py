"""The ``h2o`` tool: H2O-3 (``H2OAutoML`` and the ``h2o.estimators``) through the Learning Orchestra services,
and the declarative ``automl`` service.

H2O computes in a JVM. Each step that trains starts its own JVM (explicit free port, ``-Xmx`` from the step's
memory allowance, ``-nthreads`` from its CPU allowance) and stops it at the end; one JVM per worker would
outlive the step's memory limit and hold another step's data. ``h2o.init`` starts the JVM in a new session
(``os.setsid``), where the supervisor's kill of the worker's process group would not reach it: here the JVM
is started as a plain child of the worker, so a cancel, a timeout or a memory kill stops it too, and it is
asked to die with the worker (``PR_SET_PDEATHSIG``) should the worker itself be killed alone.

Models are stored as H2O binary (``h2o/model``, reloadable into a cluster of the same H2O version) and,
where the algorithm has one, as MOJO (``h2o/model.zip`` beside the ``h2o-genmodel.jar`` that runs it).
Scoring uses the MOJO: a short java process (``PredictCsv``: small heap, one processor, in a scratch
folder), no cluster and no ``import h2o``. A model without a MOJO (e.g. naive Bayes, whose metadata says
why) is reloaded from the binary into a JVM: a predict/evaluate step of this tool starts one like a training
step, and any other code scoring an :class:`H2OModel` (the comparison, ``predict/{other tool}``) gets a
short-lived one, which :meth:`H2OModel.scoring_session` keeps up around many calls. Class labels come from
the probabilities (H2O's own ``predict`` column uses an F1-tuned threshold, which is not the
accuracy-optimal one).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.contracts.parameters import MethodBody
from automl_orchestra.engines.core.automl import AutoMLEngine, AutoMLRequest, SearchOutcome, TrainingData
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.core.calls import (
    MethodEngine,
    as_scalar,
    call_method,
    describe_parameters,
    import_allowed,
    method_kwargs,
)
from automl_orchestra.engines.core.columns import text_columns
from automl_orchestra.engines.core.model import AutoMLModel, ModelSpec
from automl_orchestra.engines.core.serving import Answer, ServedModel

BINARY_DIR = "h2o"
BINARY_FILE = "model"
MOJO_FILE = "model.zip"
GENMODEL_JAR = "h2o-genmodel.jar"  # the name download_mojo gives the jar, and where PredictCsv is
MOJO_PREDICTOR = "hex.genmodel.tools.PredictCsv"  # h2o.mojo_predict_csv's scorer, called directly (see mojo_predict)
# A MOJO scorer's heap: a base plus a multiple of the zipped MOJO (trees unpack to a few times their zip);
# PredictCsv streams the rows, so the data's size does not count.
MOJO_BASE_HEAP_MB = 256
MOJO_HEAP_PER_ZIP_MB = 8
MOJO_MAX_HEAP_MB = 2048
# Share of the step's memory allowance given to the JVM heap; the rest is the worker's Python and the JVM's
# own overhead (code cache, threads, metaspace: ~300 MB).
HEAP_SHARE = 0.55
MIN_HEAP_MB = 512
JVM_START_TIMEOUT_S = 90.0
# What follows the search inside the budget: leaderboard, binary and MOJO download, JVM shutdown.
FINISH_S = 4.0
# The JVM's start on an idle machine. A slower start means a busy machine, where what follows the search
# is as much slower: FINISH_S grows in proportion (measured: 63.5-64.5 s of a 60 s budget while tests ran).
IDLE_JVM_START_S = 6.0
# The shortest search worth starting (H2O's first models, a GLM and a small GBM, take a few seconds).
MIN_SEARCH_S = 8
# H2O AutoML overruns max_runtime_secs a little (the model under way, then the stacked ensembles).
RUNTIME_SHARE = 0.85
# Memory allowance of a scoring JVM started outside an h2o step (the comparison, another tool's predict).
SCORING_MEMORY_MB = 2048
# Our metric names -> H2O AutoML sort_metric (H2O has no accuracy: mean per-class error is its closest).
SORT_METRICS = {
    "auto": "AUTO",
    "roc_auc": "AUC",
    "auc": "AUC",
    "ap": "AUCPR",
    "aucpr": "AUCPR",
    "log_loss": "logloss",
    "logloss": "logloss",
    "accuracy": "mean_per_class_error",
    "mean_per_class_error": "mean_per_class_error",
    "rmse": "RMSE",
    "mse": "MSE",
    "mae": "MAE",
    "rmsle": "RMSLE",
    "deviance": "deviance",
}
# Metrics where lower is better (the rest -- AUC, AUCPR -- are maximised).
LOWER_IS_BETTER = frozenset({"logloss", "mean_per_class_error", "RMSE", "MSE", "MAE", "RMSLE", "deviance"})
RESERVED_OPTIONS = frozenset({"max_runtime_secs", "seed", "sort_metric", "project_name", "nfolds"})
# Integer targets with at most this many values are classes: H2O would regress on a numeric column.
MAX_INTEGER_CLASSES = 20


# ----- the JVM ------------------------------------------------------------------------------------


def free_port_pair() -> int:
    """A port P with P and P+1 free (H2O listens on P for REST and P+1 for its internal traffic)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise StepError("no free pair of ports for the H2O JVM")


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise StepError("H2O needs Java (a 'java' on PATH, version 8-17); none was found on this worker")
    return java


def heap_mb(memory_mb: int) -> int:
    return max(MIN_HEAP_MB, int(memory_mb * HEAP_SHARE))


def _die_with_parent() -> None:
    """In the JVM child before exec: be killed when the worker dies (Linux), even by SIGKILL alone."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


@dataclass
class H2OJvm:
    """One H2O JVM for one step, in the worker's process group, and the Python client connected to it."""

    work_dir: Path
    memory_mb: int
    cpus: int
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0
    log_files: list[Path] = field(default_factory=list)

    def start(self) -> None:
        import h2o

        began = time.monotonic()
        jar = Path(h2o.__file__).parent / "backend" / "bin" / "h2o.jar"
        if not jar.is_file():
            raise StepError(f"the H2O package has no h2o.jar at {jar}")
        self.port = free_port_pair()
        root = self.work_dir / "h2o"
        (root / "ice").mkdir(parents=True, exist_ok=True)
        command = [
            java_binary(),
            f"-Xmx{heap_mb(self.memory_mb)}m",
            "-Dsys.ai.h2o.telemetry.disabled=true",
            "-jar", str(jar),
            "-name", f"orchestra-{self.port}",
            "-ip", "127.0.0.1",
            "-web_ip", "127.0.0.1",
            "-port", str(self.port),
            "-nthreads", str(self.cpus),
            "-ice_root", str(root / "ice"),
            "-log_dir", str(root / "logs"),
            "-allow_unsupported_java",
        ]  # fmt: skip
        with open(root / "jvm.out", "wb") as out:
            self.process = subprocess.Popen(  # a plain child: in the worker's process group
                command, stdout=out, stderr=subprocess.STDOUT, cwd=root, preexec_fn=_die_with_parent
            )
        self._connect(h2o)
        self.started_s = time.monotonic() - began
        print(
            f"H2O JVM pid {self.process.pid} on port {self.port}: heap {heap_mb(self.memory_mb)} MB, "
            f"{self.cpus} thread(s), up in {self.started_s:.1f} s",
            flush=True,
        )

    def _connect(self, h2o: Any) -> None:
        deadline = time.monotonic() + JVM_START_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.work_dir / "h2o" / "jvm.out").read_text(errors="replace")[-2000:]
                raise StepError(f"the H2O JVM exited with code {self.process.returncode} at start: {tail}")
            try:
                h2o.connect(ip="127.0.0.1", port=self.port, verbose=False)
                h2o.no_progress()  # progress bars would fill the step's log
                return
            except Exception:  # noqa: BLE001 - not listening yet; H2O raises several kinds
                if time.monotonic() > deadline:
                    raise StepError(f"the H2O JVM did not answer within {JVM_START_TIMEOUT_S:g} s") from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None:
            return
        import h2o

        with contextlib.suppress(Exception):
            h2o.cluster().shutdown()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(Exception):
            h2o.connection().close()  # forget the dead cluster: the next step in this worker starts its own
        self.process = None


_active: list[H2OJvm] = []  # the JVM this worker is connected to, while a step or a scoring session runs


@contextlib.contextmanager
def h2o_session(work_dir: Path, memory_mb: int, cpus: int) -> Iterator[H2OJvm]:
    """The running JVM if there is one, else a new one that is stopped on the way out."""
    # H2OFrame uploads go through tempfile, which caches the first TMPDIR it saw: in a reused worker that is
    # an earlier step's (deleted) scratch folder. Make it read this step's TMPDIR again.
    tempfile.tempdir = None
    if _active:
        yield _active[-1]
        return
    jvm = H2OJvm(work_dir, memory_mb, cpus)
    try:
        jvm.start()
        _active.append(jvm)
        yield jvm
    finally:
        if _active and _active[-1] is jvm:
            _active.pop()
        jvm.stop()


def h2o_cluster(ctx: StepContext) -> contextlib.AbstractContextManager[H2OJvm]:
    return h2o_session(ctx.work_dir, ctx.job.limits.memory_mb, ctx.cpus)


# ----- data ---------------------------------------------------------------------------------------


def is_class_target(target: pd.Series, task: str | None = None) -> bool:
    if task is not None:
        return task == "classification"
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return True
    return pd.api.types.is_integer_dtype(target) and target.nunique() <= MAX_INTEGER_CLASSES


def to_h2o_frame(frame: pd.DataFrame, factors: list[str]) -> Any:
    """A DataFrame uploaded to the cluster; text columns and ``factors`` as enums (categoricals)."""
    import h2o

    types = {column: "enum" for column in [*text_columns(frame), *factors] if column in frame.columns}
    prepared = frame.copy()
    for column in types:
        prepared[column] = prepared[column].astype("string")
    return h2o.H2OFrame(prepared, column_types=types or None)


# ----- the stored model ---------------------------------------------------------------------------


class H2OModel(AutoMLModel):
    """A trained H2O model stored as H2O binary and, where H2O has one, MOJO; scores with the MOJO (a short
    java process), else in the running JVM (or a short-lived one).

    ``predict`` accepts the table the step trained on (target and other columns may be there). A
    scikit-learn estimator (classes, predict_proba, score), so ``evaluate`` metrics work on it.
    """

    mojo: str | None = None  # class default: models pickled before MOJOs were exported have none

    def __init__(
        self,
        model_id: str = "",
        algo: str = "",
        feature_names: list[str] | None = None,
        target_name: str | None = None,
        task: str = "classification",
        classes: list[Any] | None = None,
        mojo: str | None = None,
    ) -> None:
        self.model_id = model_id
        self.algo = algo
        self.feature_names = feature_names or []
        self.target_name = target_name
        self.task = task
        self.classes = classes
        self.mojo = mojo  # the MOJO's path inside the stored output, when H2O could export one
        self.directory = ""  # where the stored files are; set when loaded, never pickled as meaningful
        self._loaded_in: H2OJvm | None = None
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded_in": None, "_model": None}  # a JVM handle is not data

    def mojo_path(self) -> Path | None:
        """The stored MOJO, if this model has one and was loaded from a stored output."""
        if not self.mojo or not self.directory:
            return None
        path = Path(self.directory) / self.mojo
        return path if path.is_file() else None

    @contextlib.contextmanager
    def scoring_session(self) -> Iterator[None]:
        """Keep one JVM with the model loaded around many predictions (each call would start one); a model
        with a MOJO needs none."""
        if self.mojo_path() is not None:
            yield
            return
        with scoring_cluster():
            yield

    def _cluster_model(self, jvm: H2OJvm) -> Any:
        import h2o

        if self._loaded_in is not jvm:
            if not self.directory:
                raise StepError("this H2O model was not loaded from a stored step output")
            self._model = h2o.load_model(str(Path(self.directory) / BINARY_DIR / BINARY_FILE))
            self._loaded_in = jvm
        return self._model

    def __sklearn_is_fitted__(self) -> bool:
        return bool(self.model_id)

    def _scored(self, features: pd.DataFrame) -> pd.DataFrame:
        """H2O's scored table: ``predict`` and one probability column per class."""
        mojo = self.mojo_path()
        if mojo is not None:
            return mojo_predict(features, mojo)
        with scoring_cluster() as jvm:
            return as_pandas(self._cluster_model(jvm).predict(to_h2o_frame(features, [])))

    def proba_features(self, features: Any, **kwargs: Any) -> np.ndarray:
        _no_options(kwargs)
        scored = self._scored(features)
        return scored[[_probability_column(scored, label) for label in self.classes or []]].to_numpy(dtype=float)

    def predict_features(self, features: Any, **kwargs: Any) -> np.ndarray:
        _no_options(kwargs)
        if self.task != "classification":
            return self._scored(features)["predict"].to_numpy(dtype=float)
        return self.classes_[np.argmax(self.proba_features(features), axis=1)]

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "algo": self.algo, "task": self.task, "mojo": self.mojo}


class ServedH2OModel(ServedModel):
    """An H2O model in a serving worker: scored once per request for labels and probabilities (by its MOJO in
    a short java process, as a step scores it); a model without a MOJO is loaded into the worker's serving
    JVM when the version is loaded, and the JVM is kept while such a version is."""

    def __init__(self, model: H2OModel) -> None:
        super().__init__(model)
        self.model: H2OModel = model
        self._holds_jvm = False
        if model.mojo_path() is None:
            jvm = SERVING_JVM.acquire()
            self._holds_jvm = True
            try:
                model._cluster_model(jvm)  # the binary, into the JVM now rather than at the first request
            except BaseException:
                self.close()
                raise

    def predict(self, rows: pd.DataFrame, probabilities: bool) -> Answer:
        model = self.model
        features = model.features(rows)
        if model.task != "classification":
            return Answer(model._scored(features)["predict"].to_numpy(dtype=float))
        scores = model.proba_features(features)
        labels = model.classes_[np.argmax(scores, axis=1)]
        return Answer(labels, scores, model.classes_.tolist()) if probabilities else Answer(labels)

    def close(self) -> None:
        if self._holds_jvm:
            self._holds_jvm = False
            SERVING_JVM.release()


class ServingJvm:
    """A serving worker's one JVM for models without a MOJO, shared by the versions loaded in it: started by
    the first (a short-lived scoring cluster in a temporary folder) and stopped when the last is released."""

    def __init__(self) -> None:
        self.users = 0
        self._stack: contextlib.ExitStack | None = None

    def acquire(self) -> H2OJvm:
        if self._stack is None:
            stack = contextlib.ExitStack()
            jvm = stack.enter_context(scoring_cluster())
            self._stack = stack
        else:
            jvm = _active[-1]
        self.users += 1
        return jvm

    def release(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0 and self._stack is not None:
            stack, self._stack = self._stack, None
            stack.close()


SERVING_JVM = ServingJvm()


def _no_options(kwargs: dict[str, Any]) -> None:
    # H2O's scoring takes no options: refuse them rather than ignore them.
    if kwargs:
        raise StepError(f"an H2O model's predictions take no options, not {sorted(kwargs)}")


@contextlib.contextmanager
def scoring_cluster() -> Iterator[H2OJvm]:
    """The running JVM, else a short-lived one (outside an h2o step: the comparison, another tool's predict)
    whose files go in a temporary folder removed after it stops."""
    if _active:
        yield _active[-1]
        return
    with (
        tempfile.TemporaryDirectory(prefix="h2o-scoring-", ignore_cleanup_errors=True) as folder,
        h2o_session(Path(folder), SCORING_MEMORY_MB, 1) as jvm,
    ):
        yield jvm


def mojo_predict(frame: pd.DataFrame, mojo: Path) -> pd.DataFrame:
    """``frame`` scored by the MOJO in a short java process, as ``h2o.mojo_predict_pandas`` does, but with
    its files in a scratch folder (not beside the MOJO or in the cwd), a bounded JVM (heap from the MOJO's
    size, one processor: PredictCsv scores on one thread), killed with the worker, and java's own message
    in the error."""
    tempfile.tempdir = None  # a reused worker: read this step's TMPDIR again (see h2o_session)
    with tempfile.TemporaryDirectory(prefix="h2o-mojo-", ignore_cleanup_errors=True) as folder:
        scratch = Path(folder)
        source, scored = scratch / "input.csv", scratch / "scored.csv"
        frame.to_csv(source, index=False)
        command = [
            java_binary(),
            f"-Xmx{mojo_heap_mb(mojo)}m",
            "-XX:ActiveProcessorCount=1",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # a short run: C2's compiling costs more than it saves (measured)
            f"-Djava.io.tmpdir={scratch}",
            "-cp", str(mojo.parent / GENMODEL_JAR),
            MOJO_PREDICTOR,
            "--mojo", str(mojo),
            "--input", str(source),
            "--output", str(scored),
            "--decimal",  # plain decimals (the default writes hexadecimal doubles)
        ]  # fmt: skip
        done = subprocess.run(command, cwd=scratch, capture_output=True, preexec_fn=_die_with_parent, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise StepError(f"scoring with the H2O MOJO failed (java exited with {done.returncode}): {tail}")
        return pd.read_csv(scored)


def mojo_heap_mb(mojo: Path) -> int:
    zipped_mb = mojo.stat().st_size / 2**20
    return min(MOJO_MAX_HEAP_MB, MOJO_BASE_HEAP_MB + math.ceil(zipped_mb * MOJO_HEAP_PER_ZIP_MB))


def _probability_column(scored: pd.DataFrame, label: Any) -> str:
    """The MOJO's probability column of a class (named after the H2O domain value, i.e. the label as text)."""
    for name in (str(label), f"p{label}"):
        if name in scored.columns:
            return name
    raise StepError(f"the MOJO's output has no probability column for class {label!r}: {list(scored.columns)}")


def h2o_classes(target: pd.Series) -> list[Any]:
    """The classes in H2O's domain order (sorted as text), as the original labels."""
    labels = {str(_plain(value)): _plain(value) for value in target.dropna().unique()}
    return [labels[key] for key in sorted(labels)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class SavedModel:
    """Where :func:`save_h2o_model` put the model, relative to the step's output, and why there is no MOJO."""

    mojo: str | None
    why_no_mojo: str | None = None

    def as_metadata(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"binary": f"{BINARY_DIR}/{BINARY_FILE}", "mojo": self.mojo}
        if self.why_no_mojo:
            facts["mojoMissing"] = self.why_no_mojo
        return facts


def save_h2o_model(model: Any, out_dir: Path) -> SavedModel:
    """The model as H2O binary (reloadable into a cluster of the same H2O version) and as MOJO with the
    genmodel jar that scores it, into ``out_dir``/h2o."""
    import h2o

    folder = out_dir / BINARY_DIR
    h2o.save_model(model, path=str(folder), filename=BINARY_FILE, force=True)
    saved = save_mojo(model, folder)
    if saved.why_no_mojo:
        print(f"no MOJO: {saved.why_no_mojo}", flush=True)
    return saved


def save_mojo(model: Any, folder: Path) -> SavedModel:
    """The MOJO (``model.zip``) and ``h2o-genmodel.jar`` into ``folder``: both or neither (a download that
    fails leaves nothing behind; the binary still scores)."""
    if not model.have_mojo:
        return SavedModel(None, f"H2O has no MOJO export for this {model.algo} model: it scores from the binary")
    download = folder / ".mojo-download"
    download.mkdir()
    try:
        # The MOJO arrives as {model_id}.zip; the jar as h2o-genmodel.jar.
        written = Path(model.download_mojo(path=str(download), get_genmodel_jar=True))
        (download / GENMODEL_JAR).replace(folder / GENMODEL_JAR)
        written.replace(folder / MOJO_FILE)
    except Exception as error:  # noqa: BLE001 - H2O raises several kinds; the binary is enough to go on
        (folder / GENMODEL_JAR).unlink(missing_ok=True)
        return SavedModel(None, f"the MOJO export failed ({type(error).__name__}: {error}): it scores from the binary")
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return SavedModel(f"{BINARY_DIR}/{MOJO_FILE}")


# ----- the engine ---------------------------------------------------------------------------------


class H2ORequest(AutoMLRequest):
    """The ``automl/h2o`` body: the common request, H2O's ``options``, its sort metric and folds."""

    def __init__(self, ctx: StepContext) -> None:
        super().__init__(ctx)
        self.options = self.options_except(ctx, RESERVED_OPTIONS)
        if self.metric.lower() not in SORT_METRICS:
            raise StepError(f"metric {self.metric!r} has no H2O equivalent; use one of {sorted(SORT_METRICS)}")
        self.sort_metric = SORT_METRICS[self.metric.lower()]
        self.cv = self.body.cv or 5

    def runtime_s(self, left: float, slowdown: float = 1.0) -> int:
        """H2O's max_runtime_secs (whole seconds) from what is left of the budget (less what follows the
        search, ``slowdown`` times slower on a busy machine); at least MIN_SEARCH_S, because a search that
        trains no model is worth nothing (the overrun is said in the log)."""
        runtime = math.floor((left - FINISH_S * slowdown) * RUNTIME_SHARE)
        if runtime < MIN_SEARCH_S:
            print(f"only {left:.0f} s of the budget left after the JVM start: searching {MIN_SEARCH_S} s anyway")
        return max(runtime, MIN_SEARCH_S)

    def constructor_arguments(self, runtime: int) -> dict[str, Any]:
        return {
            "max_runtime_secs": runtime,
            "seed": self.seed,
            "sort_metric": self.sort_metric,
            "nfolds": self.cv,
            "project_name": "orchestra",
            "verbosity": "warn",
            **self.options,
        }


class H2OEngine(MethodEngine, AutoMLEngine[H2ORequest]):
    name = "h2o"
    allowed_modules = catalog.TOOLS["h2o"].allowed_modules
    request_class = H2ORequest

    def predict(self, ctx: StepContext) -> StepResult:
        with self._scoring(ctx):
            return super().predict(ctx)

    def evaluate(self, ctx: StepContext) -> StepResult:
        with self._scoring(ctx):
            return super().evaluate(ctx)

    def _scoring(self, ctx: StepContext) -> contextlib.AbstractContextManager[Any]:
        """One JVM for the step, with the step's allowances, when the parent is a stored H2O model without a
        MOJO (a MOJO scores in its own short java process)."""
        parent = ctx.load_step(ctx.request_as(MethodBody).parentName)
        if isinstance(parent, H2OModel) and parent.mojo_path() is None:
            return h2o_cluster(ctx)
        return contextlib.nullcontext()

    def load(self, ref: OutputRef, local_dir: Path) -> Any:
        value = super().load(ref, local_dir)
        if isinstance(value, H2OModel):
            value.directory = str(local_dir)
        return value

    def load_served(self, ref: OutputRef, local_dir: Path) -> ServedModel:
        value = self.load(ref, local_dir)
        return ServedH2OModel(value) if isinstance(value, H2OModel) else ServedModel(value)

    def model(self, ctx: StepContext) -> StepResult:
        module_path, class_name, factory = self.model_factory(ctx)
        kwargs = method_kwargs(ctx, "classParameters")
        instance = factory(**kwargs)  # checks the arguments now; the JVM-side object is made by train
        metadata = {
            "class": f"{module_path}.{class_name}",
            "estimatorParameters": describe_parameters(instance, kwargs),
        }
        return StepResult(value=ModelSpec(module_path, class_name, kwargs), metadata=metadata)

    def _fit(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(MethodBody)
        blueprint = ctx.load_step(request.parentName)
        if not isinstance(blueprint, ModelSpec):
            return super()._fit(ctx)  # a stored H2OModel: only its Python-side methods apply
        method = request.method or "train"
        kwargs = method_kwargs(ctx)
        factory = import_allowed(blueprint.module_path, blueprint.class_name, self.allowed_modules)
        with h2o_cluster(ctx):
            instance = factory(**blueprint.kwargs)
            frames = {k: v for k, v in kwargs.items() if isinstance(v, pd.DataFrame)}
            target = kwargs.get("y")
            first = next(iter(frames.values()), None)
            factors = [target] if isinstance(target, str) and first is not None and target in first.columns else []
            if factors and first is not None and not is_class_target(first[factors[0]]):
                factors = []
            converted = {**kwargs, **{k: to_h2o_frame(v, factors) for k, v in frames.items()}}
            print(f"calling {blueprint.class_name}.{method}({', '.join(kwargs)})", flush=True)
            call_method(instance, method, converted)
            fitted = getattr(instance, "leader", None) or instance
            if getattr(fitted, "model_id", None) is None:
                raise StepError(f"{blueprint.class_name}.{method} produced no trained model")
            saved = save_h2o_model(fitted, ctx.output_dir)
            features = kwargs.get("x") or [c for c in (first.columns if first is not None else []) if c != target]
            task = "classification" if factors else "regression"
            classes = h2o_classes(first[target]) if factors and first is not None else None
            model = H2OModel(fitted.model_id, fitted.algo, list(features), target, task, classes, saved.mojo)
            facts = model_facts(fitted)
        metadata = {
            "class": blueprint.qualified_name,
            "method": method,
            **saved.as_metadata(),
            **facts,
        }
        return StepResult(value=model, metadata=metadata, metrics=_numbers(facts.get("performance", {})))

    def search(self, ctx: StepContext, request: H2ORequest, data: TrainingData) -> SearchOutcome:
        frame, used = data.frame, data.decision.used
        classification = request.task == "classification"
        with h2o_cluster(ctx) as jvm:
            from h2o.automl import H2OAutoML

            table = to_h2o_frame(frame[[*used, request.target]], [request.target] if classification else [])
            runtime = request.runtime_s(request.seconds_left(), max(1.0, jvm.started_s / IDLE_JVM_START_S))
            print(f"H2O AutoML: {runtime} s of search ({jvm.started_s:.1f} s went to the JVM start)", flush=True)
            ctx.progress(None, f"searching for {runtime} s")
            search = H2OAutoML(**request.constructor_arguments(runtime))
            search.train(x=used, y=request.target, training_frame=table)
            leader = search.leader
            if leader is None:
                raise StepError(f"H2O AutoML trained no model within {runtime} s; raise timeBudget")
            board = h2o_leaderboard(search)
            saved = save_h2o_model(leader, ctx.output_dir)
            facts = model_facts(leader)
        classes = h2o_classes(frame[request.target]) if classification else None
        model = H2OModel(leader.model_id, leader.algo, used, request.target, request.task, classes, saved.mojo)
        sort_metric = _board_metric(board, request.sort_metric)
        best_score = as_scalar(board[sort_metric].iloc[0]) if sort_metric in board.columns else None
        metadata = {
            "bestModelId": leader.model_id,
            "searchSeconds": runtime,
            "jvmStartSeconds": round(jvm.started_s, 2),
            **saved.as_metadata(),
            **facts,
        }
        metrics = {"cvScore": best_score, **_numbers(facts.get("performance", {}))}
        return SearchOutcome(model, board, leader.algo, best_score, sort_metric, metadata, metrics)


def h2o_leaderboard(search: Any) -> pd.DataFrame:
    """H2O's leaderboard with the extra columns (algorithm, training time, predict time per row)."""
    from h2o.automl import get_leaderboard

    board = as_pandas(get_leaderboard(search, extra_columns="ALL"))
    board = board.rename(columns={"model_id": "modelId"})
    return board.reset_index(drop=True)


def as_pandas(frame: Any) -> pd.DataFrame:
    """An H2OFrame as pandas, without H2O's advice to install polars (single-threaded is right for a step)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        result: pd.DataFrame = frame.as_data_frame(use_multi_thread=False)
    return result


def _board_metric(board: pd.DataFrame, sort_metric: str) -> str:
    """The leaderboard column of the sort metric (H2O picks auc/rmse/... itself for AUTO)."""
    if sort_metric != "AUTO":
        return sort_metric.lower()
    known = [c for c in board.columns if c not in {"modelId", "algo"}]
    return known[0] if known else "auc"


def model_facts(model: Any) -> dict[str, Any]:
    """Algorithm, id and the model's cross-validation (else training) performance as plain numbers."""
    facts: dict[str, Any] = {"algo": model.algo, "modelId": model.model_id}
    with contextlib.suppress(Exception):
        performance = model.model_performance(xval=bool(model.cross_validation_metrics_summary() is not None))
        facts["performance"] = _performance_numbers(performance)
    return facts


def _performance_numbers(performance: Any) -> dict[str, float]:
    wanted: dict[str, Callable[[], Any]] = {
        "auc": performance.auc,
        "logloss": performance.logloss,
        "rmse": performance.rmse,
        "mean_per_class_error": performance.mean_per_class_error,
    }
    numbers: dict[str, float] = {}
    for name, getter in wanted.items():
        with contextlib.suppress(Exception):
            value = as_scalar(getter())
            if value is not None and math.isfinite(value):
                numbers[name] = value
    return numbers


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in values.items() if isinstance(v, float)}
