"""The Ray executor: every step is a Ray task that runs the same supervised worker as the local executor.

The task (``run_on_node``) starts or reuses a ``supervisor.WorkerProcess`` on whichever node Ray places it,
so timeouts, memory limits and crash detection are enforced on that node exactly as locally. The server
side only submits tasks, waits on their ``ObjectRef``s in one thread and turns every ending (a result, a
cancellation, a lost node) into exactly one ``on_done``. Only JSON crosses the boundary.

Progress travels back through a small actor of the server (``_ProgressSink``, no CPU): the task posts its
node first (so a step whose node is lost still names it) and then every progress message of the job; the
server's collecting thread drains it a few times a second into ``on_progress``.

Ray is imported only here, and this module only when ``ORCHESTRA_EXECUTOR=ray``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from automl_orchestra.contracts.catalog import preload_modules
from automl_orchestra.contracts.jobs import JobResult, JobSpec
from automl_orchestra.runtime.executor import DoneCallback, ProgressCallback
from automl_orchestra.runtime.local import Pool, pool_of
from automl_orchestra.runtime.supervisor import WorkerDied, WorkerProcess, publish_logs
from automl_orchestra.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

DRAIN_S = 0.25  # how often progress is read from the cluster while steps run
WAIT_S = 0.02  # how long one ray.wait may block: a step submitted meanwhile is watched from the next pass
CANCELLED = "cancelled by request"
SHUTDOWN = "the server shut down while the step was running"
# Errors that mean the task's node (or its worker process) went away, not that the step itself failed.
NODE_LOST_ERRORS: tuple[type[BaseException], ...] = (
    ray.exceptions.NodeDiedError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OwnerDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.RaySystemError,
)


# ----- the node side ---------------------------------------------------------------------------------

# Warm workers kept by a Ray worker process between tasks (Ray reuses its worker processes), so a small
# step does not pay for interpreter start and imports. They die with that process through their parent watch.
_IDLE: dict[tuple[str, Pool], WorkerProcess] = {}


def run_on_node(job_json: str, log_dir: str, sink: Any) -> str:
    """The body of the Ray task: supervise the job in a worker process on this node; return JobResult JSON.
    ``sink`` is the server's ``_ProgressSink`` actor."""
    job = JobSpec.model_validate_json(job_json)
    node = f"{socket.gethostname()}/ray:{ray.get_runtime_context().get_node_id()}"
    sink.post.remote(job.run_id, {"type": "node", "node": node})
    worker: WorkerProcess | None = None
    try:
        worker = _take_worker(job, Path(log_dir))
        # Cancellation arrives as ray.cancel(force=True): this process dies and the worker follows it.
        result = worker.execute(job, threading.Event(), lambda message: sink.post.remote(job.run_id, message))
    except WorkerDied as exc:
        result = JobResult(run_id=job.run_id, status="failed", reason=str(exc), exception=str(exc))
    result.node = node
    with contextlib.suppress(OSError):
        publish_logs(ArtifactStore(job.artifact_url), job)
    shutil.rmtree(job.work_dir, ignore_errors=True)
    if worker is not None:
        _keep_worker(job, worker)
    return result.model_dump_json()


def _take_worker(job: JobSpec, log_dir: Path) -> WorkerProcess:
    # The server resolves the environment's interpreter (ORCHESTRA_ENVIRONMENTS); it must exist at that path
    # on every node. A job without one (not from our scheduler) can still run in the node's own interpreter.
    python = job.python or (sys.executable if job.environment == "main" else None)
    if python is None:
        raise WorkerDied(f"engine environment {job.environment!r} is not configured (set ORCHESTRA_ENVIRONMENTS)")
    key = (python, pool_of(job))
    worker = _IDLE.pop(key, None)
    if worker is not None and worker.alive:
        return worker
    if worker is not None:
        worker.close()
    extra = {"ORCHESTRA_PRELOAD": preload_modules(job.environment), **_ray_address_env()}
    return WorkerProcess(python, job.environment, log_dir, extra, forking=key[1][1])


def _keep_worker(job: JobSpec, worker: WorkerProcess) -> None:
    key = (worker.python, pool_of(job))
    if not worker.alive or key in _IDLE:
        worker.kill() if worker.alive else worker.close()
        return
    _IDLE[key] = worker


def _ray_address_env() -> dict[str, str]:
    """Code in the worker that calls ``ray.init()`` (FLAML with parallel trials) joins this cluster."""
    address = ray.get_runtime_context().gcs_address
    return {"RAY_ADDRESS": address} if address else {}


# ----- the server side -------------------------------------------------------------------------------

_TASK = ray.remote(run_on_node)


class _ProgressSink:
    """Holds the tasks' progress messages (and their nodes) until the server drains them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def post(self, run_id: str, message: dict[str, Any]) -> None:
        self.messages.append((run_id, message))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        messages, self.messages = self.messages, []
        return messages


_SINK = ray.remote(num_cpus=0)(_ProgressSink)


@dataclass
class _Flight:
    job: JobSpec
    ref: Any  # ray.ObjectRef
    on_done: DoneCallback
    on_progress: ProgressCallback
    attempts: int = 1
    cancelled: bool = False
    node: str | None = None  # posted by the task when it starts


class RayExecutor:
    def __init__(
        self,
        address: str | None,
        namespace: str,
        log_dir: Path,
        max_in_flight: int = 0,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.log_dir = log_dir
        self.max_in_flight = max_in_flight
        self.init_options = init_options or {}
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._closed = False
        self._started = False
        self._thread: threading.Thread | None = None
        self._sink: Any = None
        self._drained = 0.0

    # ----- Executor protocol -----------------------------------------------------------------------

    def start(self) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not ray.is_initialized():
            # A local instance (no address) is this server's own: no dashboard, and it stops with the server.
            local: dict[str, Any] = {"include_dashboard": False} if self.address is None else {}
            ray.init(address=self.address, namespace=self.namespace, log_to_driver=False, **local, **self.init_options)
            self._started = True
        if self.max_in_flight <= 0:
            self.max_in_flight = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._sink = _SINK.remote()
        self._thread = threading.Thread(target=self._collect, name="orchestra-ray", daemon=True)
        self._thread.start()

    def free_slots(self) -> int:
        with self._lock:
            # driver steps wait on their children and hold no CPU: they do not count (no deadlock)
            busy = sum(1 for flight in self._flights.values() if not flight.job.driver)
            return 0 if self._closed or self._thread is None else self.max_in_flight - busy

    def submit(self, job: JobSpec, on_progress: ProgressCallback, on_done: DoneCallback) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is shut down")
            self._flights[job.run_id] = _Flight(job, self._remote(job), on_done, on_progress)

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            flight = self._flights.get(run_id)
            if flight is None:
                return False
            flight.cancelled = True
        ray.cancel(flight.ref, force=True)
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            refs = [flight.ref for flight in self._flights.values()]
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self._started:
            ray.shutdown()

    # ----- internals -------------------------------------------------------------------------------

    def _remote(self, job: JobSpec) -> Any:
        task = _TASK.options(
            num_cpus=0 if job.driver else job.limits.cpus,
            num_gpus=job.limits.gpus,
            memory=job.limits.memory_mb * 2**20,
            max_retries=0,  # a lost node is handled here (retryable steps run once more), not by Ray
            name=f"orchestra:{job.step_name}",
        )
        return task.remote(job.model_dump_json(), str(self.log_dir), self._sink)

    def _collect(self) -> None:
        """Wait on every task; report each ending once. Runs until shut down and nothing is left."""
        while True:
            with self._lock:
                if self._closed and not self._flights:
                    return
                by_ref = {flight.ref: flight for flight in self._flights.values()}
            if not by_ref:
                time.sleep(WAIT_S)
                continue
            ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=WAIT_S)
            if ready or time.monotonic() - self._drained > DRAIN_S:
                self._forward_progress()  # before a settle: a lost task's node must be known
            for ref in ready:
                self._settle(by_ref[ref])

    def _forward_progress(self) -> None:
        self._drained = time.monotonic()
        try:
            messages = ray.get(self._sink.drain.remote(), timeout=10)
        except Exception:  # progress is best effort; endings are not
            log.exception("reading progress from the Ray cluster failed")
            return
        for run_id, message in messages:
            with self._lock:
                flight = self._flights.get(run_id)
            if flight is None:
                continue
            if message.get("type") == "node":
                flight.node = str(message.get("node"))
                continue
            try:
                flight.on_progress(run_id, message)
            except Exception:
                log.exception("recording progress of %s failed", flight.job.step_name)

    def _settle(self, flight: _Flight) -> None:
        result = self._outcome(flight)
        if result is None:  # resubmitted
            return
        with self._lock:
            self._flights.pop(flight.job.run_id, None)
            closed = self._closed
        if closed and result.status != "finished":
            result.status, result.reason, result.exception = "failed", SHUTDOWN, SHUTDOWN
        result.node = result.node or flight.node
        try:
            flight.on_done(result)
        except Exception:
            log.exception("recording the result of %s failed", flight.job.step_name)

    def _outcome(self, flight: _Flight) -> JobResult | None:
        """The JobResult of a settled task, or None when it was resubmitted after losing its node."""
        run_id = flight.job.run_id
        try:
            return JobResult.model_validate_json(ray.get(flight.ref))
        except Exception as exc:
            if flight.cancelled:
                return JobResult(run_id=run_id, status="cancelled", reason=CANCELLED)
            if not _node_lost(exc):
                log.exception("Ray task of %s failed", flight.job.step_name)
                return JobResult(run_id=run_id, status="failed", reason=f"executor error: {exc}", exception=str(exc))
            reason = f"the node running the step was lost ({type(exc).__name__})"
            if flight.job.retryable and flight.attempts < 2 and not self._closed:
                log.warning("%s: %s; running it again", flight.job.step_name, reason)
                with self._lock:
                    flight.attempts += 1
                    flight.ref = self._remote(flight.job)
                return None
            return JobResult(run_id=run_id, status="failed", reason=reason, exception=f"{type(exc).__name__}: {exc}")


def _node_lost(exc: BaseException) -> bool:
    if isinstance(exc, NODE_LOST_ERRORS):
        return True
    cause = getattr(exc, "cause", None)  # a RayTaskError wraps what happened on the node
    return isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, NODE_LOST_ERRORS)
