"""PyCaret for real, in its own engine environment, through the server: the atomic pipeline (experiment ->
setup -> compare -> tune -> finalize -> predict, plots), PATCH making dependents stale, errors inside
PyCaret, the seed's builder code through the Learning Orchestra client, automl/pycaret, and the other
experiment types (regression, clustering, anomaly detection)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris, make_classification

from automl_orchestra.client import BuilderPycaret
from tests.api.helpers import assert_classified, content, run, upload
from tests.api.test_models import register
from tests.api.test_serving import serving_workers
from tests.conftest import ServerHandle, launch
from tests.data import titanic_like

SETUP = {"target": "Survived", "ignore_features": ["Ticket", "Name", "PassengerId", "Cabin"], "session_id": 1}
FAST = {"include": ["lr", "dt"], "fold": 3}

# The seed's Appendix A builder code, PyCaret 2's ``silent=True`` included (accepted with a warning), made
# small for CI (two models, 3 folds, 3 tuning iterations instead of the full grid and n_iter=100).
APPENDIX_A = """
from pycaret import classification

clas = classification.setup(
    data=train,
    target='Survived',
    ignore_features=['Ticket', 'Name', 'PassengerId', 'Cabin'],
    numeric_features=['Age', 'Fare', 'Parch', 'Pclass', 'SibSp'],
    session_id = 1,
    silent=True)

best = classification.compare_models(include=['lr', 'dt'], fold=3)

best_tuned = classification.tune_model(
    best,
    n_iter = 3,
    fold=3,
    choose_better=True)

best_tuned = classification.create_model(best_tuned, fold=3)

score = classification.pull()
score.to_csv('score', sep='\\t', encoding='utf-8')

final_gbr = classification.finalize_model(best_tuned)

classification.save_model(final_gbr, 'titanic_pycaret')

response = None
"""


@pytest.fixture(scope="module")
def pycaret_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = launch(tmp_path_factory.mktemp("pycaret"))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def http(pycaret_server: ServerHandle) -> Iterator[httpx.Client]:
    with pycaret_server.client(timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def titanic(pycaret_server: ServerHandle, http: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("titanic")
    upload(http, "pc_train", titanic_like(folder / "train.csv", rows=300, seed=0))
    upload(http, "pc_test", titanic_like(folder / "test.csv", rows=80, seed=1, first_id=1000))
    for name in ("pc_train", "pc_test"):
        assert pycaret_server.wait(name)["status"] == "finished"
    return "pc_train"


def test_workers_run_in_the_pycaret_environment(pycaret_server: ServerHandle, http: httpx.Client) -> None:
    code = (
        "import sklearn\n"
        "response = {'numpy': np.__version__, 'pandas': pd.__version__, 'sklearn': sklearn.__version__,"
        " 'pycaret': pycaret.__version__}"
    )
    run(pycaret_server, http, "/builder/pycaret", {"name": "pc_versions", "code": code})
    versions = content(http, "/builder/pycaret/pc_versions")[1]
    assert versions["pycaret"] == "3.3.2"
    assert versions["numpy"].startswith("1.26.") and versions["sklearn"].startswith("1.4.")
    assert versions["pandas"].startswith("2.1.")


def test_atomic_pipeline_with_grids_plots_predictions_and_stale_dependents(
    pycaret_server: ServerHandle, http: httpx.Client, titanic: str
) -> None:
    run(pycaret_server, http, "/model/pycaret", {"name": "pc_exp"})
    setup = {"data": f"${titanic}", **SETUP}
    run(
        pycaret_server,
        http,
        "/transform/pycaret",
        {"name": "pc_setup", "parentName": "pc_exp", "methodParameters": setup},
    )
    best = run(
        pycaret_server, http, "/train/pycaret", {"name": "pc_best", "parentName": "pc_setup", "methodParameters": FAST}
    )
    assert 0.6 < best["metrics"]["Accuracy"] <= 1.0
    grid = content(http, "/dataset/grid/pc_best_grid", limit=10)[1:]
    assert {row["Model"] for row in grid} == {"Logistic Regression", "Decision Tree Classifier"}
    tuned_body = {"estimator": "$pc_best", "n_iter": 2, "fold": 3}
    run(
        pycaret_server,
        http,
        "/tune/pycaret",
        {"name": "pc_tuned", "parentName": "pc_setup", "methodParameters": tuned_body},
    )
    folds = content(http, "/dataset/grid/pc_tuned_grid", limit=10)[1:]
    assert [row["Fold"] for row in folds][-2:] == ["Mean", "Std"]
    final = {"name": "pc_final", "parentName": "pc_setup", "methodParameters": {"estimator": "$pc_tuned"}}
    run(pycaret_server, http, "/evaluate/pycaret", final)
    predict = {"estimator": "$pc_final", "data": "$pc_test"}
    run(
        pycaret_server,
        http,
        "/predict/pycaret",
        {"name": "pc_pred", "parentName": "pc_setup", "methodParameters": predict},
    )
    rows = content(http, "/predict/pycaret/pc_pred", limit=100)[1:]
    assert len(rows) == 80 and {"prediction_label", "prediction_score"} <= set(rows[0])
    plot = {"estimator": "$pc_tuned", "plot": "confusion_matrix"}
    run(
        pycaret_server,
        http,
        "/explore/pycaret",
        {"name": "pc_plot", "parentName": "pc_setup", "method": "plot_model", "methodParameters": plot},
    )
    artifacts = [a["name"] for a in http.get("/steps/pc_plot/artifacts").json()["result"]]
    png = next(name for name in artifacts if name.endswith(".png"))
    assert http.get(f"/steps/pc_plot/artifacts/{png}").content.startswith(b"\x89PNG")

    changed = {"parentName": "pc_exp", "methodParameters": {**setup, "session_id": 2}}
    assert http.patch("/transform/pycaret/pc_setup", json=changed).status_code == 200
    assert pycaret_server.wait("pc_setup")["status"] == "finished"
    for dependent in ("pc_best", "pc_tuned", "pc_final", "pc_pred", "pc_plot"):
        assert http.get(f"/steps/{dependent}").json()["result"]["status"] == "stale", dependent


def test_an_error_inside_pycaret_fails_the_step_with_its_traceback(
    pycaret_server: ServerHandle, http: httpx.Client, titanic: str
) -> None:
    run(pycaret_server, http, "/model/pycaret", {"name": "pc_bad_exp"})
    body = {
        "name": "pc_bad_setup",
        "parentName": "pc_bad_exp",
        "methodParameters": {"data": f"${titanic}", "target": "Nope"},
    }
    failed = run(pycaret_server, http, "/transform/pycaret", body, status="failed")
    assert "Column Nope not found" in failed["error"]["reason"]
    record = http.get("/steps/pc_bad_setup/runs").json()["result"][-1]
    assert "pycaret" in record["traceback"] and "setup" in record["traceback"]
    # Calling a method on an experiment that was never set up is refused with the way out.
    body = {"name": "pc_unset", "parentName": "pc_bad_exp"}
    assert "not set up" in run(pycaret_server, http, "/train/pycaret", body, status="failed")["error"]["reason"]


def test_the_seed_builder_code_runs_through_the_learning_orchestra_client(
    pycaret_server: ServerHandle, titanic: str
) -> None:
    builder = BuilderPycaret(pycaret_server.url)
    builder.run_pycaret_async(name="pc_appendix_a", parameters={"train": f"${titanic}"}, code=APPENDIX_A)
    builder.wait("pc_appendix_a", 300)
    metadata = builder.search_builder("pc_appendix_a")
    assert metadata["status"] == "finished", metadata
    score = builder.search_builder_register_predictions(file_name="score")
    assert "Accuracy" in score and "Mean" in score
    # the AutoML branch's BuilderPycaret.search_report: a GET with a JSON body, answered with the file's text
    url = f"{pycaret_server.url}/api/learningOrchestra/v1/explore/getlocaldatapycaret"
    report = httpx.request("GET", url, json={"filename": "score"}, timeout=30)
    assert report.status_code == 200 and report.text == score
    stderr = builder.search_logs("pc_appendix_a")["stderr"]
    assert "warning: setup(silent=True) ignored: PyCaret 2 asked to confirm" in stderr
    # save_model and PyCaret's own log wrote into the step's directory, so they are the step's artifacts.
    assert {"titanic_pycaret.pkl", "logs.log"} <= set(metadata["files"])


@pytest.fixture(scope="module")
def pc_auto(pycaret_server: ServerHandle, http: httpx.Client, titanic: str) -> dict[str, Any]:
    """``automl/pycaret`` on the titanic table (25 s, 3 folds): the step ``pc_auto``'s document."""
    body = {"name": "pc_auto", "parentName": titanic, "target": "Survived", "timeBudget": 25, "cv": 3, "seed": 1}
    return run(pycaret_server, http, "/automl/pycaret", body)


def test_automl_pycaret_excludes_identifiers_and_predicts(
    pycaret_server: ServerHandle, http: httpx.Client, pc_auto: dict[str, Any]
) -> None:
    auto = pc_auto
    assert {"Name", "PassengerId", "Ticket"} <= set(auto["excludedColumns"])
    assert auto["metrics"]["holdout_Accuracy"] > 0.6 and auto["metrics"]["cv_Accuracy"] > 0.6
    board = content(http, "/dataset/leaderboard/pc_auto_leaderboard", limit=50)[1:]
    assert len(board) >= 2 and board[0]["Model"] and board[0]["id"]
    predict = {"name": "pc_auto_pred", "parentName": "pc_auto", "methodParameters": {"X": "$pc_test"}}
    run(pycaret_server, http, "/predict/pycaret", predict)
    rows = content(http, "/predict/pycaret/pc_auto_pred", limit=100)[1:]
    assert len(rows) == 80 and set(rows[0]) == {"prediction"}  # one shape for every engine


def test_an_automl_pycaret_version_is_served_in_its_environment(
    pycaret_server: ServerHandle, http: httpx.Client, pc_auto: dict[str, Any]
) -> None:
    """The registered version is loaded by a serving worker running the PyCaret environment's interpreter,
    and answers the held-out rows (the signature's columns) as the step-based predict does."""
    version = register(http, "pc_titanic", "pc_auto")["result"]
    assert (version["engine"], version["environment"]) == ("pycaret", "pycaret")
    columns = [column["name"] for column in version["signature"]["inputs"]]
    assert "Sex" in columns and "PassengerId" not in columns
    table = content(http, "/dataset/csv/pc_test", limit=100)[1:]
    records = [{name: row[name] for name in columns} for row in table]
    answer = http.post("/models/pc_titanic/predict", json={"records": records})
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert_classified(result, 80, [0, 1], agree=0.95)
    workers = serving_workers(pycaret_server)
    assert workers and all(".venv-pycaret" in worker.cmdline()[0] for worker in workers)
    predict = {"name": "pc_served_pred", "parentName": "pc_auto", "methodParameters": {"X": "$pc_test"}}
    run(pycaret_server, http, "/predict/pycaret", predict)
    by_step = [row["prediction"] for row in content(http, "/predict/pycaret/pc_served_pred", limit=100)[1:]]
    assert result["predictions"] == by_step


def test_automl_pycaret_stops_a_model_at_the_budget_and_keeps_the_finished_ones(
    pycaret_server: ServerHandle, http: httpx.Client, tmp_path: Path
) -> None:
    # Gradient boosting on 30k x 40 cannot cross-validate within the 18 s compare share of a 30 s budget;
    # PyCaret's own budget_time would let it run on after the budget.
    X, y = make_classification(n_samples=30_000, n_features=40, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(40)]).assign(label=y)
    frame.to_csv(tmp_path / "wide.csv", index=False)
    upload(http, "pc_wide", tmp_path / "wide.csv")
    assert pycaret_server.wait("pc_wide")["status"] == "finished"
    options = {"compare_models": {"include": ["dt", "gbc"]}}
    body = {"name": "pc_bounded", "parentName": "pc_wide", "target": "label", "timeBudget": 30, "cv": 3}
    auto = run(pycaret_server, http, "/automl/pycaret", {**body, "options": options})
    assert auto["bestLearner"] == "DecisionTreeClassifier" and auto["folds"] == 3
    assert auto["searchSeconds"] <= 30 * 1.05
    board = {row["id"]: row for row in content(http, "/dataset/leaderboard/pc_bounded_leaderboard", limit=10)[1:]}
    assert board["dt"]["status"] == "finished" and board["dt"]["Accuracy"] > 0.7
    assert board["gbc"]["status"] == "stopped" and "time limit" in board["gbc"]["reason"]
    # Without the refit on every row, the stored model is still the whole pipeline (preprocessing included).
    quick = {**body, "name": "pc_unrefit", "options": {"finalize": False, "compare_models": {"include": ["dt"]}}}
    assert run(pycaret_server, http, "/automl/pycaret", quick)["finalized"].startswith("not asked for")
    predict = {"name": "pc_unrefit_pred", "parentName": "pc_unrefit", "methodParameters": {"X": "$pc_wide"}}
    run(pycaret_server, http, "/predict/pycaret", predict)
    predicted = content(http, "/predict/pycaret/pc_unrefit_pred", limit=100)[1:]
    assert len(predicted) == 100 and sum(row["prediction"] == y[i] for i, row in enumerate(predicted)) > 70


def test_automl_pycaret_refuses_options_of_the_wrong_type(
    pycaret_server: ServerHandle, http: httpx.Client, titanic: str
) -> None:
    # PyCaret's options sections are typed in its request model: refused at POST, nothing is created.
    body = {"name": "pc_bad_options", "parentName": titanic, "target": "Survived", "timeBudget": 25}
    options = {"finalize": "no", "setup": ["fold", 3]}
    refused = http.post("/automl/pycaret", json={**body, "options": options})
    assert refused.status_code == 422, refused.text
    assert "options.finalize" in refused.text and "options.setup" in refused.text
    assert http.get("/steps/pc_bad_options").status_code == 404


def test_regression_clustering_and_anomaly_experiments(
    pycaret_server: ServerHandle, http: httpx.Client, tmp_path: Path
) -> None:
    diabetes = load_diabetes(as_frame=True).frame.head(200)
    iris = load_iris(as_frame=True).frame.drop(columns=["target"])
    for name, frame in (("pc_diabetes", diabetes), ("pc_iris", iris)):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        upload(http, name, path)
        assert pycaret_server.wait(name)["status"] == "finished"

    run(pycaret_server, http, "/model/pycaret", {"name": "pc_reg", "class": "RegressionExperiment"})
    setup = {"data": "$pc_diabetes", "target": "target", "session_id": 1}
    run(
        pycaret_server,
        http,
        "/transform/pycaret",
        {"name": "pc_reg_setup", "parentName": "pc_reg", "methodParameters": setup},
    )
    created = {"estimator": "lr", "fold": 3}
    body = {"name": "pc_reg_lr", "parentName": "pc_reg_setup", "method": "create_model", "methodParameters": created}
    assert run(pycaret_server, http, "/train/pycaret", body)["metrics"]["R2"] > 0.2

    for kind, estimator, column in (("Clustering", "kmeans", "Cluster"), ("Anomaly", "iforest", "Anomaly")):
        prefix = f"pc_{kind.lower()}"
        run(pycaret_server, http, "/model/pycaret", {"name": prefix, "class": f"{kind}Experiment"})
        setup = {"data": "$pc_iris", "session_id": 1}
        body = {"name": f"{prefix}_setup", "parentName": prefix, "methodParameters": setup}
        run(pycaret_server, http, "/transform/pycaret", body)
        body = {"name": f"{prefix}_model", "parentName": f"{prefix}_setup", "method": "create_model"}
        run(pycaret_server, http, "/train/pycaret", {**body, "methodParameters": {"estimator": estimator}})
        assigned = {"name": f"{prefix}_assigned", "parentName": f"{prefix}_setup", "method": "assign_model"}
        run(pycaret_server, http, "/predict/pycaret", {**assigned, "methodParameters": {"model": f"${prefix}_model"}})
        rows = pd.DataFrame(content(http, f"/predict/pycaret/{prefix}_assigned", limit=100)[1:])
        assert len(rows) == 100 and column in rows.columns
        assert rows[column].nunique() >= 2
