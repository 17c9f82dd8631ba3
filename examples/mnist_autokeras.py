"""MNIST with AutoKeras: the seed's Appendix B pipeline, then ``automl/autokeras``, on a live server.

    ORCHESTRA_URL=http://127.0.0.1:8080 python examples/mnist_autokeras.py [--trials 1] [--epochs 10]
        [--automl-budget 600] [--automl-trials 3] [--automl-epochs 12] [--skip-automl] [--samples 10000]

Appendix B, step by step with the seed's class and method names: ``DatasetGeneric`` (the 10,000 MNIST
test images, ``mnist_t10k.npz``: the 60k training images are not available here) -> ``FunctionPython``
(load and split 8,000 train / 2,000 test with ``numpy.random.RandomState(0).permutation``) ->
``ModelAutoKeras`` (``ImageClassifier``) -> ``TrainAutokeras`` (``fit``: the architecture search) ->
``PredictAutokeras`` -> ``EvaluateAutokeras`` -> ``FunctionPython`` printing both, read back with
``search_execution_content``. The file is uploaded (the seed downloaded it from a URL; this machine has no
internet). Then the same split through ``automl/autokeras``, whose search space suits 28x28 images.

Printed for each: test accuracy and cross-entropy loss (the evaluate step), trials completed and stopped
(the trial table), and wall time. A re-run first deletes what an earlier run left.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import datasets_dir, format_table, reset, stopwatch

from automl_orchestra.client import (
    AutoMLAutoKeras,
    Client,
    DatasetGeneric,
    EvaluateAutokeras,
    FunctionPython,
    ModelAutoKeras,
    OrchestraError,
    PredictAutokeras,
    TrainAutokeras,
)

# Appendix B's load function, with the 8,000 / 2,000 split of the 10k images (see the module docstring).
LOAD_CODE = """
import numpy as np

def load_data(path):
    with np.load(path) as f:
        x, y = f["x_test"], f["y_test"]
    order = np.random.RandomState(0).permutation(len(y))[:samples]
    cut = int(len(order) * 0.8)
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])

(x_train, y_train), (x_test, y_test) = load_data(mnist_dataset_autokeras)

response = {
    "test_images": x_test,
    "test_labels": y_test,
    "train_images": x_train,
    "train_labels": y_train,
}
"""
SHOW_PREDICT = """
print(mnist_predicted)
response = None
"""
SHOW_EVALUATE = """
print(mnist_evaluated)
response = None
"""
APPENDIX_B_STEPS = ["mnist_dataset_autokeras", "mnist_automl_autokeras"]
RESULT_COLUMNS = [
    ("pipeline", "pipeline", ""),
    ("accuracy", "test accuracy", ".4f"),
    ("loss", "cross-entropy", ".4f"),
    ("completed", "trials completed", "d"),
    ("stopped", "trials stopped/failed", "d"),
    ("wall", "wall s", ".1f"),
]
TRIAL_COLUMNS = [
    ("trial", "trial", "d"),
    ("architecture", "architecture", ""),
    ("status", "status", ""),
    ("score", "val_loss", ".4f"),
    ("epochs", "epochs", "d"),
    ("seconds", "s", ".1f"),
    ("peakMemoryMb", "peak MB", ".0f"),
    ("reason", "reason", ""),
]


def connect() -> Client:
    client = Client(timeout=120.0)
    try:
        client.health()
    except OrchestraError as exc:
        raise SystemExit(f"no AutoML Orchestra server at {client.url} ({exc}); start one or set ORCHESTRA_URL") from exc
    return client


def appendix_b(client: Client, trials: int, epochs: int, samples: int) -> dict[str, Any]:
    """The seed's pipeline; returns its row of the result table."""
    mnist = datasets_dir() / "mnist" / "mnist_t10k.npz"
    if not mnist.is_file():
        raise SystemExit(f"{mnist} not found")
    with stopwatch() as elapsed:
        dataset_generic = DatasetGeneric(client=client)
        dataset_generic.upload_dataset_sync("mnist_dataset_autokeras", mnist)
        function_python = FunctionPython(client=client)
        function_python.run_function_async(
            name="mnist_load_data",
            parameters={"mnist_dataset_autokeras": "$mnist_dataset_autokeras", "samples": samples},
            code=LOAD_CODE,
        )
        function_python.wait("mnist_load_data")
        model_autokeras = ModelAutoKeras(client=client)
        model_autokeras.create_model_async(
            name="mnist_model_autokeras",
            module_path="autokeras.tasks.image",
            class_name="ImageClassifier",
            class_parameters={"overwrite": True, "max_trials": trials, "seed": 1},
        )
        model_autokeras.wait("mnist_model_autokeras")
        train_autokeras = TrainAutokeras(client=client)
        train_autokeras.create_training_async(
            name="mnist_model_trained_autokeras",
            model_name="mnist_model_autokeras",
            parent_name="mnist_model_autokeras",
            method_name="fit",
            parameters={
                "x": "$mnist_load_data.train_images",
                "y": "$mnist_load_data.train_labels",
                "epochs": epochs,
                "validation_split": 0.1,
            },
            limits={"timeoutS": 3600, "memoryMb": 8192},
        )
        train_autokeras.wait("mnist_model_trained_autokeras")
        predict_autokeras = PredictAutokeras(client=client)
        predict_autokeras.create_prediction_async(
            name="mnist_model_predicted_autokeras",
            model_name="mnist_model_autokeras",
            parent_name="mnist_model_trained_autokeras",
            method_name="predict",
            parameters={"x": "$mnist_load_data.test_images"},
        )
        predict_autokeras.wait("mnist_model_predicted_autokeras")
        evaluate_autokeras = EvaluateAutokeras(client=client)
        evaluate_autokeras.create_evaluate_async(
            name="mnist_model_evaluated_autokeras",
            model_name="mnist_model_autokeras",
            parent_name="mnist_model_trained_autokeras",
            method_name="evaluate",
            parameters={"x": "$mnist_load_data.test_images", "y": "$mnist_load_data.test_labels"},
        )
        evaluated = evaluate_autokeras.wait("mnist_model_evaluated_autokeras")
        wall = elapsed()
    function_python.run_function_async(
        name="mnist_model_predicted_print",
        parameters={"mnist_predicted": "$mnist_model_predicted_autokeras"},
        code=SHOW_PREDICT,
    )
    function_python.run_function_async(
        name="mnist_model_evaluated_print",
        parameters={"mnist_evaluated": "$mnist_model_evaluated_autokeras"},
        code=SHOW_EVALUATE,
    )
    function_python.wait("mnist_model_evaluated_print")
    function_python.wait("mnist_model_predicted_print")
    for name in ("mnist_model_predicted_print", "mnist_model_evaluated_print"):
        print(function_python.search_execution_content(name=name, limit=1, skip=1, pretty_response=True))
        print(str(client.logs(name).get("stdout", "")).strip())
    return _row(client, "Appendix B (ImageClassifier)", "mnist_model_trained_autokeras", evaluated, wall)


def automl(client: Client, budget: float, trials: int, epochs: int) -> dict[str, Any]:
    """The same split through ``automl/autokeras``; returns its row of the result table."""
    with stopwatch() as elapsed:
        AutoMLAutoKeras(client=client).run_automl_sync(
            "mnist_automl_autokeras",
            "mnist_load_data",
            "train_labels",
            "classification",
            time_budget=budget,
            seed=1,
            input_key="train_images",
            max_trials=trials,
            epochs=epochs,
            limits={"memoryMb": 8192},  # no timeoutS: the server sizes the timeout to hold the budget
        )
        evaluated = EvaluateAutokeras(client=client).create_evaluate_sync(
            "mnist_automl_evaluated",
            "mnist_automl_autokeras",
            "mnist_automl_autokeras",
            "evaluate",
            {"x": "$mnist_load_data.test_images", "y": "$mnist_load_data.test_labels"},
        )
        wall = elapsed()
    return _row(client, f"automl/autokeras ({budget:g} s budget)", "mnist_automl_autokeras", evaluated, wall)


def _row(client: Client, label: str, searched: str, evaluated: dict[str, Any], wall: float) -> dict[str, Any]:
    board = client.content("dataset", "leaderboard", f"{searched}_leaderboard", limit=100)[1:]
    print(f"\ntrials of {searched}:\n{format_table(board, TRIAL_COLUMNS)}")
    completed = sum(1 for trial in board if trial["status"] == "completed")
    metrics = evaluated["metrics"]
    return {
        "pipeline": label,
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "completed": completed,
        "stopped": len(board) - completed,
        "wall": wall,
    }


def main(args: argparse.Namespace) -> None:
    with connect() as client:
        print(f"server {client.url}")
        reset(client, APPENDIX_B_STEPS)
        rows = [appendix_b(client, args.trials, args.epochs, args.samples)]
        if not args.skip_automl:
            rows.append(automl(client, args.automl_budget, args.automl_trials, args.automl_epochs))
        print(f"\nMNIST ({args.samples} images: 80 % train, 20 % test):\n{format_table(rows, RESULT_COLUMNS)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1, help="ImageClassifier max_trials (default 1)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (default 10)")
    parser.add_argument("--samples", type=int, default=10_000, help="images used, split 80/20 (default 10000)")
    parser.add_argument("--automl-budget", type=float, default=600.0, help="automl/autokeras budget, s")
    parser.add_argument("--automl-trials", type=int, default=3, help="automl/autokeras maxTrials (default 3)")
    parser.add_argument("--automl-epochs", type=int, default=12, help="automl/autokeras epochs (default 12)")
    parser.add_argument("--skip-automl", action="store_true", help="run the Appendix B pipeline only")
    main(parser.parse_args())
