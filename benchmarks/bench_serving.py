"""serving: online prediction of a registered LightGBM model on UCI Adult, against ``mlflow models serve`` (issue 17).

One run, on the otherwise idle machine:

1. **Models.** A fresh server (default settings: 2 serving workers for the main environment). adult.data is
   ingested; a ``function/python`` step replaces each text column by its category codes (int64), so that
   scikit-learn API estimators take the table as it is; ``model/scikitlearn`` + ``train/scikitlearn`` fit
   ``lightgbm.LGBMClassifier`` (200 trees, ``n_jobs`` 1) and scikit-learn's ``RandomForestClassifier`` (100
   trees) on its 14 feature columns. The LightGBM step is registered as version 1 of ``adult``, and as version
   1 of ``adult_alias``, whose version 2 is the forest. The first 10,000 rows of the coded table (content
   pages) are the requests' rows; the version's frozen ``model.joblib`` is downloaded from the registry
   (``GET /models/adult/versions/1/files/model.joblib``). Besides, ``automl/flaml`` restricted to ``lgbm``
   trains the LightGBM model a user of the AutoML tool gets (``adult_flaml``; text columns as they are).
2. **Side by side with MLflow.** The same ``model.joblib`` wrapped by ``benchmarks/_mlflow_model.py`` as an
   MLflow pyfunc model (a local folder; ``predict`` and ``predict_proba``, as the serving worker calls them),
   served by ``mlflow models serve --env-manager local`` from ``.bench-venv-mlflow`` (MLflow's default: 1
   worker), while our server runs too. Ours: ``POST /api/v1/models/adult/predict`` with ``{"records": [row]}``
   (predictions and class probabilities, the default); MLflow's: ``POST /invocations`` with
   ``{"dataframe_records": [row]}``. After a warm-up of each (every worker loads the model), 1,000 sequential
   single-row requests each over one keep-alive connection (latency = send until the whole answer is read), in
   4 alternating blocks (ours, MLflow's, ours with ``probabilities=false``); then 8 concurrent clients (a
   thread and a keep-alive connection each) for 10 s each, in 2 alternating blocks: throughput. Then 10,000
   rows as JSON with probabilities on both (no goal), and the concurrent phase against ``--workers 2`` (as many
   processes as our pool; no goal).
3. **Batches.** 10,000 rows in one request to our server (``probabilities=false``), as JSON records and as an
   Arrow IPC stream: median of 5. Then the FLAML model: 1,000 sequential single-row requests (no goal).
4. **Alias move under load.** 4 clients send single-row requests to ``adult_alias@champion`` every 20 ms each
   (~200 requests/s); after 2 s ``champion`` moves from version 1 to version 2 (never loaded before), 3 s
   later back to 1. Every answer's status, ``X-Model-Version`` and ``Server-Timing`` (a ``load`` duration
   above 1 ms marks a request that loaded the version in its worker) are kept.
5. **References.** ``benchmarks/_plain_predict.py`` in a subprocess of the main environment: the model's own
   ``predict`` on the same 10,000 rows (a pandas frame read from Parquet), median of 5, and its ``predict`` +
   ``predict_proba`` on one row. The transfer: the same request bytes POSTed to ``benchmarks/_echo_server.py``
   (uvicorn with the API's settings; it reads the body and answers as many bytes as the prediction's answer
   had, nothing parsed), median of 5.

Goals: single-row p50 <= 3 ms and p99 <= 10 ms; p50 <= 0.5x MLflow's; throughput at 8 clients >= 2x MLflow's;
10,000 rows <= 1.5x (predict + transfer); alias move with no failed request, and the first request to the newly
loaded scikit-learn version <= 1.5 s. ``--quick``: FLAML 10 s, 300 sequential requests, 3 s of concurrency,
2 repetitions, a shorter alias phase, no ``--workers 2`` run.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pyarrow as pa

from automl_orchestra.client import Client, ModelRegistry
from benchmarks._harness import (
    ADULT_COLUMNS,
    REPO_ROOT,
    Server,
    StepTiming,
    datasets_dir,
    free_port,
    median,
    percentile,
    print_comparison,
    run_script,
    run_step,
    section,
    verdict,
    wait_for_warm_pool,
    write_result,
)

NAME = "serving"
TARGET = "income"
SEED = 1
MODEL = "adult"  # version 1: LightGBM
ALIAS_MODEL = "adult_alias"  # version 1: the same LightGBM; version 2: scikit-learn's random forest
FLAML_MODEL = "adult_flaml"  # version 1: automl/flaml restricted to LightGBM, on the text columns as they are
FEATURES = [column for column in ADULT_COLUMNS if column != TARGET]
# function/python: every text column but the target as its category codes (int64, in sorted order).
ENCODE_CODE = """
table = data.copy()
for column in table.columns:
    if column != target and table[column].dtype.kind not in "biuf":
        table[column] = table[column].astype("category").cat.codes.astype("int64")
response = table
"""
ESTIMATORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "adult_lgbm": (
        "lightgbm",
        "LGBMClassifier",
        {"n_estimators": 200, "learning_rate": 0.05, "random_state": SEED, "n_jobs": 1, "verbose": -1},
    ),
    "adult_rf": (
        "sklearn.ensemble",
        "RandomForestClassifier",
        {"n_estimators": 100, "min_samples_leaf": 2, "random_state": SEED, "n_jobs": 1},
    ),
}
ALIAS = "champion"
API = "/api/v1"
BATCH_ROWS = 10_000
BLOCKS = 4  # sequential requests alternate between the servers in this many blocks
CLIENTS = 8
LOAD_CLIENTS = 4
LOAD_PERIOD_S = 0.02  # each load client sends a request every 20 ms
LOADED_MARK_MS = 1.0  # a Server-Timing load duration above this: the request loaded the version
GOAL_P50_MS = 3.0
GOAL_P99_MS = 10.0
GOAL_P50_VS_MLFLOW = 0.5
GOAL_THROUGHPUT_VS_MLFLOW = 2.0
GOAL_BATCH_RATIO = 1.5
GOAL_FIRST_REQUEST_S = 1.5
ARROW_STREAM = "application/vnd.apache.arrow.stream"
SERVER_TIMING = re.compile(r"([A-Za-z_-]+);dur=([0-9.]+)")
START_TIMEOUT_S = 180.0

MLFLOW_VENV = REPO_ROOT / ".bench-venv-mlflow"
MLFLOW_REQUIREMENTS = Path(__file__).with_name("requirements-mlflow.txt")
MLFLOW_MODEL_SCRIPT = Path(__file__).with_name("_mlflow_model.py")
PLAIN_SCRIPT = Path(__file__).with_name("_plain_predict.py")
ECHO_SCRIPT = Path(__file__).with_name("_echo_server.py")
# The model's libraries, pinned in the MLflow environment to the main environment's versions.
PINNED = ("lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "joblib")


@dataclass(frozen=True)
class Settings:
    flaml_budget: float
    sequential: int
    concurrent_s: float
    repeats: int
    alias_hold_s: float
    mlflow_two_workers: bool


FULL = Settings(30.0, 1000, 10.0, 5, 3.0, True)
QUICK = Settings(10.0, 300, 3.0, 2, 1.5, False)


# ----- the MLflow environment -----------------------------------------------------------------------


def mlflow_environment() -> Path:
    """``.bench-venv-mlflow``: created on first use, re-installed when the requirements or the main
    environment's versions of the model's libraries change (a stamp holds their hash)."""
    python = MLFLOW_VENV / "bin" / "python"
    constraints = "".join(f"{name}=={metadata.version(name)}\n" for name in PINNED)
    wanted = hashlib.sha256(MLFLOW_REQUIREMENTS.read_bytes() + constraints.encode()).hexdigest()
    stamp = MLFLOW_VENV / ".requirements.sha256"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return MLFLOW_VENV

    def pip(*args: str) -> None:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *args], cwd=REPO_ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"pip install {' '.join(args)} failed in {MLFLOW_VENV.name}:\n{done.stderr[-3000:]}")

    if not python.exists():
        print(f"creating {MLFLOW_VENV.name} (MLflow, the peer; a few minutes the first time) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        pip("--upgrade", "pip")
    print(f"installing {MLFLOW_REQUIREMENTS.name} into {MLFLOW_VENV.name} ...", flush=True)
    pinned = MLFLOW_VENV / "constraints.txt"
    pinned.write_text(constraints)
    pip("-r", str(MLFLOW_REQUIREMENTS), "-c", str(pinned))
    stamp.write_text(wanted + "\n")
    return MLFLOW_VENV


def environment_version(venv: Path, package: str) -> str | None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"from importlib import metadata; print(metadata.version({package!r}))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None


# ----- HTTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int  # 0: no answer (the connection failed)
    seconds: float  # from sending the request until the whole answer was read
    sent: float  # perf_counter() when it was sent
    version: str | None = None  # X-Model-Version
    timing: dict[str, float] = field(default_factory=dict)  # Server-Timing: name -> ms
    size: int = 0
    error: str | None = None


class Connection:
    """One keep-alive HTTP/1.1 connection (``http.client``: tens of microseconds per request on the client)."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self._http = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)

    def post(self, path: str, body: bytes, content_type: str = "application/json", **headers: str) -> Reply:
        sent = time.perf_counter()
        try:
            self._http.request("POST", path, body=body, headers={"Content-Type": content_type, **headers})
            response = self._http.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._http.close()
            return Reply(0, time.perf_counter() - sent, sent, error=f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - sent
        timing = {name: float(ms) for name, ms in SERVER_TIMING.findall(response.getheader("Server-Timing") or "")}
        error = None if response.status == 200 else data[:500].decode(errors="replace")
        return Reply(
            response.status,
            seconds,
            sent,
            response.getheader("X-Model-Version"),
            timing,
            len(data),
            error,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def checked(reply: Reply, what: str) -> Reply:
    if reply.status != 200:
        raise RuntimeError(f"{what}: {reply.status} {reply.error}")
    return reply


def sequential(url: str, path: str, bodies: Sequence[bytes], count: int) -> list[Reply]:
    """``count`` requests one after the other over one connection."""
    with Connection(url) as connection:
        return [checked(connection.post(path, bodies[i % len(bodies)]), path) for i in range(count)]


def concurrent(url: str, path: str, bodies: Sequence[bytes], clients: int, seconds: float) -> tuple[list[Reply], float]:
    """``clients`` threads, each with its own connection, sending requests back to back for ``seconds``:
    every reply, and the time from the start until the last answer."""
    replies: list[list[Reply]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    end = [0.0]

    def client(number: int) -> None:
        with Connection(url) as connection:
            barrier.wait()
            i = number
            while time.perf_counter() < end[0]:
                replies[number].append(connection.post(path, bodies[i % len(bodies)]))
                i += clients

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    end[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    done = [reply for per_client in replies for reply in per_client]
    return done, max(reply.sent + reply.seconds for reply in done) - started


def throughput_summary(replies: Sequence[Reply], seconds: float) -> dict[str, Any]:
    ok = [reply.seconds for reply in replies if reply.status == 200]
    return {
        "clients": CLIENTS,
        "seconds": round(seconds, 3),
        "requests": len(replies),
        "failed": len(replies) - len(ok),
        "requestsPerS": round(len(ok) / seconds, 1),
        "p50Ms": round(percentile(ok, 50) * 1000, 3) if ok else None,
        "p99Ms": round(percentile(ok, 99) * 1000, 3) if ok else None,
    }


def repeated(url: str, path: str, body: bytes, repeats: int, content_type: str = "application/json") -> dict[str, Any]:
    """One request sent ``repeats`` times (after one warm-up): the median time and the answer's size."""
    with Connection(url, timeout=600) as connection:
        first = checked(connection.post(path, body, content_type), path)
        times = [checked(connection.post(path, body, content_type), path).seconds for _ in range(repeats)]
    return {"medianS": median(times), "timesS": times, "requestBytes": len(body), "answerBytes": first.size}


def latency_summary(replies: Sequence[Reply]) -> dict[str, Any]:
    """Percentiles of the latencies, and the median of each ``Server-Timing`` part (where the time went:
    ``worker`` is the API's call to the serving worker, ``predict`` the model's calls in it)."""
    latencies = [reply.seconds for reply in replies]
    parts = sorted({name for reply in replies for name in reply.timing})
    return {
        "requests": len(latencies),
        "p50Ms": round(percentile(latencies, 50) * 1000, 3),
        "p99Ms": round(percentile(latencies, 99) * 1000, 3),
        "meanMs": round(sum(latencies) / len(latencies) * 1000, 3),
        "maxMs": round(max(latencies) * 1000, 3),
        "serverTimingMedianMs": {
            name: round(median([reply.timing[name] for reply in replies if name in reply.timing]), 3) for name in parts
        },
        "latenciesMs": [round(value * 1000, 3) for value in latencies],
    }


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def background_server(
    command: Sequence[str], ready_path: str, folder: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A server process (and its children: its own process group) on a free port; yields its URL."""
    port = free_port()
    log = folder / f"server-{port}.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in command],
            cwd=folder,
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + ready_path, process, log)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# ----- the model and the rows -----------------------------------------------------------------------


def train_models(client: Client, flaml_budget: float) -> dict[str, StepTiming]:
    """The coded table, LightGBM and the random forest on it, and FLAML's LightGBM on the table as it is."""
    code = {"name": "adult_coded", "code": ENCODE_CODE, "parameters": {"data": "$adult", "target": TARGET}}
    run_step(client, "function", "python", code)
    run_step(client, "transform", "projection", {"name": "adult_X", "parentName": "adult_coded", "fields": FEATURES})
    steps: dict[str, StepTiming] = {}
    for name, (module, cls, parameters) in ESTIMATORS.items():
        model = {"name": f"{name}_model", "modulePath": module, "class": cls, "classParameters": parameters}
        run_step(client, "model", "scikitlearn", model)
        fit = {"X": "$adult_X", "y": f"$adult_coded.{TARGET}"}
        body = {"name": name, "parentName": f"{name}_model", "method": "fit", "methodParameters": fit}
        steps[name] = run_step(client, "train", "scikitlearn", body)
    flaml = {
        "name": "adult_flaml",
        "parentName": "adult",
        "target": TARGET,
        "task": "classification",
        "timeBudget": flaml_budget,
        "metric": "accuracy",
        "seed": SEED,
        "options": {"estimator_list": ["lgbm"]},
    }
    steps["adult_flaml"] = run_step(client, "automl", "flaml", flaml)
    return steps


def table_rows(client: Client, kind: str, step: str, columns: Sequence[str], count: int) -> list[dict[str, Any]]:
    """The first ``count`` rows of a table step (``kind``: service/tool) as the service gives them, ``columns``."""
    service, tool = kind.split("/")
    rows: list[dict[str, Any]] = []
    while len(rows) < count:
        page = client.content(service, tool, step, skip=len(rows), limit=100)[1:]
        if not page:
            break
        rows += [{column: row[column] for column in columns} for row in page]
    return rows[:count]


def trained(timing: StepTiming) -> dict[str, Any]:
    facts: dict[str, Any] = {
        key: timing.metadata[key] for key in ("bestLearner", "bestLoss", "bestConfig") if key in timing.metadata
    }
    return {"wallS": round(timing.total_s, 2), "runWallS": timing.wall_s, **facts}


def arrow_stream(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# ----- the phases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A predict endpoint and the single-row request bodies it takes."""

    url: str
    path: str
    bodies: list[bytes]


def warm_up(target: Target) -> None:
    """The first requests (the version loads), then concurrent ones, so that every worker holds the model."""
    sequential(target.url, target.path, target.bodies, 20)
    concurrent(target.url, target.path, target.bodies, CLIENTS, 1.0)


def compare_latency(targets: dict[str, Target], count: int) -> dict[str, dict[str, Any]]:
    """``count`` sequential single-row requests to each target, in alternating blocks (load on the machine
    that comes and goes then weighs on both sides alike)."""
    replies: dict[str, list[Reply]] = {name: [] for name in targets}
    size = max(1, count // BLOCKS)
    for block in range(BLOCKS):
        for name, target in targets.items():
            bodies = target.bodies[block * size :] + target.bodies[: block * size]  # other rows in each block
            replies[name] += sequential(target.url, target.path, bodies, size)
    return {name: latency_summary(found) for name, found in replies.items()}


def compare_throughput(targets: dict[str, Target], seconds: float) -> dict[str, dict[str, Any]]:
    """``CLIENTS`` concurrent clients against each target for ``seconds`` in all, in alternating blocks."""
    replies: dict[str, list[Reply]] = {name: [] for name in targets}
    elapsed = dict.fromkeys(targets, 0.0)
    for _block in range(2):
        for name, target in targets.items():
            found, took = concurrent(target.url, target.path, target.bodies, CLIENTS, seconds / 2)
            replies[name] += found
            elapsed[name] += took
    return {name: throughput_summary(replies[name], elapsed[name]) for name in targets}


def alias_move(server_url: str, client: Client, bodies: Sequence[bytes], hold_s: float) -> dict[str, Any]:
    """Steady load on ``adult_alias@champion`` while the alias moves to version 2 and back to 1."""
    registry = ModelRegistry(client=client)
    registry.set_alias(ALIAS_MODEL, ALIAS, 1)
    path = f"{API}/models/{ALIAS_MODEL}@{ALIAS}/predict"
    warm_up(Target(server_url, path, list(bodies)))
    replies: list[Reply] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop(number: int) -> None:
        with Connection(server_url, timeout=60) as connection:
            due, i = time.perf_counter() + number * LOAD_PERIOD_S / LOAD_CLIENTS, number
            while not stop.is_set():
                time.sleep(max(0.0, due - time.perf_counter()))
                reply = connection.post(path, bodies[i % len(bodies)])
                with lock:
                    replies.append(reply)
                due, i = max(due + LOAD_PERIOD_S, time.perf_counter()), i + LOAD_CLIENTS

    threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    moved_at = time.perf_counter()
    registry.set_alias(ALIAS_MODEL, ALIAS, 2)
    move_s = time.perf_counter() - moved_at
    time.sleep(hold_s)
    back_at = time.perf_counter()
    registry.set_alias(ALIAS_MODEL, ALIAS, 1)
    back_s = time.perf_counter() - back_at
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join()
    replies.sort(key=lambda reply: reply.sent)
    failed = [reply for reply in replies if reply.status != 200]
    new = [reply for reply in replies if reply.version == "2"]
    loads = [reply for reply in new if reply.timing.get("load", 0.0) > LOADED_MARK_MS]
    after_move = [r for r in replies if moved_at + move_s <= r.sent < back_at]
    after_back = [r for r in replies if r.sent >= back_at + back_s]
    return {
        "requests": len(replies),
        "failed": len(failed),
        "failures": [{"status": r.status, "error": r.error} for r in failed[:20]],
        "requestsPerS": round(len(replies) / (replies[-1].sent - replies[0].sent), 1) if len(replies) > 1 else None,
        "moveS": round(move_s, 4),
        "moveBackS": round(back_s, 4),
        "answeredByVersion2": len(new),
        "firstVersion2Ms": round(new[0].seconds * 1000, 3) if new else None,
        "firstVersion2AfterMoveMs": round((new[0].sent - moved_at) * 1000, 3) if new else None,
        "loadingRequestsMs": [round(r.seconds * 1000, 3) for r in loads],
        "loadingServerTimingMs": [r.timing.get("load") for r in loads],
        "slowestVersion2Ms": round(max(r.seconds for r in new) * 1000, 3) if new else None,
        "notVersion2AfterMove": sum(1 for r in after_move if r.version != "2"),
        "notVersion1AfterMoveBack": sum(1 for r in after_back if r.version != "1"),
        "p50Ms": round(percentile([r.seconds for r in replies], 50) * 1000, 3) if replies else None,
        "maxMs": round(max(r.seconds for r in replies) * 1000, 3) if replies else None,
    }


def prepare(server: Server, client: Client, csv: Path, work: Path, flaml_budget: float) -> dict[str, Any]:
    """Train and register the models; the rows (JSON, Parquet) and the LightGBM version's frozen files."""
    wait_for_warm_pool(server)
    run_step(client, "dataset", "csv", {"name": "adult", "header": False, "columns": ADULT_COLUMNS}, upload=csv)
    print(f"training LightGBM, a random forest and FLAML ({flaml_budget:g} s) ...", flush=True)
    steps = train_models(client, flaml_budget)
    registry = ModelRegistry(client=client)
    version = registry.register(MODEL, "adult_lgbm", description="LightGBM on the coded adult table")
    registry.register(ALIAS_MODEL, "adult_lgbm")
    forest = registry.register(ALIAS_MODEL, "adult_rf", description="scikit-learn's random forest")
    flaml_version = registry.register(FLAML_MODEL, "adult_flaml", description="FLAML, LightGBM only")
    columns = [column["name"] for column in version["signature"]["inputs"]]
    (work / "model.joblib").write_bytes(registry.read_file(MODEL, 1, "model.joblib"))
    (work / "flaml.joblib").write_bytes(registry.read_file(FLAML_MODEL, 1, "model.joblib"))
    rows = table_rows(client, "function/python", "adult_coded", columns, BATCH_ROWS)
    frame = pd.DataFrame(rows, columns=columns)
    frame.to_parquet(work / "rows.parquet", index=False)
    frame.head(100).to_parquet(work / "sample.parquet", index=False)
    flaml_columns = [column["name"] for column in flaml_version["signature"]["inputs"]]
    flaml_rows = table_rows(client, "dataset/csv", "adult", flaml_columns, 1000)
    pd.DataFrame(flaml_rows, columns=flaml_columns).to_parquet(work / "flaml-rows.parquet", index=False)
    return {
        "columns": columns,
        "rows": rows,
        "frame": frame,
        "flamlRows": flaml_rows,
        "training": {name: trained(timing) for name, timing in steps.items()},
        "versionBytes": {
            name: document["sizeBytes"]
            for name, document in (("lgbm", version), ("rf", forest), ("flaml", flaml_version))
        },
    }


def save_mlflow_model(venv: Path, work: Path) -> Path:
    """The downloaded model.joblib as an MLflow pyfunc model in ``work/mlflow-model``."""
    model_dir = work / "mlflow-model"
    saved = run_script(
        [str(MLFLOW_MODEL_SCRIPT), "--model", str(work / "model.joblib"), "--rows", str(work / "sample.parquet"),
         "--out", str(model_dir)],
        python=str(venv / "bin" / "python"),
    )  # fmt: skip
    print(f"MLflow model: {saved.stdout.strip().splitlines()[-1]}", flush=True)
    return model_dir


def mlflow_server(
    venv: Path, work: Path, model_dir: Path, workers: int | None = None
) -> contextlib.AbstractContextManager[str]:
    """``mlflow models serve --env-manager local`` from the MLflow environment (MLflow's default: 1 worker)."""
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": str(work / "mlruns"),
    }
    serve = [str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local"]
    serve += ["-h", "127.0.0.1", "-p", "{port}", *(["--workers", str(workers)] if workers else [])]
    return background_server(serve, "/ping", work, env)


def run_online(csv: Path, work: Path, venv: Path, settings: Settings) -> dict[str, Any]:
    """Our server and MLflow's side by side; then our batches, the FLAML model and the alias move."""
    with Server() as server, server.client(timeout=300) as client:
        prepared = prepare(server, client, csv, work, settings.flaml_budget)
        rows = prepared["rows"]
        model_dir = save_mlflow_model(venv, work)
        path = f"{API}/models/{MODEL}/predict"
        bodies = [json_bytes({"records": [row]}) for row in rows[:1000]]
        ours = Target(server.url, path, bodies)
        labels_only = Target(server.url, f"{path}?probabilities=false", bodies)
        mlflow_bodies = [json_bytes({"dataframe_records": [row]}) for row in rows[:1000]]
        batch_json = json_bytes({"records": rows})
        wait_for_warm_pool(server)
        with mlflow_server(venv, work, model_dir) as mlflow_url:
            theirs = Target(mlflow_url, "/invocations", mlflow_bodies)
            warm_up(ours)
            warm_up(theirs)
            print(f"single rows, {settings.sequential} sequential requests each, alternating ...", flush=True)
            targets = {"api": ours, "mlflow": theirs, "apiLabelsOnly": labels_only}
            latency = compare_latency(targets, settings.sequential)
            print(f"{CLIENTS} concurrent clients, {settings.concurrent_s:g} s each, alternating ...", flush=True)
            throughput = compare_throughput({"api": ours, "mlflow": theirs}, settings.concurrent_s)
            print(f"{BATCH_ROWS:,} rows with probabilities, JSON ...", flush=True)
            with_probabilities = {
                "api": repeated(server.url, path, batch_json, settings.repeats),
                "mlflow": repeated(
                    mlflow_url, "/invocations", json_bytes({"dataframe_records": rows}), settings.repeats
                ),
            }
        two_workers = None
        if settings.mlflow_two_workers:
            with mlflow_server(venv, work, model_dir, workers=2) as mlflow_url:
                print("MLflow --workers 2: concurrent clients, alternating ...", flush=True)
                two = Target(mlflow_url, "/invocations", mlflow_bodies)
                warm_up(two)
                two_workers = compare_throughput({"api": ours, "mlflow": two}, settings.concurrent_s)
        print(f"AutoML Orchestra: {BATCH_ROWS:,} rows, probabilities=false ...", flush=True)
        batch_arrow = arrow_stream(prepared["frame"])
        batches = {
            "json": repeated(server.url, labels_only.path, batch_json, settings.repeats),
            "arrow": repeated(server.url, labels_only.path, batch_arrow, settings.repeats, ARROW_STREAM),
        }
        print("AutoML Orchestra: the FLAML model, single rows ...", flush=True)
        flaml_bodies = [json_bytes({"records": [row]}) for row in prepared["flamlRows"]]
        flaml = Target(server.url, f"{API}/models/{FLAML_MODEL}/predict", flaml_bodies)
        warm_up(flaml)
        flaml_latency = latency_summary(sequential(flaml.url, flaml.path, flaml.bodies, settings.sequential))
        print("alias move under load ...", flush=True)
        moved = alias_move(server.url, client, bodies, settings.alias_hold_s)
    return {
        **{key: prepared[key] for key in ("columns", "training", "versionBytes")},
        "latency": latency,
        "throughput": throughput,
        "throughputTwoWorkers": two_workers,
        "withProbabilities": with_probabilities,
        "batches": batches,
        "batchBodies": {"json": batch_json, "arrow": batch_arrow},
        "flaml": flaml_latency,
        "alias": moved,
    }


def run_references(work: Path, api: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The model's own predict on the same rows (a subprocess), and the transfer of the same bytes."""
    print("the model's own predict, and the transfer ...", flush=True)
    args = [str(PLAIN_SCRIPT), "--model", str(work / "model.joblib"), "--rows", str(work / "rows.parquet")]
    plain = run_script([*args, "--repeat", str(settings.repeats), "--single", "200"])
    direct = json.loads(plain.stdout.strip().splitlines()[-1])
    args = [str(PLAIN_SCRIPT), "--model", str(work / "flaml.joblib"), "--rows", str(work / "flaml-rows.parquet")]
    plain = run_script([*args, "--repeat", "0", "--single", "200"])
    direct_flaml = json.loads(plain.stdout.strip().splitlines()[-1])
    transfer: dict[str, Any] = {}
    with background_server([sys.executable, str(ECHO_SCRIPT), "{port}"], "/", work) as url:
        for kind, body in api["batchBodies"].items():
            answer = api["batches"][kind]["answerBytes"]
            content_type = ARROW_STREAM if kind == "arrow" else "application/json"
            with Connection(url, timeout=600) as connection:
                connection.post("/", body, content_type, **{"X-Answer-Bytes": str(answer)})
                times = [
                    checked(connection.post("/", body, content_type, **{"X-Answer-Bytes": str(answer)}), "echo").seconds
                    for _ in range(settings.repeats)
                ]
            transfer[kind] = {
                "medianS": median(times),
                "timesS": times,
                "requestBytes": len(body),
                "answerBytes": answer,
            }
    return {"direct": direct, "directFlaml": direct_flaml, "transfer": transfer}


# ----- the report -----------------------------------------------------------------------------------


def main(quick: bool = False) -> dict[str, Any]:
    settings = QUICK if quick else FULL
    csv = datasets_dir() / "adult" / "adult.data"
    venv = mlflow_environment()
    section(
        f"serving: a LightGBM model on adult.data over HTTP vs mlflow models serve ({settings.sequential} sequential "
        f"requests, {CLIENTS} clients for {settings.concurrent_s:g} s, {BATCH_ROWS:,}-row batches)"
    )
    with tempfile.TemporaryDirectory(prefix="orchestra-bench-serving-") as folder:
        work = Path(folder)
        online = run_online(csv, work, venv, settings)
        references = run_references(work, online, settings)
    return report(quick, settings, venv, online, references)


def report(quick: bool, settings: Settings, venv: Path, online: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    latency, throughput, two = online["latency"], online["throughput"], online["throughputTwoWorkers"]
    ours, theirs = latency["api"], latency["mlflow"]
    p50, p99 = ours["p50Ms"], ours["p99Ms"]
    p50_ratio = p50 / theirs["p50Ms"]
    throughput_ratio = throughput["api"]["requestsPerS"] / throughput["mlflow"]["requestsPerS"]
    predict_s = refs["direct"]["predictMedianS"]
    batches = online["batches"]
    batch_ratios = {
        kind: batches[kind]["medianS"] / (predict_s + refs["transfer"][kind]["medianS"]) for kind in ("json", "arrow")
    }
    moved = online["alias"]
    first_s = (moved["slowestVersion2Ms"] or float("inf")) / 1000
    parts = ours["serverTimingMedianMs"]
    flaml, direct_flaml = online["flaml"], refs["directFlaml"]
    probabilities = online["withProbabilities"]
    rows = [
        ("single row p50 ms (1 connection)", f"{p50:.2f}", f"{theirs['p50Ms']:.2f}", f"{p50_ratio:.3f}x"),
        ("single row p99 ms", f"{p99:.2f}", f"{theirs['p99Ms']:.2f}", ""),
        ("  p50 ms, probabilities=false", f"{latency['apiLabelsOnly']['p50Ms']:.2f}", "", ""),
        ("  Server-Timing medians: worker call / predict ms",
         f"{parts.get('worker', 0):.2f} / {parts.get('predict', 0):.2f}", "", ""),
        ("  the model's own predict + predict_proba, 1 row ms", f"{refs['direct']['singleRowP50Ms']:.2f}", "",
         "no HTTP"),
        (f"requests/s, {CLIENTS} clients", f"{throughput['api']['requestsPerS']:.0f}",
         f"{throughput['mlflow']['requestsPerS']:.0f}", f"{throughput_ratio:.2f}x"),
        (f"  p50 / p99 ms, {CLIENTS} clients", f"{throughput['api']['p50Ms']:.1f} / {throughput['api']['p99Ms']:.1f}",
         f"{throughput['mlflow']['p50Ms']:.1f} / {throughput['mlflow']['p99Ms']:.1f}", ""),
    ]  # fmt: skip
    if two:
        ratio_two = two["api"]["requestsPerS"] / two["mlflow"]["requestsPerS"]
        rows.append(("  requests/s, MLflow --workers 2", f"{two['api']['requestsPerS']:.0f}",
                     f"{two['mlflow']['requestsPerS']:.0f}", f"{ratio_two:.2f}x"))  # fmt: skip
    for kind, label in (("json", "JSON records"), ("arrow", "Arrow IPC")):
        batch, transfer = batches[kind], refs["transfer"][kind]
        rows.append(
            (f"{BATCH_ROWS:,} rows, {label} ({batch['requestBytes'] / 1e6:.2f} MB) s", f"{batch['medianS']:.3f}",
             "", f"{batch_ratios[kind]:.2f}x of predict + transfer")
        )  # fmt: skip
        rows.append((f"  transfer s ({label})", f"{transfer['medianS']:.4f}", "", ""))
    rows.append(("  the model's own predict s", f"{predict_s:.3f}", "", ""))
    rows.append(
        (f"{BATCH_ROWS:,} rows with probabilities, JSON s", f"{probabilities['api']['medianS']:.3f}",
         f"{probabilities['mlflow']['medianS']:.3f}", "")
    )  # fmt: skip
    rows.append(("FLAML's LightGBM: single row p50 / p99 ms", f"{flaml['p50Ms']:.2f} / {flaml['p99Ms']:.2f}", "", ""))
    rows.append(("  the model's own predict + predict_proba, 1 row ms", f"{direct_flaml['singleRowP50Ms']:.2f}", "",
                 "no HTTP"))  # fmt: skip
    rows.append(("alias move: requests / failed", f"{moved['requests']} / {moved['failed']}", "", ""))
    rows.append(("  PUT alias s (to 2 / back to 1)", f"{moved['moveS']:.3f} / {moved['moveBackS']:.3f}", "", ""))
    loaded = ", ".join(f"{value:.0f}" for value in moved["loadingRequestsMs"]) or "none"
    rows.append(("  slowest answer of version 2 ms (those that loaded it)", f"{first_s * 1000:.0f} ({loaded})", "", ""))
    print_comparison(rows, "MLflow")
    goals: dict[str, tuple[bool, str]] = {
        "p50Ms": (p50 <= GOAL_P50_MS, f"single-row p50 {p50:.2f} ms (goal <= {GOAL_P50_MS:g})"),
        "p99Ms": (p99 <= GOAL_P99_MS, f"single-row p99 {p99:.2f} ms (goal <= {GOAL_P99_MS:g})"),
        "p50VsMlflow": (
            p50_ratio <= GOAL_P50_VS_MLFLOW,
            f"p50 / MLflow's {p50_ratio:.3f} (goal <= {GOAL_P50_VS_MLFLOW})",
        ),
        "throughputVsMlflow": (
            throughput_ratio >= GOAL_THROUGHPUT_VS_MLFLOW,
            f"throughput at {CLIENTS} clients / MLflow's {throughput_ratio:.2f} (goal >= {GOAL_THROUGHPUT_VS_MLFLOW})",
        ),
    }
    for kind, label in (("arrow", "Arrow"), ("json", "JSON")):
        ratio = batch_ratios[kind]
        line = f"{BATCH_ROWS:,} rows, {label} / (predict + transfer) {ratio:.2f} (goal <= {GOAL_BATCH_RATIO})"
        goals[f"batch{label}"] = (ratio <= GOAL_BATCH_RATIO, line)
    goals["aliasNoFailure"] = (moved["failed"] == 0, f"alias move: {moved['failed']} failed of {moved['requests']}")
    goals["firstRequestS"] = (
        first_s <= GOAL_FIRST_REQUEST_S,
        f"slowest request to the newly loaded scikit-learn version {first_s:.3f} s (goal <= {GOAL_FIRST_REQUEST_S})",
    )
    for ok, line in goals.values():
        print(f"{line}: {verdict(ok)}")
    record = {
        "settings": settings.__dict__,
        "mlflowVersion": environment_version(venv, "mlflow"),
        **{key: online[key] for key in ("training", "columns", "versionBytes")},
        "singleRow": latency,
        "concurrent": throughput,
        "concurrentMlflowTwoWorkers": two,
        "batches": batches,
        "batchesWithProbabilities": probabilities,
        "flamlModel": flaml,
        "aliasMove": moved,
        "direct": refs["direct"],
        "directFlamlModel": direct_flaml,
        "transfer": refs["transfer"],
        "ratios": {
            "p50VsMlflow": round(p50_ratio, 4),
            "throughputVsMlflow": round(throughput_ratio, 3),
            "throughputVsMlflowTwoWorkers": round(ratio_two, 3) if two else None,
            "batchJson": round(batch_ratios["json"], 3),
            "batchArrow": round(batch_ratios["arrow"], 3),
            "firstRequestS": round(first_s, 3),
        },
        "goals": {
            "p50Ms": GOAL_P50_MS,
            "p99Ms": GOAL_P99_MS,
            "p50VsMlflow": GOAL_P50_VS_MLFLOW,
            "throughputVsMlflow": GOAL_THROUGHPUT_VS_MLFLOW,
            "batchRatio": GOAL_BATCH_RATIO,
            "aliasFailed": 0,
            "firstRequestS": GOAL_FIRST_REQUEST_S,
        },
        "met": {key: ok for key, (ok, _line) in goals.items()},
    }
    write_result(NAME, quick, record)
    return record
