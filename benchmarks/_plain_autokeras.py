"""The peer of the autokeras benchmark: the seed's MNIST pipeline as one plain AutoKeras script.

    python benchmarks/_plain_autokeras.py --npz mnist_t10k.npz --samples 10000 --trials 1 --epochs 10 --cpus 2

The same split as the API side (``numpy.random.RandomState(0).permutation``, 80 % train), the same
``ImageClassifier(max_trials, seed=1, overwrite=True)``, ``fit(epochs, validation_split=0.1)``, then
``predict`` and ``evaluate`` on the test images; torch on ``--cpus`` threads like a worker. Prints one JSON
line: import/load/fit/predict seconds, test accuracy and loss.
"""

from __future__ import annotations

import os
import time

IMPORTS_STARTED = time.perf_counter()
os.environ.setdefault("KERAS_BACKEND", "torch")

import argparse  # noqa: E402 - the imports are timed
import json  # noqa: E402
import tempfile  # noqa: E402

import autokeras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

IMPORT_S = time.perf_counter() - IMPORTS_STARTED


def split(npz: str, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with np.load(npz) as data:
        x, y = data["x_test"], data["y_test"]
    order = np.random.RandomState(0).permutation(len(y))[:samples]
    cut = int(len(order) * 0.8)
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--npz", required=True)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cpus", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.cpus)
    loading = time.perf_counter()
    x_train, y_train, x_test, y_test = split(args.npz, args.samples)
    load_s = time.perf_counter() - loading
    with tempfile.TemporaryDirectory() as folder:
        classifier = autokeras.ImageClassifier(overwrite=True, max_trials=args.trials, seed=1, directory=folder)
        started = time.perf_counter()
        classifier.fit(x_train, y_train, epochs=args.epochs, validation_split=0.1, verbose=2)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        predicted = np.asarray(classifier.predict(x_test, verbose=0)).reshape(-1).astype(np.int64)
        loss, accuracy = classifier.evaluate(x_test, y_test, verbose=0)
        predict_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "importS": IMPORT_S,
                "loadS": load_s,
                "fitS": fit_s,
                "predictEvaluateS": predict_s,
                "accuracy": float(accuracy),
                "predictedAccuracy": float(np.mean(predicted == y_test)),
                "loss": float(loss),
            }
        )
    )


if __name__ == "__main__":
    main()
