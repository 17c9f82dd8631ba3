"""The scheduler: turns queued runs (``pending`` rows in the database) into jobs for the executor and
records their results. It runs in a thread of the server process but never executes a step itself.

Guarantees it implements (DESIGN.md "Step lifecycle"): a run starts only when its inputs are finished and
fails with a reason when an input failed; every ending (success, exception, crash, timeout, memory limit,
cancellation, server restart) is recorded; nothing stays ``running`` after its process is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from automl_orchestra.config import Settings
from automl_orchestra.contracts import catalog, code_policy
from automl_orchestra.contracts.jobs import JobLimits, JobResult, JobSpec, WorkerPolicy
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.runtime import job_tokens
from automl_orchestra.runtime.executor import Executor, logs_beside
from automl_orchestra.runtime.supervisor import (
    end_processes,
    mark_needle,
    pid_namespace,
    process_gone,
    process_identity,
    publish_run_logs,
    remove_work_dir,
    supervisor_needle,
)
from automl_orchestra.runtime.worker import RUN_MARK
from automl_orchestra.store.artifacts import ArtifactStore, run_prefix, step_prefix
from automl_orchestra.store.models import DERIVED_EDGE, DRIVER_EDGE, Edge, Instance, Run, Step, utcnow

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
FAILED_INPUT = frozenset({"failed", "cancelled"})
READY_INPUT = frozenset({"finished", "stale"})
# Step metadata that is not about the output (metrics come from the run; progress, the timeout decided for
# its budget and the code right are the step's own), so a cached run never copies it from the step it reuses.
STEP_OWN_META = frozenset({"metrics", "progress", "timeout", code_policy.ALLOW_CODE_META})


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        store: ArtifactStore,
        executor: Executor,
        on_change: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self.executor = executor
        self.on_change = on_change
        self.instance_id = settings.instance_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[str, str] = {}  # run id -> step name, for runs this instance supervises
        self._lock = threading.Lock()
        self._last_progress: dict[str, float] = {}
        # The latest message of a run that came too soon after the previous one: written by the loop's next
        # pass, so the last word before a quiet stretch (a new trial starting) is never lost.
        self._held_progress: dict[str, dict[str, Any]] = {}
        self._last_heartbeat = 0.0
        self._namespace = pid_namespace()

    # ----- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        # Synchronous, before anything is served: the API starts the scheduler in its lifespan, which uvicorn
        # completes before it accepts a connection, so no client ever sees a dead server's step `running`.
        self.reconcile()
        self._register()
        self.executor.start()
        self._thread = threading.Thread(target=self._loop, name="orchestra-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.executor.shutdown()
        with self.sessions() as session:
            instance = session.get(Instance, self.instance_id)
            if instance:
                session.delete(instance)
                session.commit()

    def wake(self, _name: str = "") -> None:
        self._wake.set()

    def request_cancel(self, run_id: str) -> None:
        if not self.executor.cancel(run_id):
            self._wake.set()  # another instance may own it; it sees the flag on its next pass

    def reconcile(self, at_start: bool = True) -> None:
        """Steps left ``running`` by a dead instance (this one before a restart included) end ``failed``
        with the reason, or are queued again when they are marked retryable. An instance on this machine is
        dead as soon as its process is gone, one elsewhere when its heartbeat is three intervals old. What
        the dead runs left on this machine is cleaned up first (``_clean_up``)."""
        started = time.monotonic()
        with self.sessions() as session:
            alive, gone = self._liveness(session, at_start)
            orphans = session.scalars(
                select(Run)
                .where(Run.status == "running", or_(Run.instance_id.is_(None), Run.instance_id.not_in(alive)))
                .order_by(Run.id)  # one order for every instance: two reconciling at once cannot deadlock
                # PostgreSQL: an instance reconciling the same runs at once waits, then finds them settled
                .with_for_update()
            ).all()
            self._clean_up(orphans, gone)
            for run in orphans:
                self._end_orphan(session, run)
            if gone:  # their rows have nothing more to tell
                session.execute(delete(Instance).where(Instance.id.in_([instance.id for instance in gone])))
            session.commit()
        if orphans or gone:
            log.info(
                "reconciled %d run(s) of %d stopped instance(s) in %.2f s",
                len(orphans),
                len(gone),
                time.monotonic() - started,
            )
        for run in orphans:
            self.on_change(run.step_name)

    def _liveness(self, session: Session, at_start: bool) -> tuple[set[str], list[Instance]]:
        """The ids of the instances alive, and the instances of this machine whose process has ended. On this
        machine the process decides (a busy server with a late heartbeat is alive, a killed one dead at
        once); elsewhere the heartbeat does."""
        stale_before = utcnow() - timedelta(seconds=self.settings.heartbeat_s * 3)
        alive = set(session.scalars(select(Instance.id).where(Instance.heartbeat_at >= stale_before)))
        gone = []
        for instance in session.scalars(select(Instance).where(Instance.host == socket.gethostname())):
            if instance.pid is None or instance.process_started is None or instance.pid_namespace != self._namespace:
                continue  # written before instances recorded their process, or another machine of that name
            if process_gone(instance.pid, instance.process_started):
                gone.append(instance)
                alive.discard(instance.id)
            else:
                alive.add(instance.id)
        if at_start:
            alive.discard(self.instance_id)  # whatever this id ran before is gone
        else:
            alive.add(self.instance_id)
        return alive, gone

    def _clean_up(self, runs: Sequence[Run], gone: list[Instance]) -> None:
        """What dead runs left on this machine. Their workers died with their server, but processes that
        left the workers' process group may live: they are ended (by the runs' marks, and by the marks of the
        dead servers' workers). The runs' captured logs are published as a normal ending publishes them, and
        their work folders removed; all before the runs are re-queued, so a run starting again finds nothing
        of its previous attempt."""
        needles = [mark_needle(RUN_MARK, run.id) for run in runs]
        needles += [
            supervisor_needle(i.pid, i.process_started)
            for i in gone
            if i.pid is not None and i.process_started is not None
        ]
        if needles:
            end_processes([], needles)
        for run in runs:
            work_dir = self.settings.work_root / run.step_name / run.id
            if not work_dir.is_dir():  # it ran on another machine, or never started
                continue
            try:
                publish_run_logs(self.store, work_dir, logs_beside(run_prefix(run.step_name, run.number, run.id)))
            except OSError:
                log.exception("could not publish the logs of run %s", run.id)
            remove_work_dir(work_dir)

    def _end_orphan(self, session: Session, run: Run) -> None:
        step = session.get(Step, run.step_name)
        reason = "the server stopped while the step was running (its worker process is gone)"
        if step is not None and step.retryable and run.attempt < 2:
            self._requeue(run, step, f"re-queued: {reason}")
        else:
            self._finish(session, run, JobResult(run_id=run.id, status="failed", reason=reason))

    @staticmethod
    def _requeue(run: Run, step: Step, reason: str) -> None:
        log_state_change(step.name, run.id, run.status, "pending", reason)
        run.status, run.instance_id, run.attempt, run.reason = "pending", None, run.attempt + 1, reason
        run.started_at = None
        step.status, step.updated_at = "pending", utcnow()

    # ----- the loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self.settings.poll_s * 20)
            self._wake.clear()
            try:
                self._heartbeat()
                self._write_held_progress()
                self._honour_remote_cancels()
                self._dispatch()
            except Exception:
                log.exception("scheduler pass failed")
                time.sleep(self.settings.poll_s)

    def _write_held_progress(self) -> None:
        for run_id, message in list(self._held_progress.items()):
            if time.monotonic() - self._last_progress.get(run_id, 0.0) >= PROGRESS_INTERVAL_S:
                self._progress(run_id, message)

    def _dispatch(self) -> None:
        while self.executor.free_slots() > 0 and not self._stop.is_set():
            job = self._claim_next()
            if job is None:
                return
            self.executor.submit(job, self._progress, self._done)

    def _claim_next(self) -> JobSpec | None:
        with self.sessions() as session:
            pending = session.scalars(select(Run).where(Run.status == "pending").order_by(Run.created_at)).all()
            for run in pending:
                step = session.get(Step, run.step_name)
                if step is None or step.current_run != run.number:
                    superseded = "superseded by a newer run"
                    run.status, run.reason = "cancelled", superseded
                    session.commit()
                    log_state_change(run.step_name, run.id, "pending", "cancelled", superseded)
                    continue
                inputs = self._input_steps(session, step.name)
                tolerant = _tolerates_failed_inputs(step)
                failed = [p for p in inputs if p.status in FAILED_INPUT]
                if failed and not tolerant:
                    reason = f"input step {failed[0].name!r} ended {failed[0].status}"
                    self._finish(session, run, JobResult(run_id=run.id, status="failed", reason=reason))
                    session.commit()
                    self.on_change(step.name)
                    continue
                if any(_unsettled(p, tolerant) for p in inputs):
                    continue
                claimed = session.execute(
                    update(Run)
                    .where(Run.id == run.id, Run.status == "pending")
                    .values(status="running", instance_id=self.instance_id, started_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
                if cast(CursorResult[Any], claimed).rowcount != 1:
                    continue  # another instance took it
                log_state_change(step.name, run.id, "pending", "running", None)
                step.status = "running"
                step.updated_at = utcnow()
                job = self._job(step, run, inputs)
                if tolerant:
                    job.input_states = _input_states(session, inputs)
                if step.cache and self._reuse_cached(session, step, run, job):
                    session.commit()
                    self.on_change(step.name)
                    self._settle_derived_names(step.name)
                    continue
                session.commit()
                with self._lock:
                    self._running[run.id] = step.name
                self.on_change(step.name)
                return job
        return None

    def _input_steps(self, session: Session, name: str) -> list[Step]:
        parents = session.scalars(
            # a driver that created a step is in its lineage but is not an input it waits for
            select(Edge.parent).where(Edge.child == name, Edge.reference.not_in((DERIVED_EDGE, DRIVER_EDGE))).distinct()
        ).all()
        return [s for s in (session.get(Step, p) for p in parents) if s is not None]

    def _job(self, step: Step, run: Run, inputs: list[Step]) -> JobSpec:
        spec = catalog.tool(step.tool)
        limits = step.limits or {}
        settings = self.settings
        environment = spec.environment if spec else "main"
        timeout_s = float(limits.get("timeoutS") or settings.step_timeout_s)
        driver = spec is not None and "driver" in spec.capabilities
        return JobSpec(
            driver=driver,
            api_url=settings.api_url if driver else None,
            api_token=job_tokens.mint(settings.tokens, step.name, timeout_s + 600)
            if driver and settings.auth_enabled
            else None,
            run_id=run.id,
            step_name=step.name,
            service=step.service,
            tool=step.tool,
            parameters=step.parameters,
            inputs={p.name: OutputRef.model_validate(p.output) for p in inputs if p.output},
            derived=list(catalog.derived_outputs(step.service, step.tool)),
            environment=environment,
            python=settings.environment_pythons.get(environment),
            environment_pythons=dict(settings.environment_pythons),
            artifact_url=self.store.url,
            output_prefix=run_prefix(step.name, run.number, run.id),
            work_dir=str(Path(settings.work_root) / step.name / run.id),
            limits=JobLimits(
                timeout_s=timeout_s,
                memory_mb=int(limits.get("memoryMb") or settings.step_memory_mb),
                cpus=int(limits.get("cpus") or 1),
                gpus=float(limits.get("gpus") or 0),
            ),
            policy=WorkerPolicy(
                url_allow_hosts=sorted(settings.url_allow_hosts),
                code_url_hosts=sorted(settings.code_url_host_set),
                import_dirs=[str(p) for p in settings.import_dir_list],
                max_download_mb=settings.max_download_mb,
            ),
            retryable=step.retryable,
            # code steps are created and re-executed by code roles only (the routes check it)
            allow_code=catalog.runs_code(step.service, step.tool)
            or (step.meta or {}).get(code_policy.ALLOW_CODE_META) is True,
            stop_grace_s=catalog.stop_grace_s(step.service, step.tool),
        )

    # ----- results ---------------------------------------------------------------------------------

    def _progress(self, run_id: str, message: dict[str, Any]) -> None:
        now = time.monotonic()
        held = self._held_progress.get(run_id)
        if held is not None and "detail" in held and "detail" not in message:
            message = {**message, "detail": held["detail"]}  # a throttled-away detail is not lost either
        if now - self._last_progress.get(run_id, 0.0) < PROGRESS_INTERVAL_S:
            self._held_progress[run_id] = message
            return
        self._held_progress.pop(run_id, None)
        self._last_progress[run_id] = now
        with self.sessions() as session:
            run = session.get(Run, run_id)
            step = session.get(Step, run.step_name) if run else None
            if step is None or run is None or step.current_run != run.number or run.status != "running":
                return
            previous = (step.meta or {}).get("progress") or {}
            progress = {k: message.get(k) for k in ("fraction", "message")}
            detail = message.get("detail", previous.get("detail"))  # kept until a newer one comes
            if detail is not None:
                progress["detail"] = detail
            step.meta = {**(step.meta or {}), "progress": progress}
            step.updated_at = utcnow()
            session.commit()
        self.on_change(step.name)

    def _done(self, result: JobResult) -> None:
        with self._lock:
            name = self._running.pop(result.run_id, None)
        self._last_progress.pop(result.run_id, None)
        self._held_progress.pop(result.run_id, None)
        try:
            with self.sessions() as session:
                run = session.get(Run, result.run_id)
                if run is None:  # the step was deleted meanwhile: drop what it wrote
                    if name:
                        self.store.delete_prefix(f"{step_prefix(name)}/runs")
                    return
                if (
                    run.cancel_requested
                    and result.status == "failed"
                    and (result.reason or "").startswith("cancelled by request")  # also a stopped search's
                ):
                    result.status = "cancelled"
                if run.cancel_requested and result.status == "cancelled":
                    result.reason = run.reason or result.reason
                step = session.get(Step, run.step_name)
                if self._stop.is_set() and result.status == "failed" and step is not None and step.retryable:
                    self._requeue(run, step, f"re-queued: {result.reason}")  # the next start runs it again
                else:
                    self._finish(session, run, result)
                session.commit()
                name = run.step_name
        except Exception:
            log.exception("recording the result of run %s failed", result.run_id)
        finally:
            if name:
                # an executor that removes only the run's own folder (a Ray task on this machine) leaves the step's
                with contextlib.suppress(OSError):
                    (self.settings.work_root / name).rmdir()  # only once empty
                self.on_change(name)
                self._settle_derived_names(name)
            self._wake.set()

    def _finish(self, session: Session, run: Run, result: JobResult, previous: str | None = None) -> None:
        """Record a run's ending; the step follows only if this run is still its current one."""
        log_state_change(run.step_name, run.id, previous or run.status, result.status, result.reason)
        now = utcnow()
        run.status = result.status
        run.finished_at = now
        run.reason = result.reason
        run.exception = result.exception
        run.traceback = result.traceback
        run.metrics = result.metrics or {}
        run.peak_memory_mb = result.peak_memory_mb
        run.cpu_time_s = result.cpu_time_s
        run.wall_s = result.wall_s
        run.node = result.node or run.node
        run.output = result.output.model_dump() if result.output else None
        run.output_hash = result.output_hash
        run.meta = {**(run.meta or {}), "derived": {k: v.model_dump() for k, v in result.derived.items()}}
        step = session.get(Step, run.step_name)
        if step is None or step.current_run != run.number:
            return
        step.status = result.status
        step.updated_at = now
        meta = dict(step.meta or {})
        meta.pop("progress", None)
        if result.status == "finished":
            step.output = run.output
            step.error = None
            meta.update(result.metadata)
            meta["metrics"] = result.metrics or {}
        else:
            step.error = {
                "reason": result.reason,
                "exception": result.exception,
                "traceback": result.traceback,
            }
        step.meta = meta
        for derived in session.scalars(select(Step).where(Step.owner == step.name)):
            output_name = derived.parameters.get("output", "")
            ref = result.derived.get(output_name)
            derived.updated_at = now
            if result.status == "finished" and ref is not None:
                derived.status, derived.output, derived.error = "finished", ref.model_dump(), None
                derived.meta = _table_meta(ref)
            else:
                derived.status = result.status if result.status != "finished" else "failed"
                derived.error = {
                    "reason": result.reason or f"step {step.name!r} produced no {output_name}",
                    "exception": None,
                    "traceback": None,
                }

    def _settle_derived_names(self, owner: str) -> None:
        with self.sessions() as session:
            for name in session.scalars(select(Step.name).where(Step.owner == owner)):
                self.on_change(name)

    # ----- caching ---------------------------------------------------------------------------------

    def _reuse_cached(self, session: Session, step: Step, run: Run, job: JobSpec) -> bool:
        """Reuse a finished run with the same fingerprint (tool, parameters, input contents)."""
        fingerprint = self._fingerprint(session, step, job)
        run.fingerprint = fingerprint
        if fingerprint is None:
            return False
        source = session.scalars(
            select(Run)
            .where(Run.fingerprint == fingerprint, Run.status == "finished", Run.id != run.id)
            .order_by(Run.finished_at.desc())
        ).first()
        if source is None or source.output is None or not self.store.exists(source.output["prefix"]):
            return False
        output = OutputRef.model_validate(source.output)
        self.store.copy_prefix(output.prefix, job.output_prefix)
        derived = {}
        for name, ref_data in (source.meta or {}).get("derived", {}).items():
            ref = OutputRef.model_validate(ref_data)
            target = f"{job.output_prefix}-{name}"
            self.store.copy_prefix(ref.prefix, target)
            derived[name] = ref.model_copy(update={"prefix": target})
        source_step = session.get(Step, source.step_name)
        result = JobResult(
            run_id=run.id,
            status="finished",
            output=output.model_copy(update={"prefix": job.output_prefix}),
            derived=derived,
            metadata=_reusable_meta(source_step),
            metrics=source.metrics,
            output_hash=source.output_hash,
            wall_s=0.0,
        )
        self._finish(session, run, result, previous="running")  # the claim's UPDATE left the loaded row pending
        run.cached_from = source.id
        return True

    def _fingerprint(self, session: Session, step: Step, job: JobSpec) -> str | None:
        hashes = {}
        for name in job.inputs:
            parent = session.get(Step, name)
            parent_run = session.scalar(
                select(Run).where(Run.step_name == name, Run.number == (parent.current_run if parent else -1))
            )
            if parent_run is None or parent_run.output_hash is None:
                return None
            hashes[name] = parent_run.output_hash
        payload = {
            "service": step.service,
            "tool": step.tool,
            "parameters": step.parameters,
            "inputs": hashes,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    # ----- instances -------------------------------------------------------------------------------

    def _register(self) -> None:
        pid, started = process_identity()
        instance = Instance(
            id=self.instance_id,
            host=socket.gethostname(),
            pid=pid,
            process_started=started,
            pid_namespace=self._namespace,
        )
        with self.sessions() as session:
            session.merge(instance)
            session.commit()

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat < self.settings.heartbeat_s:
            return
        self._last_heartbeat = now
        with self.sessions() as session:
            session.execute(update(Instance).where(Instance.id == self.instance_id).values(heartbeat_at=utcnow()))
            session.commit()
        self.reconcile(at_start=False)  # another instance may have died with steps running

    def _honour_remote_cancels(self) -> None:
        with self._lock:
            mine = list(self._running)
        if not mine:
            return
        with self.sessions() as session:
            flagged = session.scalars(select(Run.id).where(Run.id.in_(mine), Run.cancel_requested.is_(True)))
            for run_id in flagged:
                self.executor.cancel(run_id)


def log_state_change(step: str, run_id: str, before: str, after: str, reason: str | None) -> None:
    """One log record per state change of a run the scheduler records (a JSON line with these fields, see
    docs/observability.md)."""
    log.info(
        "step %s run %s: %s -> %s",
        step,
        run_id,
        before,
        after,
        extra={"step": step, "run": run_id, "from_state": before, "to_state": after, "reason": reason},
    )


def _tolerates_failed_inputs(step: Step) -> bool:
    spec = catalog.tool(step.tool)
    return spec is not None and spec.tolerates_failed_inputs


def _unsettled(parent: Step, tolerant: bool) -> bool:
    """Whether a run must still wait for this input (a failed one counts as settled for tolerant tools)."""
    if tolerant and parent.status in FAILED_INPUT:
        return False
    return parent.status not in READY_INPUT or not parent.output


def _input_states(session: Session, inputs: list[Step]) -> dict[str, dict[str, Any]]:
    states = {}
    for parent in inputs:
        run = session.scalar(select(Run).where(Run.step_name == parent.name, Run.number == parent.current_run))
        states[parent.name] = {
            "status": parent.status,
            "reason": (parent.error or {}).get("reason"),
            "meta": {k: v for k, v in (parent.meta or {}).items() if k != "progress"},
            "wallS": run.wall_s if run is not None else None,
        }
    return states


def _table_meta(ref: OutputRef) -> dict[str, Any]:
    return {"fields": ref.attributes or []}


def _reusable_meta(step: Step | None) -> dict[str, Any]:
    """What a cached run takes from the step it reuses: what its output says, not what belongs to that step
    (the code right is its creator's, never passed on to whoever made an identical step)."""
    if step is None:
        return {}
    return {k: v for k, v in (step.meta or {}).items() if k not in STEP_OWN_META}
