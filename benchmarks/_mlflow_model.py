"""Wrap a registered version's frozen ``model.joblib`` as an MLflow model, for ``mlflow models serve``.

    .bench-venv-mlflow/bin/python benchmarks/_mlflow_model.py --model model.joblib --rows sample.parquet --out DIR

Run by the MLflow environment's interpreter (``benchmarks/requirements-mlflow.txt``: MLflow and the model's
libraries at the main environment's versions). ``mlflow.pyfunc.save_model`` writes an MLflow model to ``DIR``
(a local folder: no tracking server) with the joblib file as its artifact, a signature inferred from the
sample rows, and a ``PythonModel`` that answers what the serving worker answers by default for a classifier:
the model's ``predict`` and its ``predict_proba``, one column per class. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import infer_signature


class OrchestraModel(mlflow.pyfunc.PythonModel):
    """The same model object the serving worker loads, called the same way."""

    def load_context(self, context: Any) -> None:
        import joblib

        self.model = joblib.load(context.artifacts["model"])
        self.classes = [str(label) for label in self.model.classes_]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        labels = self.model.predict(model_input)
        probabilities = self.model.predict_proba(model_input)
        answer = pd.DataFrame(probabilities, columns=self.classes)
        answer.insert(0, "prediction", labels)
        return answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--rows", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sample = pd.read_parquet(args.rows)
    wrapper = OrchestraModel()
    wrapper.load_context(type("Context", (), {"artifacts": {"model": args.model}})())
    output = wrapper.predict(None, sample)
    mlflow.pyfunc.save_model(
        args.out,
        python_model=OrchestraModel(),
        artifacts={"model": args.model},
        signature=infer_signature(sample, output),
    )
    print(json.dumps({"mlflow": mlflow.__version__, "path": args.out, "columns": list(output.columns)}))


if __name__ == "__main__":
    main()
