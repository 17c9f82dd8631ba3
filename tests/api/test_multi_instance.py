"""Two real API servers on one fresh PostgreSQL database and one artifact directory: a step submitted to one is
visible, observable (long poll and SSE) and cancellable from the other; names stay unique under concurrent
submissions to both."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.helpers import content, post
from tests.conftest import ServerHandle, fresh_database, launch


@pytest.fixture(scope="module")
def pair(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    shared = {
        "ORCHESTRA_DATABASE_URL": fresh_database(postgres_url),
        "ORCHESTRA_ARTIFACT_URL": str(tmp_path_factory.mktemp("shared-artifacts")),
    }
    first = launch(tmp_path_factory.mktemp("instance-a"), ORCHESTRA_INSTANCE_ID="a", **shared)
    second = launch(tmp_path_factory.mktemp("instance-b"), ORCHESTRA_INSTANCE_ID="b", **shared)
    yield first, second
    first.stop()
    second.stop()


def code_step(name: str, code: str) -> dict:
    return {"name": name, "code": code}


def test_a_step_from_one_instance_is_visible_and_observable_from_the_other(
    pair: tuple[ServerHandle, ServerHandle],
) -> None:
    first, second = pair
    with first.client() as a, second.client() as b:
        post(a, "/function/python", code_step("mi_seen", "import time\ntime.sleep(2)\nresponse = 7"))
        assert b.get("/steps/mi_seen").status_code == 200  # visible at once: one database
        statuses = []
        with b.stream("GET", "/observe/mi_seen/events", timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    statuses.append(json.loads(line[6:])["status"])
        assert statuses[-1] == "finished" and len(statuses) >= 2, statuses
        assert second.wait("mi_seen")["status"] == "finished"  # the long poll, on the other instance
        assert content(b, "/function/python/mi_seen")[1] == 7  # the output, through the shared store


def test_a_step_is_cancellable_from_the_other_instance(pair: tuple[ServerHandle, ServerHandle]) -> None:
    first, second = pair
    with first.client() as a, second.client() as b:
        post(a, "/function/python", code_step("mi_cancel", "import time\ntime.sleep(120)"))
        deadline = time.monotonic() + 30
        while b.get("/steps/mi_cancel").json()["result"]["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        started = time.monotonic()
        assert b.post("/function/python/mi_cancel/cancel").status_code == 200
        document = second.wait("mi_cancel", timeout=30)
        assert document["status"] == "cancelled", document
        assert time.monotonic() - started < 10  # the owner sees the flag on its next pass
        assert first.wait("mi_cancel", timeout=5)["status"] == "cancelled"


def test_names_stay_unique_under_concurrent_submissions(pair: tuple[ServerHandle, ServerHandle]) -> None:
    first = pair[0]
    names = [f"mi_race{i}" for i in range(10)]

    def submit(server: ServerHandle, name: str) -> int:
        with server.client() as http:
            return http.post("/function/python", json=code_step(name, "response = 1")).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {(server.port, name): pool.submit(submit, server, name) for name in names for server in pair}
        codes = {key: future.result() for key, future in futures.items()}
    for name in names:
        outcome = sorted(codes[(server.port, name)] for server in pair)
        assert outcome == [201, 409], (name, outcome)  # exactly one instance created it
    with first.client() as a:
        listed = [s["name"] for s in a.get("/steps", params={"limit": 1000}).json()["result"]]
        assert sorted(n for n in listed if n.startswith("mi_race")) == sorted(names)
    for name in names:
        assert first.wait(name)["status"] == "finished"


def test_each_instance_runs_queued_steps(pair: tuple[ServerHandle, ServerHandle]) -> None:
    """Both instances claim pending runs from the shared queue; every run is claimed exactly once."""
    first, second = pair
    names = [f"mi_work{i}" for i in range(6)]
    with first.client() as a, second.client() as b:
        for index, name in enumerate(names):
            post(
                a if index % 2 else b, "/function/python", code_step(name, "import time\ntime.sleep(0.5)\nresponse = 1")
            )
        for name in names:
            assert first.wait(name)["status"] == "finished"
        runs = [a.get(f"/steps/{name}/runs").json()["result"] for name in names]
    assert all(len(r) == 1 for r in runs)  # claimed once each
