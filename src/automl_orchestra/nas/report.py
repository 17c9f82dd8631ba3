"""The algorithm comparison: one row per generator (best accuracy, accuracy over time, parameters and
latency of its best network, rejections) and a plot of the best accuracy so far against time."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def comparison_table(board: pd.DataFrame, generators: list[str]) -> pd.DataFrame:
    rows = []
    for name in generators:
        trials = board[board["generator"] == name].sort_values("trial")
        scored = trials[trials["score"].notna()]
        best = scored.sort_values(["score", "elapsedS"], ascending=[False, True]).head(1)
        running_best = trials["accuracy"].astype(float).fillna(0.0).cummax()
        compute = trials["trainSeconds"].astype(float).fillna(0.0).cumsum()
        rows.append(
            {
                "generator": name,
                "trials": len(trials),
                "failed": int((trials["status"] != "finished").sum()),
                "rejected": int(trials["rejected"].sum()),
                "bestAccuracy": _first(best, "accuracy"),
                "bestScore": _first(best, "score"),
                # the mean of the best-so-far curve: higher when good networks are found earlier
                "meanBestSoFar": float(running_best.mean()) if len(trials) else None,
                "secondsToBest": _first(best, "elapsedS"),
                # training seconds spent until the best was found: fair to whichever generator ran first
                "trainSecondsToBest": float(compute[best.index[0]]) if not best.empty else None,
                "totalSeconds": float(trials["elapsedS"].max()) if len(trials) else None,
                "bestParameters": _first(best, "parameters"),
                "bestLatencyMsPerSample": _first(best, "latencyMsPerSample"),
                "bestStep": _first(best, "evaluateStep"),
            }
        )
    return pd.DataFrame(rows)


def plot_accuracy_over_time(board: pd.DataFrame, path: Path, work_dir: Path) -> None:
    os.environ.setdefault("MPLCONFIGDIR", str(work_dir / "matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6))
    for name, trials in board.groupby("generator", sort=False):
        trials = trials.sort_values("trial")
        best = trials["accuracy"].astype(float).fillna(0.0).cummax()
        compute = trials["trainSeconds"].astype(float).fillna(0.0).cumsum()
        axis.step(compute, best, where="post", marker="o", label=str(name))
    axis.set_xlabel("training seconds spent by the generator's trials")
    axis.set_ylabel("best test accuracy so far")
    axis.set_title("NAS generators on the same data, budget and seed")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _first(frame: pd.DataFrame, column: str) -> object:
    if frame.empty or pd.isna(frame.iloc[0][column]):
        return None
    value = frame.iloc[0][column]
    return value.item() if hasattr(value, "item") else value
