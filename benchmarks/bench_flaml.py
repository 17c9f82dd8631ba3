"""flaml: ``automl/flaml`` on UCI Adult through the API, against the same FLAML call in a plain script.

Both sides in one run, one after the other (the plain script first, with no server running):

* plain: ``benchmarks/_plain_flaml.py`` in a subprocess (pandas load, text columns as categories,
  ``AutoML().fit(..., time_budget, metric, seed=1, n_jobs=1)`` with the engine's other arguments), with
  OMP_NUM_THREADS=1 like a worker. Wall = process start to exit; peak RSS of its process tree.
* API: a fresh server (default settings: a step gets ``limits.cpus`` = 1, so ``n_jobs=1``); adult.data is
  ingested first (not timed), then wall = POST ``/automl/flaml`` until the observe long-poll answers settled;
  peak RSS of the server's whole process tree (API process + every worker) while the step runs.

Goals: wall ratio API / plain <= 1.02; extra peak memory (server + workers minus plain script) <= 100 MB.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    ADULT_COLUMNS,
    RssSampler,
    ScriptRun,
    Server,
    StepTiming,
    datasets_dir,
    print_comparison,
    rss_mb,
    run_script,
    run_step,
    section,
    verdict,
    wait_for_warm_pool,
    worker_processes,
    write_result,
)

NAME = "flaml"
TARGET = "income"
METRIC = "accuracy"
SEED = 1
GOAL_WALL_RATIO = 1.02
GOAL_EXTRA_MB = 100.0
PLAIN_SCRIPT = Path(__file__).with_name("_plain_flaml.py")
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_plain(csv: Path, budget: float) -> tuple[ScriptRun, dict[str, Any]]:
    args = [str(PLAIN_SCRIPT), "--csv", str(csv), "--columns", json.dumps(ADULT_COLUMNS), "--target", TARGET]
    args += ["--budget", str(budget), "--metric", METRIC, "--seed", str(SEED), "--n-jobs", "1"]
    run = run_script(args, env=SINGLE_THREAD, interval_s=0.1)
    return run, json.loads(run.stdout.strip().splitlines()[-1])


def run_api(csv: Path, budget: float) -> dict[str, Any]:
    with Server() as server, server.client() as client:
        wait_for_warm_pool(server)
        ingest = {"name": "adult", "header": False, "columns": ADULT_COLUMNS}
        run_step(client, "dataset", "csv", ingest, upload=csv)
        wait_for_warm_pool(server)
        time.sleep(1.0)  # the warm pool and the API process at rest before the measured step
        body = {
            "name": "adult_flaml",
            "parentName": "adult",
            "target": TARGET,
            "task": "classification",
            "timeBudget": budget,
            "metric": METRIC,
            "seed": SEED,
        }
        with RssSampler(server.pid, interval_s=0.1) as sampler:
            timing = run_step(client, "automl", "flaml", body)
        board = client.content("dataset", "leaderboard", "adult_flaml_leaderboard", limit=100)[1:]
        workers = {process.pid for process in worker_processes(server.pid)}
        return {
            "timing": timing,
            "peakRss": sampler.peak,
            "idleRss": sampler.first,
            "breakdown": peak_breakdown(sampler.at_peak, server.pid, workers),
            "trials": sum(int(row["iterations"]) for row in board),
        }


def peak_breakdown(at_peak: dict[int, int], server_pid: int, workers: set[int]) -> dict[str, float]:
    """MB per process at the moment of the peak: the API process, the busiest worker (the job), the rest."""
    server = at_peak.get(server_pid, 0)
    others = sorted((rss for pid, rss in at_peak.items() if pid != server_pid), reverse=True)
    job = others[0] if others else 0
    return {
        "apiProcessMb": rss_mb(server),
        "jobWorkerMb": rss_mb(job),
        "otherProcessesMb": rss_mb(sum(others[1:])),
        "processes": len(at_peak),
        "workersAlive": len(workers),
    }


def main(quick: bool = False) -> dict[str, Any]:
    budget = 10.0 if quick else 60.0
    csv = datasets_dir() / "adult" / "adult.data"
    section(f"flaml: automl/flaml on adult.data, timeBudget {budget:g} s, metric {METRIC}, seed {SEED}, n_jobs 1")
    print("plain script ...", flush=True)
    plain, plain_result = run_plain(csv, budget)
    print("API ...", flush=True)
    api = run_api(csv, budget)
    timing: StepTiming = api["timing"]
    ratio = timing.total_s / plain.wall_s
    extra_mb = rss_mb(api["peakRss"] - plain.peak_rss)
    used = timing.metadata.get("columns", {}).get("used")
    if used != plain_result["features"]:
        print(f"WARNING: feature columns differ: API {used}, plain {plain_result['features']}")
    best_loss = timing.metadata.get("bestLoss")
    rows = [
        ("wall s (API: POST -> settled)", f"{timing.total_s:.2f}", f"{plain.wall_s:.2f}", f"ratio {ratio:.4f}"),
        ("  run wallS (API) / fit s (plain)", f"{timing.wall_s:.2f}", f"{plain_result['fitS']:.2f}", ""),
        ("  imports + CSV load s (plain)", "", f"{plain_result['importS'] + plain_result['loadS']:.2f}", ""),
        ("trials in the budget", str(api["trials"]), str(plain_result["trials"]), ""),
        ("best learner", str(timing.metadata.get("bestLearner")), str(plain_result["bestLearner"]), ""),
        ("best loss", f"{best_loss:.5f}" if best_loss is not None else "-", f"{plain_result['bestLoss']:.5f}", ""),
        ("peak RSS MB", f"{rss_mb(api['peakRss']):.1f}", f"{rss_mb(plain.peak_rss):.1f}", f"+{extra_mb:.1f} MB"),
    ]
    print_comparison(rows, "plain script")
    print(f"peak breakdown (MB): {api['breakdown']}; server tree at rest before the step: {rss_mb(api['idleRss'])} MB")
    print(f"wall ratio {ratio:.4f} (goal <= {GOAL_WALL_RATIO}): {verdict(ratio <= GOAL_WALL_RATIO)}")
    print(f"extra peak memory {extra_mb:.1f} MB (goal <= {GOAL_EXTRA_MB:g}): {verdict(extra_mb <= GOAL_EXTRA_MB)}")
    record = {
        "budgetS": budget,
        "metric": METRIC,
        "api": {
            "wallS": round(timing.total_s, 3),
            "runWallS": timing.wall_s,
            "peakRssMb": rss_mb(api["peakRss"]),
            "serverTreeAtRestMb": rss_mb(api["idleRss"]),
            "peakBreakdown": api["breakdown"],
            "trials": api["trials"],
            "bestLearner": timing.metadata.get("bestLearner"),
            "bestLoss": timing.metadata.get("bestLoss"),
            "featuresUsed": used,
        },
        "plain": {"wallS": round(plain.wall_s, 3), "peakRssMb": rss_mb(plain.peak_rss), **plain_result},
        "wallRatio": round(ratio, 4),
        "extraPeakMb": extra_mb,
        "goals": {"wallRatio": GOAL_WALL_RATIO, "extraPeakMb": GOAL_EXTRA_MB},
        "met": {"wallRatio": ratio <= GOAL_WALL_RATIO, "extraPeakMb": extra_mb <= GOAL_EXTRA_MB},
    }
    write_result(NAME, quick, record)
    return record
