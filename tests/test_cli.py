"""The ``orchestra`` command through ``main([...])``: serve's flags, and ls / show / wait / logs / rerun / rm /
cancel against a real server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from automl_orchestra.cli import build_parser, main, parse_assignments, parse_value, settings_from_args
from automl_orchestra.client import Client, NotFoundError

SLEEPER = "import time\ntime.sleep(30)\nresponse = None\n"


@pytest.fixture
def uid() -> str:
    return "cli" + uuid.uuid4().hex[:10]


def _model(client: Client, name: str) -> str:
    client.create(
        "model",
        "scikitlearn",
        name=name,
        modulePath="sklearn.linear_model",
        classParameters={"max_iter": 50},
        **{"class": "LogisticRegression"},
    )
    client.wait(name, timeout=120)
    return name


# ----- no server needed ------------------------------------------------------------------------------


def test_serve_has_a_flag_per_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from automl_orchestra.config import Settings

    for variable in ("ORCHESTRA_TOKENS", "ORCHESTRA_HOST", "ORCHESTRA_PORT", "ORCHESTRA_ALLOW_CODE"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["serve", "--help"]) == 0
    serve_help = capsys.readouterr().out
    for field in Settings.model_fields:
        assert "--" + field.replace("_", "-") in serve_help
    assert "--no-allow-code" in serve_help

    parser = build_parser()
    args = parser.parse_args(
        ["serve", "--port", "9123", "--no-allow-code", "--executor", "local", "--home", str(tmp_path), "--workers", "3"]
    )
    settings = settings_from_args(args)
    assert (settings.port, settings.allow_code, settings.workers, settings.home) == (9123, False, 3, tmp_path.resolve())
    assert settings.host == Settings.model_fields["host"].default  # not given: the default (or environment)
    assert settings_from_args(parser.parse_args(["serve", "--allow-code"])).allow_code is True


def test_serve_refuses_unsafe_settings(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRA_TOKENS", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "ORCHESTRA_TOKENS" in capsys.readouterr().err
    assert main(["serve", "--port", "not-a-number"]) == 2  # argparse's own usage error
    assert main(["serve", "--executor", "nope"]) == 2


def test_set_values() -> None:
    assert parse_value("5") == 5 and parse_value("true") is True and parse_value("abc") == "abc"
    assert parse_value('{"a": [1, 2]}') == {"a": [1, 2]}
    current = {"classParameters": {"max_iter": 50, "C": 1.0}, "modulePath": "sklearn.linear_model"}
    changes = parse_assignments(["classParameters.C=0.5", "description=new text", "a.b.c=1"], lambda: current)
    assert changes == {"classParameters": {"max_iter": 50, "C": 0.5}, "description": "new text", "a": {"b": {"c": 1}}}
    assert current["classParameters"]["C"] == 1.0  # not mutated
    with pytest.raises(ValueError):
        parse_assignments(["novalue"], lambda: {})


def test_unreachable_server_is_an_error_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:9", "ls"]) == 1
    err = capsys.readouterr().err
    assert "127.0.0.1:9" in err and "Traceback" not in err


# ----- against the real server ------------------------------------------------------------------------


def test_ls_and_show(run: Any, client: Client, uid: str) -> None:
    name = _model(client, f"{uid}_model")
    code, out, _ = run("ls", "--service", "model")
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "SERVICE/TOOL", "STATUS", "RUNS", "UPDATED"]
    line = next(line for line in out.splitlines() if line.startswith(name + " "))
    assert line.split()[1:4] == ["model/scikitlearn", "finished", "1"]

    code, out, _ = run("ls", "--status", "finished", "--json")
    assert code == 0 and all(step["status"] == "finished" for step in json.loads(out))

    code, out, _ = run("show", name, "--json")
    assert code == 0 and json.loads(out)["name"] == name

    code, out, _ = run("show", name)
    assert code == 0 and "model/scikitlearn" in out and "finished" in out and "LogisticRegression" in out

    code, out, err = run("show", f"{uid}_missing")
    assert code == 1 and out == "" and f"{uid}_missing" in err and "Traceback" not in err


def test_options_after_the_command(server: Any, client: Client, uid: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = _model(client, f"{uid}_model")
    assert main(["show", name, "--json", "--url", server.url]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == name


def test_wait_exit_statuses(run: Any, client: Client, uid: str) -> None:
    name = client.create("function", "python", name=f"{uid}_quick", code="import time\ntime.sleep(1)\nresponse = 1\n")
    code, out, err = run("wait", name, "--timeout", "120")
    assert code == 0 and f"{name}: finished" in out
    assert f"{name}: finished" in err  # the progress display

    failing = client.create("function", "python", name=f"{uid}_fails", code="raise ValueError('cli-boom-77')\n")
    code, _, err = run("wait", failing, "--timeout", "120")
    assert code == 1 and "cli-boom-77" in err

    sleeper = client.create("function", "python", name=f"{uid}_sleeps", code=SLEEPER)
    code, _, err = run("wait", sleeper, "--timeout", "1")
    assert code == 2 and "timed out" in err
    code, _, _ = run("cancel", sleeper)
    assert code == 0
    code, _, err = run("wait", sleeper)
    assert code == 1 and "cancelled" in err


def test_logs(run: Any, client: Client, uid: str) -> None:
    name = client.create(
        "function",
        "python",
        name=f"{uid}_talks",
        code="import sys\nprint('cli-out-1')\nprint('cli-err-2', file=sys.stderr)\nresponse = None\n",
    )
    client.wait(name, timeout=120)
    code, out, err = run("logs", name)
    assert code == 0 and "cli-out-1" in out and "cli-err-2" in err and "cli-err-2" not in out
    code, out, _ = run("logs", name, "--run", "1")
    assert code == 0 and "cli-out-1" in out
    code, _, err = run("logs", name, "--run", "9")
    assert code == 1 and err


def test_rerun_with_changes(run: Any, client: Client, uid: str) -> None:
    name = _model(client, f"{uid}_model")
    code, out, _ = run("rerun", name, "--set", "classParameters.C=0.5", "--wait", "--timeout", "120")
    assert code == 0 and out.splitlines()[0].endswith(f"/model/scikitlearn/{name}")
    metadata = client.get(name)
    assert metadata["runs"] == 2 and metadata["status"] == "finished"
    assert metadata["parameters"]["classParameters"] == {"max_iter": 50, "C": 0.5}

    code, _, _ = run("rerun", name, "--set", 'classParameters={"max_iter": 60}')
    assert code == 0
    assert client.wait(name, timeout=120)["parameters"]["classParameters"] == {"max_iter": 60}

    code, _, err = run("rerun", name, "--set", "modulePath=os")
    assert code == 1 and "os" in err

    code, _, err = run("rerun", name, "--set", "broken")
    assert code == 2 and "KEY=VALUE" in err


def test_rm(run: Any, client: Client, uid: str) -> None:
    parent = client.create("function", "python", name=f"{uid}_parent", code="response = {'a': 1}\n")
    child = client.create(
        "function", "python", name=f"{uid}_child", code="response = x", parameters={"x": f"${parent}"}
    )
    client.wait(child, timeout=120)

    code, _, err = run("rm", parent)
    assert code == 1 and child in err
    code, out, _ = run("rm", parent, "--cascade")
    assert code == 0 and parent in out
    for name in (parent, child):
        with pytest.raises(NotFoundError):
            client.get(name)
    code, _, err = run("rm", parent)
    assert code == 1 and parent in err
