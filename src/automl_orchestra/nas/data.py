"""Training data for NAS steps: image tensors (an ``.npz`` of arrays, or a table of pixel columns reshaped
with ``inputShape``) and tabular data (a table: numeric columns standardised, text columns one-hot).

The split is a pure function of the data and the settings (seed, sizes), so ``nas/train`` and a later
``nas/evaluate`` (or its re-execution) see exactly the same test rows.
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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.x_train.shape[1:])


def load(value: Any, settings: DataSettings) -> Split:
    """Features and labels of a resolved ``data`` reference, shuffled and split by ``settings``."""
    x, y, kind = _arrays(value, settings)
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
    if kind == "tabular":  # standardise with training statistics only
        mean, std = x[train].mean(axis=0), x[train].std(axis=0)
        x = (x - mean) / np.where(std > 0, std, 1.0)
    codes = codes.astype(np.int64)
    return Split(x[train], codes[train], x[valid], codes[valid], x[test], codes[test], [str(c) for c in classes], kind)


def _arrays(value: Any, settings: DataSettings) -> tuple[np.ndarray, np.ndarray, str]:
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


def _from_mapping(arrays: dict[str, Any], settings: DataSettings) -> tuple[np.ndarray, np.ndarray, str]:
    """``x``/``y`` arrays, or the first array whose name starts with x and with y (``x_test``, ``y_test``)."""
    x_key = _key(arrays, "x")
    y_key = settings.target if settings.target in arrays else _key(arrays, "y")
    x, y = np.asarray(arrays[x_key]), np.asarray(arrays[y_key]).reshape(-1)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    if settings.input_shape:
        x = _reshape(x, settings.input_shape)
    elif x.ndim == 3:
        x = x[:, None, :, :]  # N x H x W grey images
    return x, y, "image" if x.ndim == 4 else "tabular"


def _from_table(frame: pd.DataFrame, settings: DataSettings) -> tuple[np.ndarray, np.ndarray, str]:
    if not settings.target or settings.target not in frame.columns:
        raise DataError(f"target {settings.target!r} is not a column of the dataset: {list(frame.columns)[:30]}")
    frame = frame[frame[settings.target].notna()]
    y = frame[settings.target].to_numpy()
    features = frame.drop(columns=[settings.target])
    if settings.input_shape:
        x = _reshape(features.to_numpy(dtype=np.float32), settings.input_shape)
        if np.nanmax(x) > 1.5:
            x = x / 255.0 if np.nanmax(x) <= 255 else x
        return np.nan_to_num(x), y, "image" if x.ndim == 4 else "tabular"
    return _encode(features), y, "tabular"


def _encode(features: pd.DataFrame) -> np.ndarray:
    numeric = features.select_dtypes(include="number")
    numeric = numeric.fillna(numeric.median())
    text = features.drop(columns=list(numeric.columns)).astype("string").fillna("(missing)")
    dummies = pd.get_dummies(text, dtype=np.float32) if len(text.columns) else pd.DataFrame(index=features.index)
    return np.concatenate([numeric.to_numpy(dtype=np.float32), dummies.to_numpy(dtype=np.float32)], axis=1)


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
