"""The local executor: bounded concurrency over warm worker processes, one small pool per environment."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from automl_orchestra.contracts.catalog import preload_modules, runs_forked
from automl_orchestra.contracts.jobs import JobResult, JobSpec
from automl_orchestra.runtime.executor import DoneCallback, ProgressCallback
from automl_orchestra.runtime.supervisor import WorkerDied, WorkerProcess, publish_logs, remove_work_dir
from automl_orchestra.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

Pool = tuple[str, bool]  # (environment, forking)


class LocalExecutor:
    def __init__(
        self,
        slots: int,
        pythons: dict[str, str],
        store: ArtifactStore,
        log_dir: Path,
        warm_workers: int = 1,
    ) -> None:
        self.slots = slots
        self.pythons = pythons
        self.store = store
        self.log_dir = log_dir
        self.warm_workers = min(warm_workers, slots)
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="orchestra-job")
        self._lock = threading.Lock()
        self._idle: dict[Pool, list[WorkerProcess]] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._busy = 0
        self._closed = False

    # ----- Executor protocol -----------------------------------------------------------------------

    def start(self) -> None:
        if self.warm_workers:
            # Only the pool of ordinary steps starts warm; the forking pool of code steps is created by the
            # first code step and kept from then on, so a server that runs no code holds no template for it.
            threading.Thread(target=self._top_up, args=(("main", False),), daemon=True, name="orchestra-warm").start()

    def free_slots(self) -> int:
        with self._lock:
            return 0 if self._closed else self.slots - self._busy

    def submit(self, job: JobSpec, on_progress: ProgressCallback, on_done: DoneCallback) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is shut down")
            self._busy += 0 if job.driver else 1
            self._cancel[job.run_id] = threading.Event()
        if job.driver:
            # A driver waits on child steps that need slots: it takes none, and no pool thread either.
            name = f"orchestra-driver-{job.step_name}"
            threading.Thread(target=self._run, args=(job, on_progress, on_done), daemon=True, name=name).start()
        else:
            self._threads.submit(self._run, job, on_progress, on_done)

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            event = self._cancel.get(run_id)
        if event is None:
            return False
        event.set()
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            events = list(self._cancel.values())
            idle = [w for pool in self._idle.values() for w in pool]
            self._idle.clear()
        for event in events:
            event.set()
        for worker in idle:
            worker.stop()
        self._threads.shutdown(wait=True, cancel_futures=False)

    # ----- internals -------------------------------------------------------------------------------

    def _run(self, job: JobSpec, on_progress: ProgressCallback, on_done: DoneCallback) -> None:
        cancel = self._cancel[job.run_id]
        worker: WorkerProcess | None = None
        try:
            worker = self._take(pool_of(job))
            result = worker.execute(job, cancel, lambda message: on_progress(job.run_id, message))
        except WorkerDied as exc:
            result = JobResult(run_id=job.run_id, status="failed", reason=str(exc), exception=str(exc))
        except Exception as exc:
            log.exception("supervising %s failed", job.step_name)
            result = JobResult(run_id=job.run_id, status="failed", reason=f"executor error: {exc}")
        if self._closed and result.status != "finished":
            reason = "the server shut down while the step was running"
            result.status, result.reason, result.exception = "failed", reason, reason
        try:
            publish_logs(self.store, job)
        except OSError:
            log.exception("could not publish logs of %s", job.step_name)
        remove_work_dir(Path(job.work_dir))
        if worker is not None:
            # a worker that died, was retired by its job's ending or grew too large is not reused
            self._give_back(worker) if worker.recyclable else worker.kill()
        with self._lock:
            self._busy -= 0 if job.driver else 1
            self._cancel.pop(job.run_id, None)
        try:
            on_done(result)
        finally:
            if not self._closed:
                threading.Thread(target=self._top_up, args=(pool_of(job),), daemon=True).start()

    def _take(self, pool: Pool) -> WorkerProcess:
        with self._lock:
            idle = self._idle.setdefault(pool, [])
            while idle:
                worker = idle.pop()
                if worker.alive:
                    return worker
                worker.close()
        return self._spawn(pool)

    def _give_back(self, worker: WorkerProcess) -> None:
        with self._lock:
            idle = self._idle.setdefault((worker.environment, worker.forking), [])
            if not self._closed and len(idle) < self.slots:
                idle.append(worker)
                return
        worker.stop()

    def _top_up(self, pool: Pool) -> None:
        """Keep ``warm_workers`` idle workers ready so the next small step starts at once."""
        with self._lock:
            missing = self.warm_workers - len(self._idle.get(pool, []))
        for _ in range(max(0, missing)):
            try:
                self._give_back(self._spawn(pool))
            except WorkerDied:
                log.exception("could not start a warm worker for %s", pool)
                return

    def _spawn(self, pool: Pool) -> WorkerProcess:
        environment, forking = pool
        python = self.pythons.get(environment)
        if python is None:
            raise WorkerDied(
                f"engine environment {environment!r} is not configured (known: {sorted(self.pythons)}); "
                "set ORCHESTRA_ENVIRONMENTS"
            )
        preload = {"ORCHESTRA_PRELOAD": preload_modules(environment)}
        return WorkerProcess(python, environment, self.log_dir, preload, forking=forking)


def pool_of(job: JobSpec) -> Pool:
    """Code steps run in forked children of a pristine worker (their interpreter state is the user's), and
    so do steps whose engine needs a pristine process (see ``ToolSpec.forked_services``)."""
    return job.environment, runs_forked(job.service, job.tool)
