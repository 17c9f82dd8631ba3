"""The Ray executor on a real local two-node Ray cluster, driven through a real server's REST API: steps land
on both nodes, timeouts and cancellation hold, a lost node fails (or re-runs) its step and is named in the
run, FLAML trials spread over the cluster and their progress reaches the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sklearn.datasets import load_breast_cancer

from tests.api.helpers import content, post, run, upload, upload_digits
from tests.conftest import ServerHandle
from tests.runtime.conftest import BIG, BIG_STEP_MB


def code_step(name: str, code: str, **extra: object) -> dict:
    return {"name": name, "code": code, **extra}


def node_of(http: httpx.Client, name: str) -> str:
    node: str = http.get(f"/steps/{name}/runs").json()["result"][-1]["node"]
    return node


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@contextmanager
def big_node(cluster: Any) -> Iterator[Any]:
    """A node only big steps fit on (see conftest); removed afterwards if the test has not removed it."""
    node = cluster.add_node(**BIG)
    cluster.wait_for_nodes()
    try:
        yield node
    finally:
        if node in cluster.worker_nodes:
            cluster.remove_node(node)


def test_pipeline_steps_land_on_both_nodes(ray_server: ServerHandle, tmp_path: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    with ray_server.client() as http:
        upload(http, "rp_cancer", tmp_path / "cancer.csv")
        parts = [f"rp_part{i}" for i in range(4)]
        for i, name in enumerate(parts):
            code = f"import time\ntime.sleep(1.5)\nresponse = int(len(data)) + {i}"
            post(http, "/function/python", code_step(name, code, parameters={"data": "$rp_cancer"}))
        refs = {name: f"${name}" for name in parts}
        total = run(
            ray_server,
            http,
            "/function/python",
            code_step("rp_total", "response = sum(values)", parameters={"values": list(refs.values())}),
        )
        assert total["status"] == "finished"
        assert content(http, "/function/python/rp_total")[1] == 4 * 569 + 6
        nodes = {node_of(http, name) for name in parts}
        assert len(nodes) == 2, nodes  # two distinct Ray node ids: both nodes ran steps
        assert all("/ray:" in node for node in nodes)


def test_timeout_on_ray(ray_server: ServerHandle) -> None:
    with ray_server.client() as http:
        started = time.monotonic()
        step = code_step("rt_slow", "import time\ntime.sleep(60)", limits={"timeoutS": 2})
        document = run(ray_server, http, "/function/python", step, status="failed")
        assert time.monotonic() - started < 30
        assert document["error"]["reason"].startswith("timeout")
        assert "/ray:" in node_of(http, "rt_slow")


def test_cancel_on_ray(ray_server: ServerHandle) -> None:
    with ray_server.client() as http:
        post(http, "/function/python", code_step("rt_cancel", "import time\ntime.sleep(120)"))
        wait_for(lambda: http.get("/steps/rt_cancel").json()["result"]["status"] == "running")
        time.sleep(1.0)  # let the task start on its node
        assert http.post("/function/python/rt_cancel/cancel").status_code == 200
        document = ray_server.wait("rt_cancel", timeout=30)
        assert document["status"] == "cancelled"
        assert document["error"]["reason"] == "cancelled by request"
        # The node's capacity is free again: the next step runs.
        run(ray_server, http, "/function/python", code_step("rt_after_cancel", "response = 1"))


def test_lost_node_fails_the_step_or_retries_a_retryable_one(
    ray_server: ServerHandle, ray_cluster: Any, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    # The retryable step sleeps on its first attempt only; each attempt leaves a mark.
    retry_code = (
        "import os, time, uuid\n"
        f"marks = {str(marks)!r}\n"
        "first = not os.listdir(marks)\n"
        "open(os.path.join(marks, uuid.uuid4().hex), 'w').close()\n"
        "if first:\n    time.sleep(120)\n"
        "response = len(os.listdir(marks))"
    )
    big = {"memoryMb": BIG_STEP_MB}
    with ray_server.client() as http, big_node(ray_cluster) as node:
        started = tmp_path / "lost-started"
        lost_code = f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(120)"
        post(http, "/function/python", code_step("rn_lost", lost_code, limits=big))
        post(http, "/function/python", code_step("rn_retry", retry_code, limits=big, retryable=True))
        wait_for(lambda: started.exists() and len(list(marks.iterdir())) == 1)  # both sleep on the big node
        ray_cluster.remove_node(node)
        lost = ray_server.wait("rn_lost", timeout=60)
        assert lost["status"] == "failed", lost
        assert "node running the step was lost" in lost["error"]["reason"]
        assert node_of(http, "rn_lost").endswith(f"/ray:{node.node_id}")  # the run names the node it lost
        # The retryable step was submitted again; it fits only on a big node: add one.
        with big_node(ray_cluster) as replacement:
            retried = ray_server.wait("rn_retry", timeout=90)
            assert retried["status"] == "finished", retried
            assert content(http, "/function/python/rn_retry")[1] == 2  # two attempts
            assert node_of(http, "rn_retry").endswith(f"/ray:{replacement.node_id}")


def test_flaml_trials_spread_over_the_cluster(ray_server: ServerHandle, ray_cluster: Any, tmp_path: Path) -> None:
    load_breast_cancer(as_frame=True).frame.to_csv(tmp_path / "cancer.csv", index=False)
    body = {
        "name": "rf_auto",
        "parentName": "rf_cancer",
        "target": "target",
        "timeBudget": 25,  # Ray Tune starts trial actors on the nodes first: a few seconds each here
        "metric": "accuracy",
        "parallelTrials": 2,
    }
    with ray_server.client() as http, big_node(ray_cluster):  # room for the step and two trials
        upload(http, "rf_cancer", tmp_path / "cancer.csv")
        post(http, "/automl/flaml", body)
        seen: set[str] = set()  # progress posted on a Ray node reaches the step's document on the server
        while (step := http.get("/steps/rf_auto").json()["result"])["status"] in ("pending", "running"):
            seen.add(str((step.get("progress") or {}).get("message")))
            time.sleep(0.2)
        assert any("trial results; last:" in message for message in seen), seen
        document = ray_server.wait("rf_auto")
        assert document["status"] == "finished", document
        assert document["parallelTrials"] == 2
        assert sum(document["trialNodes"].values()) >= 2  # trial results came back through Ray Tune
        assert 0.8 < document["metrics"]["bestScore"] <= 1.0
        board = content(http, "/dataset/leaderboard/rf_auto_leaderboard", limit=50)[1:]
        assert board and board[0]["learner"] == document["bestLearner"]
        assert all(row["nodes"] for row in board)  # where each learner's trials ran
        assert "/ray:" in node_of(http, "rf_auto")


def test_a_nas_search_drives_its_trials_on_ray(ray_server: ServerHandle, tmp_path: Path) -> None:
    body = {
        "name": "rnas",
        "parentName": "digits",
        "generators": ["random"],
        "trials": 1,
        "timeBudget": 120,
        "control": {"epochs": 1, "batchSize": 64},
    }
    with ray_server.client() as http:
        upload_digits(ray_server, http, tmp_path)
        document = run(ray_server, http, "/automl/nas", body)  # the driver takes no CPU: no deadlock
        assert document["metrics"]["trials"] == 1
        for phase in ("generate", "train", "evaluate"):  # its children ran as Ray tasks
            assert "/ray:" in node_of(http, f"rnas-random-1-{phase}")
        assert "/ray:" in node_of(http, "rnas")
