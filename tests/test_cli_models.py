"""``orchestra models …`` through ``main([...])`` against a real server: register, list, show, versions, alias
moves and their history, archive, delete; and the Python client class the commands use."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from automl_orchestra.client import Client, ConflictError, ModelRegistry, NotFoundError, ValidationError


@pytest.fixture
def uid() -> str:
    return "clim" + uuid.uuid4().hex[:10]


def _trained(client: Client, name: str) -> str:
    """A linear regression fitted on a three-row JSON step (no dataset needed)."""
    client.create(
        "function", "python", name=f"{name}_data", code="response = {'x': [[0.0], [1.0], [2.0]], 'y': [1.0, 3.0, 5.0]}"
    )
    client.create("model", "scikitlearn", name=f"{name}_model", modulePath="sklearn.linear_model",
                  **{"class": "LinearRegression"})  # fmt: skip
    client.create("train", "scikitlearn", name=name, parentName=f"{name}_model", method="fit",
                  methodParameters={"X": f"${name}_data.x", "y": f"${name}_data.y"})  # fmt: skip
    client.wait(name, timeout=120)
    return name


def test_models_commands(run: Any, client: Client, uid: str) -> None:
    step = _trained(client, f"{uid}_fit")
    model = f"{uid}_model"

    code, out, _ = run("models", "register", model, step, "--tag", "team=cli", "--description", "a line")
    assert code == 0 and f"registered {model} version 1 from {step}" in out
    code, out, _ = run("models", "register", model, step, "--json")
    assert code == 0 and json.loads(out)["version"] == 2
    code, _, err = run("models", "register", model, step, "--tag", "novalue")
    assert code == 2 and "KEY=VALUE" in err

    code, out, _ = run("models", "list")
    assert code == 0 and out.splitlines()[0].split() == ["MODEL", "VERSIONS", "LATEST", "ALIASES", "UPDATED"]
    line = next(line for line in out.splitlines() if line.startswith(model + " "))
    assert line.split()[1:4] == ["2", "2", "-"]

    code, out, _ = run("models", "alias", model, "champion", "1")
    assert code == 0 and f"{model}@champion -> version 1 (set)" in out
    code, out, _ = run("models", "alias", model, "champion", "2")
    assert code == 0 and "moved from version 1" in out
    code, out, _ = run("models", "alias", model, "champion", "1")
    assert code == 0 and "moved from version 2" in out  # roll back
    code, _, err = run("models", "alias", model, "champion")
    assert code == 2 and "--delete" in err

    code, out, _ = run("models", "show", f"{model}@champion")
    assert code == 0 and f"{model} version 1 (ready)" in out and "aliases:     champion" in out
    assert f"train/scikitlearn {step} run 1" in out and "regression" in out
    code, out, _ = run("models", "show", model)
    assert code == 0 and "champion -> 1" in out and "versions:    2 (latest 2)" in out
    code, out, _ = run("models", "show", model, "--version", "2", "--json")
    assert code == 0 and json.loads(out)["version"] == 2

    code, out, _ = run("models", "history", model, "champion")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[2:] for row in rows] == [["set", "-", "1", "admin"], ["moved", "1", "2", "admin"],
                                         ["moved", "2", "1", "admin"]]  # fmt: skip

    code, _, err = run("models", "delete", model, "1")
    assert code == 1 and "'champion'" in err  # an aliased version is kept
    code, out, _ = run("models", "archive", model, "2")
    assert code == 0 and "is archived" in out
    code, out, _ = run("models", "versions", model)
    assert code == 0
    table = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert table["1"][1:3] == ["ready", "champion"] and table["2"][1:3] == ["archived", "-"]
    code, out, _ = run("models", "versions", model, "--status", "archived", "--json")
    assert [v["version"] for v in json.loads(out)] == [2]
    code, out, _ = run("models", "archive", model, "2", "--restore")
    assert code == 0 and "is ready" in out

    code, out, _ = run("models", "alias", model, "champion", "--delete")
    assert code == 0 and "removed alias 'champion'" in out
    code, out, _ = run("models", "delete", model, "1")
    assert code == 0 and "deleted version 1" in out
    code, _, err = run("models", "show", model, "--version", "1")
    assert code == 1 and "has no version 1" in err


def test_model_registry_client(client: Client, uid: str, tmp_path: Any) -> None:
    step = _trained(client, f"{uid}_fit")
    with ModelRegistry(client=client) as registry:
        version = registry.register(f"{uid}_m", step, tags={"a": "1"})
        assert version["version"] == 1 and version["tags"] == {"a": "1"}
        assert version["signature"]["output"]["task"] == "regression"
        assert registry.set_alias(f"{uid}_m", "staging", 1)["previous"] is None
        assert registry.resolve(f"{uid}_m", "staging")["version"] == 1
        assert registry.get(f"{uid}_m@latest")["version"] == 1
        assert [a["alias"] for a in registry.aliases(f"{uid}_m")] == ["staging"]
        assert registry.update(f"{uid}_m", description="d")["description"] == "d"
        assert registry.update_version(f"{uid}_m", 1, tags={"a": None, "b": "2"})["tags"] == {"b": "2"}
        folder = registry.download(f"{uid}_m", 1, tmp_path / "v1")
        assert sorted(p.name for p in folder.iterdir()) == sorted(version["files"])
        with pytest.raises(ConflictError, match="'staging'"):
            registry.delete_version(f"{uid}_m", 1)
        with pytest.raises(NotFoundError):
            registry.version(f"{uid}_m", 9)
        with pytest.raises(ValidationError, match="not a model"):
            registry.register(f"{uid}_m", f"{step}_data")
        assert registry.history(f"{uid}_m", "staging")[0]["action"] == "set"
        assert f"{uid}_m" in {m["name"] for m in registry.iter_models(page_size=1)}
    assert client.health()["status"] == "ok"  # a given client stays open


def test_predict_from_the_command_line_and_the_client(run: Any, client: Client, uid: str, tmp_path: Any) -> None:
    """y = 2x + 1, served: records from a CSV file and a JSON file, the client with one row or a list."""
    step = _trained(client, f"{uid}_line")
    model = f"{uid}_served"
    assert run("models", "register", model, step)[0] == 0
    rows = tmp_path / "rows.csv"
    rows.write_text("x\n0\n2.5\n")
    code, out, err = run("models", "predict", model, str(rows))
    assert code == 0, err
    assert f"model {model} version 1 (regression, 2 rows)" in err
    lines = out.splitlines()
    assert lines[0].split() == ["ROW", "PREDICTION", "PROBABILITY"]
    assert [float(line.split()[1]) for line in lines[1:]] == pytest.approx([1.0, 6.0])
    records = tmp_path / "rows.json"
    records.write_text(json.dumps([{"x": 10}]))
    code, out, _ = run("models", "predict", f"{model}@latest", str(records), "--json")
    assert code == 0 and json.loads(out)["predictions"] == pytest.approx([21.0])
    code, _, err = run("models", "predict", model, str(records), "--version", "7")
    assert code != 0 and "no version 7" in err

    with ModelRegistry(client=client) as registry:
        one = registry.predict(model, {"x": 1.0})
        assert one["predictions"] == pytest.approx([3.0]) and one["probabilities"] is None
        many = registry.predict(model, [{"x": 0.0}, {"x": 4}], version=1)
        assert many["rows"] == 2 and many["predictions"] == pytest.approx([1.0, 9.0])
        with pytest.raises(ValidationError, match="NaN"):  # a missing value goes as null: this model refuses it
            registry.predict(model, [{"x": 0.0}, {"x": float("nan")}])
        with pytest.raises(ValidationError, match="probabilities"):
            registry.predict(model, {"x": 1.0}, probabilities=True)
