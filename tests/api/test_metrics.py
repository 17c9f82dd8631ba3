"""Observability over a real server: ``GET /metrics`` scraped and parsed as Prometheus text (requests per route
template, steps and runs by state, the queue, the step workers), the ``X-Request-ID`` of every answer, and the
server's JSON log lines (one per request, one per state change of a run). See docs/observability.md."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from automl_orchestra.api.app import build_api
from automl_orchestra.api.metrics import metrics_of, observe_prediction, serving_metrics
from automl_orchestra.config import Settings
from tests.conftest import TOKENS, ServerHandle, launch

TOKEN_LIST = ",".join(f"{token}:{role}" for token, role in TOKENS.items())
VIEWER = {"Authorization": "Bearer viewer-token"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server with tokens and one warm step worker."""
    handle = launch(tmp_path_factory.mktemp("observed"), token="editor-token", ORCHESTRA_TOKENS=TOKEN_LIST)
    yield handle
    handle.stop()


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(server: ServerHandle) -> Samples:
    answer = httpx.get(f"{server.url}/metrics", headers=VIEWER, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def log_records(server: ServerHandle) -> list[dict[str, Any]]:
    """The server's log lines that are JSON objects."""
    records = []
    for line in (server.home / "server.log").read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def wait_for_records(server: ServerHandle, timeout: float = 30.0, **fields: Any) -> list[dict[str, Any]]:
    """The JSON log records with ``fields``, once there is one (a request's line is written after its answer)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in log_records(server) if all(r.get(k) == v for k, v in fields.items())]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# ----- /metrics -------------------------------------------------------------------------------------


def test_metrics_are_a_viewers_read_outside_the_api_document(observed: ServerHandle) -> None:
    url = f"{observed.url}/metrics"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", refused.text
        assert refused.json()["error"]["code"] == "unauthorized"
    assert httpx.get(url, headers=VIEWER).status_code == 200
    assert "/metrics" not in httpx.get(f"{observed.url}/openapi.json").json()["paths"]
    openmetrics = httpx.get(url, headers={**VIEWER, "Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_requests_are_counted_by_route_template(observed: ServerHandle) -> None:
    labels = {"route": "/api/v1/steps/{name}", "method": "GET", "status": "404"}
    before = scrape(observed)
    with observed.client() as http:
        for name in ("metrics_nobody_1", "metrics_nobody_2"):
            assert http.get(f"/steps/{name}").status_code == 404
        assert http.get("/no/such/route").status_code == 404
    after = scrape(observed)
    grown = value(after, "orchestra_http_requests_total", **labels) - value(
        before, "orchestra_http_requests_total", **labels
    )
    assert grown == 2
    count = "orchestra_http_request_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == 2
    assert value(after, "orchestra_http_request_duration_seconds_bucket", **labels, le="+Inf") >= 2
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(after, "orchestra_http_requests_total", **unmatched) >= 1
    routes = {dict(key)["route"] for name, key in after if name == "orchestra_http_requests_total"}
    assert not any("nobody" in route or "no/such" in route for route in routes), routes


def test_steps_by_state_queue_and_workers(observed: ServerHandle) -> None:
    with observed.client() as http:
        created = http.post("/dataset/csv", data={"name": "metrics_data"}, files={"file": ("m.csv", b"a,b\n1,2\n")})
        assert created.status_code == 201, created.text
    assert observed.wait("metrics_data")["status"] == "finished"
    deadline = time.monotonic() + 120  # the warm worker starts beside the server
    while True:
        samples = scrape(observed)
        if value(samples, "orchestra_step_workers", environment="main") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert value(samples, "orchestra_steps", state="finished") >= 1
    assert value(samples, "orchestra_runs", state="finished") >= 1
    assert ("orchestra_steps", frozenset({("state", "stale")})) in samples  # every state, zero included
    assert ("orchestra_queue_length", frozenset()) in samples
    assert value(samples, "orchestra_step_workers", environment="main") >= 1
    assert value(samples, "orchestra_step_worker_memory_bytes", environment="main") > 10 * 2**20
    assert value(samples, "process_resident_memory_bytes") > 0  # the API process itself


def test_predictions_are_counted_per_model_version(tmp_path: Any) -> None:
    """``observe_prediction`` (called by the predict routes) feeds the counters and the histogram of an
    application's own registry: two applications in one process count apart."""
    app, other = build_api(Settings(home=tmp_path / "a")), build_api(Settings(home=tmp_path / "b"))
    observe_prediction(app, "adult", 3, seconds=0.002, rows=1)
    observe_prediction(app, "adult", 3, seconds=0.004, rows=10)
    observe_prediction(app, "adult", 3, seconds=0.001, outcome="invalid", rows=2)
    metrics = metrics_of(app)
    assert metrics is not None
    samples = parse(generate_latest(metrics.registry).decode())
    ok = {"model": "adult", "version": "3", "outcome": "ok"}
    assert value(samples, "orchestra_predictions_total", **ok) == 2
    assert value(samples, "orchestra_prediction_rows_total", **ok) == 11
    assert value(samples, "orchestra_prediction_duration_seconds_bucket", **ok, le="0.003") == 1
    assert value(samples, "orchestra_prediction_duration_seconds_count", **ok) == 2
    assert value(samples, "orchestra_predictions_total", model="adult", version="3", outcome="invalid") == 1
    other_metrics = metrics_of(other)
    assert other_metrics is not None
    assert "adult" not in generate_latest(other_metrics.registry).decode()


def test_serving_pools_are_reported_from_their_stats() -> None:
    """The serving metrics read ``app.state.serving.stats()``: one dict per environment pool."""
    pools = [
        {
            "environment": "main",
            "workers": [{"pid": 11, "rssBytes": 100, "busy": True}, {"pid": 12, "rssBytes": 50, "busy": False}],
            "queued": 3,
            "inFlight": 1,
            "restarts": 2,
            "loadedVersions": 4,
        }
    ]
    families = {family.name: family for family in serving_metrics(pools)}
    main = (("environment", "main"),)
    got = {name: {tuple(s.labels.items()): s.value for s in family.samples} for name, family in families.items()}
    assert got["orchestra_serving_workers"][main] == 2
    assert got["orchestra_serving_workers_busy"][main] == 1
    assert got["orchestra_serving_worker_memory_bytes"][main] == 150
    assert got["orchestra_serving_queued_requests"][main] == 3
    assert got["orchestra_serving_in_flight_requests"][main] == 1
    assert got["orchestra_serving_loaded_versions"][main] == 4
    assert got["orchestra_serving_worker_restarts"][main] == 2
    assert families["orchestra_serving_worker_restarts"].type == "counter"
    assert all(not family.samples for family in serving_metrics([]))


# ----- request ids and logs -------------------------------------------------------------------------


def test_the_request_id_comes_back_on_every_answer(observed: ServerHandle) -> None:
    generated = re.compile(r"[0-9a-f]{32}")
    with observed.client() as http:
        sent = "client-id_1.2"
        assert http.get("/health", headers={"X-Request-ID": sent}).headers["x-request-id"] == sent
        for bad in ("x" * 129, "has space", "semi;colon", ""):
            answer = http.get("/health", headers={"X-Request-ID": bad})
            assert generated.fullmatch(answer.headers["x-request-id"]), (bad, answer.headers)
        first, second = http.get("/health"), http.get("/health")
        assert generated.fullmatch(first.headers["x-request-id"])
        assert first.headers["x-request-id"] != second.headers["x-request-id"]
        missing = http.get("/steps/metrics_nobody", headers={"X-Request-ID": "on-a-404"})
        assert missing.status_code == 404 and missing.headers["x-request-id"] == "on-a-404"
        invalid = http.post("/dataset/csv", json={}, headers={"X-Request-ID": "on-a-422"})
        assert invalid.status_code in (415, 422) and invalid.headers["x-request-id"] == "on-a-422"
    refused = httpx.get(f"{observed.api}/steps", headers={"X-Request-ID": "on-a-401"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "on-a-401"
    unrouted = httpx.get(f"{observed.url}/nowhere", headers={"X-Request-ID": "on-no-route"})
    assert unrouted.status_code == 404 and unrouted.headers["x-request-id"] == "on-no-route"


def test_one_json_log_line_per_request_with_its_id(observed: ServerHandle) -> None:
    request_id = f"log-{uuid.uuid4().hex}"
    with observed.client() as http:
        assert http.get("/steps/metrics_nobody", headers={"X-Request-ID": request_id}).status_code == 404
    records = wait_for_records(observed, request_id=request_id, logger="automl_orchestra.api.requests")
    assert len(records) == 1, records
    record = records[0]
    assert record["method"] == "GET" and record["status"] == 404
    assert record["route"] == "/api/v1/steps/{name}" and record["path"] == "/api/v1/steps/metrics_nobody"
    assert record["role"] == "editor" and record["level"] == "info"
    assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
    assert record["timestamp"].endswith("Z") and record["message"].startswith("GET /api/v1/steps/metrics_nobody 404")
    unauthenticated = f"log-{uuid.uuid4().hex}"
    httpx.get(f"{observed.api}/steps", headers={"X-Request-ID": unauthenticated})
    (refused,) = wait_for_records(observed, request_id=unauthenticated)
    assert refused["status"] == 401 and "role" not in refused


def test_one_json_log_line_per_state_change_of_a_run(observed: ServerHandle) -> None:
    with observed.client() as http:
        created = http.post("/dataset/csv", data={"name": "metrics_logged"}, files={"file": ("l.csv", b"x\n1\n")})
        assert created.status_code == 201, created.text
    assert observed.wait("metrics_logged")["status"] == "finished"
    changes = wait_for_records(observed, step="metrics_logged", to_state="finished")
    assert changes, "no state change logged"
    records = [r for r in log_records(observed) if r.get("step") == "metrics_logged"]
    assert [(r["from_state"], r["to_state"]) for r in records] == [("pending", "running"), ("running", "finished")]
    assert len({r["run"] for r in records}) == 1 and all(r["logger"].endswith("scheduler") for r in records)
    assert "request_id" not in records[0]  # the scheduler's thread handles no request
