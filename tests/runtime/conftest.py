"""A real local multi-node Ray cluster (``ray.cluster_utils.Cluster``) and a real server that runs its steps
on it through the Ray executor."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle, launch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

GB = 2**30
# Ordinary nodes offer 3 GB of Ray's logical "memory" resource; the "big" node 12 GB. A step asking for
# more than 3 GB (limits.memoryMb) can therefore only be placed on a big node: that is how the node-loss
# tests know where their steps run, with nothing in the product made for tests.
SMALL = {"num_cpus": 1, "memory": 3 * GB, "object_store_memory": 100 * 2**20}
BIG = {"num_cpus": 2, "memory": 12 * GB, "object_store_memory": 100 * 2**20}
BIG_STEP_MB = 5000


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    # Ray's files in a directory of our own (short: its socket paths must stay under 107 characters);
    # RAY_TMPDIR reaches every node and the server, which inherit the environment.
    temp = Path(tempfile.mkdtemp(prefix="orc-ray-"))
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(temp)
    cluster = None
    try:
        # Inside the try: a node that fails to start must not leave the head running.
        cluster = Cluster(initialize_head=True, connect=False, head_node_args={**SMALL, "include_dashboard": False})
        cluster.add_node(**SMALL)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        if cluster is not None:
            cluster.shutdown()
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_server(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = launch(
        tmp_path_factory.mktemp("ray-server"),
        ORCHESTRA_EXECUTOR="ray",
        ORCHESTRA_RAY_ADDRESS=ray_cluster.address,
        ORCHESTRA_RAY_MAX_IN_FLIGHT="4",
        ORCHESTRA_STEP_MEMORY_MB="1024",
    )
    yield handle
    handle.stop()
