"""Neural architecture search with ``automl/nas``: several generators (random search, aging evolution,
TPE) on the same data, search space, budget and seed, compared in one table and one plot.

    ORCHESTRA_URL=http://127.0.0.1:8080 python examples/nas_compare.py mnist  [--budget 900] [--trials 30]
    python examples/nas_compare.py digits --generators random evolution tpe
    python examples/nas_compare.py adult  --constraint-parameters 5000

* ``mnist``: the 10k MNIST test images of ``../shared/datasets/mnist`` (uploaded as ``.npz``), 8k train /
  2k test (``maxRows`` 10000, ``testSize`` 0.2); convolutional search space.
* ``digits``: scikit-learn's 8x8 digits (1,797 images), written to a temporary ``.npz``.
* ``adult``: the UCI adult census table (``adult.data``, header-less CSV), an MLP search on its numeric
  and one-hot text columns, target ``income``.

Every trial is three child steps (``{name}-{generator}-{trial}-generate|train|evaluate``) shown in the
lineage of the search step. The table printed at the end is the ``{name}_comparison`` dataset step; the
plot is the search step's ``comparison.png`` artifact, saved beside this script's working directory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import datasets_dir

from automl_orchestra.client import Client, NasService, NotFoundError, OrchestraError

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation", "relationship",
    "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
]  # fmt: skip
TABLE = [
    ("generator", "generator", ""),
    ("trials", "trials", "d"),
    ("rejected", "rejected", "d"),
    ("bestAccuracy", "best test accuracy", ".4f"),
    ("meanBestSoFar", "mean best-so-far", ".4f"),
    ("secondsToBest", "found at s", ".1f"),
    ("trainSecondsToBest", "train s to best", ".1f"),
    ("bestParameters", "parameters", "d"),
    ("bestLatencyMsPerSample", "latency ms/sample", ".4f"),
]
# (epochs, batch size, learning-rate schedule) per data set: what one trial trains for
CONTROL = {
    "mnist": {"epochs": 4, "batchSize": 64, "schedule": "cosine"},
    "digits": {"epochs": 8, "batchSize": 32, "schedule": "cosine"},
    "adult": {"epochs": 4, "batchSize": 128, "schedule": "cosine"},
}


def upload(client: Client, data: str) -> dict[str, Any]:
    """Upload the data set as a step named ``nas_{data}``; returns the search fields it needs."""
    name = f"nas_{data}"
    with _suppressed():
        client.delete(name, cascade=True)
    if data == "mnist":
        client.upload("dataset", "generic", name, datasets_dir() / "mnist" / "mnist_t10k.npz")
        fields: dict[str, Any] = {"maxRows": 10_000, "testSize": 0.2}
    elif data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "digits.npz"
            np.savez(path, x=(digits.images / 16.0).astype(np.float32), y=digits.target)
            client.upload("dataset", "generic", name, path)
        fields = {"testSize": 0.2}
    else:
        path = datasets_dir() / "adult" / "adult.data"
        client.upload("dataset", "csv", name, path, header=False, columns=ADULT_COLUMNS)
        fields = {"target": "income", "maxRows": 12_000, "testSize": 0.25}
    client.wait(name)
    return {"parentName": name, **fields}


def main(args: argparse.Namespace) -> None:
    client = Client(timeout=60.0)
    try:
        client.health()
    except OrchestraError as exc:
        raise SystemExit(f"no AutoML Orchestra server at {client.url} ({exc}); start one or set ORCHESTRA_URL") from exc
    with NasService(client=client) as nas:
        data = upload(client, args.data)
        search = f"nas_{args.data}_search"
        with _suppressed():
            client.delete(search, cascade=True)
        constraints = {"maxParameters": args.constraint_parameters} if args.constraint_parameters else {}
        started = time.monotonic()
        document = nas.search(
            search,
            data.pop("parentName"),
            generators=args.generators,
            trials=args.trials,
            time_budget=args.budget,
            control=CONTROL[args.data],
            constraints=constraints,
            seed=1,
            limits={"timeoutS": args.budget * len(args.generators) + 1800},
            childLimits={"cpus": args.cpus},
            **data,
        )
        print(f"{search}: {document['metrics']} in {time.monotonic() - started:.0f} s\n")
        print(format_table(nas.comparison(search)))
        plot = Path(f"{search}.png")
        plot.write_bytes(nas.plot(search))
        print(f"\nplot: {plot.resolve()}; best network: step {document['bestStep']} (ONNX in its artifacts)")


def format_table(rows: list[dict[str, Any]]) -> str:
    cells = [[_cell(row.get(key), spec) for key, _header, spec in TABLE] for row in rows]
    headers = [header for _key, header, _spec in TABLE]
    widths = [max(len(t) for t in (h, *(line[i] for line in cells))) for i, h in enumerate(headers)]
    lines = ["  ".join(t.ljust(w) for t, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(t.ljust(w) for t, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def _cell(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class _suppressed:
    """Ignore 'no such step' while cleaning up what an earlier run left."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_rest: object) -> bool:
        return kind is not None and issubclass(kind, NotFoundError)


def parse(
    argv: list[str] | None = None, default_generators: tuple[str, ...] = ("random", "evolution", "tpe")
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", choices=["mnist", "digits", "adult"])
    parser.add_argument("--generators", nargs="+", default=list(default_generators))
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per generator")
    parser.add_argument("--trials", type=int, default=30, help="most trials per generator")
    parser.add_argument("--cpus", type=int, default=2, help="CPU threads of each trial")
    parser.add_argument("--constraint-parameters", type=int, default=0, help="reject networks above this size")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse())
