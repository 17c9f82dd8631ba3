"""Keras and AutoKeras models in a serving worker.

A hand-built Keras model (``train/keras``) knows its input tensor but not what its outputs mean: a request
sends each row as the flat values of one input tensor, in order (64 numbers for an ``(8, 8)`` input; any
column names, or an inference tensor ``[rows, 8, 8]``), and the answer is the model's raw outputs, one value
or one list per row (``task`` null: the registry does not know its classes).

An AutoKeras model (``train|automl/autokeras``) answers as AutoKeras' own ``predict`` does:
``autokeras.ServedAutoKerasModel``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.engines.core.serving import Answer, NotServable, ServedModel, numeric_matrix


def input_shape(model: Any) -> list[int]:
    """The per-row shape of a Keras model's one input; NotServable when there are several or it varies."""
    inputs = list(getattr(model, "inputs", None) or [])
    if len(inputs) != 1:
        raise NotServable(f"the Keras model takes {len(inputs)} input tensors; serving sends one per row")
    shape = list(inputs[0].shape)[1:]
    if any(size is None for size in shape):
        raise NotServable(f"the Keras model's input shape {shape} is not fixed: rows cannot be shaped to it")
    return [int(size) for size in shape]


class ServedKerasModel(ServedModel):
    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.shape = input_shape(model)

    def columns(self) -> list[str] | None:
        return None

    def predict(self, rows: pd.DataFrame, probabilities: bool) -> Answer:
        x = numeric_matrix(rows, math.prod(self.shape), self.shape).reshape(len(rows), *self.shape)
        outputs = np.asarray(self.model.predict(x, verbose=0))
        return Answer(outputs.reshape(len(rows)) if outputs.ndim == 2 and outputs.shape[1] == 1 else outputs)
