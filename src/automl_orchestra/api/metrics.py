"""The Prometheus metrics of one application (``GET /metrics``, see docs/observability.md).

Each application holds its own ``CollectorRegistry`` (``app.state.metrics``), never the process-wide default
one, so several applications in one process (tests) count apart. What is counted as it happens: HTTP requests
per route template, method and status (``api/observability.py`` feeds them) and predictions per model version
(:func:`observe_prediction`, called by the predict routes). What is read when Prometheus scrapes: steps and
runs by state and the queue length (the metadata database), the step workers' processes and memory (the
children of this process that carry the worker mark), and the serving pools' workers, queues and restarts
(``app.state.serving.stats()``, where the application has serving pools).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette

from automl_orchestra.runtime.supervisor import WORKER_MARK
from automl_orchestra.store.models import STATUSES, Run, Step

log = logging.getLogger(__name__)

# Latency buckets, in seconds. HTTP requests range from a cached read to a long poll (``/observe``, up to a
# minute); a prediction from a fraction of a millisecond to a large batch.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PREDICTION_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# How a prediction request ended: the ``outcome`` label of the prediction metrics.
Outcome = Literal["ok", "invalid", "too_large", "overloaded", "unavailable", "error"]


class Metrics:
    """The registry of one application and the metrics its code feeds."""

    def __init__(self, app: Starlette) -> None:
        # No ``*_created`` series beside each counter and histogram (a process-wide switch of the client):
        # they double the series Prometheus stores and it reads counter resets without them.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "orchestra_http_requests_total",
            "HTTP requests answered, by route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "orchestra_http_request_duration_seconds",
            "time from a request's arrival to the end of its answer, by route template, method and status",
            ("route", "method", "status"),
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "orchestra_predictions_total",
            "prediction requests, by model, version and outcome",
            ("model", "version", "outcome"),
            registry=self.registry,
        )
        self.prediction_rows = Counter(
            "orchestra_prediction_rows_total",
            "rows of the prediction requests, by model, version and outcome",
            ("model", "version", "outcome"),
            registry=self.registry,
        )
        self.prediction_seconds = Histogram(
            "orchestra_prediction_duration_seconds",
            "time to answer a prediction request, by model, version and outcome",
            ("model", "version", "outcome"),
            buckets=PREDICTION_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # this API process: process_resident_memory_bytes, CPU, files
        self.registry.register(StepsCollector(app))
        self.registry.register(WorkersCollector(app))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method, str(status))
        self.requests.labels(*labels).inc()
        self.request_seconds.labels(*labels).observe(seconds)

    def observe_prediction(self, model: str, version: int, seconds: float, outcome: Outcome, rows: int) -> None:
        labels = (model, str(version), outcome)
        self.predictions.labels(*labels).inc()
        self.prediction_rows.labels(*labels).inc(max(rows, 0))
        self.prediction_seconds.labels(*labels).observe(seconds)


def metrics_of(app: Starlette) -> Metrics | None:
    """The metrics of ``app`` (``api/observability.install`` creates them), or None."""
    metrics: Metrics | None = getattr(app.state, "metrics", None)
    return metrics


def observe_prediction(
    app: Starlette, model: str, version: int, *, seconds: float, outcome: Outcome = "ok", rows: int = 1
) -> None:
    """Count one prediction request for version ``version`` of registered model ``model``: it took ``seconds``
    (from the request's arrival to its answer), ended with ``outcome`` and held ``rows`` rows. Nothing happens
    on an application without metrics."""
    metrics = metrics_of(app)
    if metrics is not None:
        metrics.observe_prediction(model, version, seconds, outcome, rows)


# ----- read at scrape time ---------------------------------------------------------------------------


class StepsCollector(Collector):
    """Steps and runs by state and the queue length, counted in the metadata database at each scrape (every
    instance sharing the database reports the same numbers)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def describe(self) -> Iterable[Metric]:
        return []  # what collect yields depends on the database being there

    def collect(self) -> Iterator[Metric]:
        orchestra = getattr(self.app.state, "orchestra", None)
        if orchestra is None:  # an application built without its orchestra (``build_api``)
            return
        try:
            with orchestra.sessions() as session:
                steps = dict(session.execute(select(Step.status, func.count()).group_by(Step.status)).tuples().all())
                runs = dict(session.execute(select(Run.status, func.count()).group_by(Run.status)).tuples().all())
        except SQLAlchemyError:
            log.warning("metrics: the metadata database could not be read", exc_info=True)
            return
        for name, documentation, counts in (
            ("orchestra_steps", "steps by state", steps),
            ("orchestra_runs", "runs by state", runs),
        ):
            family = GaugeMetricFamily(name, documentation, labels=["state"])
            for state in (*STATUSES, *sorted(set(counts) - set(STATUSES))):
                family.add_metric([state], counts.get(state, 0))
            yield family
        yield GaugeMetricFamily(
            "orchestra_queue_length",
            "pending runs: queued, or waiting for their inputs",
            value=runs.get("pending", 0),
        )


class WorkersCollector(Collector):
    """The processes that compute: the step workers of the local executor and the serving pools' workers."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        pools = serving_stats(self.app)
        serving_pids = {int(w.get("pid", 0)) for pool in pools for w in pool.get("workers") or ()}
        yield from step_worker_metrics(serving_pids)
        yield from serving_metrics(pools)


def step_worker_metrics(exclude: set[int]) -> Iterator[Metric]:
    """The step workers of this server, by environment: the children of this process whose environment
    carries the worker mark (``runtime/supervisor.py``), but for ``exclude``; their memory is the resident size
    of each worker's process tree (the worker and the processes of its job). Workers of a Ray cluster are not
    children of this process and are not counted."""
    processes: dict[str, int] = {}
    memory: dict[str, int] = {}
    for child in psutil.Process().children():
        if child.pid in exclude:
            continue
        try:
            environment = child.environ()
            if WORKER_MARK not in environment:
                continue
            tree = [child, *child.children(recursive=True)]
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
        name = environment.get("ORCHESTRA_ENVIRONMENT", "main")
        processes[name] = processes.get(name, 0) + 1
        memory[name] = memory.get(name, 0) + sum(_rss(process) for process in tree)
    count = GaugeMetricFamily("orchestra_step_workers", "step worker processes, by environment", labels=["environment"])
    size = GaugeMetricFamily(
        "orchestra_step_worker_memory_bytes",
        "resident memory of the step workers' process trees, by environment",
        labels=["environment"],
    )
    for name in sorted(processes):
        count.add_metric([name], processes[name])
        size.add_metric([name], memory[name])
    yield count
    yield size


def _rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except psutil.Error:
        return 0


def serving_stats(app: Starlette) -> list[dict[str, Any]]:
    """``app.state.serving.stats()``: one dict per environment pool, ``[]`` without serving pools (or when
    they cannot answer)."""
    serving = getattr(app.state, "serving", None)
    stats = getattr(serving, "stats", None)
    if not callable(stats):
        return []
    try:
        return list(stats())
    except Exception:
        log.warning("metrics: the serving pools' stats could not be read", exc_info=True)
        return []


def serving_metrics(pools: list[dict[str, Any]]) -> Iterator[Metric]:
    """The serving pools by environment, from their ``stats()``: ``{"environment", "workers": [{"pid",
    "rssBytes", "busy"}], "queued", "inFlight", "restarts", "loadedVersions"}``."""
    labels = ["environment"]
    gauges = {
        "workers": GaugeMetricFamily("orchestra_serving_workers", "serving worker processes", labels=labels),
        "busy": GaugeMetricFamily(
            "orchestra_serving_workers_busy", "serving workers answering a request", labels=labels
        ),
        "memory": GaugeMetricFamily(
            "orchestra_serving_worker_memory_bytes", "resident memory of the serving workers", labels=labels
        ),
        "queued": GaugeMetricFamily(
            "orchestra_serving_queued_requests", "requests waiting for a worker", labels=labels
        ),
        "inFlight": GaugeMetricFamily("orchestra_serving_in_flight_requests", "requests being answered", labels=labels),
        "loadedVersions": GaugeMetricFamily(
            "orchestra_serving_loaded_versions", "model versions loaded in the pool", labels=labels
        ),
    }
    restarts = CounterMetricFamily(
        "orchestra_serving_worker_restarts", "serving workers replaced after they died", labels=labels
    )
    for pool in pools:
        environment = [str(pool.get("environment", ""))]
        workers = list(pool.get("workers") or ())
        gauges["workers"].add_metric(environment, len(workers))
        gauges["busy"].add_metric(environment, sum(1 for worker in workers if worker.get("busy")))
        gauges["memory"].add_metric(environment, sum(int(worker.get("rssBytes") or 0) for worker in workers))
        for key in ("queued", "inFlight", "loadedVersions"):
            gauges[key].add_metric(environment, float(pool.get(key) or 0))
        restarts.add_metric(environment, float(pool.get("restarts") or 0))
    yield from gauges.values()
    yield restarts
