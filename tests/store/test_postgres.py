"""The store and the API on a real PostgreSQL: migrations, the step model, the queue and restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from automl_orchestra.steps.errors import Conflict
from automl_orchestra.steps.service import NewStep, StepService
from automl_orchestra.store import db
from automl_orchestra.store.artifacts import ArtifactStore
from automl_orchestra.store.models import Instance, utcnow
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


def test_migrations_upgrade_an_existing_database(database_url: str) -> None:
    """A database made by the first revision, with an instance row in it, upgrades to the newest schema: the
    row is kept, and the instances table has the model's columns."""
    from alembic import command
    from alembic.config import Config

    database = db.open_database(database_url)
    try:
        config = Config()
        config.set_main_option("script_location", str(db.MIGRATIONS))
        with database.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(
                text("INSERT INTO instances (id, host, started_at, heartbeat_at) VALUES ('old', 'h', :t, :t)"),
                {"t": utcnow()},
            )
        db.upgrade(database)
        with database.connect() as connection:
            row = connection.execute(text("SELECT id, pid, process_started, pid_namespace FROM instances")).one()
            assert tuple(row) == ("old", None, None, None)
        columns = {column["name"]: column["nullable"] for column in inspect(database).get_columns("instances")}
        assert columns == {column.name: column.nullable for column in Instance.__table__.columns}
    finally:
        database.dispose()


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
            slow = "print('pg_slow started', flush=True)\nimport time\ntime.sleep(120)"
            post(http, "/function/python", {"name": "pg_slow", "code": slow})
            _poll(lambda: _printed(handle.home, "pg_slow", "pg_slow started"), "pg_slow is running and printed")
        handle.restart(kill=True)
        with handle.client() as http:
            # At once, no waiting for heartbeats: the new server reconciled before it served this request.
            statuses = {step["name"]: step["status"] for step in http.get("/steps").json()["result"]}
            assert statuses == {"pg_a": "finished", "pg_b": "finished", "pg_slow": "failed"}, statuses
            assert "pg_slow started" in http.get("/steps/pg_slow/logs").json()["result"]["stdout"]
            assert not (handle.home / "work" / "pg_slow").exists()
            assert (
                http.patch("/steps/pg_a", params={"cascade": "true"}, json={"code": "response = {'n': 5}"}).status_code
                == 200
            )
            assert handle.wait("pg_b")["status"] == "finished"
            assert content(http, "/function/python/pg_b")[1] == 15
    finally:
        handle.stop()


def _printed(home: Path, name: str, text: str) -> bool:
    return any(text in path.read_text() for path in (home / "work" / name).glob("*/stdout.log"))


def _poll(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)
