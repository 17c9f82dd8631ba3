"""automl/compare through a real server: the expansion into ordinary steps, engines in parallel, a failing
engine recorded (not fatal), one leaderboard, the best model usable by predict; and the request checks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from automl_orchestra.api.routes_compare import DEFAULT_ENGINES, chosen_engines
from automl_orchestra.config import Settings
from automl_orchestra.steps.errors import Conflict
from automl_orchestra.steps.service import NewStep, StepService
from automl_orchestra.store import db
from automl_orchestra.store.artifacts import ArtifactStore
from tests.api.helpers import content, post, upload, wait_for_status
from tests.conftest import ServerHandle
from tests.data import titanic_like


def test_compare_flaml_autogluon_and_a_failing_tpot(fresh_server: ServerHandle, tmp_path: Path) -> None:
    server = fresh_server
    with server.client() as http:
        upload(http, "cmp_data", titanic_like(tmp_path / "train.csv", rows=400, seed=0))
        upload(http, "cmp_test", titanic_like(tmp_path / "test.csv", rows=60, seed=1, first_id=1000))
        body = {
            "name": "cmp",
            "parentName": "cmp_data",
            "target": "Survived",
            "timeBudget": 10,
            "metric": "roc_auc",
            "seed": 3,
            # TPOT is given a baseline it does not have: a real engine failure inside the comparison.
            "engines": ["flaml", "autogluon", "tpot"],
            "options": {"flaml": {"estimator_list": ["lgbm", "rf"]}, "tpot": {"baselines": ["no_such_model"]}},
            "limits": {"cpus": 1},
        }
        post(http, "/automl/compare", body)
        document = server.wait("cmp", timeout=240)
        assert document["status"] == "finished", document

        steps = {s["name"]: s for s in http.get("/steps").json()["result"]}
        assert {"cmp_split", "cmp_split_holdout", "cmp_flaml", "cmp_autogluon", "cmp_tpot"} <= set(steps)
        assert steps["cmp_flaml"]["status"] == "finished" and steps["cmp_autogluon"]["status"] == "finished"
        assert steps["cmp_tpot"]["status"] == "failed"
        assert steps["cmp_flaml"]["parameters"]["options"] == {"estimator_list": ["lgbm", "rf"]}
        assert steps["cmp_autogluon"]["parameters"]["options"] == {}
        split = steps["cmp_split"]
        assert split["holdoutRows"] == 80 and split["trainRows"] == 320

        board = content(http, "/dataset/leaderboard/cmp_leaderboard", limit=10)[1:]
        rows = {row["engine"]: row for row in board}
        assert set(rows) == {"flaml", "autogluon", "tpot"}
        assert board[-1]["engine"] == "tpot" and rows["tpot"]["status"] == "failed"
        assert "options.baselines must be a list of" in rows["tpot"]["reason"]
        for engine in ("flaml", "autogluon"):
            row = rows[engine]
            assert row["status"] == "finished" and row["holdoutMetric"] == "roc_auc"
            assert 0.6 < row["holdoutScore"] <= 1.0 and row["holdoutScore"] == row["holdoutAuc"]
            assert 0.0 < row["fitSeconds"] < 10 + 40 and row["predictSecondsPerRow"] > 0
            assert row["cvScore"] is not None and row["model"]
        best = board[0]
        assert best["holdoutScore"] == max(rows[e]["holdoutScore"] for e in ("flaml", "autogluon"))
        assert document["bestEngine"] == best["engine"] and document["bestStep"] == f"cmp_{best['engine']}"
        assert document["failedEngines"] == {"tpot": rows["tpot"]["reason"]}

        # The comparison's output is the winner's model: predict with it like with any automl step.
        post(
            http, "/predict/compare", {"name": "cmp_pred", "parentName": "cmp", "methodParameters": {"X": "$cmp_test"}}
        )
        assert server.wait("cmp_pred")["status"] == "finished"
        predicted = content(http, "/predict/compare/cmp_pred", limit=100)[1:]
        assert len(predicted) == 60 and {row["prediction"] for row in predicted} <= {0, 1}

        # Re-executing one engine step alone works like any step (it is an ordinary automl step).
        lineage = http.get("/lineage/cmp").json()["result"]
        parents = {e["parent"] for e in lineage["edges"] if e["child"] == "cmp"}
        assert {"cmp_flaml", "cmp_autogluon", "cmp_tpot", "cmp_split_holdout", "cmp_data"} <= parents


def start_comparison(http: httpx.Client, folder: Path, name: str, **body: object) -> None:
    """A comparison on a fresh Titanic-like table ``{name}_data``."""
    upload(http, f"{name}_data", titanic_like(folder / f"{name}.csv", rows=400, seed=0))
    post(http, "/automl/compare", {"name": name, "parentName": f"{name}_data", "target": "Survived", **body})


def test_cancelling_a_comparison_cancels_its_engine_runs(fresh_server: ServerHandle, tmp_path: Path) -> None:
    server = fresh_server
    with server.client() as http:
        start_comparison(http, tmp_path, "cc", timeBudget=300, engines=["flaml"])
        wait_for_status(http, "cc_flaml", "running")
        post(http, "/steps/cc/cancel", {}, expect=200)
        assert server.wait("cc")["status"] == "cancelled"
        engine = server.wait("cc_flaml", timeout=30)  # not left searching for 300 s
        assert engine["status"] == "cancelled" and engine["error"]["reason"] == "'cc', which it runs for, was cancelled"


def test_a_pycaret_model_is_scored_in_its_own_environment(fresh_server: ServerHandle, tmp_path: Path) -> None:
    server = fresh_server
    with server.client() as http:
        start_comparison(http, tmp_path, "pc", timeBudget=25, engines=["pycaret"])
        document = server.wait("pc", timeout=300)
        assert document["status"] == "finished", document
        (row,) = content(http, "/dataset/leaderboard/pc_leaderboard")[1:]
        # the PyCaret pipeline cannot be loaded in the comparison's environment: its own scored the rows
        assert row["status"] == "finished" and row["holdoutMetric"] == "roc_auc", row
        assert 0.6 < row["holdoutAuc"] <= 1.0 and 0.6 < row["holdoutAccuracy"] <= 1.0
        assert row["predictSecondsPerRow"] > 0 and row["model"]
        # the winner is a PyCaret model: predict/compare says where it can be used
        post(http, "/predict/compare", {"name": "pc_pred", "parentName": "pc", "methodParameters": {"X": "$pc_data"}})
        failed = server.wait("pc_pred")
        assert failed["status"] == "failed" and "use predict/pycaret on step 'pc_pycaret'" in failed["error"]["reason"]


def test_compare_request_checks(fresh_server: ServerHandle, tmp_path: Path) -> None:
    with fresh_server.client() as http:
        _check_requests(http, tmp_path)


def _check_requests(http: httpx.Client, tmp_path: Path) -> None:
    upload(http, "cmpchk_data", titanic_like(tmp_path / "t.csv", rows=50))
    base = {"name": "cmpchk", "parentName": "cmpchk_data", "target": "Survived", "timeBudget": 5}
    unknown = post(http, "/automl/compare", {**base, "engines": ["flaml", "nope"]}, expect=422).json()
    assert "'nope'" in str(unknown) and "tabular automl engine" in str(unknown)
    post(http, "/automl/compare", {**base, "engines": ["flaml", "flaml"]}, expect=422)
    keyed = post(http, "/automl/compare", {**base, "engines": ["flaml"], "options": {"time_budget": 3}}, expect=422)
    assert "keyed by engine" in keyed.text
    server_set = post(http, "/automl/compare", {**base, "engines": ["flaml"], "candidates": {"a": "$b"}}, expect=422)
    assert "set by the server" in server_set.text
    post(http, "/automl/compare", {**base, "name": "cmpchk_data", "engines": ["flaml"]}, expect=409)
    assert http.get("/steps/cmpchk_split").status_code == 404  # nothing half-made
    # A derived name taken by another step (here the second engine's): 409, and not one step more.
    post(http, "/function/python", {"name": "cmpchk_tpot", "code": "response = 1"})
    before = sorted(s["name"] for s in http.get("/steps").json()["result"])
    taken = post(http, "/automl/compare", {**base, "engines": ["flaml", "tpot"]}, expect=409)
    assert "'cmpchk_tpot' already exists" in taken.json()["result"]
    assert sorted(s["name"] for s in http.get("/steps").json()["result"]) == before


def test_create_many_creates_every_step_or_none(tmp_path: Path) -> None:
    """The expansion's steps go in one transaction: a collision on the 4th leaves no first three behind."""
    settings = Settings(home=tmp_path)
    database = db.open_database(settings.resolved_database_url)
    db.upgrade(database)
    service = StepService(db.session_factory(database), ArtifactStore(settings.resolved_artifact_url))
    service.create(NewStep("function", "python", "cm_taken", {"code": "response = 1"}))

    def code(name: str, parameters: dict[str, str] | None = None) -> NewStep:
        return NewStep("function", "python", name, {"code": "response = 1", "parameters": parameters or {}})

    # Later steps may reference earlier ones of the same batch.
    batch = [code("cm_a"), code("cm_b", {"x": "$cm_a"}), code("cm_c", {"x": "$cm_b"})]
    with pytest.raises(Conflict, match="cm_taken"):
        service.create_many([*batch, code("cm_taken")])
    assert [s.name for s in service.list_steps()] == ["cm_taken"]
    created = service.create_many(batch)
    assert [s.name for s in created] == ["cm_a", "cm_b", "cm_c"] and service.parents("cm_c") == ["cm_b"]
    database.dispose()


def test_default_engines_are_the_installed_ones_with_reasons_for_the_others() -> None:
    settings = Settings(environments="")
    engines, skipped = chosen_engines(None, settings)
    assert set(engines) | set(skipped) == set(DEFAULT_ENGINES)
    assert {"flaml", "autogluon", "h2o", "tpot"} <= set(engines)  # all installed in the main environment
    if "pycaret" in skipped:  # its own environment: left out, with the reason, when not configured
        assert "environment" in skipped["pycaret"] or "registered" in skipped["pycaret"]
    assert list(engines) == [e for e in DEFAULT_ENGINES if e in engines]
