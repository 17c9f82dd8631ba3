"""One search trial in a forked child process with its own time and memory limits.

The supervisor enforces a step's limits by killing the whole worker: right for a step, wrong for one
trial of a search, which would take the best model found so far down with it. So each trial runs in a
forked child that this module stops *before* the step's limits are reached -- at the trial's own time
limit, or when the step's process tree (measured exactly as the supervisor measures it) comes within a
safety margin of the step's memory limit. The trial is then recorded as failed with that reason and the
search goes on.

Forking (not spawning) keeps a trial's start in milliseconds: the child inherits the imported libraries
and the training data. It is safe only while the parent has not started an OpenMP thread pool (GNU
OpenMP does not survive ``fork``: the child hangs at its first parallel region, measured here with torch).
Parents therefore keep torch at one thread (:func:`orchestrating_threads`) and the children raise it.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

POLL_S = 0.05
CANCELLED = "stopped: the search was cancelled by request"
# Margin kept under the step's memory limit: the supervisor polls every 50 ms too, and a trial that
# allocates fast (a ResNet on upscaled images) grows by hundreds of MB between two polls.
MIN_MARGIN_MB = 256.0
MARGIN_SHARE = 0.1

Emit = Callable[[dict[str, Any]], None]  # how a trial reports an event to its parent


@dataclass
class TrialLimits:
    timeout_s: float
    step_memory_mb: float

    @property
    def memory_mb(self) -> float:
        """What the step's process tree may reach before the trial is stopped."""
        return self.step_memory_mb - max(MIN_MARGIN_MB, MARGIN_SHARE * self.step_memory_mb)


@dataclass
class TrialOutcome:
    status: str  # "completed" or "failed"
    reason: str = ""
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    traceback: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "completed"


def orchestrating_threads() -> None:
    """One torch thread in a process that forks trials (see the module docstring)."""
    import torch

    torch.set_num_threads(1)


def run_trial(
    work: Callable[[Emit], dict[str, Any]],
    limits: TrialLimits,
    trial_dir: Path,
    cpus: int,
    on_event: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool] = lambda: False,
) -> TrialOutcome:
    """Run ``work(emit)`` in a forked child; ``emit(event)`` reaches ``on_event`` in this process while the
    child runs. ``work`` returns a JSON-able dict (the trial's results). When ``should_stop()`` turns true
    (the search was cancelled), the trial is stopped and recorded as such."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    events = trial_dir / "events.jsonl"
    result_file = trial_dir / "result.json"
    for path in (events, result_file):
        path.unlink(missing_ok=True)
    started = time.monotonic()
    # The child shares this process's memory until either writes to it; a garbage collection in the child
    # would write to every object it inherited (copying their pages). Frozen objects are never collected:
    # this process orchestrates one search and ends, so what it leaves uncollected goes with it.
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child ends with os._exit, coverage cannot see it
        _child(work, events, result_file, cpus)
    outcome = _supervise(pid, limits, events, on_event, started, should_stop)
    outcome.seconds = round(time.monotonic() - started, 3)
    if outcome.status == "completed":
        document = json.loads(result_file.read_text(encoding="utf-8"))
        if document.get("error"):
            outcome.status, outcome.reason = "failed", str(document["error"])[:2000]
            outcome.traceback = str(document.get("traceback", ""))
        else:
            outcome.result = document["result"]
            outcome.peak_memory_mb = max(outcome.peak_memory_mb, float(document.get("maxRssMb", 0.0)))
    return outcome


def _child(work: Callable[[Emit], dict[str, Any]], events: Path, result_file: Path, cpus: int) -> None:
    code = 0
    try:
        import torch

        torch.set_num_threads(max(1, cpus))
        with events.open("a", encoding="utf-8") as stream:

            def emit(event: dict[str, Any]) -> None:
                stream.write(json.dumps(event, default=str) + "\n")
                stream.flush()

            result = work(emit)
        document: dict[str, Any] = {"result": result}
    except BaseException as exc:  # noqa: BLE001 - every failure of a trial must reach its record
        document = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-20000:]}
        code = 1
    document["maxRssMb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        temporary = result_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, default=str), encoding="utf-8")
        temporary.rename(result_file)
    finally:
        os._exit(code)


def _supervise(
    pid: int,
    limits: TrialLimits,
    events: Path,
    on_event: Callable[[dict[str, Any]], None],
    started: float,
    should_stop: Callable[[], bool],
) -> TrialOutcome:
    reader = _EventReader(events)
    peak = 0.0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        reader.forward(on_event)
        if done:
            code = os.waitstatus_to_exitcode(status)
            if code in (0, 1):  # 1: the work raised, its result file says why
                return TrialOutcome("completed", peak_memory_mb=peak)
            return TrialOutcome("failed", f"the trial's process died ({_describe(code)})", peak_memory_mb=peak)
        used, child = _tree_mb(), _process_mb(pid)
        peak = max(peak, child)
        if used > limits.memory_mb:
            _kill(pid)
            reader.forward(on_event)  # the epochs it finished belong to its record
            reason = (
                f"memory limit: the step reached {used:.0f} MB (the trial {child:.0f} MB), over the "
                f"{limits.memory_mb:.0f} MB a trial may bring it to under its {limits.step_memory_mb:.0f} MB limit"
            )
            return TrialOutcome("failed", reason, peak_memory_mb=peak)
        if time.monotonic() - started > limits.timeout_s:
            _kill(pid)
            reader.forward(on_event)
            reason = f"time limit: the trial ran longer than {limits.timeout_s:.0f} s"
            return TrialOutcome("failed", reason, peak_memory_mb=peak)
        if should_stop():
            _kill(pid)
            reader.forward(on_event)
            return TrialOutcome("failed", CANCELLED, peak_memory_mb=peak)
        time.sleep(POLL_S)


class _EventReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def forward(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read()
        complete = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offset += complete
        for line in data[:complete].splitlines():
            if line.strip():
                on_event(json.loads(line))


def _tree_mb() -> float:
    """Resident memory of this process and its descendants (all of it: stricter than the supervisor, which
    counts only what the step added above the worker's size at its start)."""
    try:
        me = psutil.Process()
        processes = [me, *me.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def _process_mb(pid: int) -> float:
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return 0.0


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    os.waitpid(pid, 0)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
