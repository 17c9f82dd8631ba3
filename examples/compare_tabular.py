"""One dataset, every tabular AutoML engine, one leaderboard: ``automl/compare`` on adult, bank marketing
(without ``duration``, which is only known after the call) and German credit.

    python examples/compare_tabular.py [--budget 60] [--engines flaml,autogluon,h2o] [--datasets adult,german]

For each dataset the CSV is prepared locally (header, target as text), uploaded, and compared: the same
train/holdout split, metric (ROC AUC), seed and budget per engine; the engines run in parallel up to the
server's worker count. Prints each engine's holdout ROC AUC and time, and the winner. The server URL comes
from ``ORCHESTRA_URL``, the data from ``ORCHESTRA_DATASETS`` (default ``../shared/datasets``).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from automl_orchestra.client import AutoMLCompare, Client, NotFoundError, OrchestraError

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation", "relationship",
    "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
]  # fmt: skip
GERMAN_COLUMNS = [
    "checking", "duration", "history", "purpose", "amount", "savings", "employment", "installment_rate",
    "personal_status", "debtors", "residence", "property", "age", "other_plans", "housing", "credits", "job",
    "liable", "telephone", "foreign", "class",
]  # fmt: skip


def datasets_dir() -> Path:
    import os

    given = os.environ.get("ORCHESTRA_DATASETS")
    folder = Path(given) if given else Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
    if not folder.is_dir():
        raise SystemExit(f"datasets directory {folder} not found: set ORCHESTRA_DATASETS")
    return folder


def adult(folder: Path) -> tuple[pd.DataFrame, str]:
    frame = pd.read_csv(folder / "adult" / "adult.data", header=None, names=ADULT_COLUMNS, skipinitialspace=True)
    return frame.assign(income=frame["income"].str.strip().str.rstrip(".")), "income"


def bank(folder: Path) -> tuple[pd.DataFrame, str]:
    frame = pd.read_csv(folder / "bank_marketing" / "bank-additional-full.csv", sep=";")
    return frame.drop(columns=["duration"]), "y"  # duration is known only after the call: a leak


def german(folder: Path) -> tuple[pd.DataFrame, str]:
    frame = pd.read_csv(folder / "german_credit" / "german.data", sep=" ", header=None, names=GERMAN_COLUMNS)
    return frame.assign(**{"class": frame["class"].map({1: "good", 2: "bad"})}), "class"


DATASETS: dict[str, Callable[[Path], tuple[pd.DataFrame, str]]] = {"adult": adult, "bank": bank, "german": german}


def upload(client: Client, name: str, frame: pd.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.csv"
        frame.to_csv(path, index=False)
        client.upload("dataset", "csv", name, path)
    client.wait(name)


def forget(client: Client, names: list[str]) -> None:
    """Delete what an earlier run left (with dependents), so the example can run again."""
    for name in names:
        with contextlib.suppress(NotFoundError):
            client.delete(name, cascade=True)


def compare(client: Client, dataset: str, budget: float, engines: list[str] | None) -> dict[str, object]:
    frame, target = DATASETS[dataset](datasets_dir())
    data, name = f"cmp_{dataset}_data", f"cmp_{dataset}"
    forget(client, [name, f"{name}_split", data])
    upload(client, data, frame)
    comparison = AutoMLCompare(client=client)
    limits = {"cpus": 1, "timeoutS": budget * 2 + 120}
    metadata = comparison.run_compare_sync(
        name, data, target, engines=engines, time_budget=budget, metric="roc_auc", seed=1, limits=limits
    )
    rows = comparison.comparison(name)
    print(f"\n{dataset}: {len(frame)} rows, target {target!r}")
    print(f"  {'engine':<10} {'status':<9} {'holdout AUC':>11} {'fit s':>7}  model / reason")
    for row in rows:
        auc = f"{row['holdoutAuc']:.4f}" if isinstance(row.get("holdoutAuc"), float) else "-"
        fit = f"{row['fitSeconds']:.1f}" if isinstance(row.get("fitSeconds"), float) else "-"
        detail = row.get("model") if row.get("status") == "finished" else row.get("reason")
        print(f"  {row['engine']:<10} {row['status']:<9} {auc:>11} {fit:>7}  {str(detail)[:70]}")
    print(
        f"  winner: {metadata.get('bestEngine')} ({metadata.get('bestLearner')}), AUC {metadata.get('bestScore'):.4f}"
    )
    return metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per engine")
    parser.add_argument("--engines", help="comma-separated (default: every installed tabular engine)")
    parser.add_argument("--datasets", default="adult,bank,german", help=f"among {sorted(DATASETS)}")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",")] if args.engines else None
    client = Client(timeout=120.0)
    try:
        client.health()
    except OrchestraError as exc:
        raise SystemExit(f"no AutoML Orchestra server at {client.url} ({exc}); set ORCHESTRA_URL") from exc
    for dataset in args.datasets.split(","):
        compare(client, dataset.strip(), args.budget, engines)


if __name__ == "__main__":
    main()
