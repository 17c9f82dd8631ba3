"""The requests of the Keras tools with fields of their own: ``model/keras``, ``model/autokeras`` and
``automl/autokeras``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from automl_orchestra.contracts.parameters import AutoMLBody, model_body_with_default


class AutoKerasBody(AutoMLBody):
    """``automl/autokeras``: a neural architecture search on images (named arrays, or a table of pixel
    columns with ``imageShape``) or on a numeric table."""

    example: ClassVar[dict[str, Any]] = {
        "name": "mnist_automl",
        "parentName": "mnist",
        "inputKey": "train_images",
        "target": "train_labels",
        "task": "classification",
        "timeBudget": 600,
        "maxTrials": 3,
        "epochs": 10,
    }

    maxTrials: int = Field(default=3, ge=1, le=1000, description="architectures tried at most")
    epochs: int = Field(default=10, ge=1, le=10_000, description="training epochs of each trial")
    trialTimeout: float | None = Field(default=None, gt=0, description="seconds one trial may run")
    validationSplit: float = Field(default=0.1, gt=0, lt=0.9, description="share of rows that score the trials")
    batchSize: int | None = Field(default=None, ge=1, le=65_536, description="training batch size (AutoKeras: 32)")
    refit: bool = Field(
        default=True, description="retrain the best architecture on every row when that fits in the budget, and keep it"
    )
    inputKey: str | None = Field(default=None, description="parentName holds named arrays: the inputs' key")
    imageShape: list[int] | None = Field(
        default=None, min_length=2, max_length=3, description="flat pixel columns as images, e.g. [28, 28]"
    )

    @field_validator("imageShape")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        # A validator, not a constrained item type: the OpenAPI document stays as it is.
        if value is not None and any(size <= 0 for size in value):
            raise ValueError("imageShape must be a list of positive integers, e.g. [28, 28] or [32, 32, 3]")
        return value


KerasModelBody = model_body_with_default(
    "KerasModelBody",
    "keras",
    "Sequential",
    {
        "name": "mnist_cnn",
        "classParameters": {
            "layers": [
                "#keras.Input(shape=(8, 8))",
                "#keras.layers.Flatten()",
                "#keras.layers.Dense(10, activation='softmax')",
            ]
        },
    },
    '``model/keras``: a Keras model (``Sequential`` by default) from ``"#..."`` layer expressions (code roles only).',
)
AutoKerasModelBody = model_body_with_default(
    "AutoKerasModelBody",
    "autokeras",
    "ImageClassifier",
    {"name": "mnist_model", "classParameters": {"max_trials": 1, "seed": 1}},
    "``model/autokeras``: an AutoKeras task (``ImageClassifier`` by default) with AutoKeras' own arguments.",
)
