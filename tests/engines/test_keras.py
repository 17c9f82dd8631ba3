"""model|train|predict|evaluate/keras through the real server: a hand-built CNN from the seed's "#..."
expressions on scikit-learn's 8x8 digits, saved in Keras' native format and reloaded by other workers;
"#..." expressions are code, so model/keras is refused to roles that may not run code."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import content, run
from tests.conftest import ServerHandle, launch

DIGITS_CODE = """
import numpy as np
from sklearn.datasets import load_digits
digits = load_digits()
order = np.random.RandomState(0).permutation(len(digits.target))[:400]
images = (digits.images[order] / 16.0).astype("float32")
labels = digits.target[order].astype("int64")
response = {"train_images": images[:300], "train_labels": labels[:300],
            "test_images": images[300:], "test_labels": labels[300:]}
"""

CNN_LAYERS = [
    "#keras.Input(shape=(8, 8))",
    "#keras.layers.Reshape((8, 8, 1))",
    "#keras.layers.Conv2D(16, 3, activation='relu')",
    "#keras.layers.Flatten()",
    "#keras.layers.Dense(10, activation='softmax')",
]


@pytest.fixture(scope="module")
def keras_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = launch(tmp_path_factory.mktemp("keras"))
    yield handle
    handle.stop()


def test_hand_built_model_is_trained_saved_natively_and_reloaded(keras_server: ServerHandle) -> None:
    with keras_server.client(timeout=120) as http:
        run(keras_server, http, "/function/python", {"name": "digits", "code": DIGITS_CODE})
        model = {"name": "cnn", "modulePath": "keras", "class": "Sequential", "classParameters": {"layers": CNN_LAYERS}}
        document = run(keras_server, http, "/model/keras", model)
        assert document["expressions"] is True and document["parameterCount"] == 16 * 9 + 16 + 16 * 36 * 10 + 10
        compiled = {
            "name": "cnn_compiled",
            "parentName": "cnn",
            "method": "compile",
            "methodParameters": {
                "optimizer": "adam",
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
        }
        run(keras_server, http, "/train/keras", compiled)
        fit = {
            "name": "cnn_fit",
            "parentName": "cnn_compiled",
            "method": "fit",
            "methodParameters": {"x": "$digits.train_images", "y": "$digits.train_labels", "epochs": 15},
        }
        trained = run(keras_server, http, "/train/keras", fit)
        assert len(trained["history"]["loss"]) == 15 and trained["history"]["loss"][-1] < trained["history"]["loss"][0]
        test = {"x": "$digits.test_images", "y": "$digits.test_labels"}
        evaluated = run(
            keras_server,
            http,
            "/evaluate/keras",
            {"name": "cnn_eval", "parentName": "cnn_fit", "methodParameters": test},
        )
        assert evaluated["metrics"]["accuracy"] > 0.8
        predict = {"name": "cnn_pred", "parentName": "cnn_fit", "methodParameters": {"x": "$digits.test_images"}}
        run(keras_server, http, "/predict/keras", predict)
        rows = content(http, "/predict/keras/cnn_pred", limit=3)[1:]
        assert len(rows) == 3 and all(len(row) == 10 and abs(sum(row) - 1) < 1e-4 for row in rows)
        artifacts = http.get("/train/keras/cnn_fit/artifacts").json()["result"]
        assert {item["name"] for item in artifacts} >= {"model.keras", "summary.json"}
        assert not any(item["name"].endswith(".joblib") for item in artifacts)  # native format, never a pickle
        runs = http.get("/train/keras/cnn_fit/runs").json()["result"]
        eval_runs = http.get("/evaluate/keras/cnn_eval/runs").json()["result"]
        # model/keras ran its code in a forked child; the model was reloaded by other worker processes
        assert runs[-1]["node"] and eval_runs[-1]["status"] == "finished"
    saved = _artifact(keras_server, "cnn_fit", "model.keras")
    assert zipfile.is_zipfile(saved) and "model.weights.h5" in zipfile.ZipFile(saved).namelist()


def test_bad_expression_fails_with_its_reason(keras_server: ServerHandle) -> None:
    body = {"name": "broken", "modulePath": "keras", "class": "Sequential",
            "classParameters": {"layers": ["#keras.layers.NoSuchLayer(3)"]}}  # fmt: skip
    with keras_server.client() as http:
        document = run(keras_server, http, "/model/keras", body, status="failed")
    reason = document["error"]["reason"]
    assert "NoSuchLayer" in reason and reason.startswith("expression")


def test_model_keras_is_code_and_needs_a_code_role(auth_server: ServerHandle) -> None:
    editor = {"Authorization": "Bearer editor-token"}
    admin = {"Authorization": "Bearer admin-token"}
    body = {"name": "auth_keras", "modulePath": "keras", "class": "Sequential",
            "classParameters": {"layers": ["#keras.Input(shape=(4,))", "#keras.layers.Dense(1)"]}}  # fmt: skip
    response = httpx.post(f"{auth_server.api}/model/keras", json=body, headers=editor)
    assert response.status_code == 403 and "may not run code" in response.json()["result"]
    assert httpx.post(f"{auth_server.api}/model/keras", json=body, headers=admin).status_code == 201
    patch = httpx.patch(f"{auth_server.api}/model/keras/auth_keras", json={"classParameters": {}}, headers=editor)
    assert patch.status_code == 403 and "may not run code" in patch.json()["result"]
    # the other keras services run no user code: an editor may create them
    train = {"name": "auth_keras_compiled", "parentName": "auth_keras", "method": "compile",
             "methodParameters": {"optimizer": "sgd", "loss": "mse"}}  # fmt: skip
    assert httpx.post(f"{auth_server.api}/train/keras", json=train, headers=editor).status_code == 201
    for name in ("auth_keras_compiled", "auth_keras"):  # running them is test_hand_built_model's business
        httpx.post(f"{auth_server.api}/steps/{name}/cancel", headers=admin).raise_for_status()


def _artifact(server: ServerHandle, name: str, file: str) -> Path:
    with server.client() as http:
        response = http.get(f"/train/keras/{name}/artifacts/{file}")
    assert response.status_code == 200
    path = server.home / f"{name}-{file}"
    path.write_bytes(response.content)
    return path
