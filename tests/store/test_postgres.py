"""The store and the API on a real PostgreSQL: migrations, the step model, the queue and restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from automl_orchestra.steps.errors import Conflict
from automl_orchestra.steps.service import NewStep, StepService
from automl_orchestra.store import db
from automl_orchestra.store.artifacts import ArtifactStore
from tests.api.helpers import content, post, run
from tests.conftest import ServerHandle, fresh_database, launch


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return fresh_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[StepService]:
    database = db.open_database(database_url)
    db.upgrade(database)
    db.upgrade(database)  # idempotent
    yield StepService(db.session_factory(database), ArtifactStore(str(tmp_path / "artifacts")))
    database.dispose()


def test_migrations_create_the_schema(service: StepService) -> None:
    tables = set(inspect(service.sessions.kw["bind"]).get_table_names())
    assert {"steps", "runs", "edges", "instances", "alembic_version"} <= tables


def test_step_model_on_each_database(service: StepService) -> None:
    service.create(NewStep("function", "python", "a", {"code": "response = 1"}))
    service.create(NewStep("function", "python", "b", {"code": "x", "parameters": {"v": "$a"}}))
    assert service.parents("b") == ["a"]
    with pytest.raises(Conflict):
        service.create(NewStep("function", "python", "a", {"code": "again"}))
    with pytest.raises(Conflict):
        service.delete("a")
    assert service.delete("a", cascade=True) == ["a", "b"]
    assert service.list_steps() == []


def test_names_stay_unique_under_concurrent_submissions(service: StepService) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        try:
            service.create(NewStep("function", "python", "race", {"code": "response = 1"}))
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["created"]
    assert len(service.runs("race")) == 1


def test_api_on_postgresql_with_restart(postgres_url: str, tmp_path: Path) -> None:
    url = fresh_database(postgres_url)
    handle: ServerHandle = launch(tmp_path / "pg", ORCHESTRA_DATABASE_URL=url)
    try:
        with handle.client() as http:
            run(handle, http, "/function/python", {"name": "pg_a", "code": "response = {'n': 2}"})
            run(
                handle,
                http,
                "/function/python",
                {"name": "pg_b", "code": "response = a['n'] * 3", "parameters": {"a": "$pg_a"}},
            )
            assert content(http, "/function/python/pg_b")[1] == 6
            post(http, "/function/python", {"name": "pg_slow", "code": "import time\ntime.sleep(120)"})
            while http.get("/steps/pg_slow").json()["result"]["status"] != "running":
                time.sleep(0.05)
        handle.restart(kill=True)
        with handle.client() as http:
            assert http.get("/steps/pg_slow").json()["result"]["status"] == "failed"
            assert (
                http.patch("/steps/pg_a", params={"cascade": "true"}, json={"code": "response = {'n': 5}"}).status_code
                == 200
            )
            assert handle.wait("pg_b")["status"] == "finished"
            assert content(http, "/function/python/pg_b")[1] == 15
    finally:
        handle.stop()
