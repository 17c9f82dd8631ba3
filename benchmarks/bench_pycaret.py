"""pycaret: the seed's Appendix A pipeline as a ``builder/pycaret`` step against the same code run directly by
the PyCaret environment's interpreter, one after the other in the same run (the direct script first, with no
server running).

* direct: ``benchmarks/_plain_pycaret.py`` run by ``.venv-pycaret/bin/python`` (train.csv read with pandas,
  the code executed with ``train`` as a global in a fresh directory). Wall = process start to exit (Python
  start, imports, load, the pipeline); peak RSS of its process tree.
* API: a fresh server; train.csv ingested and one small warm-up builder step first (not timed: the forking
  PyCaret worker is started once per server, as in a session), then wall = POST ``/builder/pycaret`` until
  the observe long-poll answers settled; peak RSS of the server's whole tree (API process + every worker).

Goals (issue 3): wall ratio API / direct <= 1.02; extra peak memory <= 100 MB.
"""

from __future__ import annotations

import json
import time
from typing import Any

from automl_orchestra.config import Settings
from benchmarks._appendix_a import FULL, QUICK
from benchmarks._harness import (
    REPO_ROOT,
    RssSampler,
    Server,
    datasets_dir,
    print_comparison,
    rss_mb,
    run_script,
    run_step,
    section,
    verdict,
    write_result,
)

NAME = "pycaret"
GOAL_WALL_RATIO = 1.02
GOAL_EXTRA_MB = 100.0
PLAIN_SCRIPT = REPO_ROOT / "benchmarks" / "_plain_pycaret.py"


def pycaret_python() -> str:
    python = Settings().environment_pythons.get("pycaret")
    if python is None:
        raise SystemExit("no 'pycaret' engine environment: run scripts/bootstrap.sh (it creates .venv-pycaret)")
    return python


def run_api(code: str) -> dict[str, Any]:
    csv = datasets_dir() / "titanic" / "train.csv"
    with Server() as server, server.client() as client:
        run_step(client, "dataset", "csv", {"name": "train"}, upload=csv)
        run_step(client, "builder", "pycaret", {"name": "warm_up", "code": "response = pycaret.__version__"})
        time.sleep(1.0)  # the API process and the workers at rest before the measured step
        body = {"name": "appendix_a", "code": code, "parameters": {"train": "$train"}}
        with RssSampler(server.pid, interval_s=0.1) as sampler:
            timing = run_step(client, "builder", "pycaret", body)
        score = client.content("builder", "pycaret", "appendix_a")
        return {"timing": timing, "peakRss": sampler.peak, "idleRss": sampler.first, "result": score}


def main(quick: bool = False) -> dict[str, Any]:
    code = QUICK if quick else FULL
    section(f"pycaret: Appendix A {'(quick: 3 models, 5 tuning iterations)' if quick else '(as written)'}")
    args = [str(PLAIN_SCRIPT), "--csv", str(datasets_dir() / "titanic" / "train.csv")]
    print("direct script in the PyCaret environment ...", flush=True)
    plain = run_script([*args, *(["--quick"] if quick else [])], python=pycaret_python(), interval_s=0.1)
    plain_result = json.loads(plain.stdout.strip().splitlines()[-1])
    print("API ...", flush=True)
    api = run_api(code)
    timing = api["timing"]
    ratio = timing.total_s / plain.wall_s
    extra_mb = rss_mb(api["peakRss"] - plain.peak_rss)
    rows = [
        ("wall s (API: POST -> settled)", f"{timing.total_s:.2f}", f"{plain.wall_s:.2f}", f"ratio {ratio:.4f}"),
        ("  run wallS (API) / code s (direct)", f"{timing.wall_s:.2f}", f"{plain_result['runS']:.2f}", ""),
        ("  imports + CSV load s (direct)", "", f"{plain_result['importS'] + plain_result['loadS']:.2f}", ""),
        ("peak RSS MB", f"{rss_mb(api['peakRss']):.1f}", f"{rss_mb(plain.peak_rss):.1f}", f"+{extra_mb:.1f} MB"),
        ("score grid mean accuracy (direct)", "", f"{plain_result['meanAccuracy']:.4f}", ""),
    ]
    print_comparison(rows, "direct")
    print(f"server tree at rest before the step: {rss_mb(api['idleRss'])} MB")
    print(f"wall ratio {ratio:.4f} (goal <= {GOAL_WALL_RATIO}): {verdict(ratio <= GOAL_WALL_RATIO)}")
    print(f"extra peak memory {extra_mb:.1f} MB (goal <= {GOAL_EXTRA_MB:g}): {verdict(extra_mb <= GOAL_EXTRA_MB)}")
    record = {
        "quick": quick,
        "api": {
            "wallS": round(timing.total_s, 3),
            "runWallS": timing.wall_s,
            "peakRssMb": rss_mb(api["peakRss"]),
            "serverTreeAtRestMb": rss_mb(api["idleRss"]),
        },
        "direct": {"wallS": round(plain.wall_s, 3), "peakRssMb": rss_mb(plain.peak_rss), **plain_result},
        "wallRatio": round(ratio, 4),
        "extraPeakMb": extra_mb,
        "goals": {"wallRatio": GOAL_WALL_RATIO, "extraPeakMb": GOAL_EXTRA_MB},
        "met": {"wallRatio": ratio <= GOAL_WALL_RATIO, "extraPeakMb": extra_mb <= GOAL_EXTRA_MB},
    }
    write_result(NAME, quick, record)
    return record
