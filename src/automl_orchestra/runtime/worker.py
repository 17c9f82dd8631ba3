"""The worker process: ``python -m automl_orchestra.runtime.worker``.

It is started by an executor with the interpreter of an engine environment, reads one JSON job per line
on stdin, runs it and answers with JSON messages (progress, then the result) on the file descriptor named
by ``ORCHESTRA_RESULT_FD``. While a job runs, its stdout/stderr (file descriptors 1 and 2, so C libraries
too) go to files in the job's work directory. A worker stays warm between jobs so small steps are cheap;
the executor kills it (the whole process group) on timeout, memory limit or cancellation, and ends whatever a
job started when the job ends (found by ``RUN_MARK`` and the worker's own mark, see ``supervisor``).

With ``ORCHESTRA_FORK_JOBS=1`` (used for code steps) each job runs in a forked child instead: the worker
itself never runs a job, so it stays a clean, preloaded template that is safe to fork again.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from automl_orchestra.contracts.jobs import JobResult, JobSpec

STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
# Set to the run's id in the environment of every job, so that processes the job starts carry it even when
# they leave the worker's process group and tree: the supervisor finds and ends them when the job ends.
RUN_MARK = "ORCHESTRA_RUN_MARK"


def main() -> None:
    channel = os.fdopen(int(os.environ["ORCHESTRA_RESULT_FD"]), "w", buffering=1)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    _preload(os.environ.get("ORCHESTRA_PRELOAD", ""))
    forking = os.environ.get("ORCHESTRA_FORK_JOBS") == "1"
    if forking:
        # Jobs fork from this template: a garbage collection in a job would otherwise write to every
        # preloaded object and copy its page; frozen, they stay shared (the template runs no job itself).
        gc.freeze()
    _send(channel, {"type": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        job = JobSpec.model_validate_json(line)
        if forking:
            _run_forked(job, channel)
        else:
            _send_result(channel, _run_guarded(job, channel))


def _run_guarded(job: JobSpec, channel: IO[str]) -> JobResult:
    try:
        return run_job(job, channel)
    except BaseException as exc:  # noqa: BLE001 - the job failed, the worker lives on
        reason = f"worker error: {exc!r}"
        return JobResult(run_id=job.run_id, status="failed", reason=reason, traceback=traceback.format_exc())


def _run_forked(job: JobSpec, channel: IO[str]) -> None:
    """Run the job in a forked child, so user code never touches this (pristine, preloaded) process and
    the next code step starts from a clean interpreter in milliseconds instead of a fresh spawn."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _send_result(channel, _run_guarded(job, channel))
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            code = 70
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        died = _describe_exit(os.waitstatus_to_exitcode(status))
        _send_result(channel, JobResult(run_id=job.run_id, status="failed", reason=died, exception=died))


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"worker process died (killed by signal {signal.Signals(-code).name})"
        except ValueError:
            return f"worker process died (killed by signal {-code})"
    return f"worker process died (exit code {code})"


def _send_result(channel: IO[str], result: JobResult) -> None:
    _send(channel, {"type": "result", "result": result.model_dump(mode="json")})


def run_job(job: JobSpec, channel: IO[str] | None = None) -> JobResult:
    work_dir = Path(job.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cpu_before = _cpu_seconds()
    with _job_environment(job, work_dir):
        result = _execute(job, work_dir, channel)
    result.wall_s = round(time.monotonic() - started, 4)
    result.cpu_time_s = round(_cpu_seconds() - cpu_before, 4)
    result.node = socket.gethostname()
    return result


def _execute(job: JobSpec, work_dir: Path, channel: IO[str] | None) -> JobResult:
    from automl_orchestra.contracts.errors import StepError

    output_dir = work_dir / "output"
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir()
    try:
        # Imported here so that a broken engine import fails the job with a traceback, not the worker.
        from automl_orchestra.contracts import catalog
        from automl_orchestra.contracts.outputs import json_safe
        from automl_orchestra.engines.core.base import StepContext, load_engine
        from automl_orchestra.engines.core.values import output_hash, save_value
        from automl_orchestra.store.artifacts import ArtifactStore

        spec = catalog.tool(job.tool)
        if spec is None or not spec.implementation:
            raise StepError(f"no engine implements {job.service}/{job.tool}")
        store = ArtifactStore(job.artifact_url)
        ctx = StepContext(job, store, output_dir)
        if channel is not None:
            ctx.on_progress = lambda fraction, message, detail: _send(
                channel,
                {"type": "progress", "fraction": fraction, "message": message}
                | ({} if detail is None else {"detail": detail}),
            )
        engine = load_engine(spec.implementation)
        step = engine.run(job.service, ctx)
        output = step.output if step.output is not None else engine.save(step.value, output_dir)
        output = output.model_copy(
            update={
                "prefix": job.output_prefix,
                "environment": job.environment,
                "serializer": engine_name(engine),
            }
        )
        derived = {}
        for name, frame in step.derived.items():
            derived_dir = work_dir / f"derived-{name}"
            shutil.rmtree(derived_dir, ignore_errors=True)
            derived_dir.mkdir()
            ref = save_value(frame, derived_dir)
            prefix = f"{job.output_prefix}-{name}"
            store.put_dir(derived_dir, prefix)
            derived[name] = ref.model_copy(update={"prefix": prefix, "environment": job.environment})
        digest = output_hash(output_dir)
        store.put_dir(output_dir, job.output_prefix)
        return JobResult(
            run_id=job.run_id,
            status="finished",
            output=output,
            derived=derived,
            metadata=json_safe(step.metadata),
            metrics=json_safe(step.metrics),
            output_hash=digest,
        )
    except StepError as exc:
        return JobResult(run_id=job.run_id, status="failed", reason=str(exc), exception=f"StepError: {exc}")
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the run record
        return JobResult(
            run_id=job.run_id,
            status="failed",
            reason=f"{type(exc).__name__}: {exc}"[:2000],
            exception=f"{type(exc).__name__}: {exc}"[:20000],
            traceback=traceback.format_exc()[-50000:],
        )


def engine_name(engine: Any) -> str:
    return str(getattr(engine, "name", "") or "builtin")


@contextlib.contextmanager
def _job_environment(job: JobSpec, work_dir: Path) -> Iterator[None]:
    """Run with cwd, temp/cache dirs, thread counts and fds 1/2 pointed at this job's work directory."""
    previous_cwd = os.getcwd()
    saved_env = dict(os.environ)
    scratch = work_dir / "tmp"
    scratch.mkdir(exist_ok=True)
    threads = str(max(1, job.limits.cpus))
    os.environ.update(
        {
            "TMPDIR": str(scratch),
            "MPLCONFIGDIR": str(scratch / "matplotlib"),
            "KERAS_HOME": str(scratch / "keras"),
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "ORCHESTRA_STEP": job.step_name,
            RUN_MARK: job.run_id,
        }
    )
    # tempfile caches the first TMPDIR it sees: without this, a warm worker's later jobs would write into
    # the first job's (deleted) scratch folder.
    tempfile.tempdir = None
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    with open(work_dir / STDOUT_LOG, "ab") as out, open(work_dir / STDERR_LOG, "ab") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        cwd = work_dir / "cwd"
        cwd.mkdir(exist_ok=True)
        os.chdir(cwd)
        try:
            with _thread_limits(int(threads)):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)
            os.chdir(previous_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
            tempfile.tempdir = None


@contextlib.contextmanager
def _thread_limits(threads: int) -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _preload(modules: str) -> None:
    for module in filter(None, (m.strip() for m in modules.split(","))):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a job importing it later reports the real error
            traceback.print_exc()


def _exit_with_parent(parent: int) -> None:
    """A worker whose server died must not run on: kill this process group (the job's children too)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.killpg(0, signal.SIGKILL)


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=str) + "\n")
    channel.flush()


if __name__ == "__main__":
    main()
