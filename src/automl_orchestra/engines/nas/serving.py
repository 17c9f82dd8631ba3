"""A ``nas/train`` network as a serving worker uses it: the stored spec and weights rebuilt as a PyTorch module
once, new rows prepared by the recipe of the split the network trained on (``nas.data.prepare_inputs``), and
answered with the class of the highest logit and the softmax of the logits as probabilities.

A network trained on a table takes that table's columns (its version's signature lists them); one trained on
arrays (an ``.npz`` of images) takes rows of its flat input values in order (``[rows, 64]`` for 8x8 images,
or an inference tensor ``[rows, 1, 8, 8]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core.serving import Answer, NotServable, ServedModel, softmax
from automl_orchestra.nas.data import DataError, prepare_inputs
from automl_orchestra.nas.network import TrainedNetwork


class ServedNetwork(ServedModel):
    def __init__(self, network: Any) -> None:
        if not isinstance(network, TrainedNetwork):
            raise NotServable(f"the stored {type(network).__name__} is not a trained network")
        if network.rejected:
            raise NotServable(f"the network was rejected before training ({network.rejected}): it has no weights")
        if not network.weights:
            raise NotServable("the network has no trained weights")
        if network.preprocessing is None:
            raise NotServable(
                "the network was stored before its input preprocessing was kept with it: re-run its nas/train step "
                "and register that run"
            )
        from automl_orchestra.nas import trainer

        self.model = network
        self.task = "classification"
        self.recipe = network.preprocessing
        self.classes = list(network.classes)
        self.module = trainer.restore(network)

    @property
    def classifier(self) -> bool:
        return True

    def columns(self) -> list[str] | None:
        columns = self.recipe.get("columns")
        return [str(name) for name in columns] if columns else None

    def predict(self, rows: pd.DataFrame, probabilities: bool) -> Answer:
        from automl_orchestra.nas import trainer

        text = [str(c) for c in rows.columns if not pd.api.types.is_numeric_dtype(rows[c])]
        if text and not self.recipe.get("encoded"):
            raise StepError(f"the network takes numbers; column(s) {text[:10]} hold other values")
        try:
            inputs = prepare_inputs(self.recipe, rows)
        except (DataError, ValueError, TypeError) as exc:
            raise StepError(str(exc)) from None
        scores = softmax(np.asarray(trainer.predict_logits(self.module, inputs), dtype=float))
        labels = np.asarray(self.classes, dtype=object)[np.argmax(scores, axis=1)]
        if not probabilities:
            return Answer(labels)
        return Answer(labels, scores, self.classes)
