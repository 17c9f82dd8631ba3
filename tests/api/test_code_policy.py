"""Editors may not run code or touch files through references or allow-listed libraries (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.helpers import run, upload
from tests.conftest import ServerHandle

GB = {"modulePath": "sklearn.ensemble", "class": "GradientBoostingClassifier"}


def _written(home: Path, name: str) -> list[Path]:
    return list(home.rglob(name))


def test_dunder_reference_chain_is_refused(auth_server: ServerHandle) -> None:
    """Finding 1: ``$e_gb.__init__.__globals__.__builtins__.eval`` as FunctionTransformer's func."""
    with auth_server.client("editor-token") as editor:
        run(auth_server, editor, "/model/scikitlearn", {"name": "cp_gb", **GB})
        body = {
            "name": "cp_eval",
            "modulePath": "sklearn.preprocessing",
            "class": "FunctionTransformer",
            "classParameters": {"func": "$cp_gb.__init__.__globals__.__builtins__.eval"},
        }
        response = editor.post("/model/scikitlearn", json=body)
        assert response.status_code == 403 and "needs a role allowed to run code" in response.text
        # the dunder chain itself is refused whatever the class it is passed to
        bagging = {
            "name": "cp_bag_eval",
            "modulePath": "sklearn.ensemble",
            "class": "BaggingClassifier",
            "classParameters": {"estimator": "$cp_gb.__init__.__globals__.__builtins__.eval"},
        }
        response = editor.post("/model/scikitlearn", json=bagging)
        assert response.status_code == 422 and "private or dunder" in response.text
        # without the dunder chain, FunctionTransformer itself (and a func parameter) needs the code role
        body["classParameters"] = {"func": "$cp_gb.fit"}
        response = editor.post("/model/scikitlearn", json=body)
        assert response.status_code == 403 and "needs a role allowed to run code" in response.text
        transform = {
            "name": "cp_pwn",
            "parentName": "cp_gb",
            "method": "fit_transform",
            "methodParameters": {"X": "(__import__('pathlib').Path('pwned').write_text('x'), 1)[1]"},
        }
        # a private segment is refused anywhere in a reference
        response = editor.post(
            "/transform/scikitlearn", json={**transform, "name": "cp_priv", "methodParameters": {"X": "$cp_gb._x"}}
        )
        assert response.status_code == 422
    assert not _written(auth_server.home, "pwned")


def test_callable_by_reference_is_refused_in_the_worker(auth_server: ServerHandle) -> None:
    """Policy (b): a bound method reached by a public reference is a callable; the worker refuses it."""
    with auth_server.client("editor-token") as editor:
        run(auth_server, editor, "/model/scikitlearn", {"name": "cp_gb2", **GB})
        body = {
            "name": "cp_bag",
            "modulePath": "sklearn.ensemble",
            "class": "BaggingClassifier",
            "classParameters": {"estimator": "$cp_gb2.fit"},
        }
        document = run(auth_server, editor, "/model/scikitlearn", body, status="failed")
        assert "needs a role allowed to run code" in str(document)


def test_file_functions_are_refused(auth_server: ServerHandle, tmp_path: Path) -> None:
    """Finding 2: dump_svmlight_file writes, load_files reads any file."""
    target = tmp_path / "written.svm"
    secret = tmp_path / "secret" / "a"
    secret.mkdir(parents=True)
    (secret / "x.txt").write_text("secret")
    with auth_server.client("editor-token") as editor:
        dump = {
            "name": "cp_dump",
            "modulePath": "sklearn.datasets",
            "method": "dump_svmlight_file",
            "methodParameters": {"X": [[1.0]], "y": [1], "f": str(target)},
        }
        response = editor.post("/explore/scikitlearn", json=dump)
        assert response.status_code == 403 and "needs a role allowed to run code" in response.text
        load = {
            "name": "cp_load",
            "modulePath": "sklearn.datasets",
            "method": "load_files",
            "methodParameters": {"container_path": str(tmp_path / "secret")},
        }
        assert editor.post("/explore/scikitlearn", json=load).status_code == 403
        joblib = {"name": "cp_joblib", "modulePath": "joblib", "method": "dump"}
        assert editor.post("/explore/scikitlearn", json=joblib).status_code in (403, 422)
        run(auth_server, editor, "/model/scikitlearn", {"name": "cp_gb3", **GB})
        pipeline_cache = {
            "name": "cp_pipe",
            "modulePath": "sklearn.pipeline",
            "class": "Pipeline",
            "classParameters": {"steps": [["gb", "$cp_gb3"]], "memory": str(tmp_path)},
        }
        assert editor.post("/model/scikitlearn", json=pipeline_cache).status_code == 403
    assert not target.exists()


def test_private_columns_stay_referenceable(auth_server: ServerHandle, tmp_path: Path) -> None:
    """A table column named ``_index`` is a column, not an attribute: referenceable when the table lists it,
    resolved as a column by the worker; other ``_`` names are refused."""
    csv = tmp_path / "t.csv"
    csv.write_text("_index,x\n0,1\n1,0\n2,1\n")
    with auth_server.client("editor-token") as editor:
        upload(editor, "cp_table", csv)
        assert auth_server.wait("cp_table")["status"] == "finished"
        score = {
            "name": "cp_index",
            "modulePath": "sklearn.metrics",
            "method": "accuracy_score",
            "methodParameters": {"y_true": "$cp_table._index", "y_pred": "$cp_table._index"},
        }
        run(auth_server, editor, "/explore/scikitlearn", score)
        for attr in ("_nope", "__class__", "_index.__class__"):
            body = {**score, "name": "cp_bad", "methodParameters": {"y_true": f"$cp_table.{attr}"}}
            response = editor.post("/explore/scikitlearn", json=body)
            assert response.status_code == 422, (attr, response.text)


def test_code_role_may_use_function_transformer(auth_server: ServerHandle) -> None:
    """The code role keeps FunctionTransformer with a real callable passed by reference (its steps run with
    the code right); private references stay refused even for it."""
    with auth_server.client("admin-token") as admin:
        run(
            auth_server,
            admin,
            "/model/scikitlearn",
            {"name": "cp_scaler", "modulePath": "sklearn.preprocessing", "class": "StandardScaler"},
        )
        body = {
            "name": "cp_ft",
            "modulePath": "sklearn.preprocessing",
            "class": "FunctionTransformer",
            "classParameters": {"func": "$cp_scaler.fit_transform"},
        }
        document = run(auth_server, admin, "/model/scikitlearn", body)
        assert document["status"] == "finished"
        body = {**body, "name": "cp_ft2", "classParameters": {"func": "$cp_scaler.__init__"}}
        assert admin.post("/model/scikitlearn", json=body).status_code == 422
    with httpx.Client(base_url=auth_server.api, headers={"Authorization": "Bearer editor-token"}) as editor:
        response = editor.patch("/steps/cp_ft", json={"classParameters": {}})
        assert response.status_code == 403
        response = editor.patch("/model/scikitlearn/cp_ft", json={"classParameters": {}})
        assert response.status_code == 403
    # The code role re-executes it (both PATCH routes), and the re-run has the code right again.
    changed = {"classParameters": {"func": "$cp_scaler.fit_transform", "validate": True}}
    with auth_server.client("admin-token") as admin:
        for route in ("/steps/cp_ft", "/model/scikitlearn/cp_ft"):
            response = admin.patch(route, json=changed)
            assert response.status_code == 200, response.text
            document = auth_server.wait("cp_ft")
            assert document["status"] == "finished" and document["allowCode"] is True, document
