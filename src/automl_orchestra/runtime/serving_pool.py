"""Serving pools, in the API process: long-lived serving worker processes (``runtime/serving_worker.py``), one
pool per engine environment, that hold registered model versions and answer predictions.

The API process never loads a model: a predict request's body goes to an idle worker of the version's
environment as it came, and the worker's answer comes back as it is. Each worker answers one request at a
time; requests wait for a free worker in a bounded queue (past ``serving_queue`` waiting requests the caller
gets a 429 at once). A worker that dies, or does not answer within ``serving_timeout_s`` (plus
``serving_load_timeout_s`` when it has yet to load the version), is killed and
replaced, and the request it held gets a 503 with the reason -- never a hang. Pools start with their first
request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from automl_orchestra.config import Settings
from automl_orchestra.contracts.serving import (
    FRAME_HEAD,
    LOAD,
    STOP,
    PredictCall,
    ServedVersion,
    WorkerAnswer,
    decode_head,
    encode,
)

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
# How long a request may wait for a free worker before the 503 (the queue's length bounds it too).
QUEUE_WAIT_S = 30.0
# The most a worker's answer may be (a batch's predictions and probabilities as JSON).
MAX_ANSWER_BYTES = 2**31 - 1


class ServingError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class WorkerGone(Exception):
    pass


@dataclass
class Answer:
    status: int
    body: bytes
    error: str | None
    load_s: float
    predict_s: float
    rows: int
    handle_s: float = 0.0


class ServingWorker:
    """One serving worker process, one request at a time."""

    _numbers = itertools.count(1)

    def __init__(self, environment: str, process: asyncio.subprocess.Process, log_path: Path, log: IO[bytes]) -> None:
        self.environment = environment
        self.process = process
        self.log_path = log_path
        self._log = log
        self.busy = False
        # The versions this worker answered for, least recent first, as its own memory keeps them.
        self._held: OrderedDict[str, None] = OrderedDict()

    @classmethod
    async def start(cls, environment: str, python: str, env: Mapping[str, str], log_dir: Path) -> ServingWorker:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"serving-{environment}-{time.time_ns()}-{next(cls._numbers)}.log"
        handle = open(log_path, "ab")  # noqa: SIM115 -- the process writes it; closed when the worker ends
        process = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "automl_orchestra.runtime.serving_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=handle,
            env={**os.environ, **env, "ORCHESTRA_ENVIRONMENT": environment},
            cwd=str(log_dir),
            limit=2**20,
        )
        worker = cls(environment, process, log_path, handle)
        try:
            ready = await asyncio.wait_for(worker._answer(), START_TIMEOUT_S)
        except (TimeoutError, WorkerGone) as exc:
            worker.kill()
            raise WorkerGone(f"a serving worker for environment {environment!r} did not start: {exc}") from None
        if ready.status != 200:
            worker.kill()
            raise WorkerGone(f"a serving worker for environment {environment!r} did not start: {ready.error}")
        return worker

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def has(self, key: str) -> bool:
        return key in self._held

    def held(self) -> set[str]:
        return set(self._held)

    def holds(self, key: str, keep: int) -> None:
        self._held[key] = None
        self._held.move_to_end(key)
        while len(self._held) > keep:
            self._held.popitem(last=False)

    async def call(self, call: PredictCall, payload: bytes, timeout: float) -> Answer:
        assert self.process.stdin is not None
        self.busy = True
        try:
            self.process.stdin.write(encode(call, payload))
            await self.process.stdin.drain()
            return await asyncio.wait_for(self._answer(), timeout)
        except (ConnectionError, RuntimeError) as exc:  # RuntimeError: asyncio's pipe transport is closed
            raise WorkerGone(await self._death(f"its input closed ({exc})")) from None
        except TimeoutError:
            self.kill()
            raise WorkerGone(f"the serving worker did not answer within {timeout:g} s and was replaced") from None
        finally:
            self.busy = False

    async def _answer(self) -> Answer:
        assert self.process.stdout is not None
        try:
            head = await self.process.stdout.readexactly(FRAME_HEAD.size)
            header_size, payload_size = decode_head(head)
            if payload_size > MAX_ANSWER_BYTES:
                raise WorkerGone("the serving worker sent an answer larger than the limit")
            header = WorkerAnswer.model_validate_json(await self.process.stdout.readexactly(header_size))
            body = await self.process.stdout.readexactly(payload_size) if payload_size else b""
        except asyncio.IncompleteReadError:
            raise WorkerGone(await self._death("it ended")) from None
        return Answer(header.status, body, header.error, header.load_s, header.predict_s, header.rows, header.handle_s)

    async def _death(self, what: str) -> str:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 5.0)
        code = self.process.returncode
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
            if -code == 9:
                how += " (out of memory, or killed)"
        elif code is not None:
            how = f"exited with status {code}"
        else:
            how = what
        return f"the serving worker for environment {self.environment!r} {how} while answering; it is replaced"

    def rss_bytes(self) -> int:
        try:
            return int(psutil.Process(self.process.pid).memory_info().rss)
        except psutil.Error:
            return 0

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        self._log.close()

    async def stop(self) -> None:
        """Ask the worker to flush its prediction logs and end; kill it if it does not."""
        if not self.alive:
            self._log.close()
            return
        with contextlib.suppress(WorkerGone, OSError):
            await self.call(PredictCall(op=STOP), b"", STOP_TIMEOUT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        self.kill()


@dataclass
class ServingPool:
    environment: str
    python: str
    size: int
    queue_limit: int
    timeout_s: float
    load_timeout_s: float
    keep: int
    env: dict[str, str]
    log_dir: Path
    workers: list[ServingWorker] = field(default_factory=list)
    restarts: int = 0
    waiting: int = 0
    in_flight: int = 0
    _idle: asyncio.Queue[ServingWorker] | None = None
    _starting: asyncio.Lock = field(default_factory=asyncio.Lock)
    _replacing: set[asyncio.Task[None]] = field(default_factory=set)

    async def call(self, call: PredictCall, payload: bytes) -> Answer:
        if self.waiting >= self.queue_limit:
            raise ServingError(
                429, f"{self.waiting} predict requests are waiting for environment {self.environment!r}", 1
            )
        self.waiting += 1
        try:
            worker = await self._idle_worker()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            answer = await worker.call(call, payload, self._timeout(worker, call))
        except WorkerGone as gone:
            self._replace(worker)
            raise ServingError(503, str(gone), 1) from None
        finally:
            self.in_flight -= 1
        self._give_back(worker)
        if answer.status == 200 and call.version is not None:
            worker.holds(call.version.key, self.keep)
        return answer

    def _timeout(self, worker: ServingWorker, call: PredictCall) -> float:
        """How long ``worker`` may take: a version it has not loaded yet gets the load's time on top (an H2O
        model without a MOJO starts a JVM, a large network reads its weights)."""
        if call.version is None or worker.has(call.version.key):
            return self.timeout_s
        return self.timeout_s + self.load_timeout_s

    async def _idle_worker(self) -> ServingWorker:
        """A free, live worker; one found dead while idle is replaced without failing a request."""
        idle = await self._ready()
        deadline = asyncio.get_running_loop().time() + QUEUE_WAIT_S
        while True:
            try:
                worker = await asyncio.wait_for(idle.get(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except TimeoutError:
                raise ServingError(503, f"no serving worker was free within {QUEUE_WAIT_S:g} s", 1) from None
            if worker.alive and worker.process.stdin is not None and not worker.process.stdin.is_closing():
                return worker
            self._replace(worker)

    def _give_back(self, worker: ServingWorker) -> None:
        if self._idle is not None:
            self._idle.put_nowait(worker)

    async def preload(self, version: ServedVersion) -> None:
        """Load ``version`` in every worker of the pool (an alias moved to it): its first request is quick."""
        for _ in range(self.size):
            with contextlib.suppress(ServingError):
                await self.call(PredictCall(op=LOAD, version=version), b"")

    async def _ready(self) -> asyncio.Queue[ServingWorker]:
        if self._idle is not None:
            return self._idle
        async with self._starting:
            if self._idle is None:
                queue: asyncio.Queue[ServingWorker] = asyncio.Queue()
                try:
                    started = await asyncio.gather(*(self._start() for _ in range(self.size)))
                except WorkerGone as gone:
                    raise ServingError(503, str(gone)) from None
                for worker in started:
                    self.workers.append(worker)
                    queue.put_nowait(worker)
                self._idle = queue
        return self._idle

    async def _start(self) -> ServingWorker:
        return await ServingWorker.start(self.environment, self.python, self.env, self.log_dir)

    def _replace(self, dead: ServingWorker) -> None:
        dead.kill()
        if dead in self.workers:
            self.workers.remove(dead)
        self.restarts += 1
        log.warning("serving worker %s of environment %r ended; starting another", dead.process.pid, self.environment)
        task = asyncio.get_running_loop().create_task(self._start_replacement())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _start_replacement(self) -> None:
        for attempt in range(3):
            try:
                worker = await self._start()
            except WorkerGone as gone:
                log.error("%s (attempt %d of 3)", gone, attempt + 1)
                await asyncio.sleep(1.0 + attempt)
                continue
            self.workers.append(worker)
            if self._idle is not None:
                self._idle.put_nowait(worker)
            return

    def stats(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "workers": [{"pid": w.process.pid, "rssBytes": w.rss_bytes(), "busy": w.busy} for w in self.workers],
            "queued": self.waiting,
            "inFlight": self.in_flight,
            "restarts": self.restarts,
            "loadedVersions": len(set().union(*(worker.held() for worker in self.workers))),
        }

    async def close(self) -> None:
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*(worker.stop() for worker in self.workers), return_exceptions=True)
        self.workers.clear()


class ServingPools:
    """The pools of this API process, by engine environment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pools: dict[str, ServingPool] = {}
        threads = max(1, (os.cpu_count() or 1) // settings.serving_workers)
        self._env = {
            "ORCHESTRA_ARTIFACT_URL": settings.resolved_artifact_url,
            "ORCHESTRA_SERVING_LOADED": str(settings.serving_loaded_versions),
            "ORCHESTRA_PREDICTION_LOG_RATE": repr(settings.prediction_log_rate),
            # Each worker answers one request at a time: its libraries' threads share the machine's cores.
            "OMP_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
        }

    def pool(self, environment: str) -> ServingPool:
        pool = self._pools.get(environment)
        if pool is None:
            python = self.settings.environment_pythons.get(environment)
            if python is None:
                missing = self.settings.missing_environment(environment) or environment
                raise ServingError(503, f"this version needs {missing}")
            pool = ServingPool(
                environment=environment,
                python=python,
                size=self.settings.serving_workers,
                queue_limit=self.settings.serving_queue,
                timeout_s=self.settings.serving_timeout_s,
                load_timeout_s=self.settings.serving_load_timeout_s,
                keep=self.settings.serving_loaded_versions,
                env=self._env,
                log_dir=self.settings.home / "logs",
            )
            self._pools[environment] = pool
        return pool

    async def predict(self, version: ServedVersion, call: PredictCall, payload: bytes) -> Answer:
        return await self.pool(version.environment).call(call.model_copy(update={"version": version}), payload)

    async def preload(self, version: ServedVersion) -> None:
        pool = self._pools.get(version.environment)
        if pool is not None:  # a pool that has not started has nothing warm to keep
            await pool.preload(version)

    def ready(self) -> bool:
        """Whether every started pool has a live worker (a pool not yet started is ready to start)."""
        return all(any(w.alive for w in pool.workers) for pool in self._pools.values() if pool.workers)

    def stats(self) -> list[dict[str, Any]]:
        return [pool.stats() for pool in self._pools.values()]

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self._pools.values()), return_exceptions=True)
        self._pools.clear()
