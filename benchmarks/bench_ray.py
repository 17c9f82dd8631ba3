"""ray: the Ray executor on a local ``ray.cluster_utils.Cluster``, through a real server (ORCHESTRA_EXECUTOR=ray).

* throughput: 8 independent CPU-bound 20-second ``function/python`` steps (a busy loop) on 2 nodes with 1 CPU
  each ÷ the same on 1 node with 1 CPU (wall time from the first POST until the last step settled).
  Goal: ratio >= 1.7.
* search: ``automl/flaml`` on adult.data with ``parallelTrials`` 2 vs 1, same ``timeBudget`` and seed, on
  2 nodes with 2 logical CPUs each (the step's task holds one CPU while its trials run on the others).
  Goal: the parallel best score is the same or better.
* overhead: a small step (``response = 1``) run one after the other on the local executor and on the Ray
  executor (1-node cluster); per step overhead = client-seen time - the run's ``wallS``. Goal: p50 of the
  Ray executor <= local p50 + 50 ms.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from automl_orchestra.client import Client
from benchmarks._harness import (
    ADULT_COLUMNS,
    Server,
    datasets_dir,
    percentile,
    run_step,
    section,
    verdict,
    write_result,
)

NAME = "ray"
GOAL_RATIO = 1.7
GOAL_EXTRA_MS = 50.0
BUSY_CODE = (
    "import time\nend = time.perf_counter() + {seconds}\nwhile time.perf_counter() < end:\n    pass\nresponse = 1"
)
NODE: dict[str, Any] = {"object_store_memory": 100 * 2**20}


@contextmanager
def cluster(nodes: int, cpus: int) -> Iterator[str]:
    """A local Ray cluster of ``nodes`` nodes with ``cpus`` CPUs each; yields its address."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ray.cluster_utils import Cluster

    ray_cluster = Cluster(
        initialize_head=True, connect=False, head_node_args={**NODE, "num_cpus": cpus, "include_dashboard": False}
    )
    try:
        for _ in range(nodes - 1):
            ray_cluster.add_node(**NODE, num_cpus=cpus)
        ray_cluster.wait_for_nodes()
        yield str(ray_cluster.address)
    finally:
        ray_cluster.shutdown()


def ray_server(address: str, **extra: str) -> Server:
    return Server(env={"ORCHESTRA_EXECUTOR": "ray", "ORCHESTRA_RAY_ADDRESS": address, **extra})


def batch_seconds(client: Client, prefix: str, steps: int, seconds: float) -> tuple[float, set[str]]:
    started = time.perf_counter()
    names = [f"{prefix}{i}" for i in range(steps)]
    for name in names:
        client.create_step("function", "python", {"name": name, "code": BUSY_CODE.format(seconds=seconds)})
    for name in names:
        client.wait(name, poll=300)
    elapsed = time.perf_counter() - started
    return elapsed, {str(client.runs(name)[-1]["node"]) for name in names}


def throughput(steps: int, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {"steps": steps, "stepSeconds": seconds}
    for nodes in (1, 2):
        with cluster(nodes, 1) as address, ray_server(address) as server, server.client() as client:
            batch_seconds(client, "warm", nodes, 0.1)  # start each node's worker before the clock runs
            elapsed, used = batch_seconds(client, "busy", steps, seconds)
        result[f"nodes{nodes}"] = {"wallS": round(elapsed, 2), "nodesUsed": len(used)}
        print(f"{nodes} node(s): {elapsed:.1f} s for {steps} x {seconds:g} s steps on {len(used)} node(s)")
    result["ratio"] = round(result["nodes1"]["wallS"] / result["nodes2"]["wallS"], 3)
    result["ok"] = result["ratio"] >= GOAL_RATIO
    print(f"throughput ratio {result['ratio']:.2f} (goal >= {GOAL_RATIO}) {verdict(result['ok'])}")
    return result


def search(budget: float) -> dict[str, Any]:
    csv = datasets_dir() / "adult" / "adult.data"
    result: dict[str, Any] = {"timeBudget": budget}
    with cluster(2, 2) as address, ray_server(address) as server, server.client() as client:
        run_step(client, "dataset", "csv", {"name": "adult", "header": False, "columns": ADULT_COLUMNS}, upload=csv)
        for trials in (1, 2):
            body = {
                "name": f"adult_p{trials}",
                "parentName": "adult",
                "target": "income",
                "timeBudget": budget,
                "metric": "accuracy",
                "seed": 1,
                "parallelTrials": trials,
            }
            timing = run_step(client, "automl", "flaml", body)
            board = client.content("dataset", "leaderboard", f"adult_p{trials}_leaderboard", limit=100)[1:]
            result[f"parallel{trials}"] = {
                "bestScore": timing.metadata["metrics"]["bestScore"],
                "bestLearner": timing.metadata.get("bestLearner"),
                "trials": sum(int(row["iterations"]) for row in board),
                "trialNodes": timing.metadata.get("trialNodes"),
                "wallS": round(timing.wall_s, 1),
            }
            print(f"parallelTrials={trials}: {result[f'parallel{trials}']}")
    result["ok"] = result["parallel2"]["bestScore"] >= result["parallel1"]["bestScore"]
    print(f"parallel score >= sequential score: {verdict(result['ok'])}")
    return result


def small_step_overheads(server: Server, repeats: int) -> list[float]:
    with server.client() as client:
        for i in range(3):  # warm-up: workers started and imports done
            run_step(client, "function", "python", {"name": f"warm{i}", "code": "response = 1"})
        timings = [
            run_step(client, "function", "python", {"name": f"small{i}", "code": "response = 1"})
            for i in range(repeats)
        ]
    return [timing.overhead_s * 1000 for timing in timings]


def overhead(repeats: int) -> dict[str, Any]:
    with Server(env={"ORCHESTRA_WORKERS": "1"}) as server:
        local = small_step_overheads(server, repeats)
    with cluster(1, 1) as address, ray_server(address) as server:
        remote = small_step_overheads(server, repeats)
    result: dict[str, Any] = {
        "repeats": repeats,
        "localP50Ms": round(percentile(local, 50), 1),
        "rayP50Ms": round(percentile(remote, 50), 1),
        "localP95Ms": round(percentile(local, 95), 1),
        "rayP95Ms": round(percentile(remote, 95), 1),
    }
    result["extraP50Ms"] = round(result["rayP50Ms"] - result["localP50Ms"], 1)
    result["ok"] = result["extraP50Ms"] <= GOAL_EXTRA_MS
    print(
        f"overhead p50: local {result['localP50Ms']} ms, Ray {result['rayP50Ms']} ms, extra {result['extraP50Ms']} ms"
    )
    print(f"goal extra <= {GOAL_EXTRA_MS:g} ms: {verdict(result['ok'])}")
    return result


def main(quick: bool = False) -> dict[str, Any]:
    section("ray: throughput of 8 CPU-bound steps, 2 nodes x 1 CPU vs 1 node x 1 CPU")
    record: dict[str, Any] = {"throughput": throughput(4 if quick else 8, 4.0 if quick else 20.0)}
    section("ray: overhead of the Ray executor over the local executor for a small step")
    record["overhead"] = overhead(10 if quick else 30)
    section("ray: FLAML with parallelTrials=2 vs sequential, same wall budget (adult.data)")
    record["search"] = search(15.0 if quick else 60.0)
    write_result(NAME, quick, record)
    return record
