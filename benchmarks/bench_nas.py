"""nas: ``automl/nas`` on MNIST (8k train / 2k test of the 10k MNIST test set) against the issue's bars,
and the cost of orchestration against training the same network directly with PyTorch.

1. Search: random search and aging evolution, ``timeBudget`` 900 s each (60 s with ``--quick``), the same
   seed, data and control parameters. Goal: best test accuracy >= 0.985.
2. Constrained search (``maxParameters`` 20,000, reject): aging evolution under the same budget. Goal >= 0.97.
3. ONNX: the best networks' ONNX exports agree with PyTorch on the 2k test images (goal: max |diff| <= 1e-4).
4. Direct call: the best network's spec trained in a plain script (same data, split, seed, epochs, one
   thread each side, as a worker runs) -- wall ratio ``nas/train`` run / plain script, and accuracies.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    Server,
    datasets_dir,
    run_script,
    run_step,
    section,
    verdict,
    wait_for_warm_pool,
    write_result,
)

NAME = "nas"
GOALS = {"bestAccuracy": 0.985, "constrainedAccuracy": 0.97, "onnxMaxAbsDiff": 1e-4}
CONTROL = {"epochs": 6, "batchSize": 64, "schedule": "cosine"}
DATA = {"maxRows": 10_000, "testSize": 0.2, "seed": 1}
PLAIN = """
import json, sys, time
started = time.perf_counter()
import numpy as np, torch
from automl_orchestra.nas import trainer
from automl_orchestra.nas.data import DataSettings, load
from automl_orchestra.nas.spec import validate
torch.set_num_threads(1)
spec = validate(json.loads(open(sys.argv[1]).read()))
split = load(sys.argv[2], DataSettings(max_rows=10000, test_size=0.2, seed=1))
module, curves = trainer.train(spec, split, seed=1)
loss, accuracy = trainer.evaluate(module, split.x_test, split.y_test)
print(json.dumps({"wallS": time.perf_counter() - started, "testAccuracy": accuracy, "epochs": len(curves)}))
"""


def search(client: Any, name: str, generators: list[str], budget: float, trials: int, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "parentName": "mnist", "generators": generators, "trials": trials, "timeBudget": budget,
            "control": CONTROL, **DATA, "limits": {"timeoutS": budget * len(generators) + 1800}, **extra}  # fmt: skip
    timing = run_step(client, "automl", "nas", body)
    comparison = client.content("dataset", "comparison", f"{name}_comparison", limit=100)[1:]
    board = client.content("dataset", "leaderboard", f"{name}_leaderboard", limit=100)[1:]
    onnx = [
        client.get(row["evaluateStep"])["metrics"].get("onnxMaxAbsDiff") for row in board if row["score"] is not None
    ]
    return {
        "wallS": timing.total_s,
        "bestAccuracy": timing.metadata["metrics"]["bestAccuracy"],
        "bestStep": timing.metadata["bestStep"],
        "comparison": comparison,
        "trials": len(board),
        "maxParameters": max((row["parameters"] or 0) for row in board if not row["rejected"]),
        "onnxMaxAbsDiff": max((d for d in onnx if d is not None), default=None),
    }


def direct(client: Any, best_step: str, mnist: Path) -> dict[str, Any]:
    """The best trial's train step against the same training in a plain script."""
    train_step = best_step.removesuffix("-evaluate") + "-train"
    generate_step = best_step.removesuffix("-evaluate") + "-generate"
    spec = client.content("nas", "generate", generate_step)[1]["spec"]
    api_wall = client.runs(train_step)[-1]["wallS"]
    api_accuracy = client.get(best_step)["metrics"]["accuracy"]
    with tempfile.TemporaryDirectory() as folder:
        spec_path, script = Path(folder) / "spec.json", Path(folder) / "plain_nas.py"
        spec_path.write_text(json.dumps(spec))
        script.write_text(PLAIN)
        run = run_script([str(script), str(spec_path), str(mnist)], env={"OMP_NUM_THREADS": "1"})
    plain = json.loads(run.stdout.strip().splitlines()[-1])
    return {"apiTrainWallS": api_wall, "plainWallS": run.wall_s, "wallRatio": api_wall / run.wall_s,
            "apiTestAccuracy": api_accuracy, "plainTestAccuracy": plain["testAccuracy"]}  # fmt: skip


def main(quick: bool = False) -> dict[str, Any]:
    budget, trials = (60.0, 2) if quick else (900.0, 200)
    section(f"nas: automl/nas on MNIST 8k/2k, {budget:g} s per generator; constrained search; direct PyTorch")
    mnist = datasets_dir() / "mnist" / "mnist_t10k.npz"
    with Server() as server, server.client(timeout=600) as client:
        wait_for_warm_pool(server)
        run_step(client, "dataset", "generic", {"name": "mnist"}, upload=mnist)
        record: dict[str, Any] = {"budgetS": budget, "control": CONTROL}
        record["search"] = search(client, "mnist_nas", ["random", "evolution"], budget, trials)
        record["constrained"] = search(
            client, "mnist_small", ["evolution"], budget, trials, constraints={"maxParameters": 20_000}
        )
        record["direct"] = direct(client, record["search"]["bestStep"], mnist)
    s, c, d = record["search"], record["constrained"], record["direct"]
    for row in s["comparison"] + c["comparison"]:
        row_text = f"trials {row['trials']:>3}  best {row['bestAccuracy']}  parameters {row['bestParameters']}"
        print(f"  {row['generator']:<10} {row_text}")
    best = s["bestAccuracy"]
    print(f"best accuracy {best:.4f} (goal >= 0.985): {verdict(best >= GOALS['bestAccuracy'])}")
    ok = c["bestAccuracy"] >= GOALS["constrainedAccuracy"] and c["maxParameters"] <= 20_000
    largest = f"largest trained {c['maxParameters']}"
    print(f"constrained (<= 20,000 parameters, {largest}) {c['bestAccuracy']:.4f} (goal >= 0.97): {verdict(ok)}")
    diff = max(v for v in (s["onnxMaxAbsDiff"], c["onnxMaxAbsDiff"]) if v is not None)
    print(f"ONNX max |diff| {diff:.2e} (goal <= 1e-4): {verdict(diff <= GOALS['onnxMaxAbsDiff'])}")
    walls = f"train step {d['apiTrainWallS']:.1f} s vs plain script {d['plainWallS']:.1f} s"
    accuracies = f"accuracy API {d['apiTestAccuracy']:.4f} vs plain {d['plainTestAccuracy']:.4f}"
    print(f"direct PyTorch: {walls}, ratio {d['wallRatio']:.3f}; {accuracies}")
    write_result(NAME, quick, record)
    return record


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
