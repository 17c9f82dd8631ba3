"""The peer of the pycaret benchmark: the Appendix A code run directly by the PyCaret environment's Python.

    .venv-pycaret/bin/python benchmarks/_plain_pycaret.py --csv titanic/train.csv [--quick]

The code runs as the builder step runs it: ``train`` (the CSV, read with pandas) as a global, in a fresh
working directory (PyCaret writes logs.log, the score file and the model there). Prints one JSON line with
the import, load and run seconds and the score grid's mean accuracy.
"""

from __future__ import annotations

import os
import tempfile
import time

# PyCaret opens ./logs.log when it is imported: be in the scratch directory before that.
SCRATCH = tempfile.mkdtemp(prefix="plain-pycaret-")
os.chdir(SCRATCH)
IMPORTS_STARTED = time.perf_counter()

import argparse  # noqa: E402 - the imports are timed
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pycaret  # noqa: E402, F401 - the builder step has it pre-imported

IMPORT_S = time.perf_counter() - IMPORTS_STARTED


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks._appendix_a import FULL, QUICK

    loading = time.perf_counter()
    train = pd.read_csv(args.csv)
    load_s = time.perf_counter() - loading
    running = time.perf_counter()
    namespace = {"train": train, "pd": pd}
    exec(QUICK if args.quick else FULL, namespace)  # the benchmark's subject: the seed's code as is
    run_s = time.perf_counter() - running
    score = pd.read_csv(Path(SCRATCH) / "score", sep="\t", index_col=0)
    os.chdir("/")
    shutil.rmtree(SCRATCH, ignore_errors=True)
    print(
        json.dumps(
            {"importS": IMPORT_S, "loadS": load_s, "runS": run_s, "meanAccuracy": float(score.loc["Mean", "Accuracy"])}
        )
    )


if __name__ == "__main__":
    main()
