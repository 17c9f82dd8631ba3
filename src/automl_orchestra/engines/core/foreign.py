"""Predictions from a model written in another engine environment (a PyCaret pipeline scored by the
comparison, which runs in ``main``): objects never cross environments, so the rows go to that environment's
interpreter in a child process, which loads the model with its own engine and answers with arrays.

    python -m automl_orchestra.engines.core.foreign REQUEST.json

The request names the artifact store, the model's ``OutputRef``, a Parquet file of rows and where to write
the answer (an ``.npz``: ``values`` = class probabilities or predictions, ``classes``, ``seconds`` = the
predict call alone, without the interpreter start and the model load). The child is a plain child of the
job's worker: the step's time and memory limits and a cancel cover it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.engines.core.base import StepContext


@dataclass
class Predictions:
    values: np.ndarray  # class probabilities (rows x classes) or predictions (rows)
    classes: list[str] | None
    seconds: float  # the predict call alone


def predict_elsewhere(ctx: StepContext, ref: OutputRef, rows: pd.DataFrame, probabilities: bool) -> Predictions:
    """``predict_proba`` (or ``predict``) of the model ``ref`` on ``rows``, in the model's own environment."""
    python = ctx.job.environment_pythons.get(ref.environment)
    if python is None:
        raise StepError(f"no interpreter of engine environment {ref.environment!r} is known to this worker")
    folder = ctx.work_dir / f"foreign-{time.time_ns()}"
    folder.mkdir(parents=True)
    rows.to_parquet(folder / "rows.parquet", index=False)
    request = {
        "artifactUrl": ctx.job.artifact_url,
        "ref": ref.model_dump(),
        "rows": str(folder / "rows.parquet"),
        "answer": str(folder / "answer.npz"),
        "probabilities": probabilities,
    }
    (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
    env = {**os.environ, "ORCHESTRA_ENVIRONMENT": ref.environment}
    done = subprocess.run(
        [python, "-m", "automl_orchestra.engines.core.foreign", str(folder / "request.json")],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise StepError(
            f"scoring in environment {ref.environment!r} failed: {_exception_line(done.stderr or done.stdout)}"
        )
    with np.load(folder / "answer.npz", allow_pickle=False) as answer:
        classes = [str(c) for c in answer["classes"]] if answer["classes"].size else None
        return Predictions(answer["values"], classes, float(answer["seconds"]))


def _exception_line(output: str) -> str:
    """The traceback's exception line (its message may go on over lines, e.g. scikit-learn's lists)."""
    lines = output.strip().splitlines()
    found = [i for i, line in enumerate(lines) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line)]
    if not found:
        return lines[-1] if lines else "no output"
    return " ".join(line.strip() for line in lines[found[-1] : found[-1] + 4])[:1000]


def _answer(request_file: str) -> None:
    from automl_orchestra.engines.core.base import load_output
    from automl_orchestra.store.artifacts import ArtifactStore

    request = json.loads(Path(request_file).read_text(encoding="utf-8"))
    model = load_output(ArtifactStore(request["artifactUrl"]), OutputRef.model_validate(request["ref"]))
    rows = pd.read_parquet(request["rows"])
    began = time.perf_counter()
    values = model.predict_proba(rows) if request["probabilities"] else model.predict(rows)
    seconds = time.perf_counter() - began
    classes = [str(c) for c in np.asarray(model.classes_)] if request["probabilities"] else []
    np.savez(
        request["answer"],
        values=np.asarray(values, dtype=float),
        classes=np.asarray(classes, dtype=str),
        seconds=seconds,
    )


if __name__ == "__main__":
    _answer(sys.argv[1])
