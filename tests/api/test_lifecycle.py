"""Step lifecycle guarantees: every ending is recorded with its reason, nothing stays running, nothing
half-written is left behind, and re-execution / deletion respect lineage."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil

from tests.api.helpers import content, post, run, upload
from tests.conftest import ServerHandle
from tests.data import titanic_like


def code_step(name: str, code: str, **extra: object) -> dict:
    return {"name": name, "code": code, **extra}


def test_function_that_raises_records_exception_and_traceback(server: ServerHandle, http: httpx.Client) -> None:
    document = run(
        server,
        http,
        "/function/python",
        code_step("lc_raise", "def f():\n    raise ValueError('boom')\nf()"),
        status="failed",
    )
    assert "ValueError: boom" in document["error"]["reason"]
    record = http.get("/steps/lc_raise/runs").json()["result"][-1]
    assert record["status"] == "failed" and "raise ValueError" in record["traceback"]


def test_worker_that_dies_fails_the_step_and_the_next_step_still_runs(server: ServerHandle, http: httpx.Client) -> None:
    document = run(server, http, "/function/python", code_step("lc_exit", "import os\nos._exit(3)"), status="failed")
    assert "worker process died (exit code 3)" in document["error"]["reason"]
    run(server, http, "/function/python", code_step("lc_after_exit", "response = 42"))
    assert content(http, "/function/python/lc_after_exit")[1] == 42


def test_timeout_stops_the_worker(server: ServerHandle, http: httpx.Client) -> None:
    started = time.monotonic()
    document = run(
        server,
        http,
        "/function/python",
        code_step("lc_slow", "import time\ntime.sleep(60)", limits={"timeoutS": 1.5}),
        status="failed",
    )
    assert time.monotonic() - started < 20
    assert document["error"]["reason"].startswith("timeout")


def test_memory_limit_stops_the_worker(server: ServerHandle, http: httpx.Client) -> None:
    code = "blocks = []\nfor _ in range(200):\n    blocks.append(bytearray(20 * 2**20))\nimport time\ntime.sleep(30)"
    document = run(
        server, http, "/function/python", code_step("lc_hog", code, limits={"memoryMb": 300}), status="failed"
    )
    assert document["error"]["reason"].startswith("memory limit exceeded")
    record = http.get("/steps/lc_hog/runs").json()["result"][-1]
    assert record["peakMemoryMb"] > 250


def test_cancel_running_step(server: ServerHandle, http: httpx.Client) -> None:
    post(http, "/function/python", code_step("lc_cancel", "import time\ntime.sleep(60)"))
    deadline = time.monotonic() + 30
    while http.get("/steps/lc_cancel").json()["result"]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    response = http.post("/function/python/lc_cancel/cancel")
    assert response.status_code == 200
    document = server.wait("lc_cancel", timeout=30)
    assert document["status"] == "cancelled"
    assert document["error"]["reason"] == "cancelled by request"
    assert http.post("/function/python/lc_cancel/cancel").status_code == 409


def test_step_waits_for_its_input_and_fails_when_the_input_fails(server: ServerHandle, http: httpx.Client) -> None:
    post(http, "/function/python", code_step("lc_slow_parent", "import time\ntime.sleep(1)\nresponse = [1, 2, 3]"))
    post(http, "/function/python", code_step("lc_child", "response = sum(xs)", parameters={"xs": "$lc_slow_parent"}))
    assert server.wait("lc_child")["status"] == "finished"
    assert content(http, "/function/python/lc_child")[1] == 6
    post(http, "/function/python", code_step("lc_bad_parent", "import time\ntime.sleep(0.5)\nraise RuntimeError('x')"))
    post(http, "/function/python", code_step("lc_orphan", "response = v", parameters={"v": "$lc_bad_parent"}))
    orphan = server.wait("lc_orphan")
    assert orphan["status"] == "failed"
    assert orphan["error"]["reason"] == "input step 'lc_bad_parent' ended failed"


def test_patch_makes_dependents_stale_and_cascade_reruns_them(server: ServerHandle, http: httpx.Client) -> None:
    run(server, http, "/function/python", code_step("lc_base", "response = {'n': n}", parameters={"n": 1}))
    run(
        server,
        http,
        "/function/python",
        code_step("lc_double", "response = base['n'] * 2", parameters={"base": "$lc_base"}),
    )
    run(server, http, "/function/python", code_step("lc_quad", "response = d * 2", parameters={"d": "$lc_double"}))

    response = http.patch("/function/python/lc_base", json={"parameters": {"n": 5}})
    assert response.status_code == 200, response.text
    assert server.wait("lc_base")["run"] == 2
    assert http.get("/steps/lc_double").json()["result"]["status"] == "stale"
    assert http.get("/steps/lc_quad").json()["result"]["status"] == "stale"
    assert content(http, "/function/python/lc_double")[1] == 2  # the old output stays readable

    response = http.patch("/function/python/lc_base", params={"cascade": "true"}, json={"parameters": {"n": 7}})
    assert response.status_code == 200
    assert server.wait("lc_quad")["status"] == "finished"
    assert content(http, "/function/python/lc_double")[1] == 14
    assert content(http, "/function/python/lc_quad")[1] == 28
    runs = http.get("/function/python/lc_base/runs").json()["result"]
    assert [r["parameters"]["parameters"]["n"] for r in runs] == [1, 5, 7]


def test_delete_refuses_with_dependents_unless_cascaded(server: ServerHandle, http: httpx.Client) -> None:
    run(server, http, "/function/python", code_step("lc_root", "response = 1"))
    run(server, http, "/function/python", code_step("lc_leaf", "response = r + 1", parameters={"r": "$lc_root"}))
    refused = http.delete("/function/python/lc_root")
    assert refused.status_code == 409 and "lc_leaf" in refused.json()["result"]
    assert http.delete("/function/python/lc_root", params={"cascade": "true"}).status_code == 200
    assert http.get("/steps/lc_root").status_code == 404
    assert http.get("/steps/lc_leaf").status_code == 404


def test_cache_reuses_a_finished_run(server: ServerHandle, http: httpx.Client) -> None:
    code = "import time\ntime.sleep(1)\nresponse = 'computed'"
    run(server, http, "/function/python", code_step("lc_cache_a", code, cache=True))
    started = time.monotonic()
    run(server, http, "/function/python", code_step("lc_cache_b", code, cache=True))
    assert time.monotonic() - started < 1.0
    record = http.get("/steps/lc_cache_b/runs").json()["result"][0]
    first = http.get("/steps/lc_cache_a/runs").json()["result"][0]
    assert record["cachedFrom"] == first["id"]
    assert content(http, "/function/python/lc_cache_b")[1] == "computed"


def test_a_cached_step_does_not_inherit_the_code_right(auth_server: ServerHandle) -> None:
    """The code right (``allowCode``) belongs to the creator of each step: an editor's step that reuses an
    admin's identical one from the cache does not get it."""
    body = {"modulePath": "sklearn.linear_model", "class": "LogisticRegression", "cache": True}
    with auth_server.client("admin-token") as admin, auth_server.client("editor-token") as editor:
        admins = run(auth_server, admin, "/model/scikitlearn", {"name": "lc_code_right_a", **body})
        assert admins["allowCode"] is True
        editors = run(auth_server, editor, "/model/scikitlearn", {"name": "lc_code_right_b", **body})
        record = editor.get("/steps/lc_code_right_b/runs").json()["result"][0]
        first = editor.get("/steps/lc_code_right_a/runs").json()["result"][0]
        assert record["cachedFrom"] == first["id"]  # reused, not run again
        assert "allowCode" not in editors, editors
        assert editor.get("/steps/lc_code_right_a").json()["result"]["allowCode"] is True


def test_malformed_csv_fails_with_a_clear_reason(server: ServerHandle, http: httpx.Client, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n")
    upload(http, "lc_bad_csv", bad)
    document = server.wait("lc_bad_csv")
    assert document["status"] == "failed"
    assert "column" in document["error"]["reason"].lower()
    assert document["output"] is None


def test_datatype_cast_failure_names_column_and_row(server: ServerHandle, http: httpx.Client, tmp_path: Path) -> None:
    source = tmp_path / "ages.csv"
    source.write_text("name,age\nann,31\nbob,unknown\n")
    upload(http, "lc_ages", source)
    assert server.wait("lc_ages")["status"] == "finished"
    document = run(
        server,
        http,
        "/transform/dataType",
        {"name": "lc_ages_num", "parentName": "lc_ages", "types": {"age": "number"}},
        status="failed",
    )
    reason = document["error"]["reason"]
    assert "age" in reason and "unknown" in reason and "1" in reason


def test_in_place_datatype_reexecutes_the_dataset(server: ServerHandle, http: httpx.Client, tmp_path: Path) -> None:
    upload(http, "lc_inplace", titanic_like(tmp_path / "t.csv", rows=30))
    assert server.wait("lc_inplace")["types"]["Pclass"] == "integer"
    assert http.patch("/dataset/csv/lc_inplace", json={"types": {"Pclass": "number"}}).status_code == 200
    document = server.wait("lc_inplace")
    assert document["run"] == 2 and document["types"]["Pclass"] == "number"


def test_restart_mid_step_fails_it_with_reason_and_requeues_retryable(fresh_server: ServerHandle) -> None:
    with fresh_server.client() as http:
        victim = "print('victim was here', flush=True)\nimport time\ntime.sleep(120)"
        post(http, "/function/python", code_step("lc_victim", victim))
        post(http, "/function/python", code_step("lc_retry", "import time\ntime.sleep(120)", retryable=True))
        post(
            http,
            "/function/python",
            code_step("lc_queued", "response = 'ran after restart'", parameters={"v": "$lc_victim"}),
        )
        deadline = time.monotonic() + 30
        while {http.get(f"/steps/{n}").json()["result"]["status"] for n in ("lc_victim", "lc_retry")} != {"running"}:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        while not any(
            "victim was here" in p.read_text() for p in fresh_server.home.glob("work/lc_victim/*/stdout.log")
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        workers = [p for p in psutil.Process(fresh_server.process.pid).children(recursive=True)]  # type: ignore[union-attr]
    fresh_server.restart(kill=True)
    with fresh_server.client() as http:
        # at once: the new server ended them before it answered its first request
        victim = http.get("/steps/lc_victim").json()["result"]
        assert victim["status"] == "failed"
        assert "server stopped while the step was running" in victim["error"]["reason"]
        assert "victim was here" in http.get("/steps/lc_victim/logs").json()["result"]["stdout"]
        assert http.get("/steps/lc_retry").json()["result"]["status"] in {"pending", "running"}
        assert fresh_server.wait("lc_queued")["status"] == "failed"  # its input failed
        http.post("/steps/lc_retry/cancel")
    assert not list(fresh_server.home.glob("work/lc_victim"))
    deadline = time.monotonic() + 30
    while [p for p in workers if _running(p)]:
        assert time.monotonic() < deadline, "processes of the killed server's workers outlived it"
        time.sleep(0.2)


def test_observe_times_out_and_returns_at_once_when_settled(server: ServerHandle, http: httpx.Client) -> None:
    post(http, "/function/python", code_step("lc_observe", "import time\ntime.sleep(3)"))
    started = time.monotonic()
    body = http.get("/observe/lc_observe", params={"timeout": 0.5}).json()
    assert body["timedOut"] is True and body["result"]["status"] in {"pending", "running"}
    assert 0.4 < time.monotonic() - started < 2.5
    assert server.wait("lc_observe")["status"] == "finished"
    started = time.monotonic()
    body = http.get("/observe/lc_observe", params={"timeout": 30}).json()
    assert body["timedOut"] is False and time.monotonic() - started < 0.5


def test_sse_stream_reports_status_changes(server: ServerHandle, http: httpx.Client) -> None:
    post(http, "/function/python", code_step("lc_sse", "import time\ntime.sleep(1)\nresponse = 1"))
    statuses = []
    with http.stream("GET", "/observe/lc_sse/events", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                import json

                statuses.append(json.loads(line[6:])["status"])
    assert statuses[-1] == "finished"
    assert "running" in statuses or "pending" in statuses


def test_a_finished_step_leaves_no_process_running(fresh_server: ServerHandle) -> None:
    """A step that leaves a helper process running (a joblib/loky pool, a stray subprocess) does not leave
    it to outlive the step (tests/runtime/test_ownership.py covers processes that leave the group)."""
    with fresh_server.client() as http:
        code = "import subprocess\nresponse = subprocess.Popen(['sleep', '300']).pid"
        run(fresh_server, http, "/function/python", {"name": "lc_leaves_child", "code": code})
        pid = content(http, "/function/python/lc_leaves_child")[1]
    _poll_gone(pid)


def test_server_stop_ends_the_processes_of_a_running_step(fresh_server: ServerHandle, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = (
        "import subprocess, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(subprocess.Popen(['sleep', '300']).pid))\n"
        "time.sleep(300)"
    )
    with fresh_server.client() as http:
        post(http, "/function/python", {"name": "lc_running_child", "code": code})
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pid = int(pid_file.read_text())
    assert _alive(pid)
    fresh_server.stop()
    _poll_gone(pid)


def _poll_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} outlived its step"
        time.sleep(0.2)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
