"""Generated time series for the tsfresh/TPOT tests: sine vs square waves with noise, two channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def waves(
    series: int = 40, length: int = 30, seed: int = 0, first_id: int = 0
) -> tuple[list[list[np.ndarray]], list[str]]:
    """``series`` two-channel series, half ``sine`` and half ``square`` (labels), with Gaussian noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, length)
    values, labels = [], []
    for i in range(series):
        label = "sine" if i % 2 == 0 else "square"
        phase = rng.uniform(0, np.pi)
        base = np.sin(t + phase) if label == "sine" else np.sign(np.sin(t + phase))
        values.append([base + rng.normal(0, 0.2, length), rng.normal(0, 1, length)])
        labels.append(label)
    return values, labels


def write_long_csv(path: Path, labels_path: Path, **kwargs: int) -> list[str]:
    first_id = kwargs.pop("first_id", 0)
    values, labels = waves(**kwargs)
    lines = ["id,time,a,b"]
    for i, (a, b) in enumerate(values):
        lines.extend(f"{first_id + i},{t},{a[t]:.5f},{b[t]:.5f}" for t in range(len(a)))
    path.write_text("\n".join(lines) + "\n")
    labels_path.write_text("id,label\n" + "".join(f"{first_id + i},{label}\n" for i, label in enumerate(labels)))
    return labels


def write_ts(path: Path, **kwargs: int) -> list[str]:
    values, labels = waves(**kwargs)
    header = [
        "# generated",
        "@problemName Waves",
        "@timeStamps false",
        "@univariate false",
        "@dimensions 2",
        "@equalLength true",
        f"@seriesLength {len(values[0][0])}",
        "@classLabel true sine square",
        "@data",
    ]
    rows = [
        ":".join(",".join(f"{v:.5f}" for v in dim) for dim in series) + f":{label}"
        for series, label in zip(values, labels, strict=True)
    ]
    path.write_text("\n".join(header + rows) + "\n")
    return labels
