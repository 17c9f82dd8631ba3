"""Titanic through ``automl/flaml`` (60 s budget, accuracy, seed 1) against a live AutoML Orchestra server.

    ORCHESTRA_URL=http://127.0.0.1:8080 python examples/titanic_flaml.py [--budget SECONDS]

The automl step picks the feature columns itself (PassengerId, Name and Ticket are excluded as identifiers
or free text; the reasons are in its metadata), searches FLAML's learners within the budget and writes a
leaderboard dataset. The best model then predicts the 418 Kaggle test rows and is scored on their labels,
joined by PassengerId (``predict/flaml`` and ``evaluate/flaml``).
A re-run first deletes the steps an earlier run left, like the seed's ``delete_dataset("train")``.
"""

from __future__ import annotations

import argparse

from _common import TARGET, client_side_accuracy, connect, format_table, ingest_titanic, reset, run_table, stopwatch

from automl_orchestra.client import AutoMLFlaml, EvaluateFlaml, PredictFlaml

PREFIX = "titanic_flaml"
LEADERBOARD_COLUMNS = [
    ("learner", "learner", ""),
    ("bestScore", "best accuracy (validation)", ".4f"),
    ("timeToBest", "found at s", ".1f"),
    ("totalTime", "time used s", ".1f"),
    ("iterations", "trials", "d"),
]
SUMMARY_COLUMNS = [("measure", "measure", ""), ("value", "value", "")]


def step(name: str) -> str:
    return f"{PREFIX}_{name}"


def main(budget: float) -> None:
    with connect() as client, stopwatch() as elapsed:
        print(f"server {client.url}; FLAML budget {budget:g} s")
        reset(client, [step("train"), step("test"), step("labels")])
        data = ingest_titanic(client, PREFIX)
        automl = AutoMLFlaml(client=client)
        found = automl.run_automl_sync(
            step("automl"), data.train, TARGET, "classification", time_budget=budget, metric="accuracy", seed=1
        )
        PredictFlaml(client=client).create_prediction_sync(
            step("pred"), step("automl"), step("automl"), "predict", {"X": f"${data.test}"}
        )
        evaluated = EvaluateFlaml(client=client).create_evaluate_sync(
            step("eval"),
            step("automl"),
            step("automl"),
            "score",
            {"X": f"${data.test_labelled}", "y": f"${data.test_labelled}.{TARGET}"},
            metrics=["accuracy", "f1"],
        )
        checked = client_side_accuracy(client, step("pred"))
        wall = elapsed()
        board = automl.search_leaderboard(step("automl"), limit=100)[1:]
        names = [str(s["name"]) for s in client.iter_steps() if str(s["name"]).startswith(PREFIX + "_")]
        print(f"\nsteps of this run ({len(names)}):\n{run_table(client, names)}")
        print(f"\nleaderboard ({len(board)} learners tried):\n{format_table(board, LEADERBOARD_COLUMNS)}")
        validation = "FLAML's cross-validation" if "cvScore" in found["metrics"] else "FLAML's holdout"
        excluded = ", ".join(found.get("columns", {}).get("excluded", {})) or "none"
        summary = [
            {"measure": "best learner", "value": found["bestLearner"]},
            {"measure": f"validation accuracy ({validation})", "value": f"{found['bestScore']:.4f}"},
            {"measure": "columns excluded automatically", "value": excluded},
            {
                "measure": "test accuracy (evaluate step, 418 Kaggle rows)",
                "value": f"{evaluated['metrics']['accuracy']:.4f}",
            },
            {"measure": "test F1 (evaluate step)", "value": f"{evaluated['metrics']['f1']:.4f}"},
            {"measure": "test accuracy (client-side, by PassengerId)", "value": f"{checked:.4f}"},
            {"measure": "wall time of the whole pipeline, s", "value": f"{wall:.1f}"},
        ]
        print(f"\nFLAML on Titanic:\n{format_table(summary, SUMMARY_COLUMNS)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="FLAML time budget in seconds (default 60)")
    main(parser.parse_args().budget)
