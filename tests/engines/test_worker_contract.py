"""The engines under the real worker entry point (``runtime.worker.run_job``): JSON-able metadata and
metrics, outputs published with hashes, failures reported as step errors or with the user's traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automl_orchestra.contracts.jobs import JobLimits, JobResult, JobSpec, WorkerPolicy
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.runtime.worker import run_job
from tests.data import titanic_like


def run(root: Path, name: str, service: str, tool: str, params: dict[str, Any], **inputs: OutputRef) -> JobResult:
    job = JobSpec(
        run_id=f"{name}-1",
        step_name=name,
        service=service,
        tool=tool,
        parameters=params,
        inputs=inputs,
        artifact_url=str(root / "artifacts"),
        output_prefix=f"steps/{name}/1",
        work_dir=str(root / "work" / name),
        limits=JobLimits(timeout_s=120, memory_mb=4096, cpus=1),
        policy=WorkerPolicy(import_dirs=[str(root)]),
    )
    return run_job(job)


def test_a_pipeline_through_the_worker(tmp_path: Path) -> None:
    csv = titanic_like(tmp_path / "titanic.csv", rows=120)
    data = run(tmp_path, "data", "dataset", "csv", {"source": {"kind": "path", "path": str(csv)}})
    assert data.status == "finished" and data.output is not None and data.output_hash
    assert data.output.serializer == "csv" and data.metadata["rowCount"] == 120
    features = run(
        tmp_path,
        "features",
        "transform",
        "projection",
        {"parentName": "data", "fields": ["Pclass", "Fare"]},
        data=data.output,
    )
    assert features.status == "finished" and features.output is not None
    model = run(
        tmp_path, "tree", "model", "scikitlearn", {"modulePath": "sklearn.tree", "class": "DecisionTreeClassifier"}
    )
    assert model.status == "finished" and model.output is not None
    params = {"parentName": "tree", "methodParameters": {"X": "$features", "y": "$data.Survived"}}
    trained = run(
        tmp_path,
        "trained",
        "train",
        "scikitlearn",
        params,
        tree=model.output,
        features=features.output,
        data=data.output,
    )
    assert trained.status == "finished", trained.traceback
    assert trained.output is not None and trained.output.kind == "object"
    code = "response = float(model.score(X, y))"
    params = {"code": code, "parameters": {"model": "$trained", "X": "$features", "y": "$data.Survived"}}
    scored = run(
        tmp_path,
        "score",
        "function",
        "python",
        params,
        trained=trained.output,
        features=features.output,
        data=data.output,
    )
    assert scored.status == "finished" and scored.output is not None and scored.output.kind == "json"


def test_step_errors_and_exceptions_through_the_worker(tmp_path: Path) -> None:
    failed = run(tmp_path, "bad", "model", "scikitlearn", {"modulePath": "os", "class": "system"})
    assert failed.status == "failed" and failed.reason is not None and "not allowed" in failed.reason
    assert failed.traceback is None  # a StepError is the whole story
    crashed = run(tmp_path, "crash", "function", "python", {"code": "1 / 0"})
    assert crashed.status == "failed" and crashed.traceback is not None and "<step crash>" in crashed.traceback
