"""function/python and builder/python: globals from parameters, ``response`` as the value, files kept."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.jobs import WorkerPolicy
from automl_orchestra.engines.core.user_code import run_code
from tests.engines.conftest import Harness, WebServer


def test_function_response_and_stdout(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.put("data", pd.DataFrame({"a": [1, 2, 3]}))
    code = "print('rows:', len(frame))\nresponse = {'total': int(frame['a'].sum()) * factor, 'name': __name__}"
    ran = harness.run(
        "function", "python", {"code": code, "parameters": {"frame": "$data", "factor": 2}}, inputs=["data"]
    )
    assert ran.load() == {"total": 12, "name": "__orchestra__"}
    assert ran.metadata == {"responseType": "dict", "globals": ["factor", "frame"]}
    assert "rows: 3" in capsys.readouterr().out


def test_function_without_response_stores_null(harness: Harness) -> None:
    ran = harness.run("function", "python", {"code": "x = 1"})
    assert ran.ref.kind == "json" and ran.load() is None


def test_function_returning_a_frame_is_a_table(harness: Harness) -> None:
    ran = harness.run("function", "python", {"code": "import pandas as pd\nresponse = pd.DataFrame({'b': [1.5]})"})
    assert ran.ref.kind == "table" and ran.ref.attributes == ["b"]


def test_syntax_error_names_the_line(harness: Harness) -> None:
    with pytest.raises(StepError, match=r"syntax error in the code at line 2.*: response = \(1,"):
        harness.run("function", "python", {"code": "a = 1\nresponse = (1,\n"})


def test_exceptions_propagate_with_the_user_source(harness: Harness) -> None:
    import traceback

    with pytest.raises(ZeroDivisionError) as caught:
        harness.run("function", "python", {"code": "a = 1\nb = a / 0\n"}, name="boom")
    text = "".join(traceback.format_exception(caught.value))
    assert 'File "<step boom>", line 2' in text and "b = a / 0" in text


@pytest.mark.parametrize("name", ["not-valid", "class", "__builtins__"])
def test_parameter_names_must_be_identifiers(harness: Harness, name: str) -> None:
    with pytest.raises(StepError, match="not usable as a Python variable"):
        harness.run("function", "python", {"code": "response = 1", "parameters": {name: 1}})


def test_code_url_needs_a_listed_host(harness: Harness, web: WebServer) -> None:
    (web.root / "code.py").write_text("response = 40 + 2\n")
    params = {"codeUrl": web.url("code.py")}
    with pytest.raises(StepError, match="code URLs are disabled"):
        harness.run("function", "python", params)
    harness.policy = WorkerPolicy(code_url_hosts=["localhost"])
    with pytest.raises(StepError, match=r"host '127\.0\.0\.1' is not allowed"):
        harness.run("function", "python", params)
    harness.policy = WorkerPolicy(code_url_hosts=["127.0.0.1"])
    assert harness.run("function", "python", params).load() == 42
    with pytest.raises(StepError, match="either 'code' or 'codeUrl'"):
        harness.run("function", "python", {**params, "code": "response = 1"})


def test_builder_keeps_written_files_and_tables(harness: Harness) -> None:
    harness.put("titanic", pd.DataFrame({"Sex": ["m", "f", "f"], "Survived": [0, 1, 1]}))
    code = "\n".join(
        [
            "score = data.groupby('Sex')['Survived'].mean().to_frame('rate')",
            "score.to_csv('score', sep='\\t', encoding='utf-8')  # as in the Learning Orchestra seed",
            "import os",
            "os.makedirs('reports', exist_ok=True)",
            "open('reports/notes.txt', 'w').write('no table here')",
            "open('.hidden', 'w').write('secret')",
            "print('done')",
            "response = {'cwd': os.getcwd(), 'rows': len(data), 'np': np.__name__}",
        ]
    )
    ran = harness.run("builder", "python", {"code": code, "parameters": {"data": "$titanic"}}, inputs=["titanic"])
    assert ran.metadata["files"] == ["reports/notes.txt", "score"]
    assert ran.metadata["tables"] == ["score.parquet"]
    assert ran.load() == {"cwd": str(ran.ctx.work_dir), "rows": 3, "np": "numpy"}
    table = pd.read_parquet(ran.files / "files" / "score.parquet")
    assert table.to_dict("list") == {"Sex": ["f", "m"], "rate": [1.0, 0.0]}
    assert (ran.files / "files" / "reports" / "notes.txt").read_text() == "no table here"
    assert sorted(ran.ref.files) == ["data.json", "files/reports/notes.txt", "files/score", "files/score.parquet"]


def test_generic_dataset_reaches_code_as_an_open_binary_file(harness: Harness) -> None:
    """Learning Orchestra handed code a file object for a generic dataset (``images_file.seek(0)``); it is also
    path-like, so code written for the path it used to be keeps working; it is closed once the code ran."""
    harness.store.write_bytes("uploads/u1/blob", b"1 2 3 4\n")
    source = {"kind": "upload", "key": "uploads/u1/blob", "filename": "numbers.txt"}
    harness.run("dataset", "generic", {"source": source}, name="blob")
    code = "\n".join(
        [
            "import os",
            "blob.seek(2)",
            "tail = blob.read()",
            "blob.seek(0)",
            "kept.append(blob)",
            "response = {'tail': tail.decode(), 'mode': blob.mode, 'name': os.path.basename(blob.name),",
            "            'text': open(blob).read(), 'same': os.fspath(blob) == blob.name,",
            "            'again': again.read(1).decode()}",
        ]
    )
    kept: list[Any] = []
    params = {"code": code, "parameters": {"blob": "$blob", "again": "$blob"}}
    ctx = harness.context("function", "python", params, inputs=["blob"])
    response = run_code(ctx, code, {"kept": kept})
    assert response == {"tail": "2 3 4\n", "mode": "rb", "name": "numbers.txt", "text": "1 2 3 4\n", "same": True,
                        "again": "1"}  # fmt: skip
    assert kept and kept[0].closed
