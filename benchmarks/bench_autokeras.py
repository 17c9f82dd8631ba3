"""autokeras: the seed's Appendix B MNIST pipeline through the API against the same AutoKeras calls in a
plain script, and ``automl/autokeras`` on the same split.

Data: ``mnist/mnist_t10k.npz`` (the 10k MNIST test images), split 80/20 with
``numpy.random.RandomState(0).permutation`` on both sides. Both sides in one run, the plain script first
(no server running), torch on ``CPUS`` threads on both sides (the API's steps ask for ``limits.cpus``).

* plain: ``benchmarks/_plain_autokeras.py`` in a subprocess: imports, load, ``ImageClassifier(max_trials,
  seed=1).fit(epochs, validation_split=0.1)``, ``predict``, ``evaluate``. Wall = process start to exit.
* API: a fresh server; wall = upload of the npz (``dataset/generic``) until the evaluate step settled
  (function load/split, model, train, predict, evaluate: the whole Appendix B pipeline, imports included).
* memory: peak resident memory of the plain script, and of the server's process tree (API process, idle
  warm workers, the train job and its trial child) while the train step runs -- as RSS (what the supervisor
  limits; pages shared between a forked trial and its parent count twice) and as PSS (shared pages split
  between processes: the real footprint).
* automl: ``automl/autokeras`` (maxTrials, epochs, timeBudget) on the same split; test accuracy by
  ``evaluate/autokeras``; the step's peak memory against its limit.

* default search: AutoKeras' own ``ImageClassifier(max_trials=3)`` through ``train/autokeras`` under a step
  time limit: its ResNet50 trial (ImageNet-size upscaling) must be stopped at the step's memory limit and
  the search finish in time, while ``GET /health`` keeps answering (latency reported).

Goals: same accuracy as the plain script; wall ratio API / plain <= 1.02; extra peak memory <= 100 MB;
automl/autokeras >= 0.98 test accuracy within a 600 s budget (full run); the default search finishes within
its limit with the ResNet trial stopped at the memory limit.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks._harness import (
    PeriodicSampler,
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
    write_result,
)

NAME = "autokeras"
CPUS = 2
MEMORY_MB = 8192
GOAL_WALL_RATIO = 1.02
GOAL_EXTRA_MB = 100.0
GOAL_AUTOML_ACCURACY = 0.98
PLAIN_SCRIPT = Path(__file__).with_name("_plain_autokeras.py")
LOAD_CODE = """
import numpy as np
with np.load(mnist) as f:
    x, y = f["x_test"], f["y_test"]
order = np.random.RandomState(0).permutation(len(y))[:samples]
cut = int(len(order) * 0.8)
response = {"train_images": x[order[:cut]], "train_labels": y[order[:cut]],
            "test_images": x[order[cut:]], "test_labels": y[order[cut:]]}
"""
TEST = {"x": "$mnist_load.test_images", "y": "$mnist_load.test_labels"}


class PssSampler(PeriodicSampler):
    """Peak of the summed proportional set size (shared pages split between their processes) of a tree,
    and of the step's own processes in it: those below a worker (the forked job and its trial child)."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        super().__init__(interval_s)
        self.root = psutil.Process(pid)
        self.peak = 0
        self.job_peak = 0

    def sample(self) -> None:
        workers = _safe_children(self.root, recursive=False)
        jobs = [job for worker in workers for job in _safe_children(worker)]
        self.peak = max(self.peak, _pss([self.root, *workers, *jobs]))
        self.job_peak = max(self.job_peak, _pss(jobs))


def _safe_children(process: psutil.Process, recursive: bool = True) -> list[psutil.Process]:
    try:
        return list(process.children(recursive=recursive))
    except psutil.Error:
        return []


def _pss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            continue
    return total


def run_plain(npz: Path, samples: int, trials: int, epochs: int) -> tuple[ScriptRun, dict[str, Any], int]:
    args = [str(PLAIN_SCRIPT), "--npz", str(npz), "--samples", str(samples), "--trials", str(trials)]
    args += ["--epochs", str(epochs), "--cpus", str(CPUS)]
    pss_peak = 0

    def watch() -> None:  # PSS of the plain script (its own RSS sampler runs inside run_script)
        nonlocal pss_peak
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not found:
            for process in psutil.process_iter(["cmdline"]):
                if str(PLAIN_SCRIPT) in " ".join(process.info["cmdline"] or []):
                    found.append(process)
            time.sleep(0.05)
        while found:
            try:
                pss_peak = max(pss_peak, found[0].memory_full_info().pss)
            except psutil.Error:
                return
            time.sleep(0.5)

    found: list[psutil.Process] = []
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run = run_script(args, env={"KERAS_BACKEND": "torch"}, interval_s=0.1)
    found.clear()
    watcher.join()
    return run, json.loads(run.stdout.strip().splitlines()[-1]), pss_peak


def run_api(npz: Path, samples: int, trials: int, epochs: int) -> dict[str, Any]:
    with Server() as server, server.client() as client:
        wait_for_warm_pool(server)
        time.sleep(1.0)
        started = time.perf_counter()
        run_step(client, "dataset", "generic", {"name": "mnist"}, upload=npz)
        code = {"name": "mnist_load", "code": LOAD_CODE, "parameters": {"mnist": "$mnist", "samples": samples}}
        run_step(client, "function", "python", code)
        classifier = {"overwrite": True, "max_trials": trials, "seed": 1}
        model = {"name": "mnist_model", "modulePath": "autokeras.tasks.image", "class": "ImageClassifier"}
        run_step(client, "model", "autokeras", {**model, "classParameters": classifier})
        fit = {"x": "$mnist_load.train_images", "y": "$mnist_load.train_labels", "epochs": epochs}
        body = {
            "name": "mnist_trained",
            "parentName": "mnist_model",
            "method": "fit",
            "methodParameters": {**fit, "validation_split": 0.1},
            "limits": {"cpus": CPUS, "memoryMb": MEMORY_MB, "timeoutS": 7200},
        }
        with RssSampler(server.pid, interval_s=0.1) as rss, PssSampler(server.pid) as pss:
            train = run_step(client, "train", "autokeras", body)
        limits = {"cpus": CPUS}
        predict = {"name": "mnist_predicted", "parentName": "mnist_trained", "methodParameters": {"x": TEST["x"]}}
        run_step(client, "predict", "autokeras", {**predict, "limits": limits})
        evaluate = {"name": "mnist_evaluated", "parentName": "mnist_trained", "methodParameters": TEST}
        evaluated = run_step(client, "evaluate", "autokeras", {**evaluate, "limits": limits})
        wall = time.perf_counter() - started
        board = client.content("dataset", "leaderboard", "mnist_trained_leaderboard", limit=100)[1:]
        return {
            "wallS": wall,
            "train": train,
            "metrics": evaluated.metadata["metrics"],
            "peakRss": rss.peak,
            "idleRss": rss.first,
            "peakPss": pss.peak,
            "jobPss": pss.job_peak,
            "trials": [{key: row[key] for key in ("trial", "status", "reason", "seconds")} for row in board],
        }


def run_automl(npz: Path, samples: int, budget: float, trials: int, epochs: int) -> dict[str, Any]:
    with Server() as server, server.client() as client:
        run_step(client, "dataset", "generic", {"name": "mnist"}, upload=npz)
        code = {"name": "mnist_load", "code": LOAD_CODE, "parameters": {"mnist": "$mnist", "samples": samples}}
        run_step(client, "function", "python", code)
        body = {
            "name": "mnist_automl",
            "parentName": "mnist_load",
            "inputKey": "train_images",
            "target": "train_labels",
            "timeBudget": budget,
            "maxTrials": trials,
            "epochs": epochs,
            "seed": 1,
            "limits": {"cpus": CPUS, "memoryMb": MEMORY_MB, "timeoutS": budget + 120},
        }
        searched = run_step(client, "automl", "autokeras", body)
        evaluate = {"name": "mnist_automl_eval", "parentName": "mnist_automl", "methodParameters": TEST}
        evaluated = run_step(client, "evaluate", "autokeras", {**evaluate, "limits": {"cpus": CPUS}})
        run = client.runs("mnist_automl")[-1]
        board = client.content("dataset", "leaderboard", "mnist_automl_leaderboard", limit=100)[1:]
        return {
            "search": searched,
            "metrics": evaluated.metadata["metrics"],
            "peakMemoryMb": run.get("peakMemoryMb"),
            "refit": searched.metadata.get("refit"),
            "trials": [
                {key: row[key] for key in ("trial", "status", "reason", "score", "epochs", "seconds")} for row in board
            ],
        }


class HealthProbe(PeriodicSampler):
    """``GET /health`` every half second while a search runs: the machine must stay responsive."""

    def __init__(self, server: Server) -> None:
        super().__init__(0.5)
        self.client = server.client(timeout=60)
        self.latencies: list[float] = []

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        self.client.close()

    def sample(self) -> None:
        began = time.perf_counter()
        self.client.health()
        self.latencies.append(time.perf_counter() - began)

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies) or [0.0]
        return {"p50Ms": round(ordered[len(ordered) // 2] * 1000, 1), "maxMs": round(ordered[-1] * 1000, 1)}


def run_default_search(npz: Path, samples: int, trials: int, epochs: int, budget: float) -> dict[str, Any]:
    """AutoKeras' own ImageClassifier search (its trial 2 is a ResNet50 on upscaled images) under a budget."""
    with Server() as server, server.client() as client:
        run_step(client, "dataset", "generic", {"name": "mnist"}, upload=npz)
        code = {"name": "mnist_load", "code": LOAD_CODE, "parameters": {"mnist": "$mnist", "samples": samples}}
        run_step(client, "function", "python", code)
        classifier = {"overwrite": True, "max_trials": trials, "seed": 1}
        model = {"name": "mnist_model", "modulePath": "autokeras.tasks.image", "class": "ImageClassifier"}
        run_step(client, "model", "autokeras", {**model, "classParameters": classifier})
        fit = {"x": "$mnist_load.train_images", "y": "$mnist_load.train_labels", "epochs": epochs}
        body = {
            "name": "mnist_default",
            "parentName": "mnist_model",
            "method": "fit",
            "methodParameters": {**fit, "validation_split": 0.1},
            "limits": {"cpus": CPUS, "memoryMb": MEMORY_MB, "timeoutS": budget},
        }
        with HealthProbe(server) as probe:
            searched = run_step(client, "train", "autokeras", body)
        run = client.runs("mnist_default")[-1]
        board = client.content("dataset", "leaderboard", "mnist_default_leaderboard", limit=100)[1:]
        keys = ("trial", "architecture", "status", "reason", "seconds", "peakMemoryMb")
        return {
            "wallS": searched.wall_s,
            "status": run.get("status"),
            "peakMemoryMb": run.get("peakMemoryMb"),
            "health": probe.summary(),
            "trials": [{key: row.get(key) for key in keys} for row in board],
        }


def main(quick: bool = False) -> dict[str, Any]:
    samples, epochs, trials = (2000, 2, 1) if quick else (10_000, 10, 1)
    automl_budget, automl_trials, automl_epochs = (90.0, 2, 2) if quick else (600.0, 3, 12)
    npz = datasets_dir() / "mnist" / "mnist_t10k.npz"
    section(f"autokeras: Appendix B on {samples} MNIST images, ImageClassifier max_trials {trials}, {epochs} epochs")
    print("plain script ...", flush=True)
    plain, plain_result, plain_pss = run_plain(npz, samples, trials, epochs)
    print("API ...", flush=True)
    api = run_api(npz, samples, trials, epochs)
    train: StepTiming = api["train"]
    ratio = api["wallS"] / plain.wall_s
    extra_rss = rss_mb(api["peakRss"] - plain.peak_rss)
    extra_pss = rss_mb(api["peakPss"] - plain_pss)
    extra_job = rss_mb(api["jobPss"] - plain_pss)
    metrics = api["metrics"]
    rows = [
        ("wall s (whole pipeline / script)", f"{api['wallS']:.1f}", f"{plain.wall_s:.1f}", f"ratio {ratio:.3f}"),
        ("  train step wallS / fit s", f"{train.wall_s:.1f}", f"{plain_result['fitS']:.1f}", ""),
        ("  imports s (plain)", "", f"{plain_result['importS']:.1f}", ""),
        ("test accuracy", f"{metrics['accuracy']:.4f}", f"{plain_result['accuracy']:.4f}", ""),
        ("test loss", f"{metrics['loss']:.4f}", f"{plain_result['loss']:.4f}", ""),
        (
            "peak RSS MB (server tree)",
            f"{rss_mb(api['peakRss']):.0f}",
            f"{rss_mb(plain.peak_rss):.0f}",
            f"+{extra_rss:.0f}",
        ),
        ("peak PSS MB (server tree)", f"{rss_mb(api['peakPss']):.0f}", f"{rss_mb(plain_pss):.0f}", f"+{extra_pss:.0f}"),
        (
            "peak PSS MB (the step's processes)",
            f"{rss_mb(api['jobPss']):.0f}",
            f"{rss_mb(plain_pss):.0f}",
            f"{extra_job:+.0f}",
        ),
    ]
    print_comparison(rows, "plain script")
    print(f"trials: {api['trials']}; server tree at rest: {rss_mb(api['idleRss'])} MB RSS")
    print(f"wall ratio {ratio:.3f} (goal <= {GOAL_WALL_RATIO}): {verdict(ratio <= GOAL_WALL_RATIO)}")
    print(
        f"extra peak memory of the step's processes (PSS) {extra_job:+.0f} MB (goal <= {GOAL_EXTRA_MB:g}): "
        f"{verdict(extra_job <= GOAL_EXTRA_MB)}; whole server tree: PSS {extra_pss:+.0f} MB, RSS {extra_rss:+.0f} MB"
    )
    section(f"automl/autokeras: {automl_budget:g} s budget, maxTrials {automl_trials}, {automl_epochs} epochs")
    automl = run_automl(npz, samples, automl_budget, automl_trials, automl_epochs)
    accuracy = float(automl["metrics"]["accuracy"])
    print(f"trials: {automl['trials']}")
    print(f"refit: {automl['refit']}")
    print(f"wall {automl['search'].total_s:.1f} s, peak {automl['peakMemoryMb']} MB of {MEMORY_MB} MB")
    print(f"test accuracy {accuracy:.4f} (goal >= {GOAL_AUTOML_ACCURACY}): {verdict(accuracy >= GOAL_AUTOML_ACCURACY)}")
    default_trials, default_budget = (3, 240.0) if quick else (3, 900.0)
    section(f"train/autokeras: the default ImageClassifier, max_trials {default_trials}, {default_budget:g} s limit")
    default = run_default_search(npz, samples, default_trials, epochs, default_budget)
    resnet = [row for row in default["trials"] if "resnet" in str(row["architecture"])]
    stopped_at_memory = bool(resnet) and all(str(row["reason"]).startswith("memory limit") for row in resnet)
    within = default["status"] == "finished" and default["wallS"] <= default_budget
    for row in default["trials"]:
        print(f"  {row}")
    print(
        f"wall {default['wallS']:.1f} s of {default_budget:g} s, peak {default['peakMemoryMb']} MB of {MEMORY_MB} MB; "
        f"GET /health while searching: p50 {default['health']['p50Ms']} ms, max {default['health']['maxMs']} ms"
    )
    print(
        f"finished within the limit: {verdict(within)}; "
        f"ResNet trial stopped at the memory limit: {verdict(stopped_at_memory)}"
    )
    record = {
        "samples": samples,
        "epochs": epochs,
        "maxTrials": trials,
        "cpus": CPUS,
        "api": {
            "wallS": round(api["wallS"], 2),
            "trainWallS": train.wall_s,
            "accuracy": metrics["accuracy"],
            "loss": metrics["loss"],
            "peakRssMb": rss_mb(api["peakRss"]),
            "peakPssMb": rss_mb(api["peakPss"]),
            "stepProcessesPeakPssMb": rss_mb(api["jobPss"]),
            "serverTreeAtRestRssMb": rss_mb(api["idleRss"]),
            "trials": api["trials"],
        },
        "plain": {
            "wallS": round(plain.wall_s, 2),
            "peakRssMb": rss_mb(plain.peak_rss),
            "peakPssMb": rss_mb(plain_pss),
            **plain_result,
        },
        "wallRatio": round(ratio, 4),
        "extraPeakRssMb": extra_rss,
        "extraPeakPssMb": extra_pss,
        "extraStepPeakPssMb": extra_job,
        "automl": {
            "budgetS": automl_budget,
            "maxTrials": automl_trials,
            "epochs": automl_epochs,
            "wallS": round(automl["search"].total_s, 2),
            "accuracy": accuracy,
            "loss": automl["metrics"]["loss"],
            "peakMemoryMb": automl["peakMemoryMb"],
            "refit": automl["refit"],
            "trials": automl["trials"],
        },
        "defaultSearch": {"maxTrials": default_trials, "limitS": default_budget, **default},
        "goals": {"wallRatio": GOAL_WALL_RATIO, "extraPeakMb": GOAL_EXTRA_MB, "automlAccuracy": GOAL_AUTOML_ACCURACY},
        "met": {
            "wallRatio": ratio <= GOAL_WALL_RATIO,
            "extraStepPeakPssMb": extra_job <= GOAL_EXTRA_MB,
            "automlAccuracy": accuracy >= GOAL_AUTOML_ACCURACY,
            "defaultSearchWithinLimit": within,
            "resnetStoppedAtMemoryLimit": stopped_at_memory,
        },
    }
    write_result(NAME, quick, record)
    return record
