"""The remaining tool routes over HTTP: scikit-learn transform / explore / tune, FLAML by reflection, and
the whole-pipeline builder."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import content, run, upload
from tests.conftest import ServerHandle
from tests.data import titanic_like

NUMERIC = ["Pclass", "SibSp", "Parch", "Fare", "Survived"]


@pytest.fixture(scope="module")
def numeric(server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("tools")
    with server.client() as http:
        upload(http, "tool_raw", titanic_like(folder / "t.csv", rows=200, seed=3))
        assert server.wait("tool_raw")["status"] == "finished"
        run(server, http, "/transform/projection", {"name": "tool_num", "parentName": "tool_raw", "fields": NUMERIC})
        run(server, http, "/transform/projection", {"name": "tool_X", "parentName": "tool_raw", "fields": NUMERIC[:-1]})
    return "tool_num"


def test_transform_scikitlearn_returns_a_dataset(server: ServerHandle, http: httpx.Client, numeric: str) -> None:
    run(
        server,
        http,
        "/model/scikitlearn",
        {"name": "tool_scaler", "modulePath": "sklearn.preprocessing", "class": "StandardScaler"},
    )
    document = run(
        server,
        http,
        "/transform/scikitlearn",
        {
            "name": "tool_scaled",
            "parentName": "tool_scaler",
            "method": "fit_transform",
            "methodParameters": {"X": "$tool_X"},
        },
    )
    assert document["output"]["kind"] == "table"
    rows = content(http, "/transform/scikitlearn/tool_scaled", limit=100)[1:]
    assert set(rows[0]) == {"Pclass", "SibSp", "Parch", "Fare"}
    assert abs(sum(r["Fare"] for r in rows) / len(rows)) < 0.3  # standardised (page of 100 of 200)


def test_tune_with_grid_search_and_explore_plot(server: ServerHandle, http: httpx.Client, numeric: str) -> None:
    run(
        server,
        http,
        "/model/scikitlearn",
        {
            "name": "tool_tree",
            "modulePath": "sklearn.tree",
            "class": "DecisionTreeClassifier",
            "classParameters": {"random_state": 0},
        },
    )
    run(
        server,
        http,
        "/model/scikitlearn",
        {
            "name": "tool_grid",
            "modulePath": "sklearn.model_selection",
            "class": "GridSearchCV",
            "classParameters": {"estimator": "$tool_tree", "param_grid": {"max_depth": [1, 2, 4]}, "cv": 3},
        },
    )
    tuned = run(
        server,
        http,
        "/tune/scikitlearn",
        {
            "name": "tool_grid_fit",
            "parentName": "tool_grid",
            "method": "fit",
            "methodParameters": {"X": "$tool_X", "y": "$tool_num.Survived"},
        },
    )
    assert tuned["metrics"]["bestScore"] > 0.5 and tuned["bestParams"]["max_depth"] in {1, 2, 4}
    plotted = run(
        server,
        http,
        "/explore/scikitlearn",
        {
            "name": "tool_cm",
            "modulePath": "sklearn.metrics",
            "class": "ConfusionMatrixDisplay",
            "method": "from_estimator",
            "methodParameters": {
                "estimator": "$tool_grid_fit.best_estimator_",
                "X": "$tool_X",
                "y": "$tool_num.Survived",
            },
        },
    )
    assert plotted["plot"] == "plot.png"
    png = http.get("/explore/scikitlearn/tool_cm/artifacts/plot.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.headers["content-type"] == "image/png"
    importance = run(
        server,
        http,
        "/explore/scikitlearn",
        {
            "name": "tool_importance",
            "modulePath": "sklearn.inspection",
            "method": "permutation_importance",
            "methodParameters": {
                "estimator": "$tool_grid_fit",
                "X": "$tool_X",
                "y": "$tool_num.Survived",
                "n_repeats": 2,
                "random_state": 0,
            },
        },
    )
    assert importance["output"]["kind"] in {"arrays", "object", "json"}


def test_flaml_by_reflection(server: ServerHandle, http: httpx.Client, numeric: str) -> None:
    run(server, http, "/model/flaml", {"name": "tool_flaml", "modulePath": "flaml", "class": "AutoML"})
    run(
        server,
        http,
        "/train/flaml",
        {
            "name": "tool_flaml_fit",
            "parentName": "tool_flaml",
            "method": "fit",
            "methodParameters": {
                "X_train": "$tool_X",
                "y_train": "$tool_num.Survived",
                "task": "classification",
                "time_budget": 3,
                "estimator_list": ["rf"],
                "verbose": 0,
            },
        },
    )
    evaluated = run(
        server,
        http,
        "/evaluate/flaml",
        {
            "name": "tool_flaml_eval",
            "parentName": "tool_flaml_fit",
            "method": "score",
            "methodParameters": {"X": "$tool_X", "y": "$tool_num.Survived"},
            "metrics": ["accuracy"],
        },
    )
    assert 0.5 < evaluated["metrics"]["accuracy"] <= 1.0


def test_builder_runs_a_whole_pipeline_and_keeps_its_files(
    server: ServerHandle, http: httpx.Client, numeric: str
) -> None:
    code = """
from sklearn.linear_model import LogisticRegression
X, y = data.drop(columns=['Survived']), data['Survived']
model = LogisticRegression(max_iter=500).fit(X, y)
score = pd.DataFrame({'model': ['lr'], 'accuracy': [model.score(X, y)]})
score.to_csv('score', sep='\\t', index=False)
print('trained')
response = {'accuracy': float(model.score(X, y))}
"""
    document = run(
        server, http, "/builder/python", {"name": "tool_builder", "code": code, "parameters": {"data": "$tool_num"}}
    )
    assert "score" in document["files"]
    assert content(http, "/builder/python/tool_builder")[1]["accuracy"] > 0.5
    listing = {a["name"] for a in http.get("/builder/python/tool_builder/artifacts").json()["result"]}
    assert "files/score" in listing
    assert "trained" in http.get("/builder/python/tool_builder/logs").json()["result"]["stdout"]


def test_a_dataset_body_cannot_give_its_source(http: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``source`` is declared by DatasetBody for the worker, but only the server writes it (after checking
    the url, path or upload): a body or form field that gives one is refused and nothing is created."""
    forged = {"kind": "path", "path": "/etc/passwd"}
    response = http.post(
        "/dataset/csv", json={"name": "forged_json", "url": "https://example.org/a.csv", "source": forged}
    )
    assert response.status_code == 422 and "set by the server" in response.json()["result"]
    path = titanic_like(tmp_path_factory.mktemp("forged") / "t.csv", rows=10, seed=1)
    with path.open("rb") as handle:
        response = http.post(
            "/dataset/csv", data={"name": "forged_form", "source": "/etc/passwd"}, files={"file": (path.name, handle)}
        )
    assert response.status_code == 422 and "set by the server" in response.json()["result"]
    assert http.get("/dataset/csv/forged_json").status_code == 404
    assert http.get("/dataset/csv/forged_form").status_code == 404
