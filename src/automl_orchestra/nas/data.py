"""Training data for NAS steps: image tensors (an ``.npz`` of arrays, or a table of pixel columns reshaped
with ``inputShape``) and tabular data (a table: numeric columns standardised, text columns one-hot).

The split is a pure function of the data and the settings (seed, sizes), so ``nas/train`` and a later
``nas/evaluate`` (or its re-execution) see exactly the same test rows. How raw inputs became the network's
inputs (columns, encoding, scaling, standardisation with the training statistics) is the split's
``preprocessing``, a JSON recipe stored with the trained network: :func:`prepare_inputs` applies it to new
rows, so a served network sees its inputs as it saw them in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Data that cannot feed a network; the message says why."""


@dataclass(frozen=True)
class DataSettings:
    target: str | None = None
    input_shape: tuple[int, ...] | None = None
    test_size: float = 0.2
    validation_size: float = 0.1
    max_rows: int | None = None
    seed: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "inputShape": list(self.input_shape) if self.input_shape else None,
            "testSize": self.test_size,
            "validationSize": self.validation_size,
            "maxRows": self.max_rows,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataSettings:
        shape = data.get("inputShape")
        return cls(
            target=data.get("target"),
            input_shape=tuple(int(v) for v in shape) if shape else None,
            test_size=float(data.get("testSize", 0.2)),
            validation_size=float(data.get("validationSize", 0.1)),
            max_rows=int(data["maxRows"]) if data.get("maxRows") else None,
            seed=int(data.get("seed", 1)),
        )


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    kind: str  # "image" or "tabular"
    labels: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)  # the recipe of prepare_inputs

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.x_train.shape[1:])


def load(value: Any, settings: DataSettings) -> Split:
    """Features and labels of a resolved ``data`` reference, shuffled and split by ``settings``."""
    x, y, kind, recipe = _arrays(value, settings)
    if len(x) != len(y):
        raise DataError(f"{len(x)} samples but {len(y)} labels")
    classes, codes = np.unique(y.astype(str), return_inverse=True)
    if len(classes) < 2:
        raise DataError("the labels hold fewer than two classes")
    order = np.random.default_rng(settings.seed).permutation(len(x))
    if settings.max_rows:
        order = order[: settings.max_rows]
    n_test = max(1, round(len(order) * settings.test_size))
    n_valid = max(1, round((len(order) - n_test) * settings.validation_size)) if settings.validation_size else 0
    test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    if len(train) < 2:
        raise DataError(f"only {len(train)} training rows after the split: use more data or smaller sizes")
    x = x.astype(np.float32)
    recipe["shape"] = [int(v) for v in x.shape[1:]]
    if kind == "tabular":  # standardise with training statistics only
        mean, std = x[train].mean(axis=0), x[train].std(axis=0)
        scale = np.where(std > 0, std, 1.0)
        x = (x - mean) / scale
        recipe.update(mean=mean.tolist(), std=scale.tolist())
    codes = codes.astype(np.int64)
    names = [str(c) for c in classes]
    split = Split(x[train], codes[train], x[valid], codes[valid], x[test], codes[test], names, kind)
    split.preprocessing = recipe
    return split


def prepare_inputs(recipe: dict[str, Any], rows: pd.DataFrame | np.ndarray) -> np.ndarray:
    """New rows as the network's inputs, by the ``preprocessing`` recipe of the split it trained on: a table
    of the training columns (``recipe["columns"]``), or rows of the flat input values in order."""
    if recipe.get("encoded"):  # numeric columns (missing: the training median) and one-hot text columns
        frame = pd.DataFrame(rows)
        numeric = frame[recipe["numeric"]].apply(pd.to_numeric, errors="raise").astype(np.float32)
        parts = [numeric.fillna(dict(zip(recipe["numeric"], recipe["medians"], strict=True))).to_numpy(np.float32)]
        for column, levels in recipe["levels"].items():
            values = frame[column].astype("string").fillna(MISSING_LEVEL).to_numpy(dtype=object)
            parts.append(np.stack([values == level for level in levels], axis=1).astype(np.float32))
        x = np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32)
    else:
        if isinstance(rows, pd.DataFrame):
            rows = rows[recipe["columns"]] if recipe.get("columns") else rows
            rows = rows.to_numpy(dtype=np.float32)
        x = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1) / float(recipe.get("scale", 1.0))
        if recipe.get("columns"):
            x = np.nan_to_num(x)
    shape = [int(v) for v in recipe["shape"]]
    if x.shape[1] != int(np.prod(shape)):
        raise DataError(f"the network takes {int(np.prod(shape))} values per sample (shape {shape}), not {x.shape[1]}")
    x = x.reshape(len(x), *shape)
    if recipe.get("mean") is not None:
        x = (x - np.asarray(recipe["mean"], dtype=np.float32)) / np.asarray(recipe["std"], dtype=np.float32)
    return x.astype(np.float32)


MISSING_LEVEL = "(missing)"


def _arrays(value: Any, settings: DataSettings) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any]]:
    if isinstance(value, str) and value.endswith(".npz"):
        with np.load(Path(value), allow_pickle=False) as archive:
            return _from_mapping({name: archive[name] for name in archive.files}, settings)
    if isinstance(value, dict):
        return _from_mapping(value, settings)
    if isinstance(value, pd.DataFrame):
        return _from_table(value, settings)
    raise DataError(
        f"'data' must reference a dataset table, an .npz file (dataset/generic) or an arrays step, "
        f"got {type(value).__name__}"
    )


def _from_mapping(arrays: dict[str, Any], settings: DataSettings) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any]]:
    """``x``/``y`` arrays, or the first array whose name starts with x and with y (``x_test``, ``y_test``)."""
    x_key = _key(arrays, "x")
    y_key = settings.target if settings.target in arrays else _key(arrays, "y")
    x, y = np.asarray(arrays[x_key]), np.asarray(arrays[y_key]).reshape(-1)
    recipe: dict[str, Any] = {"columns": None, "scale": 1.0}
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
        recipe["scale"] = 255.0
    if settings.input_shape:
        x = _reshape(x, settings.input_shape)
    elif x.ndim == 3:
        x = x[:, None, :, :]  # N x H x W grey images
    return x, y, "image" if x.ndim == 4 else "tabular", recipe


def _from_table(frame: pd.DataFrame, settings: DataSettings) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any]]:
    if not settings.target or settings.target not in frame.columns:
        raise DataError(f"target {settings.target!r} is not a column of the dataset: {list(frame.columns)[:30]}")
    frame = frame[frame[settings.target].notna()]
    y = frame[settings.target].to_numpy()
    features = frame.drop(columns=[settings.target])
    columns = [str(name) for name in features.columns]
    if settings.input_shape:
        x = _reshape(features.to_numpy(dtype=np.float32), settings.input_shape)
        scale = 1.0
        if np.nanmax(x) > 1.5 and np.nanmax(x) <= 255:
            x, scale = x / 255.0, 255.0
        return np.nan_to_num(x), y, "image" if x.ndim == 4 else "tabular", {"columns": columns, "scale": scale}
    x, recipe = _encode(features)
    return x, y, "tabular", {"columns": columns, **recipe}


def _encode(features: pd.DataFrame) -> tuple[np.ndarray, dict[str, Any]]:
    numeric = features.select_dtypes(include="number")
    medians = numeric.median()
    numeric = numeric.fillna(medians)
    text = features.drop(columns=list(numeric.columns)).astype("string").fillna(MISSING_LEVEL)
    # One-hot columns as get_dummies makes them: per text column, its levels sorted.
    levels = {str(column): sorted(str(v) for v in text[column].unique()) for column in text.columns}
    parts = [numeric.to_numpy(dtype=np.float32)]
    for column, names in levels.items():
        values = text[column].to_numpy(dtype=object)
        parts.append(np.stack([values == level for level in names], axis=1).astype(np.float32))
    recipe = {
        "encoded": True,
        "numeric": [str(name) for name in numeric.columns],
        "medians": [float(v) if pd.notna(v) else 0.0 for v in medians],
        "levels": levels,
    }
    return np.concatenate(parts, axis=1), recipe


def _reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    size = int(np.prod(shape))
    if flat.shape[1] != size:
        raise DataError(f"inputShape {list(shape)} needs {size} values per sample, the data has {flat.shape[1]}")
    full = (len(x), *shape)
    return flat.reshape((len(x), 1, *shape) if len(shape) == 2 else full)


def _key(arrays: dict[str, Any], letter: str) -> str:
    if letter in arrays:
        return letter
    for name in sorted(arrays):
        if name.lower().startswith(letter):
            return name
    raise DataError(f"no array named {letter!r} or starting with {letter!r} among {sorted(arrays)}")
