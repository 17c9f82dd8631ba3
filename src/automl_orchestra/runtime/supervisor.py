"""One worker process under supervision: start it, hand it a job, enforce the job's wall-time and memory
limits and cancellation, and turn every ending into a ``JobResult``. Used by the local executor; a
distributed executor runs the same supervisor on the node that runs a job.

The supervisor owns every process a job starts, and none outlives the job, whatever way it ends (result,
kill, timeout, cancel): the worker's process group, every descendant of the worker (listed before a kill,
since the dead worker's children are re-parented away), and every process of this user whose environment
carries the worker's mark (``ORCHESTRA_WORKER_MARK``, inherited by anything forked or started from the
worker) or the run's mark (``ORCHESTRA_RUN_MARK``, set by the worker for each job), which finds processes
that left the group with ``setsid``/``start_new_session`` or by double-forking. A process that also drops
both variables from its environment and leaves the tree before the job ends is not found (see
docs/security.md); cgroups would need privileges the server does not have.

The memory limit counts what the job adds: the resident memory of the job's processes above the worker's
own size when the job started (a warm worker already holds its preloaded libraries, and a forked job's
process starts as a copy of its template).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from automl_orchestra.contracts.jobs import JobResult, JobSpec
from automl_orchestra.runtime.executor import log_prefix
from automl_orchestra.runtime.worker import RUN_MARK, STDERR_LOG, STDOUT_LOG
from automl_orchestra.store.artifacts import ArtifactStore

POLL_S = 0.05
START_TIMEOUT_S = 120.0
STOPPING = "cancel requested: stopping the search, keeping the best model found so far"
WORKER_MARK = "ORCHESTRA_WORKER_MARK"
KILL_WAIT_S = 5.0
SWEEPS = 5  # scans for marked processes: one may fork between a scan and its kill
# A warm worker that grew this much above its size at start is retired after its job: each job's limit
# counts from the worker's size when the job starts, so memory kept by earlier jobs must not pile up.
RECYCLE_GROWTH_MB = 1024.0
LOG_TAIL_BYTES = 16 << 20
PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class WorkerDied(Exception):
    pass


@dataclass
class _Watch:
    """What the supervision loop tracks for one job. Memory is the job's own: its processes' resident memory
    above ``baseline_mb``, the worker's size when the job started."""

    deadline: float
    baseline_mb: float
    started: float = field(default_factory=time.monotonic)
    used_mb: float = 0.0
    peak_mb: float = 0.0
    stop_by: float | None = None  # set when a cancel asked a stoppable job to end with what it has

    def measure(self, tree_mb: float) -> None:
        self.used_mb = max(0.0, tree_mb - self.baseline_mb)
        self.peak_mb = max(self.peak_mb, self.used_mb)


class WorkerProcess:
    def __init__(
        self,
        python: str,
        environment: str,
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
        forking: bool = False,
    ):
        self.python = python
        self.environment = environment
        self.forking = forking
        self.jobs_done = 0
        self.mark = worker_mark()
        read_fd, write_fd = os.pipe()
        env = {**os.environ, **(extra_env or {})}
        env.update({"ORCHESTRA_RESULT_FD": str(write_fd), "ORCHESTRA_ENVIRONMENT": environment})
        env["ORCHESTRA_FORK_JOBS"] = "1" if forking else "0"
        env[WORKER_MARK] = self.mark
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_dir / f"worker-{environment}-{time.time_ns()}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [python, "-m", "automl_orchestra.runtime.worker"],
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=self._log,
            pass_fds=(write_fd,),
            env=env,
            cwd=str(log_dir),
            start_new_session=True,  # own process group: a kill reaches the job's children too
        )
        os.close(write_fd)
        self._read_fd = read_fd
        self._buffer = b""
        ready = self._next_message(time.monotonic() + START_TIMEOUT_S)
        if ready is None or ready.get("type") != "ready":
            self.kill()
            raise WorkerDied(f"worker for environment {environment!r} did not start ({python})")
        self.ready_mb = self._own_mb()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def recyclable(self) -> bool:
        """Whether this worker may take another job: alive, and not grown far above its size at start."""
        return self.alive and self._own_mb() - self.ready_mb <= RECYCLE_GROWTH_MB

    def execute(
        self,
        job: JobSpec,
        cancel: threading.Event,
        on_progress: Callable[[dict[str, Any]], None],
    ) -> JobResult:
        # The worker alone (an idle worker has no children: a job that left some retired it), which is also
        # what a forked job's process starts at.
        watch = _Watch(deadline=time.monotonic() + job.limits.timeout_s, baseline_mb=self._own_mb())
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(job.model_dump_json().encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            reason = f"worker process died before the job started ({self._exit()})"
            self.kill(job.run_id)
            return self._failure(job, watch, reason)
        while True:
            message = self._next_message(time.monotonic() + POLL_S)
            if message is not None and message.get("type") == "progress":
                on_progress(message)
                continue
            if message is not None and message.get("type") == "result":
                return self._finished(job, JobResult.model_validate(message["result"]), watch)
            if not self.alive:
                died = f"worker process died ({self._exit()})"
                self.kill(job.run_id)  # what the job started lives on without it
                return self._failure(job, watch, died)
            watch.measure(self._tree_mb())
            limit = self._limit_reached(job, watch)
            if limit is not None:
                self.kill(job.run_id)
                return self._failure(job, watch, limit)
            if self._must_cancel(job, cancel, watch, on_progress):
                self.kill(job.run_id)
                return self._failure(job, watch, "cancelled by request", status="cancelled")

    def kill(self, run_id: str | None = None) -> None:
        """Kill the worker and everything it or the job ``run_id`` started (see the module docstring)."""
        needles = self._needles(run_id)
        # Listed before the kill: afterwards its children are re-parented and no longer found under it.
        found = _scan(needles)
        known = _handles(found.descendants_of(self._tree_root()) | found.marked)  # they remember who they are
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        # Children re-parented away from the group leader may still live: sweep the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        end_processes(known, needles)
        self.close()

    def stop(self) -> None:
        """Graceful stop of an idle worker: closing stdin ends its job loop."""
        if self.process.stdin and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        end_processes([], self._needles(None))
        self.close()

    def close(self) -> None:
        if self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1
        if not self._log.closed:
            self._log.close()

    # ----- internals -------------------------------------------------------------------------------

    def _limit_reached(self, job: JobSpec, watch: _Watch) -> str | None:
        """Why the job must be killed now (memory or wall time), if it must."""
        if watch.used_mb > job.limits.memory_mb:
            return (
                f"memory limit exceeded: the step used {watch.used_mb:.0f} MB above the worker's "
                f"{watch.baseline_mb:.0f} MB at start, its limit is {job.limits.memory_mb} MB"
            )
        if time.monotonic() > watch.deadline:
            return f"timeout: the step ran longer than its limit of {job.limits.timeout_s:g} s"
        return None

    def _must_cancel(
        self, job: JobSpec, cancel: threading.Event, watch: _Watch, on_progress: Callable[[dict[str, Any]], None]
    ) -> bool:
        """Whether a cancel kills the job now. A stoppable search is first asked to end with what it has and
        is killed only when it has not after ``job.stop_grace_s``."""
        if not cancel.is_set():
            return False
        if watch.stop_by is None and job.stop_grace_s > 0:
            watch.stop_by = time.monotonic() + job.stop_grace_s
            job.stop_file.write_text("cancelled by request\n", encoding="utf-8")
            on_progress({"type": "progress", "fraction": None, "message": STOPPING})
            return False
        return watch.stop_by is None or time.monotonic() > watch.stop_by

    def _finished(self, job: JobSpec, result: JobResult, watch: _Watch) -> JobResult:
        watch.measure(self._tree_mb())
        result.peak_memory_mb = round(watch.peak_mb, 1)
        self.jobs_done += 1
        self._end_leftovers(job)
        return result

    def _end_leftovers(self, job: JobSpec) -> None:
        """A job that ended with a result leaves nothing running (a background ``Popen``, a pool). A worker
        that ran the job itself and had something to end is retired: it may still hold handles on what was
        killed (a joblib pool it would reuse). A forking worker never ran the job and stays."""
        root, needles = self._tree_root(), self._needles(job.run_id)
        found = _scan(needles)  # one pass over the process table: this runs after every job
        # A forked job's own process exits by itself right after its result; killed mid-exit, the template
        # would report its death as one more result. What it started is a leftover.
        spared = {self.process.pid, *(found.children.get(root, []) if self.forking and root is not None else [])}
        left = _handles((found.descendants_of(root) | found.marked) - spared)
        if left and end_processes(left, needles, keep=frozenset(spared)) and not self.forking:
            self.kill(job.run_id)

    def _needles(self, run_id: str | None) -> list[bytes]:
        return [mark_needle(WORKER_MARK, self.mark)] + ([mark_needle(RUN_MARK, run_id)] if run_id else [])

    def _tree_root(self) -> int | None:
        """The worker's PID while it can have descendants (once reaped, its PID may name another process)."""
        return self.process.pid if self.process.poll() is None else None

    def _own_mb(self) -> float:
        try:
            return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20
        except psutil.Error:
            return 0.0

    def _next_message(self, until: float) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            remaining = until - time.monotonic()
            if remaining <= 0 or self._read_fd < 0:
                return None
            ready, _, _ = select.select([self._read_fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:  # the worker closed its end: it died
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def _tree_mb(self) -> float:
        """Resident memory of the job's processes: the worker's process tree, without the worker itself in a
        forking worker (it only holds the template; the job runs in its child)."""
        try:
            root = psutil.Process(self.process.pid)
            children = root.children(recursive=True)
        except psutil.Error:
            return 0.0
        processes = children if self.forking else [root, *children]
        total = 0
        for proc in processes:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20

    def _exit(self) -> str:
        code = self.process.poll()
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def _failure(self, job: JobSpec, watch: _Watch, reason: str, status: str = "failed") -> JobResult:
        return JobResult(
            run_id=job.run_id,
            status=status,
            reason=reason,
            exception=reason if status == "failed" else None,
            peak_memory_mb=round(watch.peak_mb, 1),
            wall_s=round(time.monotonic() - watch.started, 4),
        )


# ----- logs and work folders -------------------------------------------------------------------------


def publish_logs(store: ArtifactStore, job: JobSpec) -> None:
    """Copy the job's captured logs into the artifact store (also after a kill)."""
    publish_run_logs(store, Path(job.work_dir), log_prefix(job))


def publish_run_logs(store: ArtifactStore, work_dir: Path, prefix: str) -> None:
    """Publish a run's captured stdout/stderr (the last 16 MB of each) under ``prefix``, and the log files
    its engine wrote in its working directory (``cwd/*.log``: FLAML's, PyCaret's) under ``prefix/cwd/``.
    Used when a job ends and by the scheduler for a run whose server died."""
    for name in (STDOUT_LOG, STDERR_LOG):
        store.write_bytes(f"{prefix}/{name}", _tail(work_dir / name))
    for path in sorted((work_dir / "cwd").glob("*.log")):
        if path.is_file():
            store.write_bytes(f"{prefix}/cwd/{path.name}", _tail(path))


def remove_work_dir(work_dir: Path) -> None:
    """Delete a run's work folder, and its step's folder (``work/<name>``) once no run of the step has one
    there, so no empty folder outlives the step's runs."""
    shutil.rmtree(work_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: another run of the step is using it
        work_dir.parent.rmdir()


def _tail(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            return handle.read()
    except OSError:
        return b""


# ----- processes: identity, marks, ending --------------------------------------------------------------


def process_identity() -> tuple[int, float]:
    """This process: its PID and start time (``process_start``), which together name it even after its PID
    is reused."""
    return os.getpid(), _own_start(os.getpid())


@functools.cache
def _own_start(pid: int) -> float:  # by PID: a forked child is another process
    return process_start(pid)


def process_start(pid: int) -> float:
    """When ``pid`` started. On Linux in seconds since boot, read from ``/proc`` (exact and immune to changes
    of the system clock; ``pid_namespace`` tells boots apart); elsewhere psutil's time since the epoch.
    Raises ``psutil.NoSuchProcess`` for a process that is gone or a zombie."""
    if not PROC.is_dir():
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(pid)
        return float(process.create_time())
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError as exc:
        raise psutil.NoSuchProcess(pid) from exc
    if fields[0] == b"Z":
        raise psutil.NoSuchProcess(pid)
    return int(fields[19]) / CLOCK_TICKS


def pid_namespace() -> str:
    """Where a PID names the same process as here: this boot of this machine (two machines may share a host
    name) and this PID namespace (two containers may). Empty where ``/proc`` does not tell."""
    try:
        boot = (PROC / "sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink(PROC / 'self/ns/pid')}"
    except OSError:
        return ""


def process_gone(pid: int, started: float) -> bool:
    """Whether the process ``pid`` that started at ``started`` (``process_start``) has ended: a process now
    under that PID that started at another time is another one (a reused PID). Without ``/proc`` the start
    time comes from the clock, and two readings of one process may differ by a clock adjustment: there a
    second apart still counts as the same process."""
    tolerance = 0.001 if PROC.is_dir() else 1.0
    try:
        return abs(process_start(pid) - started) > tolerance
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # it exists but may not be read: alive
        return False


def worker_mark() -> str:
    """A new worker's mark: the supervising process's identity, then a unique part. The first part lets a
    restarted server find what a dead one's workers left running (``supervisor_needle``)."""
    return f"{supervisor_prefix(*process_identity())}{uuid.uuid4().hex}"


def supervisor_prefix(pid: int, started: float) -> str:
    return f"{pid}@{started:.2f}/"


def mark_needle(variable: str, value: str) -> bytes:
    """What a process's environment (NUL-separated) holds when ``variable`` is exactly ``value``."""
    return f"\0{variable}={value}\0".encode()


def supervisor_needle(pid: int, started: float) -> bytes:
    """What the environment of every process left by the workers of supervisor ``(pid, started)`` holds."""
    return f"\0{WORKER_MARK}={supervisor_prefix(pid, started)}".encode()


def end_processes(known: Iterable[psutil.Process], needles: list[bytes], keep: frozenset[int] = frozenset()) -> bool:
    """Kill the ``known`` processes and every process of this user whose environment holds one of
    ``needles`` (never this process or ``keep``), scanning again until none is left; whether any was."""
    keep = keep | {os.getpid()}
    victims = [process for process in known if process.pid not in keep]
    ended = False
    for _ in range(SWEEPS):
        victims = _living([*victims, *_handles(_scan(needles).marked - keep)])
        if not victims:
            break
        ended = True
        for process in victims:
            with contextlib.suppress(psutil.Error):
                process.kill()  # psutil refuses if the PID now names another process
        _wait_gone(victims, KILL_WAIT_S)
        victims = []
    return ended


@dataclass
class _Table:
    """One pass over this user's living processes: who is whose child, and who carries a mark."""

    children: dict[int, list[int]]
    marked: set[int]

    def descendants_of(self, root: int | None) -> set[int]:
        found: set[int] = set()
        stack = list(self.children.get(root, [])) if root is not None else []
        while stack:
            pid = stack.pop()
            if pid not in found:
                found.add(pid)
                stack.extend(self.children.get(pid, []))
        return found


def _scan(needles: list[bytes]) -> _Table:
    table = _Table(children={}, marked=set())
    for pid, parent, environment in _processes(needles):
        table.children.setdefault(parent, []).append(pid)
        if any(needle in environment for needle in needles):
            table.marked.add(pid)
    table.marked.discard(os.getpid())
    return table


def _processes(needles: list[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """(PID, parent PID, environment) of this user's processes that are not zombies. The environment is the
    one the process was started with, NUL-separated with a leading NUL; read only when there are needles."""
    if not PROC.is_dir():
        yield from _processes_psutil(needles)
        return
    uid = os.getuid()
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        # Read /proc directly: several times faster than psutil's objects, and this runs after every job.
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                state, parent = handle.read().rsplit(b")", 1)[1].split(maxsplit=2)[:2]
            if state == b"Z":
                continue
            environment = b""
            if needles:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    environment = b"\0" + handle.read()
            yield int(name), int(parent), environment
        except (OSError, ValueError):
            continue


def _processes_psutil(needles: list[bytes]) -> Iterator[tuple[int, int, bytes]]:
    for process in psutil.process_iter(["ppid", "uids", "status"]):
        info = process.info
        if info["uids"] is None or info["uids"].real != os.getuid() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        environment = b""
        if needles:
            with contextlib.suppress(psutil.Error):
                environment = b"\0" + b"".join(f"{k}={v}\0".encode() for k, v in process.environ().items())
        yield process.pid, info["ppid"], environment


def _handles(pids: set[int]) -> list[psutil.Process]:
    """psutil handles, which remember each process's start time: a kill never reaches a reused PID."""
    handles = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            handles.append(psutil.Process(pid))
    return handles


def _living(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    unique = {process.pid: process for process in processes}
    return [process for process in unique.values() if not _dead(process)]


def _dead(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _wait_gone(processes: list[psutil.Process], timeout: float) -> bool:
    """Wait until every process has ended (a zombie counts: it runs nothing); whether they all did."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while any(not _dead(process) for process in processes):
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True
