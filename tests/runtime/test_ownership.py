"""What a step leaves when it ends, and what a dead server's steps leave: no process of the step outlives it
(a ``start_new_session`` child, a double-forked daemon), no step stays ``running`` after its server is gone,
their captured logs are published, no work folder stays behind, and the memory limit counts the step's own
memory, not the warm worker's. Real servers over HTTP and real worker processes; waits are polls with
generous deadlines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import update

from automl_orchestra.config import Settings
from automl_orchestra.runtime.local import LocalExecutor
from automl_orchestra.runtime.scheduler import Scheduler
from automl_orchestra.runtime.supervisor import WORKER_MARK, pid_namespace, process_start, supervisor_prefix
from automl_orchestra.runtime.worker import RUN_MARK
from automl_orchestra.steps.service import NewStep, StepService
from automl_orchestra.store import db
from automl_orchestra.store.artifacts import ArtifactStore, run_prefix
from automl_orchestra.store.models import Instance, Run, Step, utcnow
from tests.api.helpers import content, post, wait_for_status
from tests.conftest import ServerHandle, launch

DEADLINE_S = 60.0

# A code step that starts three processes the way user code may, and writes their PIDs to a file: a plain
# child (in the worker's process group), one in a session of its own, and a daemon made by fork, setsid,
# fork without exec (its environment is the worker's, not the job's).
SPAWN = """
import os, subprocess, time, json
plain = subprocess.Popen(["sleep", "300"]).pid
session = subprocess.Popen(["sleep", "300"], start_new_session=True).pid
read, write = os.pipe()
first = os.fork()
if first == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(write, str(os.getpid()).encode())
        time.sleep(300)
    os._exit(0)
os.waitpid(first, 0)
daemon = int(os.read(read, 32))
with open({pids!r} + ".tmp", "w") as handle:
    json.dump([plain, session, daemon], handle)
os.rename({pids!r} + ".tmp", {pids!r})
"""
ENDINGS = {
    "finished": "response = 'done'",
    "cancelled": "time.sleep(300)",
    "timeout": "time.sleep(300)",
    "died": "os._exit(3)",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = launch(tmp_path_factory.mktemp("ownership"))
    yield handle
    handle.stop()


@pytest.fixture
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def poll(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def leftovers(home: Path, name: str) -> list[Path]:
    """The step's folder in the server's work root, if any is left."""
    return list((home / "work").glob(name))


# ----- processes a step starts -----------------------------------------------------------------------


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_no_process_a_step_started_outlives_it(
    server: ServerHandle, http: httpx.Client, tmp_path: Path, ending: str
) -> None:
    name = f"own_{ending}"
    pids_file = tmp_path / "pids.json"
    body: dict = {"name": name, "code": SPAWN.format(pids=str(pids_file)) + ENDINGS[ending]}
    if ending == "timeout":
        body["limits"] = {"timeoutS": 20}
    post(http, "/function/python", body)
    poll(pids_file.exists, "the step wrote the PIDs of its processes")
    pids = json.loads(pids_file.read_text())
    if ending in ("cancelled", "timeout"):  # still running (the other endings may be over already)
        assert all(alive(pid) for pid in pids)
    if ending == "cancelled":
        assert http.post(f"/steps/{name}/cancel").status_code == 200
    document = server.wait(name, timeout=DEADLINE_S)
    expected = {"finished": "finished", "cancelled": "cancelled", "timeout": "failed", "died": "failed"}[ending]
    assert document["status"] == expected, document
    if ending == "timeout":
        assert document["error"]["reason"].startswith("timeout")
    poll(lambda: not any(alive(pid) for pid in pids), f"every process of the {ending} step ended: {pids}")
    poll(lambda: not leftovers(server.home, name), "the step's work folder is removed")


def test_a_warm_worker_whose_job_left_processes_is_not_reused_with_them(
    server: ServerHandle, http: httpx.Client
) -> None:
    """An ordinary step (not forked) runs in the warm worker itself: a helper it started is ended with the
    step, and the next step runs in a worker that has none."""
    code = "import subprocess\nresponse = subprocess.Popen(['sleep', '300'], start_new_session=True).pid"
    post(http, "/function/python", {"name": "own_helper", "code": code})
    assert server.wait("own_helper")["status"] == "finished"
    pid = content(http, "/function/python/own_helper")[1]
    poll(lambda: not alive(pid), "the helper of a finished step ended")


def test_deleting_a_running_step_leaves_no_work_folder(server: ServerHandle, http: httpx.Client) -> None:
    post(http, "/function/python", {"name": "own_deleted", "code": "import time\ntime.sleep(300)"})
    wait_for_status(http, "own_deleted", "running", timeout=DEADLINE_S)
    poll(lambda: bool(leftovers(server.home, "own_deleted")), "the running step has its work folder")
    assert http.delete("/steps/own_deleted").status_code == 200
    poll(lambda: not leftovers(server.home, "own_deleted"), "the deleted step's work folder is removed")


# ----- the memory limit ------------------------------------------------------------------------------


def test_memory_limit_counts_the_steps_own_memory(server: ServerHandle, http: httpx.Client) -> None:
    limits = {"memoryMb": 50}
    # A code step (a fork of a worker that preloaded pandas, pyarrow and scikit-learn) and an ordinary step
    # (run in the warm worker itself), each far below 50 MB of its own.
    post(http, "/function/python", {"name": "own_small_code", "code": "response = [1, 2, 3]", "limits": limits})
    model = {"modulePath": "sklearn.linear_model", "class": "LogisticRegression"}
    post(http, "/model/scikitlearn", {"name": "own_small_model", **model, "limits": limits})
    for name in ("own_small_code", "own_small_model"):
        document = server.wait(name, timeout=DEADLINE_S)
        assert document["status"] == "finished", document
        record = http.get(f"/steps/{name}/runs").json()["result"][-1]
        assert record["peakMemoryMb"] < 50, record

    hog = "import time\nblock = b'x' * (200 * 2**20)\ntime.sleep(60)"
    post(http, "/function/python", {"name": "own_hog", "code": hog, "limits": limits})
    document = server.wait("own_hog", timeout=DEADLINE_S)
    reason = document["error"]["reason"]
    assert document["status"] == "failed" and reason.startswith("memory limit exceeded"), document
    assert "its limit is 50 MB" in reason
    baseline = int(reason.split("above the worker's ")[1].split(" MB")[0])
    assert baseline > 50  # the worker alone holds more than the limit: counted from it, it would always fail
    record = http.get("/steps/own_hog/runs").json()["result"][-1]
    assert 50 < record["peakMemoryMb"] < 250, record


# ----- a restart -------------------------------------------------------------------------------------


def test_a_restart_fails_running_steps_at_once_and_publishes_their_logs(tmp_path: Path) -> None:
    handle = launch(tmp_path / "restarted")
    pids_file = tmp_path / "pids.json"
    try:
        with handle.client() as http:
            code = "print('said before the crash', flush=True)\nopen('engine.log', 'w').write('engine notes')\n"
            post(http, "/function/python", {"name": "own_victim", "code": code + "import time\ntime.sleep(300)"})
            spawn = SPAWN.format(pids=str(pids_file)) + "time.sleep(300)"
            post(http, "/function/python", {"name": "own_escapes", "code": spawn})
            poll(lambda: _said(handle.home, "own_victim", "said before the crash"), "the step printed")
            poll(pids_file.exists, "the step wrote the PIDs of its processes")
        handle.restart(kill=True)
        with handle.client() as http:
            # no waiting: the new server reconciled before it answered its first request
            statuses = {step["name"]: step["status"] for step in http.get("/steps").json()["result"]}
            assert statuses == {"own_victim": "failed", "own_escapes": "failed"}, statuses
            victim = http.get("/steps/own_victim").json()["result"]
            assert "server stopped while the step was running" in victim["error"]["reason"]
            logs = http.get("/steps/own_victim/logs").json()["result"]
            assert "said before the crash" in logs["stdout"], logs
        engine_logs = list((handle.home / "artifacts").rglob("own_victim/runs/*-logs/cwd/engine.log"))
        assert [path.read_text() for path in engine_logs] == ["engine notes"]
        assert not leftovers(handle.home, "own_*")
        pids = json.loads(pids_file.read_text())
        poll(lambda: not any(alive(pid) for pid in pids), f"processes of the dead server's steps ended: {pids}")
    finally:
        handle.stop(kill=True)


def _said(home: Path, name: str, text: str) -> bool:
    return any(text in path.read_text() for path in (home / "work" / name).glob("*/stdout.log"))


# ----- which instances are dead (the rule itself, on a real database and real processes) ---------------


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    settings = Settings(home=tmp_path / "home", heartbeat_s=1.0, workers=1)
    database = db.open_database(settings.resolved_database_url)
    db.upgrade(database)
    sessions = db.session_factory(database)
    store = ArtifactStore(settings.resolved_artifact_url)
    executor = LocalExecutor(1, settings.environment_pythons, store, settings.home / "logs", warm_workers=0)
    yield Scheduler(settings, sessions, store, executor, on_change=lambda _name: None)
    executor.shutdown()
    database.dispose()


def test_an_instance_on_this_machine_is_dead_once_its_process_is_gone(scheduler: Scheduler, tmp_path: Path) -> None:
    me = psutil.Process()
    started = process_start(me.pid)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    here, namespace, fresh, stale = socket.gethostname(), pid_namespace(), utcnow(), utcnow() - timedelta(hours=1)
    instances = {
        # this machine: the process decides, whatever the heartbeat says
        "gone": Instance(host=here, pid=ended.pid, process_started=0.0, heartbeat_at=fresh),
        "reused": Instance(host=here, pid=me.pid, process_started=started - 100, heartbeat_at=fresh),
        "busy": Instance(host=here, pid=me.pid, process_started=started, heartbeat_at=stale),
        # another machine, another PID namespace, or a row from before PIDs were recorded: the heartbeat
        "far_fresh": Instance(host="elsewhere", pid=ended.pid, process_started=0.0, heartbeat_at=fresh),
        "far_stale": Instance(host="elsewhere", pid=me.pid, process_started=started, heartbeat_at=stale),
        "container": Instance(host=here, pid=ended.pid, process_started=0.0, heartbeat_at=fresh),
        "old_row": Instance(host=here, heartbeat_at=fresh),
    }
    service = StepService(scheduler.sessions, scheduler.store)
    with scheduler.sessions() as session:
        for instance_id, instance in instances.items():
            instance.id = instance_id
            instance.pid_namespace = "another/pid:[1]" if instance_id == "container" else namespace
            session.add(instance)
        session.commit()
    for instance_id in instances:
        service.create(NewStep("function", "python", f"on_{instance_id}", {"code": "response = 1"}))
        _mark_running(scheduler, f"on_{instance_id}", instance_id)
    gone_run = _run_of(scheduler, "on_gone")
    work_dir = scheduler.settings.work_root / "on_gone" / gone_run.id
    (work_dir / "cwd").mkdir(parents=True)
    (work_dir / "stdout.log").write_text("last words\n")
    (work_dir / "cwd" / "flaml.log").write_text("search notes\n")
    escaped = [
        _escaped({RUN_MARK: gone_run.id}),
        _escaped({WORKER_MARK: supervisor_prefix(ended.pid, 0.0) + "cafe"}),  # a worker of the dead server
    ]
    bystander = _escaped({RUN_MARK: "another-run"})
    try:
        scheduler.reconcile(at_start=False)
        statuses = {instance_id: _step_status(scheduler, f"on_{instance_id}") for instance_id in instances}
        assert statuses == {
            "gone": "failed",
            "reused": "failed",
            "busy": "running",
            "far_fresh": "running",
            "far_stale": "failed",
            "container": "running",
            "old_row": "running",
        }
        prefix = run_prefix("on_gone", gone_run.number, gone_run.id) + "-logs"
        assert scheduler.store.open(f"{prefix}/stdout.log").read() == b"last words\n"
        assert scheduler.store.open(f"{prefix}/cwd/flaml.log").read() == b"search notes\n"
        assert not (scheduler.settings.work_root / "on_gone").exists()
        poll(lambda: not any(alive(process.pid) for process in escaped), "escaped processes of the dead run ended")
        assert alive(bystander.pid)
        with scheduler.sessions() as session:  # the rows of dead processes go; the others stay
            assert {row.id for row in session.query(Instance)} == set(instances) - {"gone", "reused"}
    finally:
        for process in [*escaped, bystander]:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()


def _escaped(marks: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], env={**os.environ, **marks}, start_new_session=True)


def _mark_running(scheduler: Scheduler, name: str, instance_id: str) -> None:
    with scheduler.sessions() as session:
        session.execute(
            update(Run)
            .where(Run.step_name == name)
            .values(status="running", instance_id=instance_id, started_at=utcnow())
        )
        session.execute(update(Step).where(Step.name == name).values(status="running"))
        session.commit()


def _run_of(scheduler: Scheduler, name: str) -> Run:
    with scheduler.sessions() as session:
        run = session.query(Run).filter(Run.step_name == name).one()
        session.expunge(run)
        return run


def _step_status(scheduler: Scheduler, name: str) -> str:
    with scheduler.sessions() as session:
        step = session.get(Step, name)
        assert step is not None
        return step.status
