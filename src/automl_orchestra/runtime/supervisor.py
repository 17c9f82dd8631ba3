"""One worker process under supervision: start it, hand it a job, enforce the job's wall-time and memory
limits and cancellation by killing its whole process group, and turn every ending into a ``JobResult``.
Used by the local executor; a distributed executor runs the same supervisor on the node that runs a job.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import psutil

from automl_orchestra.contracts.jobs import JobResult, JobSpec
from automl_orchestra.runtime.executor import log_prefix
from automl_orchestra.runtime.worker import STDERR_LOG, STDOUT_LOG
from automl_orchestra.store.artifacts import ArtifactStore

POLL_S = 0.05
START_TIMEOUT_S = 120.0
STOPPING = "cancel requested: stopping the search, keeping the best model found so far"


class WorkerDied(Exception):
    pass


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
        read_fd, write_fd = os.pipe()
        env = {**os.environ, **(extra_env or {})}
        env.update({"ORCHESTRA_RESULT_FD": str(write_fd), "ORCHESTRA_ENVIRONMENT": environment})
        env["ORCHESTRA_FORK_JOBS"] = "1" if forking else "0"
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

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def execute(
        self,
        job: JobSpec,
        cancel: threading.Event,
        on_progress: Callable[[dict[str, Any]], None],
    ) -> JobResult:
        started = time.monotonic()
        deadline = started + job.limits.timeout_s
        limit_mb = job.limits.memory_mb
        peak_mb = 0.0
        stop_by: float | None = None  # set when a cancel asked a stoppable job to end with what it has
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(job.model_dump_json().encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._failure(job, started, peak_mb, f"worker process died before the job started ({self._exit()})")
        while True:
            message = self._next_message(time.monotonic() + POLL_S)
            if message is not None:
                if message.get("type") == "progress":
                    on_progress(message)
                    continue
                if message.get("type") == "result":
                    result = JobResult.model_validate(message["result"])
                    result.peak_memory_mb = round(max(peak_mb, self._rss_mb()), 1)
                    self.jobs_done += 1
                    return result
            if not self.alive:
                return self._failure(job, started, peak_mb, f"worker process died ({self._exit()})")
            rss = self._rss_mb()
            peak_mb = max(peak_mb, rss)
            if rss > limit_mb:
                self.kill()
                reason = f"memory limit exceeded: the step used {rss:.0f} MB, its limit is {limit_mb} MB"
                return self._failure(job, started, peak_mb, reason)
            if time.monotonic() > deadline:
                self.kill()
                reason = f"timeout: the step ran longer than its limit of {job.limits.timeout_s:g} s"
                return self._failure(job, started, peak_mb, reason)
            if cancel.is_set() and stop_by is None and job.stop_grace_s > 0:
                stop_by = time.monotonic() + job.stop_grace_s
                job.stop_file.write_text("cancelled by request\n", encoding="utf-8")
                on_progress({"type": "progress", "fraction": None, "message": STOPPING})
            elif cancel.is_set() and (stop_by is None or time.monotonic() > stop_by):
                self.kill()
                return self._failure(job, started, peak_mb, "cancelled by request", status="cancelled")

    def kill(self) -> None:
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
        # Helpers earlier jobs left behind (joblib/loky pools of PyCaret, Dask) live on in the group: end them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        if self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1
        if not self._log.closed:
            self._log.close()

    # ----- internals -------------------------------------------------------------------------------

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

    def _rss_mb(self) -> float:
        try:
            root = psutil.Process(self.process.pid)
            children = root.children(recursive=True)
        except psutil.Error:
            return 0.0
        # A forking worker only holds the template; the job's memory is its child's.
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

    def _failure(self, job: JobSpec, started: float, peak_mb: float, reason: str, status: str = "failed") -> JobResult:
        return JobResult(
            run_id=job.run_id,
            status=status,
            reason=reason,
            exception=reason if status == "failed" else None,
            peak_memory_mb=round(peak_mb, 1),
            wall_s=round(time.monotonic() - started, 4),
        )


def publish_logs(store: ArtifactStore, job: JobSpec) -> None:
    """Copy the job's captured stdout/stderr into the artifact store (also after a kill)."""
    work_dir = Path(job.work_dir)
    for name in (STDOUT_LOG, STDERR_LOG):
        path = work_dir / name
        data = path.read_bytes() if path.exists() else b""
        store.write_bytes(f"{log_prefix(job)}/{name}", data[-(16 << 20) :])
