"""Robot execution failures LP1 (the tsfresh tutorial data): long CSV + labels, default settings; prints the
mean CV accuracy (4 classes, 88 series: there is no separate test split) and predicts a few series back.

    orchestra serve &
    python examples/robot_failures.py
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from _timeseries import data_file, service, train

if __name__ == "__main__":
    raw = data_file("robot_execution_failures", "lp1_long.csv")
    labels = data_file("robot_execution_failures", "lp1_labels.csv")
    with service() as ts:
        report = train(ts, "lp1", raw, labels)
        # Predict the first five series again (a smoke test of the prediction path, not an accuracy figure).
        with raw.open(newline="") as handle:
            rows = [row for row in csv.reader(handle)]
        subset = [rows[0]] + [row for row in rows[1:] if int(row[0]) <= 5]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "lp1_first5.csv"
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerows(subset)
            print("  predictions for series 1-5:", ts.predict("lp1", path))
