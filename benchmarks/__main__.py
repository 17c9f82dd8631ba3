"""``python -m benchmarks [all|flaml|overhead|ingest|ray|nas|serving|...] [--quick]``: run benchmarks, print
their ratios and write ``benchmarks/results/<name>.json`` (``<name>-quick.json`` with ``--quick``)."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "flaml": "benchmarks.bench_flaml",
    "overhead": "benchmarks.bench_overhead",
    "ingest": "benchmarks.bench_ingest",
    "tpot": "benchmarks.bench_tpot",
    "ray": "benchmarks.bench_ray",
    "compare": "benchmarks.bench_compare",
    "nas": "benchmarks.bench_nas",
    "autokeras": "benchmarks.bench_autokeras",
    "pycaret": "benchmarks.bench_pycaret",
    "serving": "benchmarks.bench_serving",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("which", nargs="?", default="all", choices=["all", *BENCHMARKS])
    parser.add_argument("--quick", action="store_true", help="smaller inputs and budgets: a fast check")
    args = parser.parse_args()
    names = list(BENCHMARKS) if args.which == "all" else [args.which]
    for name in names:
        importlib.import_module(BENCHMARKS[name]).main(quick=args.quick)


if __name__ == "__main__":
    main()
