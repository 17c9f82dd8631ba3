"""The seed's Titanic pipeline with scikit-learn, step by step, against a live AutoML Orchestra server.

    ORCHESTRA_URL=http://127.0.0.1:8080 python examples/titanic_sklearn.py

Steps (each one named, persisted and inspectable on the server):
train/test/labels upload -> dataType (in place, as the seed) -> labels joined to the test rows by PassengerId
-> Sex encoded as a number (a function step) -> projections X / y -> median imputer fitted on train and
applied to both -> histogram -> GradientBoostingClassifier -> train -> predict -> evaluate (accuracy, F1).

Function steps run user code: the server must allow it for this token (auth off on loopback: allowed).
A re-run first deletes the steps an earlier run left, like the seed's ``delete_dataset("train")``.
"""

from __future__ import annotations

from _common import (
    TARGET,
    client_side_accuracy,
    connect,
    format_table,
    ingest_titanic,
    reset,
    run_table,
    stopwatch,
)

from automl_orchestra.client import (
    Client,
    EvaluateScikitLearn,
    ExploreHistogram,
    FunctionPython,
    ModelScikitLearn,
    PredictScikitLearn,
    TrainScikitLearn,
    TransformProjection,
    TransformScikitLearn,
)

PREFIX = "titanic_sk"
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare"]
ENCODE_SEX_CODE = """
frame = data.copy()
frame["Sex"] = frame["Sex"].map({"male": 0, "female": 1}).astype("int64")
response = frame
"""
HISTOGRAM_COLUMNS = [("field", "field", ""), ("value", "value", ""), ("count", "count", "d")]
SUMMARY_COLUMNS = [("metric", "measure", ""), ("value", "value", ".4f")]


def step(name: str) -> str:
    return f"{PREFIX}_{name}"


def features(client: Client, dataset: str, split: str) -> tuple[str, str]:
    """Encode Sex, then project the features (X) and the target (y) of one split; returns (X, y)."""
    encoded, x_name, y_name = step(f"{split}_encoded"), step(f"{split}_X"), step(f"{split}_y")
    FunctionPython(client=client).run_function_sync(
        encoded, parameters={"data": f"${dataset}"}, code=ENCODE_SEX_CODE, description="Sex as 0 (male) / 1 (female)"
    )
    projection = TransformProjection(client=client)
    projection.remove_dataset_attributes_sync(encoded, x_name, FEATURES)
    projection.remove_dataset_attributes_sync(encoded, y_name, [TARGET])
    return x_name, y_name


def impute(client: Client, train_x: str, test_x: str) -> tuple[str, str]:
    """A median imputer fitted on the training features only, applied to both splits (GB refuses NaN)."""
    ModelScikitLearn(client=client).create_model_sync(
        step("imputer"), "sklearn.impute", "SimpleImputer", {"strategy": "median"}
    )
    TrainScikitLearn(client=client).create_training_sync(
        step("imputer_fit"), step("imputer"), step("imputer"), "fit", {"X": f"${train_x}"}
    )
    transform = TransformScikitLearn(client=client)
    imputed = []
    for x_name in (train_x, test_x):
        transform.create_transform_sync(
            f"{x_name}_imputed", step("imputer"), step("imputer_fit"), "transform", {"X": f"${x_name}"}
        )
        imputed.append(f"{x_name}_imputed")
    return imputed[0], imputed[1]


def model_steps(client: Client, train_x: str, train_y: str, test_x: str, test_y: str) -> dict[str, float]:
    """Gradient boosting: model, train, predict and evaluate; returns the evaluation metrics."""
    model, fitted = step("gb"), step("gb_fit")
    ModelScikitLearn(client=client).create_model_sync(
        model, "sklearn.ensemble", "GradientBoostingClassifier", {"n_estimators": 100, "random_state": 1}
    )
    TrainScikitLearn(client=client).create_training_sync(
        fitted, model, model, "fit", {"X": f"${train_x}", "y": f"${train_y}.{TARGET}"}
    )
    PredictScikitLearn(client=client).create_prediction_sync(
        step("gb_pred"), model, fitted, "predict", {"X": f"${test_x}"}
    )
    evaluated = EvaluateScikitLearn(client=client).create_evaluate_sync(
        step("gb_eval"),
        model,
        fitted,
        "score",
        {"X": f"${test_x}", "y": f"${test_y}.{TARGET}"},
        metrics=["accuracy", "f1"],
    )
    return dict(evaluated["metrics"])


def main() -> None:
    with connect() as client, stopwatch() as elapsed:
        print(f"server {client.url}")
        reset(client, [step("train"), step("test"), step("labels"), step("imputer"), step("gb")])
        data = ingest_titanic(client, PREFIX)
        train_x, train_y = features(client, data.train, "train")
        test_x, test_y = features(client, data.test_labelled, "test")
        train_x, test_x = impute(client, train_x, test_x)
        ExploreHistogram(client=client).run_histogram_sync(
            data.train, step("histogram"), ["Sex", "Pclass", "Age", "Fare"], bins=8
        )
        metrics = model_steps(client, train_x, train_y, test_x, test_y)
        checked = client_side_accuracy(client, step("gb_pred"))
        wall = elapsed()
        names = [str(s["name"]) for s in client.iter_steps() if str(s["name"]).startswith(PREFIX + "_")]
        print(f"\nsteps of this run ({len(names)}):\n{run_table(client, names)}")
        histogram = client.content("explore", "histogram", step("histogram"), limit=100)[1:]
        histogram = [row for row in histogram if row.get("field") == "Sex"]
        print(f"\nhistogram of Sex on the training set:\n{format_table(histogram, HISTOGRAM_COLUMNS)}")
        summary = [
            {"metric": "accuracy (evaluate step, 418 Kaggle test rows)", "value": metrics["accuracy"]},
            {"metric": "F1 (evaluate step)", "value": metrics["f1"]},
            {"metric": "accuracy (client-side, by PassengerId)", "value": checked},
            {"metric": "wall time of the whole pipeline, s", "value": wall},
        ]
        print(f"\nGradientBoostingClassifier on Titanic:\n{format_table(summary, SUMMARY_COLUMNS)}")


if __name__ == "__main__":
    main()
