"""ingest: CSV -> Parquet ingest throughput against pyarrow itself, and the memory of a content page read.

Files: UCI adult.data (no header: ``header: false`` and the 15 column names) and a generated CSV of
1,000,000 rows and 8 numeric/text/boolean columns, written to a temporary import directory.

* Throughput: ``dataset/csv`` with a server ``path`` (ORCHESTRA_IMPORT_DIRS), so no upload is timed;
  MB/s = file size / the run's ``wallS``. The peer, in the same run on the same file:
  ``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table`` (defaults), and the same with the CSV reader on
  one thread (a step gets one CPU by default). Medians of ``REPEATS`` runs each. Goal: API / pyarrow >= 0.8.
* Page memory: the API process's RSS, sampled every 2 ms, while it serves
  ``GET /dataset/csv/{name}?skip=500000&limit=100`` (the last page for a smaller table) ``PAGE_READS``
  times; increase = peak - RSS before; ``PAGE_ROUNDS`` interleaved rounds, the largest increase is kept.
  The first page read of the process is excluded (reported apart: pyarrow.parquet/compute load lazily).
  It must not grow with the dataset: 1M rows vs adult (32k rows).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from automl_orchestra.client import Client
from benchmarks._harness import (
    ADULT_COLUMNS,
    MB,
    RssSampler,
    Server,
    datasets_dir,
    format_table,
    median,
    rss_mb,
    run_step,
    section,
    verdict,
    wait_for_warm_pool,
    write_result,
)

NAME = "ingest"
REPEATS = 3
PAGE_READS = 10
PAGE_ROUNDS = 3
PAGE_SKIP = 500_000
PAGE_LIMIT = 100
GOAL_RATIO = 0.8


@dataclass(frozen=True)
class CsvCase:
    name: str
    path: Path
    header: bool = True
    columns: list[str] | None = None

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / MB

    def body(self, step: str) -> dict[str, Any]:
        # The step may use every core, as pyarrow's reader does by default (like for like; a step gets one CPU
        # unless it asks for more).
        body: dict[str, Any] = {
            "name": step,
            "path": str(self.path),
            "header": self.header,
            "limits": {"cpus": os.cpu_count() or 1},
        }
        if self.columns:
            body["columns"] = self.columns
        return body


def generate_csv(path: Path, rows: int, seed: int = 1) -> Path:
    """``rows`` rows of ids, integers, floats (some missing), categories, booleans and short free text."""
    rng = np.random.default_rng(seed)
    cities = np.array([f"city_{i:03d}" for i in range(200)])
    score = rng.normal(50, 15, rows).round(3)
    score[rng.random(rows) < 0.02] = np.nan
    frame = pd.DataFrame(
        {
            "id": np.arange(1, rows + 1),
            "age": rng.integers(18, 91, rows),
            "income": rng.lognormal(10, 0.6, rows).round(2),
            "score": score,
            "city": cities[rng.integers(0, len(cities), rows)],
            "segment": np.array(list("ABCDE"))[rng.integers(0, 5, rows)],
            "active": rng.random(rows) < 0.3,
            "note": [f"order {n} ok" for n in rng.integers(0, 10**6, rows)],
        }
    )
    frame.to_csv(path, index=False)
    return path


def pyarrow_seconds(case: CsvCase, out: Path, threads: bool = True) -> float:
    """The direct peer: read the CSV with pyarrow and write it as Parquet (defaults; ``threads=False``: the CSV
    reader on one thread, as much CPU as a step gets by default)."""
    started = time.perf_counter()
    read_options = pcsv.ReadOptions(use_threads=threads, column_names=None if case.header else case.columns)
    table = pcsv.read_csv(case.path, read_options=read_options)
    pq.write_table(table, out)
    return time.perf_counter() - started


def measure_throughput(client: Client, case: CsvCase, scratch: Path, repeats: int) -> dict[str, Any]:
    """API ingest, pyarrow and single-threaded pyarrow, one after the other, ``repeats`` times; medians."""
    api_s, total_s, cpu_s, direct_s, single_s = [], [], [], [], []
    out = scratch / f"{case.name}.parquet"
    for run in range(repeats):
        timing = run_step(client, "dataset", "csv", case.body(f"{case.name}_{run}"))
        api_s.append(timing.wall_s)
        total_s.append(timing.total_s)
        cpu_s.append(float(client.runs(timing.name)[-1]["cpuTimeS"]))
        direct_s.append(pyarrow_seconds(case, out))
        single_s.append(pyarrow_seconds(case, out, threads=False))
    api_mbs = case.size_mb / median(api_s)
    direct_mbs, single_mbs = case.size_mb / median(direct_s), case.size_mb / median(single_s)
    return {
        "file": case.path.name,
        "sizeMb": round(case.size_mb, 2),
        "rows": client.get(f"{case.name}_0")["rowCount"],
        "apiWallS": [round(value, 3) for value in api_s],
        "apiCpuS": [round(value, 3) for value in cpu_s],
        "apiPostToSettledS": [round(value, 3) for value in total_s],
        "pyarrowS": [round(value, 3) for value in direct_s],
        "pyarrowOneThreadS": [round(value, 3) for value in single_s],
        "apiMbS": round(api_mbs, 1),
        "pyarrowMbS": round(direct_mbs, 1),
        "pyarrowOneThreadMbS": round(single_mbs, 1),
        "ratio": round(api_mbs / direct_mbs, 3),
        "ratioOneThread": round(api_mbs / single_mbs, 3),
    }


def page_reads(server: Server, client: Client, step: str, rows: int) -> dict[str, Any]:
    """API-process RSS increase while it serves ``PAGE_READS`` reads of one page of ``step``."""
    skip = min(PAGE_SKIP, max(0, rows - PAGE_LIMIT))
    latencies = []
    with RssSampler(server.pid, tree=False, interval_s=0.002) as sampler:
        for _ in range(PAGE_READS):
            started = time.perf_counter()
            page = client.content("dataset", "csv", step, skip=skip, limit=PAGE_LIMIT)
            latencies.append(time.perf_counter() - started)
    if len(page) != PAGE_LIMIT + 1:
        raise RuntimeError(f"expected {PAGE_LIMIT} rows from {step} at skip {skip}, got {len(page) - 1}")
    return {
        "skip": skip,
        "rssBeforeMb": rss_mb(sampler.first),
        "increaseMb": rss_mb(sampler.peak - (sampler.first or 0)),
        "pageMs": median(latencies) * 1000,
    }


def page_memory(server: Server, client: Client, tables: dict[str, int]) -> dict[str, dict[str, Any]]:
    """``PAGE_ROUNDS`` interleaved rounds over the tables (name -> rows), so that none is favoured by being
    read after the allocator has grown; per table the largest increase of any round."""
    rounds = [
        {step: page_reads(server, client, step, rows) for step, rows in tables.items()} for _ in range(PAGE_ROUNDS)
    ]
    summary = {}
    for step, rows in tables.items():
        reads = [one_round[step] for one_round in rounds]
        summary[step] = {
            "step": step,
            "rows": rows,
            "skip": reads[0]["skip"],
            "rssBeforeMb": reads[0]["rssBeforeMb"],
            "increaseMbPerRound": [read["increaseMb"] for read in reads],
            "increaseMb": max(read["increaseMb"] for read in reads),
            "pageMs": round(median([read["pageMs"] for read in reads]), 1),
        }
    return summary


def first_read_cost(server: Server, client: Client, step: str) -> float:
    """MB the API process gains on its first content page (pyarrow.parquet/compute load lazily), excluded
    from the page measurements that follow."""
    with RssSampler(server.pid, tree=False, interval_s=0.002) as sampler:
        client.content("dataset", "csv", step, limit=PAGE_LIMIT)
    return rss_mb(sampler.peak - (sampler.first or 0))


def table_memory_mb(path: Path, columns: list[str] | None) -> float:
    """What holding the whole table in memory would take (Arrow), for scale."""
    read_options = pcsv.ReadOptions(column_names=columns) if columns else None
    table: pa.Table = pcsv.read_csv(path, read_options=read_options)
    return round(table.nbytes / MB, 1)


def main(quick: bool = False) -> dict[str, Any]:
    rows = 200_000 if quick else 1_000_000
    repeats = 1 if quick else REPEATS
    adult = datasets_dir() / "adult" / "adult.data"
    section(f"ingest: adult.data and a generated {rows:,}-row CSV, path ingest vs pyarrow, {repeats} run(s) each")
    with tempfile.TemporaryDirectory(prefix="orchestra-ingest-") as folder:
        scratch = Path(folder)
        imports = scratch / "imports"
        imports.mkdir()
        big = CsvCase("synthetic", generate_csv(imports / f"synthetic_{rows}.csv", rows))
        small = CsvCase("adult", adult, header=False, columns=ADULT_COLUMNS)
        env = {"ORCHESTRA_IMPORT_DIRS": os.pathsep.join([str(imports), str(adult.parent)])}
        with Server(env=env) as server, server.client() as client:
            wait_for_warm_pool(server)
            throughput = {case.name: measure_throughput(client, case, scratch, repeats) for case in (small, big)}
            first_read = first_read_cost(server, client, "adult_0")
            tables = {f"{case.name}_0": throughput[case.name]["rows"] for case in (small, big)}
            pages = page_memory(server, client, tables)
        full_table_mb = table_memory_mb(big.path, None)
    report(throughput, pages, full_table_mb, first_read)
    ratios = [item["ratio"] for item in throughput.values()]
    growth = pages["synthetic_0"]["increaseMb"] - pages["adult_0"]["increaseMb"]
    record = {
        "rows": rows,
        "repeats": repeats,
        "throughput": throughput,
        "pageRead": pages,
        "pageGrowthMb": round(growth, 1),
        "wholeTableArrowMb": full_table_mb,
        "firstPageReadMb": first_read,
        "goal": {"ratio": GOAL_RATIO},
        "met": {name: item["ratio"] >= GOAL_RATIO for name, item in throughput.items()},
    }
    print(f"\nthroughput ratio API / pyarrow: {', '.join(f'{r:.3f}' for r in ratios)} (goal >= {GOAL_RATIO})")
    for name, item in throughput.items():
        print(f"  {name}: {verdict(item['ratio'] >= GOAL_RATIO)}")
    write_result(NAME, quick, record)
    return record


def report(
    throughput: dict[str, dict[str, Any]], pages: dict[str, dict[str, Any]], full_table_mb: float, first_read: float
) -> None:
    columns = [
        ("file", "file", ""),
        ("sizeMb", "MB", ".1f"),
        ("rows", "rows", ","),
        ("apiMbS", "API MB/s (wallS)", ".1f"),
        ("pyarrowMbS", "pyarrow MB/s", ".1f"),
        ("ratio", "ratio", ".3f"),
        ("pyarrowOneThreadMbS", "pyarrow 1-thread MB/s", ".1f"),
        ("ratioOneThread", "ratio", ".3f"),
    ]
    print(format_table(list(throughput.values()), columns))
    print(f"\ncontent page reads ({PAGE_ROUNDS} rounds of {PAGE_READS} x limit {PAGE_LIMIT}), API process RSS:")
    columns = [
        ("step", "dataset", ""),
        ("rows", "rows", ","),
        ("skip", "skip", ","),
        ("rssBeforeMb", "RSS before MB", ".1f"),
        ("increaseMb", "max increase MB", ".1f"),
        ("pageMs", "page ms", ".1f"),
    ]
    print(format_table(list(pages.values()), columns))
    print(f"(the whole {pages['synthetic_0']['rows']:,}-row table held in Arrow would take {full_table_mb} MB;")
    print(f" the API process's first page read, excluded above, added {first_read} MB once: pyarrow loads lazily)")
