"""What every benchmark needs: a real server on a free port with its own home, timed steps over the REST API,
peak-RSS sampling of process trees, percentiles, tables and the JSON result records."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import psutil

from automl_orchestra.client import Client

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024
START_TIMEOUT_S = 90.0
WAIT_POLL_S = 300.0  # the server's longest long-poll: one request per step in practice


# ----- data -----------------------------------------------------------------------------------------


def datasets_dir() -> Path:
    """``$ORCHESTRA_DATASETS``, else ``<repository>/../shared/datasets``."""
    given = os.environ.get("ORCHESTRA_DATASETS")
    folder = Path(given).expanduser() if given else REPO_ROOT.parent / "shared" / "datasets"
    if not folder.is_dir():
        raise SystemExit(f"datasets directory {folder} not found: set ORCHESTRA_DATASETS")
    return folder.resolve()


ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation", "relationship",
    "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
]  # fmt: skip


# ----- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """``python -m automl_orchestra.api.server`` in a subprocess, on a free port, with a temporary home.

    ``env`` adds ``ORCHESTRA_*`` settings. Use as a context manager; the home is removed afterwards.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _home: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        assert self._home is not None, "the server is not started"
        return Path(self._home.name)

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not started"
        return self.process.pid

    def client(self, timeout: float = 120.0) -> Client:
        return Client(self.url, timeout=timeout)

    def __enter__(self) -> Server:
        self._home = tempfile.TemporaryDirectory(prefix="orchestra-bench-")
        env = {**os.environ, "ORCHESTRA_HOME": self.home.as_posix(), "ORCHESTRA_PORT": str(self.port), **self.env}
        env.pop("ORCHESTRA_TOKENS", None)
        with (self.home / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "automl_orchestra.api.server"], env=env, stdout=log, stderr=log
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer /api/v1/health within {START_TIMEOUT_S:g} s")

    def log_tail(self, chars: int = 3000) -> str:
        return (self.home / "server.log").read_text(errors="replace")[-chars:]

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._home is not None:
            self._home.cleanup()
            self._home = None


def wait_for_warm_pool(server: Server, count: int = 1, timeout: float = 90.0) -> None:
    """Wait until ``count`` workers exist and have finished preloading (they stop using CPU).

    A step sent before the warm pool is ready starts a worker of its own, which then stays in the pool too:
    benchmarks wait, so that they measure the steady state rather than the start-up.
    """
    deadline = time.monotonic() + timeout
    previous, idle_samples = -1.0, 0
    while time.monotonic() < deadline and idle_samples < 5:
        workers = worker_processes(server.pid)
        used = sum(cpu_seconds(worker) for worker in workers)
        idle_samples = idle_samples + 1 if len(workers) >= count and used - previous < 0.005 else 0
        previous = used
        time.sleep(0.2)


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def worker_processes(root: int) -> list[psutil.Process]:
    """The worker processes (``automl_orchestra.runtime.worker``) under ``root``."""
    found = []
    for child in psutil.Process(root).children(recursive=True):
        try:
            if "automl_orchestra.runtime.worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


# ----- steps ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepTiming:
    """One step as the client saw it: POST until the long poll answered settled, and the run's own time."""

    name: str
    kind: str  # service/tool
    total_s: float
    wall_s: float
    metadata: dict[str, Any]

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.wall_s


def run_step(
    client: Client,
    service: str,
    tool: str,
    body: Mapping[str, Any],
    *,
    upload: Path | None = None,
) -> StepTiming:
    """Create a step (JSON ``body``, or a multipart ``upload`` with ``body`` as form fields), wait for it."""
    name = str(body["name"])
    started = time.perf_counter()
    if upload is None:
        client.create_step(service, tool, body)
    else:
        form = {key: value for key, value in body.items() if key != "name"}
        client.upload(service, tool, name, upload, **form)
    metadata = client.wait(name, poll=WAIT_POLL_S)
    total = time.perf_counter() - started
    runs = client.runs(name)
    wall = runs[-1].get("wallS") if runs else None
    if wall is None:
        raise RuntimeError(f"step {name} has no run time: {runs}")
    return StepTiming(name, f"{service}/{tool}", total, float(wall), metadata)


# ----- memory ---------------------------------------------------------------------------------------


class PeriodicSampler:
    """Calls ``sample()`` on entering, every ``interval_s`` in a thread, and on leaving a ``with`` block."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=type(self).__name__)

    def __enter__(self) -> Self:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        raise NotImplementedError


class RssSampler(PeriodicSampler):
    """Samples the resident memory of a process (and, with ``tree``, its descendants) in a thread.

    ``peak`` is the largest sum seen, ``at_peak`` the per-process RSS at that moment, ``first`` the first
    sample (the baseline). Use as a context manager around what is measured.
    """

    def __init__(self, pid: int, *, tree: bool = True, interval_s: float = 0.05) -> None:
        super().__init__(interval_s)
        self.root = psutil.Process(pid)
        self.tree = tree
        self.peak = 0
        self.first: int | None = None
        self.at_peak: dict[int, int] = {}
        self.samples = 0

    def sample(self) -> None:
        sizes = rss_by_pid(self.root, self.tree)
        total = sum(sizes.values())
        self.samples += 1
        if self.first is None:
            self.first = total
        if total > self.peak:
            self.peak, self.at_peak = total, sizes


def rss_by_pid(root: psutil.Process, tree: bool = True) -> dict[int, int]:
    try:
        processes = [root, *(root.children(recursive=True) if tree else [])]
    except psutil.Error:  # the root has ended
        return {}
    sizes = {}
    for process in processes:
        try:
            sizes[process.pid] = process.memory_info().rss
        except psutil.Error:  # ended between listing and reading
            continue
    return sizes


def rss_mb(value: int | None) -> float:
    return round((value or 0) / MB, 1)


# ----- a plain-script peer --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptRun:
    wall_s: float
    peak_rss: int
    stdout: str


def run_script(
    args: Sequence[str], env: Mapping[str, str] | None = None, interval_s: float = 0.05, python: str | None = None
) -> ScriptRun:
    """Run ``python args...`` as a subprocess (this interpreter, or ``python``: another engine environment's);
    its wall time (start to exit) and the peak RSS of its tree."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [python or sys.executable, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with RssSampler(process.pid, interval_s=interval_s) as sampler:
        stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return ScriptRun(wall, sampler.peak, stdout)


# ----- statistics and output ------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_comparison(rows: Sequence[tuple[str, str, str, str]], peer: str) -> None:
    """The API-vs-peer table: (measure, API value, peer value, comparison) per row."""
    columns = [("measure", "", ""), ("api", "API", ""), ("plain", peer, ""), ("cmp", f"API vs {peer}", "")]
    print(format_table([dict(zip(("measure", "api", "plain", "cmp"), row, strict=True)) for row in rows], columns))


def verdict(ok: bool) -> str:
    return "goal met" if ok else "GOAL MISSED"


Column = tuple[str, str, str]  # (key, header, format spec)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A plain-text table; ``None`` prints as ``-``."""
    cells = [[_cell(row.get(key), spec) for key, _header, spec in columns] for row in rows]
    headers = [header for _key, header, _spec in columns]
    widths = [max(len(text) for text in (header, *(line[i] for line in cells))) for i, header in enumerate(headers)]
    lines = [_line(headers, widths), "  ".join("-" * width for width in widths)]
    lines += [_line(line, widths) for line in cells]
    return "\n".join(lines)


def _line(texts: Sequence[str], widths: Sequence[int]) -> str:
    """The first column left-aligned (labels), the others right-aligned (numbers)."""
    aligned = [
        text.ljust(width) if i == 0 else text.rjust(width)
        for i, (text, width) in enumerate(zip(texts, widths, strict=True))
    ]
    return "  ".join(aligned)


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


_busy_at_start: list[float] = []


def section(title: str) -> None:
    """Print the benchmark's title; measure (and warn about) other CPU load, which skews the timings."""
    busy = psutil.cpu_percent(interval=1.0)
    _busy_at_start[:] = [busy]
    print(f"\n=== {title} ===", flush=True)
    if busy > 20:
        print(f"WARNING: the machine is busy ({busy:.0f} % CPU in use before the start); timings may be skewed")


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("automl-orchestra", "flaml", "lightgbm", "scikit-learn", "pandas", "pyarrow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "commit": git_commit(),
        "cpus": os.cpu_count(),
        "memoryGb": round(psutil.virtual_memory().total / 1024**3, 1),
        "cpuBusyPercentAtStart": _busy_at_start[0] if _busy_at_start else None,  # other work skews timings
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def git_commit() -> str | None:
    """The repository's commit, with ``+dirty`` when the working tree has changes (the code measured)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--", "src")
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_result(name: str, quick: bool, record: Mapping[str, Any]) -> Path:
    """``benchmarks/results/<name>.json`` (``<name>-quick.json`` for ``--quick``) with date and machine."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}{'-quick' if quick else ''}.json"
    document = {
        "benchmark": name,
        "quick": quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **record,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    print(f"\nwrote {path.relative_to(REPO_ROOT)}")
    return path
